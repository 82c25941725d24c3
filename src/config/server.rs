//! How classbell serves: the HTTP server, and its logs.

use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The HTTP server and what every request shares.
#[derive(Debug, Clone, Args)]
pub struct Server {
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

    /// Connections the kernel queues until they are accepted (the listen
    /// backlog; the kernel caps it at `net.core.somaxconn`). When every
    /// websocket of a node comes back at once they arrive here first; past
    /// the backlog the kernel drops their handshakes and clients retry a
    /// second or more later.
    #[arg(long, env = "CLASSBELL_LISTEN_BACKLOG", default_value_t = 4096)]
    pub listen_backlog: u32,

    /// Bytes of each connection's read and write buffers. Most of an idle
    /// websocket's memory is these two buffers, so a node holding tens of
    /// thousands of them wants them small; larger requests and responses
    /// still pass, a read at a time. Upstream's fixed size is 8 KiB. From
    /// 512 bytes to 64 KiB: every connection allocates it at accept.
    #[arg(
        long,
        env = "CLASSBELL_CONNECTION_BUFFER_BYTES",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(512..=65_536)
    )]
    pub connection_buffer_bytes: u32,

    /// Seconds to wait for a pooled connection (PostgreSQL or Redis) before answering 503.
    #[arg(long, env = "CLASSBELL_POOL_TIMEOUT_SECS", default_value_t = 5)]
    pub pool_timeout_secs: u64,

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
}

#[derive(Debug, Clone, Args)]
pub struct Telemetry {
    #[arg(long, env = "CLASSBELL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Server {
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

    /// An absolute link into the app, for mail.
    pub fn public_link(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.public_url.trim_end_matches('/'),
            path_and_query
        )
    }
}
