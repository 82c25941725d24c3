//! The scheduler publishes scheduled announcements when their `publish_at`
//! comes. The schedule lives in PostgreSQL, so a restart loses nothing, and
//! the UPDATE that publishes takes each row once, so two nodes never publish
//! one announcement twice.

use std::time::Duration;

use actix::prelude::*;
use metrics::counter;

use super::fanout::{FANOUT_SUPERVISOR, FanoutSupervisor, Kick};
use super::store;
use crate::db::DbPool;
use crate::error::AppError;
use crate::ids::AnnouncementId;
use crate::telemetry::mailbox;

pub struct Scheduler {
    db: DbPool,
    fanout: Addr<FanoutSupervisor>,
    tick: Duration,
    busy: bool,
}

/// The scheduler's name in actor metrics.
pub const SCHEDULER: &str = "scheduler";

impl Scheduler {
    pub fn new(db: DbPool, fanout: Addr<FanoutSupervisor>, tick: Duration) -> Self {
        counter!("classbell_scheduler_published_total").absolute(0);
        mailbox::register(SCHEDULER);
        Scheduler {
            db,
            fanout,
            tick,
            busy: false,
        }
    }

    fn publish_due(&mut self, ctx: &mut Context<Self>) {
        mailbox::ran(SCHEDULER);
        if self.busy {
            return;
        }
        self.busy = true;
        let db = self.db.clone();
        let work = async move {
            let mut conn = db.get().await?;
            store::publish_due(&mut conn).await
        };
        ctx.spawn(work.into_actor(self).map(
            |result: Result<Vec<AnnouncementId>, AppError>, scheduler, _| {
                scheduler.busy = false;
                match result {
                    Ok(published) if !published.is_empty() => {
                        tracing::info!(?published, "scheduled announcements published");
                        counter!("classbell_scheduler_published_total")
                            .increment(published.len() as u64);
                        mailbox::tell(&scheduler.fanout, FANOUT_SUPERVISOR, Kick);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "could not publish scheduled announcements")
                    }
                }
            },
        ));
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.tick, |scheduler, ctx| scheduler.publish_due(ctx));
    }
}
