//! What a running job may reach, and how it ends: shared by the runner and
//! the jobs it runs (exports, imports), so neither imports the other's file.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use uuid::Uuid;

use super::model::{Job, JobState};
use super::store;
use crate::config;
use crate::db::{DbConnection, DbPool};
use crate::error::AppError;
use crate::events::{Event, EventBus};
use crate::storage::{Storage, deletions};

/// How a node runs jobs; from configuration.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Jobs this node runs at once.
    pub workers: usize,
    /// How often to look for jobs, expired files and dead nodes' jobs.
    pub poll: Duration,
    pub lease_secs: u64,
    /// How long a job's file stays downloadable.
    pub file_ttl: chrono::Duration,
    /// Pause after each chunk of rows, to spread a large job's load.
    pub chunk_delay: Duration,
    /// How long a stored file may wait for its job's end before the
    /// sweeper takes it for left behind.
    pub upload_grace: Duration,
}

impl JobSettings {
    pub fn new(settings: &config::Jobs, storage: &config::Storage) -> Self {
        JobSettings {
            workers: settings.workers.max(1),
            poll: Duration::from_millis(settings.poll_ms.max(10)),
            lease_secs: settings.lease_secs.max(1),
            file_ttl: config::seconds(settings.file_ttl_secs),
            chunk_delay: Duration::from_millis(settings.chunk_delay_ms),
            upload_grace: storage.upload_grace(),
        }
    }
}

/// Why a job stopped without succeeding.
#[derive(Debug)]
pub enum Stop {
    /// Another node holds the job now; its run counts.
    Lost,
    /// The job cannot be done; the reason is for its owner.
    Failed(String),
    Error(AppError),
}

impl From<AppError> for Stop {
    fn from(error: AppError) -> Self {
        Stop::Error(error)
    }
}

/// What a finished job leaves: its `result`, and the file it made.
pub struct Outcome {
    pub result: serde_json::Value,
    pub output_key: Option<String>,
}

/// What a running job may reach.
pub struct JobContext {
    pub job: Job,
    pub(super) db: DbPool,
    pub(super) storage: Arc<Storage>,
    pub(super) bus: EventBus,
    pub(super) node: Uuid,
    pub(super) settings: JobSettings,
}

impl JobContext {
    pub async fn conn(&self) -> Result<DbConnection, AppError> {
        self.db.get().await
    }

    /// Records progress (renewing the claim) and tells the owner; `Lost`
    /// when another node has taken the job over.
    pub async fn progress(&self, done: usize, total: Option<usize>) -> Result<(), Stop> {
        let done = i32::try_from(done).unwrap_or(i32::MAX);
        let total = total.map(|t| i32::try_from(t).unwrap_or(i32::MAX));
        let held = store::progress(
            &mut *self.conn().await?,
            self.job.id,
            self.node,
            done,
            total,
            self.settings.lease_secs,
        )
        .await?;
        if !held {
            return Err(Stop::Lost);
        }
        self.announce(JobState::Running, done, total);
        if !self.settings.chunk_delay.is_zero() {
            tokio::time::sleep(self.settings.chunk_delay).await;
        }
        Ok(())
    }

    pub(super) fn announce(&self, state: JobState, done: i32, total: Option<i32>) {
        self.bus.publish(Event::JobProgress {
            job_id: self.job.id,
            owner_id: self.job.owner_id,
            kind: self.job.kind,
            state,
            done,
            total,
        });
    }

    /// Stores a file of this job's (`jobs/<id>/<name>`) and returns its key.
    pub async fn store_file(&self, name: &str, bytes: Vec<u8>) -> Result<String, AppError> {
        let key = format!("jobs/{}/{name}", self.job.id);
        // Owned when the job's end is recorded (`store::finish`).
        deletions::reserve(&self.db, &key, self.settings.upload_grace).await?;
        self.storage
            .put_bytes(&key, "text/csv; charset=utf-8", bytes)
            .await?;
        Ok(key)
    }

    /// The uploaded file of an import.
    pub async fn input(&self) -> Result<Vec<u8>, Stop> {
        let key = self
            .job
            .input_key
            .as_deref()
            .ok_or_else(|| Stop::Failed("the uploaded file is gone".into()))?;
        let mut download = self.storage.get(key).await.map_err(|error| match error {
            crate::storage::StorageError::NotFound => {
                Stop::Failed("the uploaded file is gone".into())
            }
            other => Stop::Error(other.into()),
        })?;
        let mut bytes = Vec::new();
        while let Some(chunk) = download.body.next().await {
            bytes.extend_from_slice(&chunk.map_err(AppError::internal)?);
        }
        Ok(bytes)
    }

    /// Where the job's file is downloaded (relative to the server).
    pub fn download_path(&self) -> String {
        format!("/api/tasks/{}/download", self.job.id)
    }
}
