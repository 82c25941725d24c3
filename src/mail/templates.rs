//! The text of each mail classbell sends.

use lettre::message::Mailbox;

use super::SendMail;

fn mailbox(username: &str, email: &str) -> Option<Mailbox> {
    Some(Mailbox::new(Some(username.to_owned()), email.parse().ok()?))
}

pub fn forgot_username(username: &str, email: &str) -> Option<SendMail> {
    Some(SendMail {
        to: mailbox(username, email)?,
        subject: "Your classbell username".to_owned(),
        body: format!(
            "Hello,\n\nsomeone (hopefully you) asked for the username of the classbell \
             account registered to this address.\n\nYour username is: {username}\n\n\
             If you did not ask, you can ignore this message.\n"
        ),
        kind: "forgot_username",
    })
}

pub fn password_reset(
    username: &str,
    email: &str,
    link: &str,
    valid_minutes: u64,
) -> Option<SendMail> {
    Some(SendMail {
        to: mailbox(username, email)?,
        subject: "Reset your classbell password".to_owned(),
        body: format!(
            "Hello {username},\n\nto choose a new password, open this link within \
             {valid_minutes} minutes:\n\n{link}\n\nThe link works once. If you did not ask \
             to reset your password, you can ignore this message; your password stays \
             as it is.\n"
        ),
        kind: "password_reset",
    })
}

pub fn invitation(
    display_name: &str,
    username: &str,
    email: &str,
    link: &str,
    valid_days: u64,
) -> Option<SendMail> {
    Some(SendMail {
        to: mailbox(display_name, email)?,
        subject: "Your classbell account is ready".to_owned(),
        body: format!(
            "Hello {display_name},\n\nyour school has made you a classbell account. Your \
             username is: {username}\n\nTo choose your password and sign in, open this link \
             within {valid_days} days:\n\n{link}\n\nThe link works once. If it has run out, \
             ask the school office to send a new one.\n"
        ),
        kind: "invitation",
    })
}

pub fn reminder(display_name: &str, email: &str, title: &str, link: &str) -> Option<SendMail> {
    Some(SendMail {
        to: mailbox(display_name, email)?,
        subject: format!("Reminder: {title}"),
        body: format!(
            "Hello {display_name},\n\nplease read and acknowledge the announcement \"{title}\".\n\n\
             Your inbox: {link}\n"
        ),
        kind: "reminder",
    })
}
