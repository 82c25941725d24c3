# Mail in English. Each message is a mail's plain text; its `.subject` is the
# subject line. The HTML part is made from the same text.

forgot-username = Hello { $name },

    someone (hopefully you) asked for the username of the classbell account registered to this address.

    Your username is: { $username }

    If you did not ask, you can ignore this message.
    .subject = Your classbell username

password-reset = Hello { $name },

    to choose a new password, open this link within { $minutes ->
        [one] one minute
       *[other] { $minutes } minutes
    }:

    { $link }

    The link works once. If you did not ask to reset your password, you can ignore this message; your password stays as it is.
    .subject = Reset your classbell password

invitation = Hello { $name },

    your school has made you a classbell account. Your username is: { $username }

    To choose your password and sign in, open this link within { $days ->
        [one] one day
       *[other] { $days } days
    }:

    { $link }

    The link works once. If it has run out, ask the school office to send a new one.
    .subject = Your classbell account is ready

reminder = Hello { $name },

    please read and acknowledge the announcement "{ $title }", published { $published }.

    Your inbox: { $link }
    .subject = Reminder: { $title }

due-summary = Hello { $name },

    "{ $title }" was due { $due }. { $missing ->
        [0] Everyone has acknowledged it.
        [one] One recipient has not acknowledged it yet.
       *[other] { $missing } recipients have not acknowledged it yet.
    }

    Who is missing: { $link }
    .subject = { $missing ->
        [0] Everyone acknowledged: { $title }
       *[other] { $missing } missing: { $title }
    }
