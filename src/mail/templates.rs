//! Each mail classbell sends, in its recipient's language: the words come
//! from the catalogs (`catalog`), the plain text and an HTML part from the
//! same words, so the two never disagree.

use fluent_bundle::FluentArgs;
use lettre::message::Mailbox;

use super::catalog;
use crate::locale::Locale;

/// A mail to one person: plain text, and the same as HTML. `Postage::queue`
/// turns it into a message in the mail queue.
#[derive(Debug, Clone)]
pub struct SendMail {
    pub to: Mailbox,
    pub subject: String,
    pub body: String,
    pub html: String,
    /// What kind of mail this is, for the metrics and the queue (`password_reset`, …).
    pub kind: &'static str,
}

/// Who a mail is for, and in which language.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    /// How they are called (their display name).
    pub name: &'a str,
    pub email: &'a str,
    pub locale: Locale,
}

fn mail(kind: &'static str, id: &str, to: Recipient<'_>, mut args: FluentArgs) -> Option<SendMail> {
    args.set("name", to.name.to_owned());
    let body = catalog::text(to.locale, id, None, &args);
    Some(SendMail {
        to: Mailbox::new(Some(to.name.to_owned()), to.email.parse().ok()?),
        subject: catalog::text(to.locale, id, Some("subject"), &args),
        html: html(to.locale, &body),
        body,
        kind,
    })
}

pub fn forgot_username(to: Recipient<'_>, username: &str) -> Option<SendMail> {
    let mut args = FluentArgs::new();
    args.set("username", username.to_owned());
    mail("forgot_username", "forgot-username", to, args)
}

pub fn password_reset(to: Recipient<'_>, link: &str, valid_minutes: u64) -> Option<SendMail> {
    let mut args = FluentArgs::new();
    args.set("link", link.to_owned());
    args.set("minutes", valid_minutes);
    mail("password_reset", "password-reset", to, args)
}

pub fn invitation(
    to: Recipient<'_>,
    username: &str,
    link: &str,
    valid_days: u64,
) -> Option<SendMail> {
    let mut args = FluentArgs::new();
    args.set("username", username.to_owned());
    args.set("link", link.to_owned());
    args.set("days", valid_days);
    mail("invitation", "invitation", to, args)
}

/// `published`: when the announcement went out, on the school's clock.
pub fn reminder(to: Recipient<'_>, title: &str, published: &str, link: &str) -> Option<SendMail> {
    let mut args = FluentArgs::new();
    args.set("title", title.to_owned());
    args.set("published", published.to_owned());
    args.set("link", link.to_owned());
    mail("reminder", "reminder", to, args)
}

/// The publisher's summary at the due time: how many have not acknowledged
/// (`due` on the school's clock), with a link to who they are.
pub fn due_summary(
    to: Recipient<'_>,
    title: &str,
    due: &str,
    missing: usize,
    link: &str,
) -> Option<SendMail> {
    let mut args = FluentArgs::new();
    args.set("title", title.to_owned());
    args.set("due", due.to_owned());
    args.set("missing", missing);
    args.set("link", link.to_owned());
    mail("due_summary", "due-summary", to, args)
}

/// The HTML part: the same text, escaped, in paragraphs, with its links
/// clickable.
fn html(locale: Locale, text: &str) -> String {
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|paragraph| {
            let lines: Vec<String> = paragraph.lines().map(linked).collect();
            format!("<p>{}</p>", lines.join("<br>"))
        })
        .collect();
    format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"></head><body>{}</body></html>",
        locale.as_str(),
        paragraphs.join("\n")
    )
}

/// One line, escaped, with a bare `http(s)://` address made a link.
fn linked(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            let escaped = escape(word);
            if word.starts_with("https://") || word.starts_with("http://") {
                format!("<a href=\"{escaped}\">{escaped}</a>")
            } else {
                escaped
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_html_part_says_what_the_text_says_safely() {
        let to = Recipient {
            name: "<Eve>",
            email: "eve@school.example",
            locale: Locale::En,
        };
        let mail = reminder(
            to,
            "Fire <drill>",
            "3 December 2026, 08:00 (UTC)",
            "https://school.example/inbox",
        )
        .unwrap();
        assert_eq!(mail.subject, "Reminder: Fire <drill>");
        assert!(mail.body.contains("Hello <Eve>,"));
        assert!(mail.html.contains("Hello &lt;Eve&gt;,"));
        assert!(mail.html.contains("Fire &lt;drill&gt;"));
        assert!(
            mail.html
                .contains("<a href=\"https://school.example/inbox\">")
        );
        assert!(mail.html.starts_with("<!doctype html><html lang=\"en\">"));
    }
}
