//! Fan-out: turning a published announcement into one delivery per recipient.
//!
//! The **supervisor** claims unfinished fan-outs (its own node's new ones at
//! once when kicked, anyone's lapsed ones on its poll) and runs one **worker**
//! actor per announcement. A worker writes chunk after chunk
//! (`deliveries::store::fanout_chunk`), each one statement that also moves the cursor and
//! renews the lease; when it fails, the supervisor hands the announcement
//! back with a backoff so this or another node retries it. Workers are
//! separate actors, so one bad announcement never stops the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use metrics::{counter, gauge, histogram};
use uuid::Uuid;

use super::audience::Audience;
use super::store;
use crate::config;
use crate::db::DbPool;
use crate::deliveries::store as deliveries;
use crate::error::AppError;
use crate::events::{Event, EventBus};
use crate::ids::AnnouncementId;
use crate::telemetry::mailbox;

/// The supervisor's name in actor metrics.
pub const FANOUT_SUPERVISOR: &str = "fanout_supervisor";
/// The workers' name in actor metrics (each chunk counts as handled).
pub const FANOUT_WORKER: &str = "fanout_worker";

/// How a node fans out; from configuration.
#[derive(Debug, Clone)]
pub struct FanoutSettings {
    /// Recipients per chunk (one statement, one transaction).
    pub chunk: i64,
    /// Recipients of the first chunk, doubling chunk by chunk up to `chunk`.
    pub first_chunk: i64,
    /// Fan-outs this node runs at once.
    pub workers: usize,
    /// How long a claim lasts without progress before another node may take over.
    pub lease_secs: u64,
    /// How often to look for unclaimed or lapsed fan-outs.
    pub poll: Duration,
    /// Pause between chunks, to spread a large fan-out's load on the database.
    pub chunk_delay: Duration,
}

impl From<&config::Fanout> for FanoutSettings {
    fn from(settings: &config::Fanout) -> Self {
        FanoutSettings {
            chunk: settings.chunk.max(1),
            first_chunk: settings.first_chunk.max(1),
            workers: settings.workers.max(1),
            lease_secs: settings.lease_secs.max(1),
            poll: Duration::from_millis(settings.poll_ms.max(10)),
            chunk_delay: Duration::from_millis(settings.chunk_delay_ms),
        }
    }
}

impl Default for FanoutSettings {
    /// The configuration defaults, for fan-outs run outside the server.
    fn default() -> Self {
        FanoutSettings {
            chunk: 10_000,
            first_chunk: 1_000,
            workers: 1,
            lease_secs: 60,
            poll: Duration::from_secs(1),
            chunk_delay: Duration::ZERO,
        }
    }
}

/// One announcement's fan-out, step by step.
pub struct FanoutJob {
    pub announcement_id: AnnouncementId,
    pub audience: Audience,
    pub owner: Uuid,
    pub settings: FanoutSettings,
}

/// Where a fan-out stands after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More recipients may follow.
    Continue,
    Finished,
    /// Withdrawn, or another node holds it now: stop without error.
    Released,
}

impl FanoutJob {
    /// Writes one full-sized chunk and reports it on the bus.
    pub async fn step(&self, db: &DbPool, bus: &EventBus) -> Result<Step, AppError> {
        self.step_of(self.settings.chunk, db, bus).await
    }

    /// Writes one chunk of `size` recipients and reports it on the bus.
    async fn step_of(&self, size: i64, db: &DbPool, bus: &EventBus) -> Result<Step, AppError> {
        let started = Instant::now();
        let mut conn = db.get().await?;
        let next = deliveries::NextChunk {
            announcement: self.announcement_id,
            audience: self.audience,
            owner: self.owner,
            size,
            lease_secs: self.settings.lease_secs,
        };
        let chunk = deliveries::fanout_chunk(&mut conn, &next).await?;
        drop(conn);
        if !chunk.claimed {
            return Ok(Step::Released);
        }
        counter!("classbell_fanout_chunks_total").increment(1);
        mailbox::ran(FANOUT_WORKER);
        counter!("classbell_fanout_rows_total")
            .increment(u64::try_from(chunk.written).unwrap_or(0));
        histogram!("classbell_fanout_chunk_seconds").record(started.elapsed().as_secs_f64());
        if let (Some(first), Some(last), true) = (chunk.first, chunk.last, chunk.written > 0) {
            bus.publish(Event::DeliveriesCreated {
                announcement_id: self.announcement_id,
                first_user_id: first,
                last_user_id: last,
                count: chunk.written,
                // Short of it only when the chunk met deliveries already there.
                whole_range: chunk.written == chunk.scanned,
            });
            bus.publish(Event::AnnouncementStats {
                announcement_id: self.announcement_id,
            });
        }
        Ok(if chunk.finished {
            Step::Finished
        } else {
            Step::Continue
        })
    }

    /// Steps until finished, released, failed or told to stop, the chunks
    /// growing from `first_chunk` to `chunk` (see `CLASSBELL_FANOUT_FIRST_CHUNK`).
    pub async fn run(
        &self,
        db: &DbPool,
        bus: &EventBus,
        stop: &AtomicBool,
    ) -> Result<Step, AppError> {
        let started = Instant::now();
        {
            let mut conn = db.get().await?;
            store::set_fanout_target(&mut conn, self.announcement_id, self.audience).await?;
        }
        let mut size = self.settings.first_chunk.min(self.settings.chunk);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(Step::Released);
            }
            match self.step_of(size, db, bus).await? {
                Step::Continue => {
                    size = size.saturating_mul(2).min(self.settings.chunk);
                    if !self.settings.chunk_delay.is_zero() {
                        tokio::time::sleep(self.settings.chunk_delay).await;
                    }
                }
                Step::Finished => {
                    histogram!("classbell_fanout_duration_seconds")
                        .record(started.elapsed().as_secs_f64());
                    return Ok(Step::Finished);
                }
                Step::Released => return Ok(Step::Released),
            }
        }
    }
}

/// Claims announcement `id` under a fresh owner and fans it out inline, for
/// the demo seed and the benchmark (the server's supervisor does the same
/// through its workers).
pub async fn run_now(
    db: &DbPool,
    bus: &EventBus,
    id: AnnouncementId,
    settings: FanoutSettings,
) -> Result<Step, AppError> {
    let owner = Uuid::new_v4();
    let claimed = {
        let mut conn = db.get().await?;
        store::claim_fanouts(&mut conn, owner, settings.lease_secs, &[], i64::MAX).await?
    };
    let Some(claim) = claimed.into_iter().find(|c| c.id == id) else {
        return Ok(Step::Released);
    };
    let job = FanoutJob {
        announcement_id: id,
        audience: claim.audience(),
        owner,
        settings,
    };
    job.run(db, bus, &AtomicBool::new(false)).await
}

/// Runs one fan-out and reports back to the supervisor.
pub struct FanoutWorker {
    job: Arc<FanoutJob>,
    db: DbPool,
    bus: EventBus,
    stop: Arc<AtomicBool>,
    supervisor: Addr<FanoutSupervisor>,
}

impl Actor for FanoutWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (job, db, bus, stop) = (
            Arc::clone(&self.job),
            self.db.clone(),
            self.bus.clone(),
            Arc::clone(&self.stop),
        );
        let work = async move { job.run(&db, &bus, &stop).await };
        ctx.spawn(work.into_actor(self).map(|outcome, worker, ctx| {
            let ended = FanoutEnded {
                announcement_id: worker.job.announcement_id,
                outcome: outcome.map_err(|e| e.to_string()),
            };
            mailbox::tell(&worker.supervisor, FANOUT_SUPERVISOR, ended);
            ctx.stop();
        }));
    }
}

/// Look for fan-outs to run now (an announcement was just published).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Kick;

/// Stop this node's worker for an announcement (it was withdrawn). Other
/// nodes' workers notice at their next chunk.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopFanout {
    pub announcement_id: AnnouncementId,
}

/// The node is shutting down: every worker stops after its current chunk
/// (whose cursor is committed with it) and its claim is released, so another
/// node resumes at once rather than when the lease lapses.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopAll;

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct FanoutEnded {
    announcement_id: AnnouncementId,
    outcome: Result<Step, String>,
}

pub struct FanoutSupervisor {
    db: DbPool,
    bus: EventBus,
    settings: FanoutSettings,
    /// This node's identity in `fanout_owner`.
    node: Uuid,
    workers: HashMap<AnnouncementId, (Addr<FanoutWorker>, Arc<AtomicBool>)>,
    claiming: bool,
    /// Shutting down: claim nothing more.
    stopping: bool,
}

impl FanoutSupervisor {
    pub fn new(db: DbPool, bus: EventBus, settings: FanoutSettings) -> Self {
        for name in [
            "classbell_fanout_chunks_total",
            "classbell_fanout_rows_total",
            "classbell_fanout_failures_total",
        ] {
            counter!(name).absolute(0);
        }
        gauge!("classbell_fanout_workers").set(0.0);
        gauge!("classbell_fanout_backlog").set(0.0);
        mailbox::register(FANOUT_SUPERVISOR);
        mailbox::register(FANOUT_WORKER);
        FanoutSupervisor {
            db,
            bus,
            settings,
            node: Uuid::new_v4(),
            workers: HashMap::new(),
            claiming: false,
            stopping: false,
        }
    }

    /// Claims what this node has room for and starts a worker for each.
    fn claim(&mut self, ctx: &mut Context<Self>) {
        let room = self.settings.workers.saturating_sub(self.workers.len());
        if self.claiming || self.stopping || room == 0 {
            return;
        }
        self.claiming = true;
        let (db, node, lease) = (self.db.clone(), self.node, self.settings.lease_secs);
        let running: Vec<AnnouncementId> = self.workers.keys().copied().collect();
        let work = async move {
            let mut conn = db.get().await?;
            let backlog = store::fanout_backlog(&mut conn).await?;
            let claimed =
                store::claim_fanouts(&mut conn, node, lease, &running, room as i64).await?;
            Ok::<_, AppError>((backlog, claimed))
        };
        ctx.spawn(work.into_actor(self).map(|result, supervisor, ctx| {
            supervisor.claiming = false;
            match result {
                Ok((backlog, claimed)) => {
                    gauge!("classbell_fanout_backlog").set(backlog as f64);
                    for claim in claimed {
                        supervisor.start_worker(claim, ctx);
                    }
                }
                Err(error) => tracing::warn!(%error, "could not claim fan-outs"),
            }
        }));
    }

    fn start_worker(&mut self, claim: store::Claimed, ctx: &mut Context<Self>) {
        let stop = Arc::new(AtomicBool::new(false));
        let worker = FanoutWorker {
            job: Arc::new(FanoutJob {
                announcement_id: claim.id,
                audience: claim.audience(),
                owner: self.node,
                settings: self.settings.clone(),
            }),
            db: self.db.clone(),
            bus: self.bus.clone(),
            stop: Arc::clone(&stop),
            supervisor: ctx.address(),
        };
        tracing::info!(
            announcement = %claim.id,
            attempt = claim.fanout_attempts + 1,
            "fan-out started"
        );
        self.workers.insert(claim.id, (worker.start(), stop));
        gauge!("classbell_fanout_workers").set(self.workers.len() as f64);
    }
}

impl Actor for FanoutSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.claim(ctx);
        ctx.run_interval(self.settings.poll, |supervisor, ctx| supervisor.claim(ctx));
    }
}

impl Handler<Kick> for FanoutSupervisor {
    type Result = ();

    fn handle(&mut self, _: Kick, ctx: &mut Self::Context) {
        mailbox::handled(FANOUT_SUPERVISOR);
        self.claim(ctx);
    }
}

impl Handler<StopFanout> for FanoutSupervisor {
    type Result = ();

    fn handle(&mut self, message: StopFanout, _: &mut Self::Context) {
        mailbox::handled(FANOUT_SUPERVISOR);
        if let Some((_, stop)) = self.workers.get(&message.announcement_id) {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

impl Handler<StopAll> for FanoutSupervisor {
    type Result = ();

    fn handle(&mut self, _: StopAll, _: &mut Self::Context) {
        mailbox::handled(FANOUT_SUPERVISOR);
        self.stopping = true;
        for (_, stop) in self.workers.values() {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Seconds before a failed fan-out is tried again: 2, 4, 8, … up to 5 minutes.
fn backoff_secs(attempts: i32) -> u64 {
    2u64.saturating_pow(attempts.clamp(1, 16) as u32).min(300)
}

impl Handler<FanoutEnded> for FanoutSupervisor {
    type Result = ();

    fn handle(&mut self, ended: FanoutEnded, ctx: &mut Self::Context) {
        mailbox::handled(FANOUT_SUPERVISOR);
        self.workers.remove(&ended.announcement_id);
        gauge!("classbell_fanout_workers").set(self.workers.len() as f64);
        match ended.outcome {
            Ok(Step::Released) if self.stopping => {
                let (db, node, id) = (self.db.clone(), self.node, ended.announcement_id);
                ctx.spawn(
                    async move { store::release_fanout(&mut *db.get().await?, id, node).await }
                        .into_actor(self)
                        .map(move |result: Result<(), AppError>, _, _| match result {
                            Ok(()) => tracing::info!(announcement = %id, "fan-out handed back for another node"),
                            Err(error) => tracing::warn!(%error, "could not hand a fan-out back; its lease will lapse"),
                        }),
                );
                return;
            }
            Ok(step) => {
                tracing::info!(announcement = %ended.announcement_id, ?step, "fan-out ended")
            }
            Err(error) => {
                counter!("classbell_fanout_failures_total").increment(1);
                tracing::warn!(announcement = %ended.announcement_id, %error, "fan-out failed; will retry");
                let (db, node, id) = (self.db.clone(), self.node, ended.announcement_id);
                ctx.spawn(
                    async move {
                        let mut conn = db.get().await?;
                        let attempts = store::fanout_attempts(&mut conn, id).await?;
                        store::fanout_failed(&mut conn, id, node, &error, backoff_secs(attempts + 1)).await
                    }
                    .into_actor(self)
                    .map(|result: Result<(), AppError>, _, _| {
                        if let Err(error) = result {
                            tracing::warn!(%error, "could not record a fan-out failure; its lease will lapse");
                        }
                    }),
                );
            }
        }
        // A slot is free: take the next one.
        self.claim(ctx);
    }
}
