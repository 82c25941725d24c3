//! The websocket protocol: JSON text frames with a `type`, in the same
//! vocabulary as the event bus and the browser.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::announcements::model::AnnouncementStats;
use crate::deliveries::model::{DeliveryState, InboxItem};
use crate::error::Code;
use crate::ids::{AnnouncementId, DeliveryId, JobId, UserId};

/// A position in the inbox's change history: the xmin of a PostgreSQL
/// snapshot, so every change below it had committed (or aborted) when it was
/// taken. A client that reconnects with `since=<cursor>` is sent every change
/// at or above it. Opaque to clients, hence a string on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(pub i64);

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Cursor {
    type Err = Code;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.parse::<i64>() {
            Ok(value) if value >= 0 => Ok(Cursor(value)),
            _ => Err(Code::NotACursor),
        }
    }
}

/// What the server sends. Every message but `error` also carries the
/// session's current `cursor` (added when it is written, see `Frame`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum ServerMessage {
    #[serde(rename = "hello")]
    Hello { user: HelloUser, unread_count: i64 },
    /// A new inbox item, shaped like an item of `GET /api/deliveries`.
    #[serde(rename = "delivery.created")]
    DeliveryCreated { delivery: InboxItem },
    #[serde(rename = "delivery.updated")]
    DeliveryUpdated {
        delivery_id: DeliveryId,
        announcement_id: AnnouncementId,
        state: DeliveryState,
        delivered_at: Option<DateTime<Utc>>,
        ack_at: Option<DateTime<Utc>>,
    },
    #[serde(rename = "announcement.withdrawn")]
    AnnouncementWithdrawn { announcement_id: AnnouncementId },
    #[serde(rename = "unread_count")]
    UnreadCount { unread: i64 },
    #[serde(rename = "reminder")]
    Reminder {
        delivery_id: DeliveryId,
        announcement_id: AnnouncementId,
        retry_count: i32,
    },
    #[serde(rename = "announcement.stats")]
    AnnouncementStats {
        announcement_id: AnnouncementId,
        stats: AnnouncementStats,
    },
    /// A background job of the user's moved on (the task API's shape).
    #[serde(rename = "job.progress")]
    JobProgress {
        task_id: JobId,
        kind: crate::jobs::model::JobKind,
        state: &'static str,
        progress: crate::jobs::model::Progress,
    },
    /// The due time of one of the user's announcements came: `missing`
    /// recipients have not acknowledged it.
    #[serde(rename = "announcement.due")]
    DueSummary {
        announcement_id: AnnouncementId,
        missing: i64,
    },
    /// A client message that could not be done; the session stays open.
    #[serde(rename = "error")]
    Error { code: &'static str, message: String },
    /// Answer to a client `ping`.
    #[serde(rename = "pong")]
    Pong,
    /// More changed since the client's `since` than a replay carries: it is
    /// to read its inbox over HTTP (`GET /api/deliveries`); what changes
    /// after this message's cursor comes over the socket as usual.
    #[serde(rename = "resync")]
    Resync { unread_count: i64 },
}

impl ServerMessage {
    /// Every message type's name, in the order of `kind_index`.
    pub const KINDS: [&'static str; 12] = [
        "hello",
        "delivery.created",
        "delivery.updated",
        "announcement.withdrawn",
        "unread_count",
        "reminder",
        "announcement.stats",
        "job.progress",
        "announcement.due",
        "error",
        "pong",
        "resync",
    ];

    /// The message's type, as its `type` field says it.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// Where the message's type stands in `KINDS` (per-type series are
    /// kept in that order).
    pub fn kind_index(&self) -> usize {
        match self {
            ServerMessage::Hello { .. } => 0,
            ServerMessage::DeliveryCreated { .. } => 1,
            ServerMessage::DeliveryUpdated { .. } => 2,
            ServerMessage::AnnouncementWithdrawn { .. } => 3,
            ServerMessage::UnreadCount { .. } => 4,
            ServerMessage::Reminder { .. } => 5,
            ServerMessage::AnnouncementStats { .. } => 6,
            ServerMessage::JobProgress { .. } => 7,
            ServerMessage::DueSummary { .. } => 8,
            ServerMessage::Error { .. } => 9,
            ServerMessage::Pong => 10,
            ServerMessage::Resync { .. } => 11,
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HelloUser {
    pub id: UserId,
    pub username: String,
    pub role: crate::users::model::Role,
}

/// A message as written to the socket, with the cursor beside its fields.
#[derive(Serialize)]
pub struct Frame<'a> {
    #[serde(flatten)]
    pub message: &'a ServerMessage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
}

/// What a client may send.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientMessage {
    /// The browser showed the item: `queued → delivered`.
    #[serde(rename = "delivered")]
    Delivered { delivery_id: DeliveryId },
    #[serde(rename = "ack")]
    Ack { delivery_id: DeliveryId },
    /// Live figures for an announcement (staff, and its publisher while a teacher).
    #[serde(rename = "subscribe_stats")]
    SubscribeStats { announcement_id: AnnouncementId },
    #[serde(rename = "unsubscribe_stats")]
    UnsubscribeStats { announcement_id: AnnouncementId },
    #[serde(rename = "ping")]
    Ping,
}

impl ClientMessage {
    /// Parses a text frame; the error is fit to send back as `bad_message`.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|error| {
            if error.is_syntax() || error.is_eof() {
                "not a JSON object".to_owned()
            } else {
                error.to_string()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_and_bad_ones_say_why() {
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"ack","delivery_id":7}"#),
            Ok(ClientMessage::Ack {
                delivery_id: DeliveryId(7)
            })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        ));
        assert_eq!(
            ClientMessage::parse("{oops").unwrap_err(),
            "not a JSON object"
        );
        let unknown = ClientMessage::parse(r#"{"type":"shout"}"#).unwrap_err();
        assert!(unknown.contains("unknown variant `shout`"), "{unknown}");
        let missing = ClientMessage::parse(r#"{"type":"ack"}"#).unwrap_err();
        assert!(missing.contains("delivery_id"), "{missing}");
    }

    #[test]
    fn a_message_s_kind_is_its_type_field() {
        let messages = [
            ServerMessage::DeliveryUpdated {
                delivery_id: DeliveryId(1),
                announcement_id: AnnouncementId(2),
                state: DeliveryState::Delivered,
                delivered_at: None,
                ack_at: None,
            },
            ServerMessage::AnnouncementWithdrawn {
                announcement_id: AnnouncementId(2),
            },
            ServerMessage::UnreadCount { unread: 1 },
            ServerMessage::Reminder {
                delivery_id: DeliveryId(1),
                announcement_id: AnnouncementId(2),
                retry_count: 1,
            },
            ServerMessage::DueSummary {
                announcement_id: AnnouncementId(2),
                missing: 3,
            },
            ServerMessage::error("bad_message", "no"),
            ServerMessage::Pong,
            ServerMessage::Resync { unread_count: 0 },
        ];
        for message in &messages {
            let json = serde_json::to_value(message).unwrap();
            assert_eq!(json["type"], message.kind(), "{json}");
        }
    }

    #[test]
    fn frames_carry_the_cursor_beside_the_fields() {
        let message = ServerMessage::UnreadCount { unread: 3 };
        let frame = Frame {
            message: &message,
            cursor: Some(Cursor(42)),
        };
        assert_eq!(
            serde_json::to_value(&frame).unwrap(),
            serde_json::json!({"type": "unread_count", "unread": 3, "cursor": "42"})
        );
        assert_eq!("42".parse::<Cursor>(), Ok(Cursor(42)));
        assert!("-1".parse::<Cursor>().is_err());
        assert!("abc".parse::<Cursor>().is_err());
    }
}
