//! Where classbell keeps things: PostgreSQL, Redis and object storage.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Where attachment bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageBackend {
    /// Files under `CLASSBELL_STORAGE_DIR`.
    Local,
    /// An S3-compatible store (MinIO, Garage, AWS S3).
    S3,
}

#[derive(Debug, Clone, Args)]
pub struct Database {
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "CLASSBELL_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/classbell"
    )]
    pub url: String,

    #[arg(
        id = "database_pool_size",
        long = "database-pool-size",
        env = "CLASSBELL_DATABASE_POOL_SIZE",
        default_value_t = 16
    )]
    pub pool_size: u32,
}

#[derive(Debug, Clone, Args)]
pub struct Redis {
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "CLASSBELL_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,

    #[arg(
        id = "redis_pool_size",
        long = "redis-pool-size",
        env = "CLASSBELL_REDIS_POOL_SIZE",
        default_value_t = 8
    )]
    pub pool_size: u32,

    /// Prefix of every Redis key, so several deployments can share one Redis.
    #[arg(
        id = "redis_prefix",
        long = "redis-prefix",
        env = "CLASSBELL_REDIS_PREFIX",
        default_value = "classbell:"
    )]
    pub prefix: String,
}

/// Where attachments and job files are kept.
#[derive(Debug, Clone, Args)]
pub struct Storage {
    /// Where attachment bytes are kept: `local` (CLASSBELL_STORAGE_DIR) or `s3`.
    #[arg(
        id = "storage",
        long = "storage",
        env = "CLASSBELL_STORAGE",
        value_enum,
        default_value = "local"
    )]
    pub backend: StorageBackend,

    /// Folder of the local object store (attachments and job files).
    #[arg(
        id = "storage_dir",
        long = "storage-dir",
        env = "CLASSBELL_STORAGE_DIR",
        default_value = "var/storage"
    )]
    pub dir: PathBuf,

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

    /// Seconds an upload may take before the sweeper treats the object it was
    /// storing as left behind by a crash (no row came to own it) and removes it.
    #[arg(long, env = "CLASSBELL_UPLOAD_GRACE_SECS", default_value_t = 3600)]
    pub upload_grace_secs: u64,

    /// Seconds between the sweeper's rounds over objects queued for deletion.
    #[arg(long, env = "CLASSBELL_STORAGE_SWEEP_SECS", default_value_t = 60)]
    pub sweep_secs: u64,
}

impl Storage {
    pub fn upload_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.upload_grace_secs)
    }
}
