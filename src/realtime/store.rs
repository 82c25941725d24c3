//! Catching a session up from its cursor: the cursor itself, and what the
//! delivery store's changes since it mean as messages.

use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use metrics::counter;

use super::protocol::{Cursor, ServerMessage};
use crate::deliveries::model::InboxItem;
use crate::deliveries::store as deliveries;
use crate::error::AppError;
use crate::ids::{DeliveryId, UserId};

#[derive(QueryableByName)]
struct Xmin {
    #[diesel(sql_type = BigInt)]
    xmin: i64,
}

/// A cursor for "now": every change below it has committed (or aborted), so
/// reads that start after this call see all of them.
pub async fn current_cursor(conn: &mut AsyncPgConnection) -> Result<Cursor, AppError> {
    let row: Xmin =
        diesel::sql_query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin")
            .get_result(conn)
            .await?;
    Ok(Cursor(row.xmin))
}

/// What a client missed since `since`, in commit order, and the cursor to
/// resume from next time.
pub struct CatchUp {
    pub messages: Vec<ServerMessage>,
    /// More changed than the replay limit: `messages` is empty, and the
    /// client is to read its inbox over HTTP (after this cursor, so nothing
    /// falls between the two).
    pub too_many: bool,
    pub cursor: Cursor,
    pub unread: i64,
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
/// a stale cursor costs one bounded read, not the whole inbox.
pub async fn catch_up(
    conn: &mut AsyncPgConnection,
    user: UserId,
    since: Option<Cursor>,
    limit: usize,
) -> Result<CatchUp, AppError> {
    // The cursor first: whatever committed below it is visible to the reads below.
    let cursor = current_cursor(conn).await?;
    let mut changes: Vec<(i64, DeliveryId, ServerMessage)> = Vec::new();
    let mut too_many = false;
    if let Some(Cursor(since)) = since {
        let read = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let changed = deliveries::changes_since(conn, user, since, read).await?;
        let mut withdrawn = deliveries::withdrawn_since(conn, user, since, read).await?;
        // A retracted delivery leaves the inbox as a withdrawn one does.
        let retracted = deliveries::retracted_since(conn, user, since, read).await?;
        withdrawn.extend(retracted.into_iter().map(|(id, tx)| (id, Some(tx))));
        too_many = changed.len() + withdrawn.len() > limit;
        if too_many {
            counter!("classbell_ws_replays_cut_total").increment(1);
            return Ok(CatchUp {
                messages: Vec::new(),
                too_many,
                cursor,
                unread: deliveries::unread_count(conn, user).await?,
            });
        }
        for change in changed {
            let order = (change.changed_tx, change.item.id);
            let message = if change.created_tx >= since {
                ServerMessage::DeliveryCreated {
                    delivery: change.item,
                }
            } else {
                updated(&change.item)
            };
            changes.push((order.0, order.1, message));
        }
        for (announcement_id, tx) in withdrawn {
            changes.push((
                tx.unwrap_or(since),
                // Before the items of the same transaction.
                DeliveryId::default(),
                ServerMessage::AnnouncementWithdrawn { announcement_id },
            ));
        }
        changes.sort_by_key(|(tx, id, _)| (*tx, *id));
    }
    Ok(CatchUp {
        messages: changes.into_iter().map(|(_, _, m)| m).collect(),
        too_many,
        cursor,
        unread: deliveries::unread_count(conn, user).await?,
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
