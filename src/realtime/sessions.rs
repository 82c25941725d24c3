//! What every websocket session shares: its settings and the handles it
//! uses, built once at start-up.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use governor::Quota;
use metrics::{Counter, Histogram, counter, gauge, histogram};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::hub::{Hub, SESSION};
use super::protocol::ServerMessage;
use crate::config;
use crate::db::DbPool;
use crate::deliveries::writer::DeliveryWriter;
use crate::error::AppError;
use crate::telemetry::mailbox::Mailbox;

/// How a session behaves; from configuration.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    pub heartbeat: Duration,
    /// Silence after which the client is taken for gone.
    pub timeout: Duration,
    /// Messages waiting for a client before it counts as not reading.
    pub outbound_queue: usize,
    /// How often a session that sent inbox messages checks them against the
    /// database and moves its cursor on (see `ledger`).
    pub checkpoint: Duration,
    /// Kernel send buffer of each socket (bounds what a stalled client holds).
    pub send_buffer_bytes: usize,
    /// How long unacknowledged data may sit before the kernel drops the socket.
    pub stall_timeout: Duration,
    /// What a client may send: a rate per second and a burst.
    pub inbound: Quota,
    /// Changes replayed from a `since` before the client is told to resync.
    pub replay_limit: usize,
    /// Websockets being opened at once, and how long the next one waits.
    pub hello_concurrency: usize,
    pub hello_wait: Duration,
}

impl From<&config::Realtime> for SessionSettings {
    fn from(settings: &config::Realtime) -> Self {
        SessionSettings {
            heartbeat: Duration::from_secs(settings.heartbeat_secs.max(1)),
            timeout: Duration::from_secs(settings.timeout_secs.max(1)),
            outbound_queue: settings.outbound_queue.max(1),
            checkpoint: Duration::from_secs(settings.checkpoint_secs.max(1)),
            send_buffer_bytes: settings.send_buffer_bytes,
            stall_timeout: Duration::from_secs(settings.stall_timeout_secs.max(1)),
            inbound: Quota::per_second(
                NonZeroU32::new(settings.messages_per_sec).unwrap_or(NonZeroU32::MIN),
            )
            .allow_burst(NonZeroU32::new(settings.message_burst).unwrap_or(NonZeroU32::MIN)),
            replay_limit: settings.replay_limit.max(1),
            hello_concurrency: settings.hello_concurrency.max(1),
            hello_wait: Duration::from_millis(settings.hello_wait_ms),
        }
    }
}

/// The handles every session uses, built once and shared: a session holds
/// one pointer to them, not a copy of each.
pub struct SessionServices {
    pub db: DbPool,
    pub hub: Addr<Hub>,
    pub writer: Addr<DeliveryWriter>,
    pub settings: SessionSettings,
    /// Turns to read a catch-up: a websocket being opened, or a checkpoint
    /// (see [`SessionServices::admit`]).
    hellos: Arc<Semaphore>,
    pub metrics: SessionMetrics,
}

/// The series a session counts every message in, looked up once: a publish
/// to every student counts thousands of messages at once.
pub struct SessionMetrics {
    pub mailbox: Mailbox,
    pub push_latency: Histogram,
    /// By message type, in the order of `ServerMessage::KINDS`.
    sent: [Counter; ServerMessage::KINDS.len()],
}

impl SessionMetrics {
    fn new() -> Self {
        SessionMetrics {
            mailbox: Mailbox::of(SESSION),
            push_latency: histogram!("classbell_ws_push_latency_seconds"),
            sent: ServerMessage::KINDS
                .map(|kind| counter!("classbell_ws_messages_sent_total", "type" => kind)),
        }
    }

    /// Counts a message written to a client.
    pub fn sent(&self, message: &ServerMessage) {
        self.sent[message.kind_index()].increment(1);
    }
}

impl SessionServices {
    pub fn new(
        db: DbPool,
        hub: Addr<Hub>,
        writer: Addr<DeliveryWriter>,
        settings: SessionSettings,
    ) -> Self {
        SessionServices {
            db,
            hub,
            writer,
            hellos: Arc::new(Semaphore::new(settings.hello_concurrency)),
            settings,
            metrics: SessionMetrics::new(),
        }
    }

    /// A turn for a checkpoint's catch-up, if one is free now.
    pub fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.hellos).try_acquire_owned().ok()
    }

    /// A turn to open a websocket, held from the session's lookup until its
    /// `hello` and catch-up are read. When every node's clients come back
    /// at once, they are let in `hello_concurrency` at a time rather than
    /// all queueing on the database pool (where HTTP requests wait too);
    /// one that waits past `hello_wait` is refused with 503 and
    /// Retry-After, and backs off.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, AppError> {
        if let Ok(turn) = Arc::clone(&self.hellos).try_acquire_owned() {
            return Ok(turn);
        }
        let waiting = gauge!("classbell_ws_hellos_waiting");
        waiting.increment(1.0);
        let turn = tokio::time::timeout(
            self.settings.hello_wait,
            Arc::clone(&self.hellos).acquire_owned(),
        )
        .await;
        waiting.decrement(1.0);
        match turn {
            Ok(Ok(turn)) => Ok(turn),
            _ => {
                counter!("classbell_ws_hellos_refused_total").increment(1);
                Err(AppError::unavailable("the live inbox"))
            }
        }
    }
}
