//! What it takes to send someone a mail: the queue to write it to, the
//! public address the mail's links point to, and the school's language and
//! clock for people who have not chosen a language. Handlers take this one
//! part instead of each piece.

use actix::Addr;
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use lettre::message::{Mailbox, Message, MultiPart};
use uuid::Uuid;

use super::catalog;
use super::mailer::{MAILER, MailQueued, Mailer};
use super::queue::{self, NewMail};
use super::templates::{Recipient, SendMail};
use crate::config;
use crate::error::AppError;
use crate::locale::Locale;
use crate::telemetry::mailbox;

#[derive(Clone)]
pub struct Postage {
    pub mailer: Addr<Mailer>,
    from: Mailbox,
    public_url: String,
    school: config::School,
}

impl Postage {
    pub fn new(
        mailer: Addr<Mailer>,
        from: Mailbox,
        server: &config::Server,
        school: &config::School,
    ) -> Self {
        Postage {
            mailer,
            from,
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

    /// Writes the mails to the queue on `conn`: in the caller's transaction
    /// when there is one, so a mail exists exactly when what caused it does.
    /// A mail that could not be made (an address that does not parse) is
    /// skipped. Call `post` once the transaction is committed.
    pub async fn queue(
        &self,
        conn: &mut AsyncPgConnection,
        mails: impl IntoIterator<Item = Option<SendMail>>,
    ) -> Result<(), AppError> {
        let rows: Vec<NewMail> = mails
            .into_iter()
            .flatten()
            .filter_map(|mail| self.message(mail))
            .collect();
        queue::enqueue(conn, &rows).await
    }

    /// Tells this node's mailer that mail is waiting, so it goes now rather
    /// than at the mailer's next look.
    pub fn post(&self) {
        mailbox::tell(&self.mailer, MAILER, MailQueued);
    }

    /// The whole message, with a Message-ID every attempt will carry.
    fn message(&self, mail: SendMail) -> Option<NewMail> {
        let domain = self.from.email.domain().to_owned();
        let message_id = format!("<{}@{domain}>", Uuid::new_v4());
        let recipient = mail.to.email.to_string();
        let built = Message::builder()
            .from(self.from.clone())
            .to(mail.to)
            .subject(mail.subject.clone())
            .message_id(Some(message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(mail.body, mail.html));
        match built {
            Ok(message) => Some(NewMail {
                message_id,
                kind: mail.kind.to_owned(),
                recipient,
                subject: mail.subject,
                message: message.formatted(),
            }),
            Err(error) => {
                tracing::error!(%error, kind = mail.kind, "could not build a mail");
                None
            }
        }
    }
}
