//! The mailer actor: requests hand it a message and move on, so a slow relay
//! never holds up an answer (and "forgot password" answers in the same time
//! whether or not a mail goes out). It sends with bounded concurrency and
//! retries transient failures with backoff.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use metrics::{counter, gauge};
use tokio::sync::Semaphore;

use crate::config;
use crate::telemetry::mailbox;

/// The mailer's name in actor metrics.
pub const MAILER: &str = "mailer";

const ATTEMPTS: u32 = 3;

/// Every kind of mail, registered at zero so the series exist before the first send.
const KINDS: &[&str] = &[
    "forgot_username",
    "password_reset",
    "invitation",
    "reminder",
];

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One `.eml` file per message in a folder: the default with no relay.
    Outbox(AsyncFileTransport<Tokio1Executor>),
}

impl Transport {
    async fn send(&self, message: Message) -> Result<(), String> {
        match self {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Transport::Outbox(outbox) => outbox
                .send(message)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    in_flight: Arc<Semaphore>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("CLASSBELL_SMTP_URL is invalid: {0}")]
    SmtpUrl(String),
    #[error("CLASSBELL_MAIL_FROM is not a mailbox: {0}")]
    From(String),
    #[error("cannot create the mail outbox folder {0}: {1}")]
    Outbox(String, std::io::Error),
}

impl Mailer {
    pub fn from_settings(settings: &config::Mail) -> Result<Self, MailerError> {
        let transport = match settings.smtp_url.as_deref().filter(|url| !url.is_empty()) {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailerError::SmtpUrl(e.to_string()))?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(&settings.outbox)
                    .map_err(|e| MailerError::Outbox(settings.outbox.display().to_string(), e))?;
                Transport::Outbox(AsyncFileTransport::new(&settings.outbox))
            }
        };
        for kind in KINDS {
            counter!("classbell_mail_sent_total", "kind" => *kind).absolute(0);
            counter!("classbell_mail_failed_total", "kind" => *kind).absolute(0);
        }
        gauge!("classbell_mail_queue_depth").increment(0.0);
        mailbox::register(MAILER);
        let from = settings
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| MailerError::From(e.to_string()))?;
        Ok(Mailer {
            transport,
            from,
            in_flight: Arc::new(Semaphore::new(settings.concurrency.max(1))),
        })
    }
}

impl Actor for Mailer {
    type Context = Context<Self>;
}

/// A message to one recipient: plain text, and the same as HTML.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendMail {
    pub to: Mailbox,
    pub subject: String,
    pub body: String,
    pub html: String,
    /// What kind of mail this is, for the metrics (`password_reset`, …).
    pub kind: &'static str,
}

impl Handler<SendMail> for Mailer {
    type Result = ();

    fn handle(&mut self, mail: SendMail, _: &mut Self::Context) {
        mailbox::handled(MAILER);
        let message = match Message::builder()
            .from(self.from.clone())
            .to(mail.to)
            .subject(mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.body, mail.html))
        {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, kind = mail.kind, "could not build a mail");
                counter!("classbell_mail_failed_total", "kind" => mail.kind).increment(1);
                return;
            }
        };
        let transport = self.transport.clone();
        let in_flight = Arc::clone(&self.in_flight);
        let kind = mail.kind;
        gauge!("classbell_mail_queue_depth").increment(1.0);
        actix::spawn(async move {
            let Ok(_permit) = in_flight.acquire_owned().await else {
                return;
            };
            let mut backoff = Duration::from_millis(500);
            for attempt in 1..=ATTEMPTS {
                match transport.send(message.clone()).await {
                    Ok(()) => {
                        counter!("classbell_mail_sent_total", "kind" => kind).increment(1);
                        break;
                    }
                    Err(error) if attempt < ATTEMPTS => {
                        tracing::warn!(%error, attempt, kind, "mail not sent yet, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff *= 4;
                    }
                    Err(error) => {
                        tracing::error!(%error, kind, "mail could not be sent");
                        counter!("classbell_mail_failed_total", "kind" => kind).increment(1);
                    }
                }
            }
            gauge!("classbell_mail_queue_depth").decrement(1.0);
        });
    }
}
