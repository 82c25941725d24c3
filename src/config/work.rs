//! The work classbell does: publishing, fan-out, the delivery writer,
//! background jobs and websocket sessions.

use clap::Args;

/// Who may publish what, and how often reminders may go out.
#[derive(Debug, Clone, Args)]
pub struct Announcements {
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

    /// The school's escalation ladder for announcements with a due time:
    /// `channel@offset` before due, comma-separated (channels `in_app`,
    /// `mail`, `summary`; offsets in s, m, h or d), or `none`.
    #[arg(
        long,
        env = "CLASSBELL_ESCALATION",
        default_value = "in_app@24h,mail@2h,summary@0s"
    )]
    pub escalation: String,

    /// How often each node looks for ladder steps whose time has come, in milliseconds.
    #[arg(long, env = "CLASSBELL_ESCALATION_POLL_MS", default_value_t = 1000)]
    pub escalation_poll_ms: u64,
}

/// Turning a published announcement into deliveries.
#[derive(Debug, Clone, Args)]
pub struct Fanout {
    /// Recipients per fan-out chunk (one statement each).
    #[arg(
        id = "fanout_chunk",
        long = "fanout-chunk",
        env = "CLASSBELL_FANOUT_CHUNK",
        default_value_t = 10_000
    )]
    pub chunk: i64,

    /// Recipients of a fan-out's first chunk; each next chunk doubles, up to
    /// `CLASSBELL_FANOUT_CHUNK`. The first students hear of an announcement
    /// once a small statement commits and are pushed to while the larger
    /// ones run, where one full chunk made everyone wait for all of it.
    #[arg(
        id = "fanout_first_chunk",
        long = "fanout-first-chunk",
        env = "CLASSBELL_FANOUT_FIRST_CHUNK",
        default_value_t = 1_000
    )]
    pub first_chunk: i64,

    /// Fan-outs one node runs at once.
    #[arg(
        id = "fanout_workers",
        long = "fanout-workers",
        env = "CLASSBELL_FANOUT_WORKERS",
        default_value_t = 4
    )]
    pub workers: usize,

    /// Seconds a node's claim on a fan-out lasts without progress.
    #[arg(
        id = "fanout_lease_secs",
        long = "fanout-lease-secs",
        env = "CLASSBELL_FANOUT_LEASE_SECS",
        default_value_t = 30
    )]
    pub lease_secs: u64,

    /// Milliseconds between looks for unclaimed fan-outs and due scheduled announcements.
    #[arg(
        id = "fanout_poll_ms",
        long = "fanout-poll-ms",
        env = "CLASSBELL_FANOUT_POLL_MS",
        default_value_t = 1000
    )]
    pub poll_ms: u64,

    /// Milliseconds to pause between fan-out chunks (spreads load; 0 = none).
    #[arg(
        id = "fanout_chunk_delay_ms",
        long = "fanout-chunk-delay-ms",
        env = "CLASSBELL_FANOUT_CHUNK_DELAY_MS",
        default_value_t = 0
    )]
    pub chunk_delay_ms: u64,
}

/// The group-committing delivery writer.
#[derive(Debug, Clone, Args)]
pub struct Deliveries {
    /// Delivery-state batches at the database at once. One makes the largest
    /// batches, but then the database and the sessions take turns: with two,
    /// one batch gathers and commits while the last one's answers go out
    /// (websocket acknowledgments ~12,700/s → ~14,000/s on two cores).
    #[arg(long, env = "CLASSBELL_WRITER_CONCURRENCY", default_value_t = 2)]
    pub writer_concurrency: usize,

    /// Most transitions in one batch.
    #[arg(long, env = "CLASSBELL_WRITER_MAX_BATCH", default_value_t = 1000)]
    pub writer_max_batch: usize,
}

/// Background jobs: exports and imports.
#[derive(Debug, Clone, Args)]
pub struct Jobs {
    /// Background jobs (exports, imports) one node runs at once.
    #[arg(
        id = "job_workers",
        long = "job-workers",
        env = "CLASSBELL_JOB_WORKERS",
        default_value_t = 2
    )]
    pub workers: usize,

    /// Milliseconds between looks for queued jobs and for jobs whose node died.
    #[arg(
        id = "job_poll_ms",
        long = "job-poll-ms",
        env = "CLASSBELL_JOB_POLL_MS",
        default_value_t = 1000
    )]
    pub poll_ms: u64,

    /// Seconds a node's claim on a job lasts without progress.
    #[arg(
        id = "job_lease_secs",
        long = "job-lease-secs",
        env = "CLASSBELL_JOB_LEASE_SECS",
        default_value_t = 30
    )]
    pub lease_secs: u64,

    /// Seconds a job's file (an export, an error report) stays downloadable.
    #[arg(
        id = "job_file_ttl_secs",
        long = "job-file-ttl-secs",
        env = "CLASSBELL_JOB_FILE_TTL_SECS",
        default_value_t = 24 * 3600
    )]
    pub file_ttl_secs: u64,

    /// Milliseconds to pause after each chunk of a job's rows (spreads load; 0 = none).
    #[arg(
        id = "job_chunk_delay_ms",
        long = "job-chunk-delay-ms",
        env = "CLASSBELL_JOB_CHUNK_DELAY_MS",
        default_value_t = 0
    )]
    pub chunk_delay_ms: u64,

    /// Largest CSV file an import accepts, in bytes (larger: 413).
    #[arg(long, env = "CLASSBELL_MAX_IMPORT_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub max_import_bytes: usize,
}

/// Websocket sessions.
#[derive(Debug, Clone, Args)]
pub struct Realtime {
    /// Seconds between the server's websocket pings.
    #[arg(
        id = "ws_heartbeat_secs",
        long = "ws-heartbeat-secs",
        env = "CLASSBELL_WS_HEARTBEAT_SECS",
        default_value_t = 10
    )]
    pub heartbeat_secs: u64,

    /// Seconds of silence after which a websocket is closed.
    #[arg(
        id = "ws_timeout_secs",
        long = "ws-timeout-secs",
        env = "CLASSBELL_WS_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub timeout_secs: u64,

    /// Messages that may wait for one websocket client; past that it is closed as not reading.
    #[arg(
        id = "ws_outbound_queue",
        long = "ws-outbound-queue",
        env = "CLASSBELL_WS_OUTBOUND_QUEUE",
        default_value_t = 256
    )]
    pub outbound_queue: usize,

    /// Kernel send buffer of each websocket, in bytes (bounds what a stalled client holds).
    #[arg(
        id = "ws_send_buffer_bytes",
        long = "ws-send-buffer-bytes",
        env = "CLASSBELL_WS_SEND_BUFFER_BYTES",
        default_value_t = 64 * 1024
    )]
    pub send_buffer_bytes: usize,

    /// Seconds between a busy websocket's checks of what it sent against the
    /// database (which heal lost pushes and move its cursor on).
    #[arg(
        id = "ws_checkpoint_secs",
        long = "ws-checkpoint-secs",
        env = "CLASSBELL_WS_CHECKPOINT_SECS",
        default_value_t = 10
    )]
    pub checkpoint_secs: u64,

    /// Seconds a websocket's data may sit unread or unacknowledged before the
    /// kernel drops the connection (TCP_USER_TIMEOUT): how long a client that
    /// stopped reading lingers.
    #[arg(
        id = "ws_stall_timeout_secs",
        long = "ws-stall-timeout-secs",
        env = "CLASSBELL_WS_STALL_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub stall_timeout_secs: u64,

    /// Messages a websocket client may send per second, on average; a client
    /// past that (and its burst) is closed with 1008.
    #[arg(
        id = "ws_messages_per_sec",
        long = "ws-messages-per-sec",
        env = "CLASSBELL_WS_MESSAGES_PER_SEC",
        default_value_t = 20
    )]
    pub messages_per_sec: u32,

    /// Messages a websocket client may send at once before the rate applies.
    #[arg(
        id = "ws_message_burst",
        long = "ws-message-burst",
        env = "CLASSBELL_WS_MESSAGE_BURST",
        default_value_t = 100
    )]
    pub message_burst: u32,

    /// Inbox changes a reconnecting websocket is replayed from its `since`;
    /// past that it is told to read its inbox over HTTP instead (`resync`).
    #[arg(
        id = "ws_replay_limit",
        long = "ws-replay-limit",
        env = "CLASSBELL_WS_REPLAY_LIMIT",
        default_value_t = 200
    )]
    pub replay_limit: usize,

    /// Websocket catch-ups read at once: sessions being opened (looked up and
    /// caught up from their cursor) and checkpoints. Others opening wait
    /// their turn; a checkpoint with no free turn waits for its next
    /// interval. Bounds what a reconnect storm asks of the database pool.
    #[arg(
        id = "ws_hello_concurrency",
        long = "ws-hello-concurrency",
        env = "CLASSBELL_WS_HELLO_CONCURRENCY",
        default_value_t = 8
    )]
    pub hello_concurrency: usize,

    /// Milliseconds a websocket being opened waits for its turn; past that
    /// it is refused with 503 and Retry-After, and the client comes back.
    #[arg(
        id = "ws_hello_wait_ms",
        long = "ws-hello-wait-ms",
        env = "CLASSBELL_WS_HELLO_WAIT_MS",
        default_value_t = 10_000
    )]
    pub hello_wait_ms: u64,
}
