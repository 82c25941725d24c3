# 简体中文邮件。每条消息是邮件的纯文本，`.subject` 是邮件主题；HTML 部分由同一文本生成。

forgot-username = { $name }，您好：

    有人（希望是您本人）查询了以此邮箱注册的 classbell 账户的用户名。

    您的用户名是：{ $username }

    如果不是您本人的操作，请忽略此邮件。
    .subject = 您的 classbell 用户名

password-reset = { $name }，您好：

    请在 { $minutes } 分钟内打开以下链接设置新密码：

    { $link }

    该链接仅可使用一次。如果您没有申请重置密码，请忽略此邮件，您的密码不会改变。
    .subject = 重置您的 classbell 密码

invitation = { $name }，您好：

    学校已为您创建了 classbell 账户。您的用户名是：{ $username }

    请在 { $days } 天内打开以下链接设置密码并登录：

    { $link }

    该链接仅可使用一次。如果链接已过期，请联系学校办公室重新发送。
    .subject = 您的 classbell 账户已开通

reminder = { $name }，您好：

    请阅读并确认公告“{ $title }”（发布于 { $published }）。

    您的收件箱：{ $link }
    .subject = 提醒：{ $title }

due-summary = { $name }，您好：

    “{ $title }”的确认截止时间为 { $due }。{ $missing ->
        [0] 所有人都已确认。
       *[other] 还有 { $missing } 人未确认。
    }

    未确认名单：{ $link }
    .subject = { $missing ->
        [0] 全部已确认：{ $title }
       *[other] { $missing } 人未确认：{ $title }
    }
