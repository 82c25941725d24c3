//! The mailer actor: it sends what the mail queue (`queue.rs`) holds. Every
//! node runs one; each takes due mails under a lease, so a mail goes out
//! from one node at a time, with at most CLASSBELL_MAIL_CONCURRENCY in
//! flight per node. A transient failure is tried again with exponential
//! backoff; after CLASSBELL_MAIL_MAX_ATTEMPTS, or on a permanent refusal,
//! the mail is failed for good and waits for an admin. Requests never wait
//! for a relay: they write the row and nudge the mailer.
//!
//! A mail goes out twice only when a node dies after the relay accepted it
//! and before the row says so; the repeat carries the same Message-ID.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use lettre::address::{Address, Envelope};
use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use metrics::{counter, gauge};
use tokio::sync::Semaphore;

use super::queue::{self, STATES, Taken};
use crate::config;
use crate::db::DbPool;
use crate::telemetry::mailbox;

/// The mailer's name in actor metrics.
pub const MAILER: &str = "mailer";

/// Every kind of mail, registered at zero so the series exist before the first send.
const KINDS: &[&str] = &[
    "forgot_username",
    "password_reset",
    "invitation",
    "reminder",
    "due_summary",
];

/// How long sent mails stay on record.
const KEEP_SENT_DAYS: i64 = 30;

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One `.eml` file per message in a folder: the default with no relay.
    Outbox(AsyncFileTransport<Tokio1Executor>),
}

/// Why a send failed, and whether trying again could help.
struct Refusal {
    error: String,
    permanent: bool,
}

impl Transport {
    async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), Refusal> {
        match self {
            Transport::Smtp(smtp) => {
                smtp.send_raw(envelope, message)
                    .await
                    .map(drop)
                    .map_err(|e| Refusal {
                        permanent: e.is_permanent(),
                        error: e.to_string(),
                    })
            }
            Transport::Outbox(outbox) => outbox
                .send_raw(envelope, message)
                .await
                .map(drop)
                .map_err(|e| Refusal {
                    permanent: false,
                    error: e.to_string(),
                }),
        }
    }
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    db: DbPool,
    settings: config::Mail,
    in_flight: Arc<Semaphore>,
    /// A pass over the queue is under way: nudges meanwhile need no second one.
    polling: Arc<AtomicBool>,
    /// This actor, once started: a finished send frees a slot and looks
    /// again at once, so a long queue drains at the relay's pace, not the
    /// poll interval's.
    me: Option<Addr<Mailer>>,
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

/// The sender every mail names, from CLASSBELL_MAIL_FROM.
pub fn sender(settings: &config::Mail) -> Result<Mailbox, MailerError> {
    settings
        .from
        .parse()
        .map_err(|e: lettre::address::AddressError| MailerError::From(e.to_string()))
}

impl Mailer {
    pub fn from_settings(settings: &config::Mail, db: DbPool) -> Result<Self, MailerError> {
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
            counter!("classbell_mail_retries_total", "kind" => *kind).absolute(0);
        }
        for state in STATES.iter().filter(|state| **state != "sent") {
            gauge!("classbell_mail_queue", "state" => *state).set(0.0);
        }
        gauge!("classbell_mail_oldest_queued_seconds").set(0.0);
        mailbox::register(MAILER);
        Ok(Mailer {
            transport,
            from: sender(settings)?,
            db,
            in_flight: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            settings: settings.clone(),
            polling: Arc::new(AtomicBool::new(false)),
            me: None,
        })
    }

    /// Takes as many due mails as there are free sending slots and sends
    /// each on its own task; a pass already under way makes this one moot.
    fn poll(&self) {
        if self.polling.swap(true, Ordering::AcqRel) {
            return;
        }
        let polling = Arc::clone(&self.polling);
        let free = self.in_flight.available_permits();
        let sending = Sending {
            transport: self.transport.clone(),
            from: self.from.email.clone(),
            db: self.db.clone(),
            in_flight: Arc::clone(&self.in_flight),
            max_attempts: self.settings.max_attempts.max(1),
            retry_secs: self.settings.retry_secs.max(1),
            mailer: self.me.clone(),
        };
        let lease = i64::try_from(self.settings.lease_secs.max(1)).unwrap_or(60);
        actix::spawn(async move {
            if free > 0 {
                match sending.db.get().await {
                    Ok(mut conn) => match queue::take(&mut conn, free as i64, lease).await {
                        Ok(taken) => {
                            drop(conn);
                            for mail in taken {
                                let sending = sending.clone();
                                let Ok(permit) =
                                    Arc::clone(&sending.in_flight).acquire_owned().await
                                else {
                                    break;
                                };
                                actix::spawn(async move {
                                    sending.send(mail).await;
                                    drop(permit);
                                    if let Some(mailer) = &sending.mailer {
                                        mailbox::tell(mailer, MAILER, MailQueued);
                                    }
                                });
                            }
                        }
                        Err(error) => tracing::warn!(%error, "could not take mail to send"),
                    },
                    Err(error) => tracing::warn!(%error, "no database connection for the mailer"),
                }
            }
            polling.store(false, Ordering::Release);
        });
    }

    /// The queue's gauges.
    fn census(&self) {
        let db = self.db.clone();
        actix::spawn(async move {
            let Ok(mut conn) = db.get().await else {
                return;
            };
            match queue::census(&mut conn).await {
                Ok((counts, oldest)) => {
                    for state in STATES.iter().filter(|state| **state != "sent") {
                        let count = counts
                            .iter()
                            .find(|(s, _)| s == state)
                            .map_or(0, |(_, n)| *n);
                        gauge!("classbell_mail_queue", "state" => *state).set(count as f64);
                    }
                    gauge!("classbell_mail_oldest_queued_seconds").set(oldest);
                }
                Err(error) => tracing::warn!(%error, "could not count the mail queue"),
            }
        });
    }

    /// Sent mails past keeping are forgotten (hourly: they only pile up slowly).
    fn forget_old(&self) {
        let db = self.db.clone();
        actix::spawn(async move {
            let Ok(mut conn) = db.get().await else {
                return;
            };
            if let Err(error) = queue::forget_sent(&mut conn, KEEP_SENT_DAYS).await {
                tracing::warn!(%error, "could not forget old sent mail");
            }
        });
    }
}

/// What one send needs, apart from the mail.
#[derive(Clone)]
struct Sending {
    transport: Transport,
    from: Address,
    db: DbPool,
    in_flight: Arc<Semaphore>,
    max_attempts: u32,
    retry_secs: u64,
    mailer: Option<Addr<Mailer>>,
}

impl Sending {
    async fn send(&self, mail: Taken) {
        let kind = KINDS
            .iter()
            .find(|known| **known == mail.kind)
            .copied()
            .unwrap_or("other");
        let outcome = match mail
            .recipient
            .parse::<Address>()
            .map_err(|e| e.to_string())
            .and_then(|to| {
                Envelope::new(Some(self.from.clone()), vec![to]).map_err(|e| e.to_string())
            }) {
            Ok(envelope) => self.transport.send(&envelope, &mail.message).await,
            Err(error) => Err(Refusal {
                error,
                permanent: true,
            }),
        };
        let Ok(mut conn) = self.db.get().await else {
            // The lease runs out and another pass takes the mail again.
            tracing::warn!(id = mail.id, "no database connection to record a send");
            return;
        };
        let recorded = match outcome {
            Ok(()) => {
                counter!("classbell_mail_sent_total", "kind" => kind).increment(1);
                queue::sent(&mut conn, mail.id).await
            }
            Err(refusal) => {
                let attempts = u32::try_from(mail.attempts).unwrap_or(u32::MAX);
                let retry_at = (!refusal.permanent && attempts < self.max_attempts).then(|| {
                    // 1×, 4×, 16×… the base, at most a day.
                    let factor = 4u64.saturating_pow(attempts.saturating_sub(1));
                    let secs = self.retry_secs.saturating_mul(factor).min(24 * 3600);
                    Utc::now() + chrono::Duration::seconds(secs as i64)
                });
                if retry_at.is_some() {
                    tracing::warn!(error = %refusal.error, attempts, kind, "mail not sent yet, retrying");
                    counter!("classbell_mail_retries_total", "kind" => kind).increment(1);
                } else {
                    tracing::error!(error = %refusal.error, attempts, kind, "mail could not be sent");
                    counter!("classbell_mail_failed_total", "kind" => kind).increment(1);
                }
                queue::not_sent(&mut conn, mail.id, &refusal.error, retry_at).await
            }
        };
        if let Err(error) = recorded {
            tracing::warn!(%error, id = mail.id, "could not record a send");
        }
    }
}

impl Actor for Mailer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.me = Some(ctx.address());
        let poll = Duration::from_millis(self.settings.poll_ms.max(10));
        ctx.run_interval(poll, |mailer, _| mailer.poll());
        ctx.run_interval(Duration::from_secs(5), |mailer, _| mailer.census());
        ctx.run_interval(Duration::from_secs(3600), |mailer, _| mailer.forget_old());
        // Mail left by a run that stopped goes out now, not after the first interval.
        self.poll();
        self.census();
    }
}

/// New mail is in the queue: look now rather than at the next interval.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct MailQueued;

impl Handler<MailQueued> for Mailer {
    type Result = ();

    fn handle(&mut self, _: MailQueued, _: &mut Self::Context) {
        mailbox::handled(MAILER);
        self.poll();
    }
}
