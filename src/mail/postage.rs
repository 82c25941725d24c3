//! What it takes to send someone a mail: the mailer, the public address the
//! mail's links point to, and the school's language and clock for people
//! who have not chosen a language. Handlers take this one part instead of
//! each piece.

use actix::Addr;
use chrono::{DateTime, Utc};

use super::catalog;
use super::mailer::{MAILER, Mailer, SendMail};
use super::templates::Recipient;
use crate::config;
use crate::locale::Locale;
use crate::telemetry::mailbox;

#[derive(Clone)]
pub struct Postage {
    pub mailer: Addr<Mailer>,
    public_url: String,
    school: config::School,
}

impl Postage {
    pub fn new(mailer: Addr<Mailer>, server: &config::Server, school: &config::School) -> Self {
        Postage {
            mailer,
            public_url: server.public_url.trim_end_matches('/').to_owned(),
            school: school.clone(),
        }
    }

    /// An address of this classbell for a mail, e.g. `/inbox`.
    pub fn link(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.public_url)
    }

    /// Someone to write to: in the language they chose, else the school's.
    pub fn recipient<'a>(
        &self,
        name: &'a str,
        email: &'a str,
        locale: Option<Locale>,
    ) -> Recipient<'a> {
        Recipient {
            name,
            email,
            locale: locale.unwrap_or(self.school.default_locale),
        }
    }

    /// A moment on the school's clock, as `locale` writes it.
    pub fn local_time(&self, locale: Locale, at: DateTime<Utc>) -> String {
        catalog::local_time(locale, self.school.zone(), at)
    }

    /// Hands the mail to the mailer; a mail that could not be made (an
    /// address that does not parse) is skipped.
    pub fn send(&self, mail: Option<SendMail>) {
        if let Some(mail) = mail {
            mailbox::tell(&self.mailer, MAILER, mail);
        }
    }
}
