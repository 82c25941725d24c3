//! The job runner: claims queued jobs (and those whose node died) and runs
//! them, a bounded number at a time, on any node.
//!
//! A claim is a lease that each progress report renews; a node that dies
//! stops renewing, and any runner takes the job over once the lease lapses.
//! Jobs are written to be run again from the start (imports upsert, exports
//! rewrite their file), and only the node that holds the claim may end the
//! job, so a job interrupted by a restart still finishes exactly once. A job
//! that fails records why and is not retried; one whose node died three
//! times is given up.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use metrics::{counter, gauge, histogram};
use uuid::Uuid;

use super::context::{JobContext, JobSettings, Outcome, Stop};
use super::model::{Job, JobKind, JobState};
use super::store::{self, Ending};
use super::{exports, imports};
use crate::db::DbPool;
use crate::error::AppError;
use crate::events::EventBus;
use crate::ids::JobId;
use crate::storage::{Storage, deletions};
use crate::telemetry::mailbox;

/// The runner's name in actor metrics.
pub const JOB_RUNNER: &str = "job_runner";

/// Runs of a job cut short by its node going away before it is given up.
const MAX_ATTEMPTS: i32 = 3;

async fn execute(ctx: &JobContext) -> Result<Outcome, Stop> {
    if ctx.job.kind.is_import() {
        imports::run(ctx).await
    } else {
        exports::run(ctx).await
    }
}

/// Runs one claimed job to its end and records it.
async fn run_job(ctx: JobContext) {
    let started = Instant::now();
    let kind = ctx.job.kind.as_str();
    let keeper = actix_web::rt::spawn(keep_lease(
        ctx.db.clone(),
        ctx.job.id,
        ctx.node,
        ctx.settings.lease_secs,
    ));
    let outcome = execute(&ctx).await;
    keeper.abort();
    let ending = match outcome {
        Ok(outcome) => Ending {
            state: JobState::Succeeded,
            result: Some(outcome.result),
            error: None,
            expires_at: outcome
                .output_key
                .as_ref()
                .map(|_| Utc::now() + ctx.settings.file_ttl),
            output_key: outcome.output_key,
        },
        Err(Stop::Lost) => {
            tracing::info!(job = %ctx.job.id, "another node took the job over");
            return;
        }
        Err(Stop::Failed(reason)) => failed(reason),
        Err(Stop::Error(error)) => {
            tracing::warn!(job = %ctx.job.id, %error, "a job failed");
            failed(match error {
                AppError::Internal { .. } => "an internal error stopped the job".into(),
                other => other.to_string(),
            })
        }
    };
    let state = ending.state;
    let finished = match ctx.conn().await {
        Ok(mut conn) => store::finish(&mut conn, ctx.job.id, ctx.node, ending).await,
        Err(error) => Err(error),
    };
    match finished {
        Ok(Some((done, total))) => {
            let outcome = if state == JobState::Succeeded {
                "succeeded"
            } else {
                "failed"
            };
            counter!("classbell_jobs_finished_total", "kind" => kind, "outcome" => outcome)
                .increment(1);
            histogram!("classbell_job_duration_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            ctx.announce(state, done, total);
            deletions::purge(&ctx.db, &ctx.storage).await;
        }
        Ok(None) => tracing::info!(job = %ctx.job.id, "another node took the job over"),
        // The lease lapses and the job runs again.
        Err(error) => tracing::warn!(job = %ctx.job.id, %error, "could not record a job's end"),
    }
}

/// Renews a running job's claim every third of its lease, so a job that
/// reports progress seldom (an export reads and writes in one go) is never
/// taken for dead and run a second time by another node.
async fn keep_lease(db: DbPool, id: JobId, node: Uuid, lease_secs: u64) {
    let every =
        Duration::from_millis(lease_secs.saturating_mul(1000) / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let renewed = match db.get().await {
            Ok(mut conn) => store::renew(&mut conn, id, node, lease_secs).await,
            Err(error) => Err(error),
        };
        match renewed {
            Ok(true) => {}
            // Ended, or another node holds it now.
            Ok(false) => return,
            Err(error) => tracing::warn!(job = %id, %error, "could not renew a job's lease"),
        }
    }
}

fn failed(reason: String) -> Ending {
    Ending {
        state: JobState::Failed,
        result: None,
        error: Some(reason),
        output_key: None,
        expires_at: None,
    }
}

/// Look for jobs now (one was just queued).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Kick;

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct JobEnded {
    id: JobId,
}

pub struct JobRunner {
    db: DbPool,
    storage: Arc<Storage>,
    bus: EventBus,
    settings: JobSettings,
    node: Uuid,
    running: HashSet<JobId>,
    claiming: bool,
}

impl JobRunner {
    pub fn new(db: DbPool, storage: Arc<Storage>, bus: EventBus, settings: JobSettings) -> Self {
        mailbox::register(JOB_RUNNER);
        gauge!("classbell_jobs_running_here").set(0.0);
        for kind in JobKind::ALL {
            for outcome in ["succeeded", "failed"] {
                counter!("classbell_jobs_finished_total", "kind" => kind.as_str(), "outcome" => outcome)
                    .absolute(0);
            }
            for state in ["pending", "running"] {
                gauge!("classbell_jobs", "kind" => kind.as_str(), "state" => state).set(0.0);
            }
        }
        counter!("classbell_job_files_expired_total").absolute(0);
        JobRunner {
            db,
            storage,
            bus,
            settings,
            node: Uuid::new_v4(),
            running: HashSet::new(),
            claiming: false,
        }
    }

    fn claim(&mut self, ctx: &mut Context<Self>) {
        let room = self.settings.workers.saturating_sub(self.running.len());
        if self.claiming || room == 0 {
            return;
        }
        self.claiming = true;
        let (db, node, lease) = (self.db.clone(), self.node, self.settings.lease_secs);
        let running: Vec<JobId> = self.running.iter().copied().collect();
        let work = async move {
            let mut conn = db.get().await?;
            for job in store::give_up_abandoned(&mut conn, MAX_ATTEMPTS).await? {
                tracing::warn!(job = %job.id, "gave up a job whose server kept going away");
                counter!("classbell_jobs_finished_total", "kind" => job.kind.as_str(), "outcome" => "failed")
                    .increment(1);
            }
            let ids =
                store::claim(&mut conn, node, lease, &running, room as i64, MAX_ATTEMPTS).await?;
            let mut jobs = Vec::with_capacity(ids.len());
            for id in ids {
                jobs.push(store::find(&mut conn, id).await?);
            }
            Ok::<_, AppError>(jobs)
        };
        ctx.spawn(work.into_actor(self).map(|result, runner, ctx| {
            runner.claiming = false;
            match result {
                Ok(jobs) => {
                    for job in jobs {
                        runner.start(job, ctx);
                    }
                }
                Err(error) => tracing::warn!(%error, "could not claim jobs"),
            }
        }));
    }

    fn start(&mut self, job: Job, ctx: &mut Context<Self>) {
        tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, "job started");
        self.running.insert(job.id);
        gauge!("classbell_jobs_running_here").set(self.running.len() as f64);
        let id = job.id;
        let context = JobContext {
            job,
            db: self.db.clone(),
            storage: Arc::clone(&self.storage),
            bus: self.bus.clone(),
            node: self.node,
            settings: self.settings.clone(),
        };
        let runner = ctx.address();
        // On its own task: a job's CSV work must not hold up this actor.
        actix_web::rt::spawn(async move {
            run_job(context).await;
            mailbox::tell(&runner, JOB_RUNNER, JobEnded { id });
        });
    }

    /// Expired files, and the queue gauges.
    fn housekeeping(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let storage = Arc::clone(&self.storage);
        let work = async move {
            let mut conn = db.get().await?;
            let expired = store::expire_files(&mut conn).await?;
            let open = store::open_counts(&mut conn).await?;
            drop(conn);
            if expired > 0 {
                counter!("classbell_job_files_expired_total").increment(expired as u64);
                deletions::purge(&db, &storage).await;
            }
            Ok::<_, AppError>(open)
        };
        ctx.spawn(work.into_actor(self).map(|result, _, _| match result {
            Ok(open) => {
                for kind in JobKind::ALL {
                    for state in [JobState::Pending, JobState::Running] {
                        let n = open
                            .iter()
                            .find(|(k, s, _)| k == kind && *s == state)
                            .map_or(0, |(_, _, n)| *n);
                        gauge!("classbell_jobs", "kind" => kind.as_str(), "state" => state.as_str())
                            .set(n as f64);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "job housekeeping failed"),
        }));
    }
}

impl Actor for JobRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.claim(ctx);
        ctx.run_interval(self.settings.poll, |runner, ctx| {
            runner.claim(ctx);
            runner.housekeeping(ctx);
        });
    }
}

impl Handler<Kick> for JobRunner {
    type Result = ();

    fn handle(&mut self, _: Kick, ctx: &mut Self::Context) {
        mailbox::handled(JOB_RUNNER);
        self.claim(ctx);
    }
}

impl Handler<JobEnded> for JobRunner {
    type Result = ();

    fn handle(&mut self, ended: JobEnded, ctx: &mut Self::Context) {
        mailbox::handled(JOB_RUNNER);
        self.running.remove(&ended.id);
        gauge!("classbell_jobs_running_here").set(self.running.len() as f64);
        self.claim(ctx);
    }
}
