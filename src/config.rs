//! Configuration: every setting is a `CLASSBELL_*` environment variable (or the
//! matching `--flag`), with defaults that run on one machine with nothing set.
//! Every subcommand reads the same settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// The JWT secret the defaults ship with; production refuses to start with it.
pub const DEFAULT_JWT_SECRET: &str = "classbell-development-secret-change-me";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

/// Where attachment bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageBackend {
    /// Files under `CLASSBELL_STORAGE_DIR`.
    Local,
    /// An S3-compatible store (MinIO, Garage, AWS S3).
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// `production` refuses insecure defaults such as the shipped JWT secret.
    #[arg(long, env = "CLASSBELL_ENV", value_enum, default_value = "development")]
    pub env: Environment,

    /// Address the HTTP server listens on (host:port).
    #[arg(long, env = "CLASSBELL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Base of links in mail, e.g. https://classbell.school.example
    #[arg(
        long,
        env = "CLASSBELL_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,

    /// HTTP worker threads; 0 means one per core.
    #[arg(long, env = "CLASSBELL_WORKERS", default_value_t = 0)]
    pub workers: usize,

    #[arg(
        long,
        env = "CLASSBELL_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/classbell"
    )]
    pub database_url: String,

    #[arg(long, env = "CLASSBELL_DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: u32,

    #[arg(
        long,
        env = "CLASSBELL_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,

    #[arg(long, env = "CLASSBELL_REDIS_POOL_SIZE", default_value_t = 8)]
    pub redis_pool_size: u32,

    /// Prefix of every Redis key, so several deployments can share one Redis.
    #[arg(long, env = "CLASSBELL_REDIS_PREFIX", default_value = "classbell:")]
    pub redis_prefix: String,

    /// Seconds to wait for a pooled connection before answering 503.
    #[arg(long, env = "CLASSBELL_POOL_TIMEOUT_SECS", default_value_t = 5)]
    pub pool_timeout_secs: u64,

    /// HS256 signing secret for access tokens (at least 32 bytes in production).
    #[arg(
        long,
        env = "CLASSBELL_JWT_SECRET",
        default_value = DEFAULT_JWT_SECRET,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub jwt_secret: String,

    #[arg(long, env = "CLASSBELL_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    #[arg(long, env = "CLASSBELL_REFRESH_TOKEN_TTL_SECS", default_value_t = 14 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    #[arg(long, env = "CLASSBELL_RESET_TOKEN_TTL_SECS", default_value_t = 30 * 60)]
    pub reset_token_ttl_secs: u64,

    /// Failed logins for one username before it is throttled.
    #[arg(long, env = "CLASSBELL_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Failed logins from one client address before it is throttled.
    #[arg(
        long,
        env = "CLASSBELL_LOGIN_MAX_FAILURES_PER_IP",
        default_value_t = 50
    )]
    pub login_max_failures_per_ip: u32,

    /// Window (seconds) over which failed logins are counted.
    #[arg(
        long,
        env = "CLASSBELL_LOGIN_THROTTLE_WINDOW_SECS",
        default_value_t = 900
    )]
    pub login_throttle_window_secs: u64,

    /// Use the first `X-Forwarded-For` address as the client address (only behind a proxy you run).
    #[arg(long, env = "CLASSBELL_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// SMTP relay, e.g. smtp://127.0.0.1:1025 or smtps://user:pass@mail.example:465.
    /// Unset: mail is written to the outbox folder.
    #[arg(long, env = "CLASSBELL_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    #[arg(
        long,
        env = "CLASSBELL_MAIL_FROM",
        default_value = "classbell <noreply@classbell.localhost>"
    )]
    pub mail_from: String,

    /// Folder that receives one `.eml` per message when no SMTP relay is set.
    #[arg(long, env = "CLASSBELL_MAIL_OUTBOX", default_value = "var/outbox")]
    pub mail_outbox: PathBuf,

    /// Messages sent to the relay at once.
    #[arg(long, env = "CLASSBELL_MAIL_CONCURRENCY", default_value_t = 4)]
    pub mail_concurrency: usize,

    /// Where attachment bytes are kept: `local` (CLASSBELL_STORAGE_DIR) or `s3`.
    #[arg(long, env = "CLASSBELL_STORAGE", value_enum, default_value = "local")]
    pub storage: StorageBackend,

    /// Folder of the local object store (attachments and job files).
    #[arg(long, env = "CLASSBELL_STORAGE_DIR", default_value = "var/storage")]
    pub storage_dir: PathBuf,

    /// S3 endpoint, e.g. http://127.0.0.1:9000 or https://s3.eu-west-1.amazonaws.com.
    #[arg(long, env = "CLASSBELL_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Bucket for classbell's objects; created if missing.
    #[arg(long, env = "CLASSBELL_S3_BUCKET", default_value = "classbell")]
    pub s3_bucket: String,

    #[arg(long, env = "CLASSBELL_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    #[arg(
        long,
        env = "CLASSBELL_S3_ACCESS_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub s3_access_key: String,

    #[arg(
        long,
        env = "CLASSBELL_S3_SECRET_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub s3_secret_key: String,

    /// Largest accepted attachment in bytes (larger: 413).
    #[arg(long, env = "CLASSBELL_MAX_UPLOAD_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Browser origins allowed by CORS, comma-separated (e.g. https://app.school.example).
    #[arg(
        long,
        env = "CLASSBELL_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,

    /// Largest accepted JSON body in bytes.
    #[arg(long, env = "CLASSBELL_MAX_JSON_BYTES", default_value_t = 256 * 1024)]
    pub max_json_bytes: usize,

    /// Let teachers publish to all students (otherwise only staff may).
    #[arg(
        long,
        env = "CLASSBELL_TEACHERS_MAY_ANNOUNCE_TO_ALL",
        default_value_t = false
    )]
    pub teachers_may_announce_to_all: bool,

    /// Seconds before an announcement's unacknowledged recipients may be reminded again.
    #[arg(long, env = "CLASSBELL_REMINDER_COOLDOWN_SECS", default_value_t = 600)]
    pub reminder_cooldown_secs: u64,

    /// Recipients per fan-out chunk (one statement each).
    #[arg(long, env = "CLASSBELL_FANOUT_CHUNK", default_value_t = 10_000)]
    pub fanout_chunk: i64,

    /// Fan-outs one node runs at once.
    #[arg(long, env = "CLASSBELL_FANOUT_WORKERS", default_value_t = 4)]
    pub fanout_workers: usize,

    /// Seconds a node's claim on a fan-out lasts without progress.
    #[arg(long, env = "CLASSBELL_FANOUT_LEASE_SECS", default_value_t = 30)]
    pub fanout_lease_secs: u64,

    /// Milliseconds between looks for unclaimed fan-outs and due scheduled announcements.
    #[arg(long, env = "CLASSBELL_FANOUT_POLL_MS", default_value_t = 1000)]
    pub fanout_poll_ms: u64,

    /// Milliseconds to pause between fan-out chunks (spreads load; 0 = none).
    #[arg(long, env = "CLASSBELL_FANOUT_CHUNK_DELAY_MS", default_value_t = 0)]
    pub fanout_chunk_delay_ms: u64,

    /// Delivery-state batches at the database at once (one makes the largest batches).
    #[arg(long, env = "CLASSBELL_WRITER_CONCURRENCY", default_value_t = 1)]
    pub writer_concurrency: usize,

    /// Most transitions in one batch.
    #[arg(long, env = "CLASSBELL_WRITER_MAX_BATCH", default_value_t = 1000)]
    pub writer_max_batch: usize,

    /// Background jobs (exports, imports) one node runs at once.
    #[arg(long, env = "CLASSBELL_JOB_WORKERS", default_value_t = 2)]
    pub job_workers: usize,

    /// Milliseconds between looks for queued jobs and for jobs whose node died.
    #[arg(long, env = "CLASSBELL_JOB_POLL_MS", default_value_t = 1000)]
    pub job_poll_ms: u64,

    /// Seconds a node's claim on a job lasts without progress.
    #[arg(long, env = "CLASSBELL_JOB_LEASE_SECS", default_value_t = 30)]
    pub job_lease_secs: u64,

    /// Seconds a job's file (an export, an error report) stays downloadable.
    #[arg(long, env = "CLASSBELL_JOB_FILE_TTL_SECS", default_value_t = 24 * 3600)]
    pub job_file_ttl_secs: u64,

    /// Milliseconds to pause after each chunk of a job's rows (spreads load; 0 = none).
    #[arg(long, env = "CLASSBELL_JOB_CHUNK_DELAY_MS", default_value_t = 0)]
    pub job_chunk_delay_ms: u64,

    /// Largest CSV file an import accepts, in bytes (larger: 413).
    #[arg(long, env = "CLASSBELL_MAX_IMPORT_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub max_import_bytes: usize,

    /// Seconds between the server's websocket pings.
    #[arg(long, env = "CLASSBELL_WS_HEARTBEAT_SECS", default_value_t = 10)]
    pub ws_heartbeat_secs: u64,

    /// Seconds of silence after which a websocket is closed.
    #[arg(long, env = "CLASSBELL_WS_TIMEOUT_SECS", default_value_t = 30)]
    pub ws_timeout_secs: u64,

    /// Messages that may wait for one websocket client; past that it is closed as not reading.
    #[arg(long, env = "CLASSBELL_WS_OUTBOUND_QUEUE", default_value_t = 256)]
    pub ws_outbound_queue: usize,

    /// Kernel send buffer of each websocket, in bytes (bounds what a stalled client holds).
    #[arg(long, env = "CLASSBELL_WS_SEND_BUFFER_BYTES", default_value_t = 64 * 1024)]
    pub ws_send_buffer_bytes: usize,

    /// Seconds between a busy websocket's checks of what it sent against the
    /// database (which heal lost pushes and move its cursor on).
    #[arg(long, env = "CLASSBELL_WS_CHECKPOINT_SECS", default_value_t = 10)]
    pub ws_checkpoint_secs: u64,

    /// Seconds a websocket's data may sit unread or unacknowledged before the
    /// kernel drops the connection (TCP_USER_TIMEOUT): how long a client that
    /// stopped reading lingers.
    #[arg(long, env = "CLASSBELL_WS_STALL_TIMEOUT_SECS", default_value_t = 30)]
    pub ws_stall_timeout_secs: u64,

    #[arg(long, env = "CLASSBELL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "CLASSBELL_JWT_SECRET must be set to a secret of at least 32 bytes when CLASSBELL_ENV=production"
    )]
    InsecureJwtSecret,
    #[error("CLASSBELL_PUBLIC_URL must start with http:// or https://")]
    PublicUrl,
}

impl Settings {
    /// Refuses settings that are unsafe for the chosen environment.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(ConfigError::PublicUrl);
        }
        if self.env == Environment::Production
            && (self.jwt_secret == DEFAULT_JWT_SECRET || self.jwt_secret.len() < 32)
        {
            return Err(ConfigError::InsecureJwtSecret);
        }
        Ok(())
    }

    pub fn pool_timeout(&self) -> Duration {
        Duration::from_secs(self.pool_timeout_secs.max(1))
    }

    /// CORS origins with blanks removed (an unset variable yields one empty entry).
    pub fn allowed_origins(&self) -> impl Iterator<Item = &str> {
        self.cors_origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
    }

    pub fn session_settings(&self) -> crate::realtime::session::SessionSettings {
        crate::realtime::session::SessionSettings {
            heartbeat: Duration::from_secs(self.ws_heartbeat_secs.max(1)),
            timeout: Duration::from_secs(self.ws_timeout_secs.max(1)),
            outbound_queue: self.ws_outbound_queue.max(1),
            checkpoint: Duration::from_secs(self.ws_checkpoint_secs.max(1)),
        }
    }

    pub fn job_settings(&self) -> crate::jobs::runner::JobSettings {
        crate::jobs::runner::JobSettings {
            workers: self.job_workers.max(1),
            poll: Duration::from_millis(self.job_poll_ms.max(10)),
            lease_secs: self.job_lease_secs.max(1),
            file_ttl: chrono::Duration::seconds(
                i64::try_from(self.job_file_ttl_secs).unwrap_or(i64::MAX / 1000),
            ),
            chunk_delay: Duration::from_millis(self.job_chunk_delay_ms),
        }
    }

    pub fn public_link(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.public_url.trim_end_matches('/'),
            path_and_query
        )
    }
}
