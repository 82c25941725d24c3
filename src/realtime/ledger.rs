//! What a session has sent since its cursor, so a checkpoint can tell what
//! the database holds that the client never got.
//!
//! A session's cursor must never pass a change the client has not seen, and
//! pushes are best effort (a bridge outage loses other nodes' events). So
//! every so often a busy session reads its changes since the cursor, sends
//! whatever is not in the ledger (a lost push, healed), and only then moves
//! the cursor forward and forgets what is behind it. Nothing depends on how
//! fast pushes travel.

use std::collections::HashSet;

use super::protocol::ServerMessage;
use crate::deliveries::model::DeliveryState;
use crate::ids::{AnnouncementId, DeliveryId};

/// One fact a client was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Told {
    Created(DeliveryId),
    State(DeliveryId, DeliveryState),
    Withdrawn(AnnouncementId),
}

#[derive(Debug, Default)]
pub struct Ledger {
    /// Sent since the checkpoint in progress (or the last one) began.
    current: HashSet<Told>,
    /// Sent before the checkpoint in progress began.
    earlier: HashSet<Told>,
}

impl Ledger {
    /// Notes an inbox message as sent; other messages are not inbox changes.
    pub fn record(&mut self, message: &ServerMessage) {
        self.current.extend(facts(message));
    }

    /// Whether anything was sent since the last checkpoint.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.earlier.is_empty()
    }

    /// A checkpoint's read is about to start: what was sent so far is what
    /// its result is compared with.
    pub fn begin_checkpoint(&mut self) {
        let current = std::mem::take(&mut self.current);
        self.earlier.extend(current);
    }

    /// Whether the client already has what `message` says.
    pub fn already_sent(&self, message: &ServerMessage) -> bool {
        let told = |fact| self.current.contains(&fact) || self.earlier.contains(&fact);
        match message {
            ServerMessage::DeliveryCreated { delivery } => {
                told(Told::Created(delivery.id)) && told(Told::State(delivery.id, delivery.state))
            }
            ServerMessage::DeliveryUpdated {
                delivery_id, state, ..
            } => told(Told::State(*delivery_id, *state)),
            ServerMessage::AnnouncementWithdrawn { announcement_id } => {
                told(Told::Withdrawn(*announcement_id))
            }
            _ => false,
        }
    }

    /// Whether the client was told `delivery` exists (in any state).
    pub fn told_created(&self, delivery: DeliveryId) -> bool {
        let fact = Told::Created(delivery);
        self.current.contains(&fact) || self.earlier.contains(&fact)
    }

    /// The checkpoint moved the cursor on. What its read found is kept: the
    /// cursor is the oldest transaction still open, so while a long one runs
    /// (an import, a fan-out chunk) the next read finds the same changes
    /// again, and they must still count as sent. The rest is behind the cursor.
    pub fn end_checkpoint(&mut self, read: &[ServerMessage]) {
        self.earlier.clear();
        self.earlier.extend(read.iter().flat_map(facts));
    }
}

/// The facts an inbox message tells.
fn facts(message: &ServerMessage) -> impl Iterator<Item = Told> + use<> {
    let (first, second) = match message {
        ServerMessage::DeliveryCreated { delivery } => (
            Some(Told::Created(delivery.id)),
            Some(Told::State(delivery.id, delivery.state)),
        ),
        ServerMessage::DeliveryUpdated {
            delivery_id, state, ..
        } => (Some(Told::State(*delivery_id, *state)), None),
        ServerMessage::AnnouncementWithdrawn { announcement_id } => {
            (Some(Told::Withdrawn(*announcement_id)), None)
        }
        _ => (None, None),
    };
    first.into_iter().chain(second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliveries::model::{InboxAnnouncement, InboxItem};

    fn created(id: i64, state: DeliveryState) -> ServerMessage {
        ServerMessage::DeliveryCreated {
            delivery: InboxItem {
                id: DeliveryId(id),
                state,
                delivered_at: None,
                ack_at: None,
                retry_count: 0,
                announcement: std::sync::Arc::new(InboxAnnouncement {
                    id: AnnouncementId(1),
                    title: "t".into(),
                    body: "b".into(),
                    publisher: "p".into(),
                    publisher_name: "P".into(),
                    published_at: None,
                    ack_due_at: None,
                    expires_at: None,
                }),
            },
        }
    }

    fn updated(id: i64, state: DeliveryState) -> ServerMessage {
        ServerMessage::DeliveryUpdated {
            delivery_id: DeliveryId(id),
            announcement_id: AnnouncementId(1),
            state,
            delivered_at: None,
            ack_at: None,
        }
    }

    #[test]
    fn a_checkpoint_finds_only_what_was_not_sent() {
        let mut ledger = Ledger::default();
        assert!(ledger.is_empty());
        ledger.record(&created(7, DeliveryState::Queued));
        ledger.record(&updated(7, DeliveryState::Delivered));
        ledger.begin_checkpoint();
        // Sent while the checkpoint's read was running: still counts.
        ledger.record(&ServerMessage::AnnouncementWithdrawn {
            announcement_id: AnnouncementId(3),
        });

        assert!(ledger.already_sent(&created(7, DeliveryState::Delivered)));
        assert!(ledger.already_sent(&updated(7, DeliveryState::Delivered)));
        assert!(ledger.already_sent(&ServerMessage::AnnouncementWithdrawn {
            announcement_id: AnnouncementId(3)
        }));
        // The acknowledgment's push never came; nor did item 8.
        assert!(!ledger.already_sent(&created(7, DeliveryState::Acknowledged)));
        // Item 7's creation was told, so its new state goes as an update.
        assert!(ledger.told_created(DeliveryId(7)));
        assert!(!ledger.told_created(DeliveryId(8)));
        assert!(!ledger.already_sent(&updated(7, DeliveryState::Acknowledged)));
        assert!(!ledger.already_sent(&created(8, DeliveryState::Queued)));

        ledger.end_checkpoint(&[]);
        assert!(!ledger.already_sent(&updated(7, DeliveryState::Delivered)));
        assert!(!ledger.is_empty(), "what came during the read is kept");
        assert!(ledger.already_sent(&ServerMessage::AnnouncementWithdrawn {
            announcement_id: AnnouncementId(3)
        }));
    }

    #[test]
    fn what_a_held_back_cursor_reads_again_still_counts_as_sent() {
        let mut ledger = Ledger::default();
        ledger.record(&created(7, DeliveryState::Queued));
        // A long transaction holds the cursor back: every read finds item 7.
        for _ in 0..3 {
            ledger.begin_checkpoint();
            let read = [created(7, DeliveryState::Queued)];
            assert!(ledger.already_sent(&read[0]));
            ledger.end_checkpoint(&read);
        }
        assert!(ledger.told_created(DeliveryId(7)));
        // Once the cursor passes it, the reads no longer find it, nor does the ledger.
        ledger.begin_checkpoint();
        ledger.end_checkpoint(&[]);
        assert!(ledger.is_empty());
    }
}
