//! The in-process event bus: what happened to announcements and deliveries,
//! for whoever listens (the websocket hub). PostgreSQL stays the truth; a
//! listener that falls behind loses events and catches up from the database.

use chrono::{DateTime, Utc};
use metrics::counter;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::deliveries::model::DeliveryState;

/// Events kept for slow listeners before the oldest are dropped.
const CAPACITY: usize = 8192;

/// One vocabulary for the bus, the websocket and the browser.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A fan-out chunk committed: the announcement's recipients with user ids
    /// in `first_user_id..=last_user_id` have a new, queued delivery. A range,
    /// not a list: listeners look up only the users they serve.
    #[serde(rename = "delivery.created")]
    DeliveriesCreated {
        announcement_id: i64,
        first_user_id: i64,
        last_user_id: i64,
        count: i64,
    },
    #[serde(rename = "delivery.updated")]
    DeliveryUpdated {
        delivery_id: i64,
        user_id: i64,
        announcement_id: i64,
        state: DeliveryState,
        delivered_at: Option<DateTime<Utc>>,
        ack_at: Option<DateTime<Utc>>,
    },
    #[serde(rename = "announcement.withdrawn")]
    AnnouncementWithdrawn { announcement_id: i64 },
    /// The announcement's figures changed (the hub reads and coalesces them).
    #[serde(rename = "announcement.stats")]
    AnnouncementStats { announcement_id: i64 },
    #[serde(rename = "reminder")]
    Reminder {
        delivery_id: i64,
        user_id: i64,
        announcement_id: i64,
        retry_count: i32,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::DeliveriesCreated { .. } => "delivery.created",
            Event::DeliveryUpdated { .. } => "delivery.updated",
            Event::AnnouncementWithdrawn { .. } => "announcement.withdrawn",
            Event::AnnouncementStats { .. } => "announcement.stats",
            Event::Reminder { .. } => "reminder",
        }
    }
}

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        EventBus {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    pub fn publish(&self, event: Event) {
        counter!("classbell_events_published_total", "type" => event.kind()).increment(1);
        // No listener is fine: nothing is lost that the database does not keep.
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
