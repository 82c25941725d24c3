//! The escalation ladder at work. `Escalation` is the school's policy (its
//! ladder, its quiet hours, its clock); the `Escalator` actor, one per node,
//! runs the steps whose time has come. The schedule is the
//! `escalation_steps` table: a step is taken under a row lock that other
//! nodes skip, and its work (reminders counted, mails queued) commits with
//! the row that says it ran, so each step runs once. A step whose time
//! passed while no node ran goes at the next look, late, once.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use chrono_tz::Tz;
use diesel_async::AsyncConnection;
use metrics::counter;

use super::ladder::{Ladder, QuietHours};
use super::model::{Announcement, AnnouncementStatus};
use super::reminders::reminder_mails;
use super::store::{self, steps};
use crate::config;
use crate::db::DbPool;
use crate::deliveries::store as deliveries;
use crate::error::AppError;
use crate::events::{Event, EventBus};
use crate::ids::{AnnouncementId, UserId};
use crate::mail::{Postage, templates};
use crate::telemetry::mailbox;
use crate::users::store as users;

/// The school's ladder, quiet hours and clock.
#[derive(Debug, Clone)]
pub struct Escalation {
    ladder: Ladder,
    quiet: Option<QuietHours>,
    zone: Tz,
}

impl Escalation {
    pub fn from_settings(
        announcements: &config::Announcements,
        school: &config::School,
    ) -> Result<Self, String> {
        let ladder = announcements
            .escalation
            .parse()
            .map_err(|e| format!("CLASSBELL_ESCALATION: {e}"))?;
        let quiet = school
            .quiet_hours
            .as_deref()
            .filter(|hours| !hours.trim().is_empty())
            .map(str::parse)
            .transpose()
            .map_err(|e| format!("CLASSBELL_QUIET_HOURS: {e}"))?;
        Ok(Escalation {
            ladder,
            quiet,
            zone: school.zone(),
        })
    }

    /// The ladder `announcement` follows: its own, else the school's.
    pub fn ladder_of(&self, announcement: &Announcement) -> Ladder {
        announcement
            .escalation
            .as_deref()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| self.ladder.clone())
    }
}

/// The escalator's name in actor metrics.
pub const ESCALATOR: &str = "escalator";

/// Steps one look runs at most; the rest wait for the next.
const STEPS_PER_LOOK: usize = 50;

const OUTCOMES: &[&str] = &["done", "skipped", "cancelled", "deferred"];
const CHANNELS: &[&str] = &["in_app", "mail", "summary"];

pub struct Escalator {
    db: DbPool,
    postage: Postage,
    bus: EventBus,
    escalation: Escalation,
    poll: Duration,
    busy: bool,
}

impl Escalator {
    pub fn new(
        db: DbPool,
        postage: Postage,
        bus: EventBus,
        escalation: Escalation,
        poll: Duration,
    ) -> Self {
        for channel in CHANNELS {
            for outcome in OUTCOMES {
                counter!("classbell_escalation_steps_total", "channel" => *channel, "outcome" => *outcome)
                    .absolute(0);
            }
        }
        mailbox::register(ESCALATOR);
        Escalator {
            db,
            postage,
            bus,
            escalation,
            poll,
            busy: false,
        }
    }

    fn look(&mut self, ctx: &mut Context<Self>) {
        mailbox::ran(ESCALATOR);
        if self.busy {
            return;
        }
        self.busy = true;
        let (db, postage, bus, escalation) = (
            self.db.clone(),
            self.postage.clone(),
            self.bus.clone(),
            self.escalation.clone(),
        );
        let work = async move {
            for _ in 0..STEPS_PER_LOOK {
                match run_next(&db, &postage, &escalation).await {
                    Ok(Some(ran)) => ran.tell(&postage, &bus),
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "could not run an escalation step");
                        break;
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|(), escalator, _| {
            escalator.busy = false;
        }));
    }
}

impl Actor for Escalator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.poll, |escalator, ctx| escalator.look(ctx));
    }
}

/// What a step did, to tell once its transaction is committed.
enum Ran {
    /// In-app reminders counted: the live inboxes hear of them.
    Reminded(AnnouncementId),
    /// Reminder mail queued.
    Mailed(AnnouncementId),
    /// The publisher's summary mail queued; they hear it live too.
    Summarised {
        announcement_id: AnnouncementId,
        publisher_id: UserId,
        missing: i64,
    },
    /// Nothing to tell (skipped, cancelled, deferred).
    Quietly,
}

impl Ran {
    fn tell(self, postage: &Postage, bus: &EventBus) {
        match self {
            Ran::Reminded(announcement_id) => {
                bus.publish(Event::RemindersSent { announcement_id });
                bus.publish(Event::AnnouncementStats { announcement_id });
            }
            Ran::Mailed(announcement_id) => {
                postage.post();
                bus.publish(Event::AnnouncementStats { announcement_id });
            }
            Ran::Summarised {
                announcement_id,
                publisher_id,
                missing,
            } => {
                postage.post();
                bus.publish(Event::DueSummary {
                    announcement_id,
                    publisher_id,
                    missing,
                });
            }
            Ran::Quietly => {}
        }
    }
}

/// Runs the next step whose time has come, if any, in one transaction.
async fn run_next(
    db: &DbPool,
    postage: &Postage,
    escalation: &Escalation,
) -> Result<Option<Ran>, AppError> {
    let mut conn = db.get().await?;
    conn.transaction(async |conn| {
        let Some(step) = steps::take_due(conn).await? else {
            return Ok(None);
        };
        let announcement = store::find(conn, step.announcement_id).await?;
        let now = Utc::now();
        let channel = CHANNELS
            .iter()
            .find(|c| **c == step.channel)
            .copied()
            .unwrap_or("in_app");
        let count = |outcome: &'static str| {
            counter!("classbell_escalation_steps_total", "channel" => channel, "outcome" => outcome)
                .increment(1);
        };
        if announcement.status == AnnouncementStatus::Withdrawn
            || announcement.expires_at.is_some_and(|at| at <= now)
        {
            steps::finish(conn, step.id, "cancelled", None).await?;
            count("cancelled");
            return Ok(Some(Ran::Quietly));
        }
        // A rung whose time came before publication has nothing to add to
        // the announcement itself; the summary at the due time always runs.
        let before_publication = announcement
            .published_at
            .is_none_or(|published| step.planned_at < published);
        if announcement.status != AnnouncementStatus::Published
            || (before_publication && channel != "summary")
        {
            steps::finish(conn, step.id, "skipped", None).await?;
            count("skipped");
            return Ok(Some(Ran::Quietly));
        }
        if let Some(end) = escalation
            .quiet
            .and_then(|quiet| quiet.end_of_quiet(now, escalation.zone))
        {
            steps::defer(conn, step.id, end).await?;
            count("deferred");
            return Ok(Some(Ran::Quietly));
        }
        let (reached, ran) = match channel {
            "in_app" => {
                let reminded = deliveries::mark_reminded(conn, announcement.id).await?;
                store::reminded_now(conn, announcement.id).await?;
                (reminded.len(), Ran::Reminded(announcement.id))
            }
            "mail" => {
                let pending = deliveries::not_acknowledged(conn, announcement.id).await?;
                let mails = reminder_mails(postage, &announcement, &pending);
                postage.queue(conn, mails).await?;
                store::reminded_now(conn, announcement.id).await?;
                (pending.len(), Ran::Mailed(announcement.id))
            }
            _ => {
                let missing = deliveries::not_acknowledged(conn, announcement.id)
                    .await?
                    .len();
                let publisher = users::find(conn, announcement.publisher_id).await?;
                let to =
                    postage.recipient(&publisher.display_name, &publisher.email, publisher.locale);
                let due = postage.local_time(to.locale, announcement.ack_due_at.unwrap_or(now));
                let link = postage.link("/announcements");
                let mail = templates::due_summary(to, &announcement.title, &due, missing, &link);
                postage.queue(conn, [mail]).await?;
                let ran = Ran::Summarised {
                    announcement_id: announcement.id,
                    publisher_id: publisher.id,
                    missing: missing as i64,
                };
                (missing, ran)
            }
        };
        let reached = i32::try_from(reached).unwrap_or(i32::MAX);
        steps::finish(conn, step.id, "done", Some(reached)).await?;
        count("done");
        Ok(Some(ran))
    })
    .await
}
