//! The queries behind the live inbox: catching a session up from its cursor,
//! and resolving bus events into the few users a node has connected.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::protocol::{Cursor, ServerMessage};
use crate::announcements::model::AnnouncementStatus;
use crate::db::schema::{announcements, deliveries, users};
use crate::deliveries::model::{DeliveryState, InboxItem};
use crate::deliveries::store::{INBOX_COLUMNS, InboxRow, inbox_item};
use crate::error::AppError;

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
    pub cursor: Cursor,
    pub unread: i64,
}

/// Every inbox change of `user` at or after `since` (all of it when `None` is
/// given, only the cursor and unread count are read then). An item created
/// since comes as `delivery.created` in its current state; an older item that
/// changed since comes as `delivery.updated`; withdrawals follow the order in
/// which they committed. Duplicates of what the client already saw are
/// possible (a cursor is conservative), gaps are not.
pub async fn catch_up(
    conn: &mut AsyncPgConnection,
    user: i64,
    since: Option<Cursor>,
) -> Result<CatchUp, AppError> {
    // The cursor first: whatever committed below it is visible to the reads below.
    let cursor = current_cursor(conn).await?;
    let mut changes: Vec<(i64, i64, ServerMessage)> = Vec::new();
    if let Some(Cursor(since)) = since {
        let rows: Vec<(InboxRow, i64, i64)> = deliveries::table
            .inner_join(announcements::table.on(announcements::id.eq(deliveries::announcement_id)))
            .inner_join(users::table.on(users::id.eq(announcements::publisher_id)))
            .filter(deliveries::user_id.eq(user))
            .filter(deliveries::changed_tx.ge(since))
            .filter(announcements::status.ne(AnnouncementStatus::Withdrawn))
            .select((
                INBOX_COLUMNS,
                deliveries::created_tx,
                deliveries::changed_tx,
            ))
            .load(conn)
            .await?;
        for (row, created_tx, changed_tx) in rows {
            let item = inbox_item(row);
            let order = (changed_tx, item.id);
            let message = if created_tx >= since {
                ServerMessage::DeliveryCreated { delivery: item }
            } else {
                updated(&item)
            };
            changes.push((order.0, order.1, message));
        }
        let withdrawn: Vec<(i64, Option<i64>)> = announcements::table
            .inner_join(deliveries::table.on(deliveries::announcement_id.eq(announcements::id)))
            .filter(deliveries::user_id.eq(user))
            .filter(announcements::withdrawn_tx.ge(since))
            .select((announcements::id, announcements::withdrawn_tx))
            .load(conn)
            .await?;
        for (announcement_id, tx) in withdrawn {
            changes.push((
                tx.unwrap_or(since),
                0,
                ServerMessage::AnnouncementWithdrawn { announcement_id },
            ));
        }
        changes.sort_by_key(|(tx, id, _)| (*tx, *id));
    }
    let unread = unread_counts(conn, &[user]).await?.get(&user).copied();
    Ok(CatchUp {
        messages: changes.into_iter().map(|(_, _, m)| m).collect(),
        cursor,
        unread: unread.unwrap_or(0),
    })
}

fn updated(item: &InboxItem) -> ServerMessage {
    ServerMessage::DeliveryUpdated {
        delivery_id: item.id,
        announcement_id: item.announcement.id,
        state: item.state,
        delivered_at: item.delivered_at,
        ack_at: item.ack_at,
    }
}

/// The new inbox items of `announcement` for those of `users` it reached.
pub async fn created_for(
    conn: &mut AsyncPgConnection,
    announcement: i64,
    users: &[i64],
) -> Result<Vec<(i64, InboxItem)>, AppError> {
    let rows: Vec<(i64, InboxRow)> = deliveries::table
        .inner_join(announcements::table.on(announcements::id.eq(deliveries::announcement_id)))
        .inner_join(users::table.on(users::id.eq(announcements::publisher_id)))
        .filter(deliveries::announcement_id.eq(announcement))
        .filter(deliveries::user_id.eq_any(users))
        .filter(announcements::status.ne(AnnouncementStatus::Withdrawn))
        .select((deliveries::user_id, INBOX_COLUMNS))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(user, row)| (user, inbox_item(row)))
        .collect())
}

/// Unread (not acknowledged, not withdrawn) counts of `users`; a user with
/// none is absent from the map.
pub async fn unread_counts(
    conn: &mut AsyncPgConnection,
    users: &[i64],
) -> Result<HashMap<i64, i64>, AppError> {
    let rows: Vec<(i64, i64)> = deliveries::table
        .inner_join(announcements::table.on(announcements::id.eq(deliveries::announcement_id)))
        .filter(deliveries::user_id.eq_any(users))
        .filter(deliveries::state.ne(DeliveryState::Acknowledged))
        .filter(announcements::status.ne(AnnouncementStatus::Withdrawn))
        .group_by(deliveries::user_id)
        .select((deliveries::user_id, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Those of `users` who received `announcement`.
pub async fn recipients_among(
    conn: &mut AsyncPgConnection,
    announcement: i64,
    users: &[i64],
) -> Result<Vec<i64>, AppError> {
    Ok(deliveries::table
        .filter(deliveries::announcement_id.eq(announcement))
        .filter(deliveries::user_id.eq_any(users))
        .select(deliveries::user_id)
        .load(conn)
        .await?)
}

/// A reminded delivery: (user, delivery, retry count).
pub type Reminded = (i64, i64, i32);

/// Those of `users` with an unacknowledged delivery of `announcement`.
pub async fn unacked_among(
    conn: &mut AsyncPgConnection,
    announcement: i64,
    users: &[i64],
) -> Result<Vec<Reminded>, AppError> {
    Ok(deliveries::table
        .filter(deliveries::announcement_id.eq(announcement))
        .filter(deliveries::user_id.eq_any(users))
        .filter(deliveries::state.ne(DeliveryState::Acknowledged))
        .select((deliveries::user_id, deliveries::id, deliveries::retry_count))
        .load(conn)
        .await?)
}
