//! The in-process event bus: what happened to announcements, deliveries and
//! accounts, for whoever listens (the websocket hub and the Redis bridge).
//! PostgreSQL stays the truth; a listener that falls behind loses events and
//! its clients catch up from the database through their cursors.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use metrics::counter;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::deliveries::model::DeliveryState;
use crate::ids::{AnnouncementId, DeliveryId, JobId, UserId};
use crate::jobs::model::{JobKind, JobState};

/// Events kept for slow listeners before the oldest are dropped.
const CAPACITY: usize = 8192;

/// What happened, in the words the hub resolves into client messages. Events
/// name ranges and announcements rather than recipients wherever one change
/// reaches many people, so neither the bus nor Redis carries a message per
/// recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A fan-out chunk committed: the announcement's recipients with user ids
    /// in `first_user_id..=last_user_id` have a new, queued delivery. A range,
    /// not a list: listeners look up only the users they serve.
    #[serde(rename = "deliveries.created")]
    DeliveriesCreated {
        announcement_id: AnnouncementId,
        first_user_id: UserId,
        last_user_id: UserId,
        count: i64,
        /// Every delivery of the announcement in the range is one of these
        /// `count` (a fan-out chunk's, which covers its range whole), so a
        /// listener may read the range instead of its users one by one.
        #[serde(default)]
        whole_range: bool,
    },
    /// A student left an audience: the announcement's delivery to them was
    /// retracted and leaves their inbox.
    #[serde(rename = "delivery.retracted")]
    DeliveryRetracted {
        user_id: UserId,
        announcement_id: AnnouncementId,
    },
    #[serde(rename = "delivery.updated")]
    DeliveryUpdated {
        delivery_id: DeliveryId,
        user_id: UserId,
        announcement_id: AnnouncementId,
        state: DeliveryState,
        delivered_at: Option<DateTime<Utc>>,
        ack_at: Option<DateTime<Utc>>,
        /// How the change moved its recipient's unread count: `-1` when an
        /// acknowledgment took the delivery off it, `0` when the count stays.
        /// Absent (from a node that does not say), listeners read it again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unread_change: Option<i64>,
    },
    #[serde(rename = "announcement.withdrawn")]
    AnnouncementWithdrawn { announcement_id: AnnouncementId },
    /// The announcement's figures changed (the hub reads and coalesces them).
    #[serde(rename = "announcement.stats")]
    AnnouncementStats { announcement_id: AnnouncementId },
    /// Every unacknowledged recipient of the announcement was just reminded.
    #[serde(rename = "reminders.sent")]
    RemindersSent { announcement_id: AnnouncementId },
    /// The announcement's due time came: its publisher hears how many are
    /// still missing.
    #[serde(rename = "announcement.due")]
    DueSummary {
        announcement_id: AnnouncementId,
        publisher_id: UserId,
        missing: i64,
    },
    /// A user's login sessions ended: one (`session`) or all of them
    /// (deactivation, password change). Their websockets close.
    #[serde(rename = "user.signed_out")]
    SignedOut {
        user_id: UserId,
        session: Option<Uuid>,
    },
    /// A user's role changed: their websockets close, and reopen with what
    /// the new role may see.
    #[serde(rename = "user.role_changed")]
    RoleChanged { user_id: UserId },
    /// A background job moved on (or ended); for its owner.
    #[serde(rename = "job.progress")]
    JobProgress {
        job_id: JobId,
        owner_id: UserId,
        kind: JobKind,
        state: JobState,
        done: i32,
        total: Option<i32>,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::DeliveriesCreated { .. } => "deliveries.created",
            Event::DeliveryRetracted { .. } => "delivery.retracted",
            Event::DeliveryUpdated { .. } => "delivery.updated",
            Event::AnnouncementWithdrawn { .. } => "announcement.withdrawn",
            Event::AnnouncementStats { .. } => "announcement.stats",
            Event::RemindersSent { .. } => "reminders.sent",
            Event::DueSummary { .. } => "announcement.due",
            Event::SignedOut { .. } => "user.signed_out",
            Event::RoleChanged { .. } => "user.role_changed",
            Event::JobProgress { .. } => "job.progress",
        }
    }
}

/// An event with where and when it was raised: the node (so the Redis bridge
/// does not echo a node's own events back to it) and the wall-clock time in
/// milliseconds (so push latency can be measured across nodes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub origin: Uuid,
    pub raised_at_ms: i64,
    pub event: Event,
}

#[derive(Clone)]
pub struct EventBus {
    node: Uuid,
    sender: broadcast::Sender<Arc<Envelope>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus for a node of its own, with a fresh node id.
    pub fn new() -> Self {
        EventBus {
            node: Uuid::new_v4(),
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    /// This node's id, stamped on every event it raises.
    pub fn node(&self) -> Uuid {
        self.node
    }

    pub fn publish(&self, event: Event) {
        counter!("classbell_events_published_total", "type" => event.kind()).increment(1);
        let envelope = Envelope {
            origin: self.node,
            raised_at_ms: Utc::now().timestamp_millis(),
            event,
        };
        // No listener is fine: nothing is lost that the database does not keep.
        let _ = self.sender.send(Arc::new(envelope));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.sender.subscribe()
    }
}
