//! Catching a session up from its cursor: the cursor itself, and what the
//! delivery store's changes since it mean as messages.

use diesel_async::AsyncPgConnection;
use metrics::counter;

use super::protocol::{Cursor, ServerMessage};
use crate::deliveries::model::InboxItem;
use crate::deliveries::store as deliveries;
use crate::error::AppError;
use crate::ids::{DeliveryId, UserId};

/// What a client missed since `since`, in commit order, and the cursor to
/// resume from next time.
pub struct CatchUp {
    pub messages: Vec<ServerMessage>,
    /// More changed than the replay limit: `messages` is empty, and the
    /// client is to read its inbox over HTTP (after this cursor, so nothing
    /// falls between the two).
    pub too_many: bool,
    pub cursor: Cursor,
    /// The unread count, when it was asked for or the replay was cut (the
    /// client then starts over from it).
    pub unread: Option<i64>,
}

/// Every inbox change of `user` at or after `since` (all of it when `None` is
/// given, only the cursor and unread count are read then). An item created
/// since (or brought back after a retraction) comes as `delivery.created` in
/// its current state; an older item that changed since comes as
/// `delivery.updated`; withdrawals and retractions (as
/// `announcement.withdrawn`) follow the order in which they committed.
/// Duplicates of what the client already saw are possible (a cursor is
/// conservative), gaps are not. At most `limit`
/// changes are read and replayed: past that, none are (see `too_many`), so
/// a stale cursor costs one bounded read, not the whole inbox. The unread
/// count is read with `count_unread` (a checkpoint goes without).
pub async fn catch_up(
    conn: &mut AsyncPgConnection,
    user: UserId,
    since: Option<Cursor>,
    limit: usize,
    count_unread: bool,
) -> Result<CatchUp, AppError> {
    // One statement, one snapshot: the cursor is that snapshot's xmin, so
    // whatever committed below it is in the read.
    let read = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
    let since_tx = since.map(|Cursor(tx)| tx);
    let replay = deliveries::replay(conn, user, since_tx, read, count_unread).await?;
    let cursor = Cursor(replay.cursor);
    let unread = replay.unread;
    let Some(Cursor(since)) = since else {
        return Ok(CatchUp {
            messages: Vec::new(),
            too_many: false,
            cursor,
            unread,
        });
    };
    if replay.changes.len() + replay.gone.len() > limit {
        counter!("classbell_ws_replays_cut_total").increment(1);
        let unread = match unread {
            Some(unread) => unread,
            None => deliveries::unread_count(conn, user).await?,
        };
        return Ok(CatchUp {
            messages: Vec::new(),
            too_many: true,
            cursor,
            unread: Some(unread),
        });
    }
    let mut changes: Vec<(i64, DeliveryId, ServerMessage)> = Vec::new();
    for change in replay.changes {
        let (tx, id) = (change.changed_tx, change.item.id);
        let message = if change.created_tx >= since {
            ServerMessage::DeliveryCreated {
                delivery: change.item,
            }
        } else {
            updated(&change.item)
        };
        changes.push((tx, id, message));
    }
    // A retracted delivery leaves the inbox as a withdrawn one does.
    for (announcement_id, tx) in replay.gone {
        changes.push((
            tx,
            // Before the items of the same transaction.
            DeliveryId::default(),
            ServerMessage::AnnouncementWithdrawn { announcement_id },
        ));
    }
    changes.sort_by_key(|(tx, id, _)| (*tx, *id));
    Ok(CatchUp {
        messages: changes.into_iter().map(|(_, _, m)| m).collect(),
        too_many: false,
        cursor,
        unread,
    })
}

/// `delivery.updated` with an item's current state.
pub(super) fn updated(item: &InboxItem) -> ServerMessage {
    ServerMessage::DeliveryUpdated {
        delivery_id: item.id,
        announcement_id: item.announcement.id,
        state: item.state,
        delivered_at: item.delivered_at,
        ack_at: item.ack_at,
    }
}
