//! What every websocket session shares: its settings and the handles it
//! uses, built once at start-up.

use std::num::NonZeroU32;
use std::time::Duration;

use actix::Addr;
use governor::Quota;

use super::hub::Hub;
use crate::config;
use crate::db::DbPool;
use crate::deliveries::writer::DeliveryWriter;

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
}
