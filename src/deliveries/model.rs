//! Delivery states and what the inbox shows.

use std::sync::Arc;

use crate::ids::{AnnouncementId, DeliveryId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

crate::text_enum! {
    /// Only ever moves forward.
    pub enum DeliveryState {
        Queued => "queued",
        Delivered => "delivered",
        Acknowledged => "acknowledged",
    }
}

impl DeliveryState {
    /// Position in the state machine; a transition must raise it.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryState::Queued => 0,
            DeliveryState::Delivered => 1,
            DeliveryState::Acknowledged => 2,
        }
    }
}

/// A delivery's state after a transition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryStatus {
    pub id: DeliveryId,
    pub announcement_id: AnnouncementId,
    pub state: DeliveryState,
    pub delivered_at: Option<DateTime<Utc>>,
    pub ack_at: Option<DateTime<Utc>>,
}

/// The announcement as an inbox item carries it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboxAnnouncement {
    pub id: AnnouncementId,
    pub title: String,
    pub body: String,
    /// The publisher's username.
    pub publisher: String,
    /// The publisher's name, as people see it.
    pub publisher_name: String,
    pub published_at: Option<DateTime<Utc>>,
    /// Acknowledge by then.
    pub ack_due_at: Option<DateTime<Utc>>,
    /// After this it no longer matters, and no longer counts as unread.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboxItem {
    pub id: DeliveryId,
    pub state: DeliveryState,
    pub delivered_at: Option<DateTime<Utc>>,
    pub ack_at: Option<DateTime<Utc>>,
    pub retry_count: i32,
    /// Shared: a fan-out's items for thousands of recipients hold one copy.
    pub announcement: Arc<InboxAnnouncement>,
}
