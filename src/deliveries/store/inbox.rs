//! A recipient's deliveries: the inbox, its unread counts, and what the live
//! inbox resolves events and catches clients up with.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::rules::{Live, Unread};
use crate::db::schema::{announcements, deliveries, users};
use crate::deliveries::model::{DeliveryState, InboxAnnouncement, InboxItem};
use crate::error::AppError;
use crate::ids::{AnnouncementId, DeliveryId, UserId};
use crate::pagination::Page;

/// A delivery's own columns of an inbox item.
type DeliveryColumns = (
    deliveries::id,
    deliveries::state,
    deliveries::delivered_at,
    deliveries::ack_at,
    deliveries::retry_count,
);

const DELIVERY_COLUMNS: DeliveryColumns = (
    deliveries::id,
    deliveries::state,
    deliveries::delivered_at,
    deliveries::ack_at,
    deliveries::retry_count,
);

/// A row of `DELIVERY_COLUMNS`.
pub type DeliveryRow = (
    DeliveryId,
    DeliveryState,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i32,
);

/// The announcement's columns of an inbox item (joined with its publisher
/// as `users`).
type AnnouncementColumns = (
    announcements::id,
    announcements::title,
    announcements::body,
    users::username,
    users::display_name,
    announcements::published_at,
    announcements::ack_due_at,
    announcements::expires_at,
);

const ANNOUNCEMENT_COLUMNS: AnnouncementColumns = (
    announcements::id,
    announcements::title,
    announcements::body,
    users::username,
    users::display_name,
    announcements::published_at,
    announcements::ack_due_at,
    announcements::expires_at,
);

/// A row of `ANNOUNCEMENT_COLUMNS`.
pub type AnnouncementRow = (
    AnnouncementId,
    String,
    String,
    String,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// The columns of an inbox item, for every query that shows one.
pub const INBOX_COLUMNS: (DeliveryColumns, AnnouncementColumns) =
    (DELIVERY_COLUMNS, ANNOUNCEMENT_COLUMNS);

/// A row of `INBOX_COLUMNS`.
pub type InboxRow = (DeliveryRow, AnnouncementRow);

pub fn inbox_item((delivery, announcement): InboxRow) -> InboxItem {
    item(delivery, Arc::new(inbox_announcement(announcement)))
}

fn item(delivery: DeliveryRow, announcement: Arc<InboxAnnouncement>) -> InboxItem {
    let (id, state, delivered_at, ack_at, retry_count) = delivery;
    InboxItem {
        id,
        state,
        delivered_at,
        ack_at,
        retry_count,
        announcement,
    }
}

fn inbox_announcement(row: AnnouncementRow) -> InboxAnnouncement {
    let (id, title, body, publisher, publisher_name, published_at, ack_due_at, expires_at) = row;
    InboxAnnouncement {
        id,
        title,
        body,
        publisher,
        publisher_name,
        published_at,
        ack_due_at,
        expires_at,
    }
}

/// `user`'s live deliveries, newest first.
pub async fn inbox(
    conn: &mut AsyncPgConnection,
    user: UserId,
    state: Option<DeliveryState>,
    page: Page,
) -> Result<(Vec<InboxItem>, i64), AppError> {
    let filtered = || {
        let mut query = deliveries::table
            .inner_join(announcements::table.on(announcements::id.eq(deliveries::announcement_id)))
            .inner_join(users::table.on(users::id.eq(announcements::publisher_id)))
            .filter(deliveries::user_id.eq(user))
            .filter(Live)
            .into_boxed();
        if let Some(state) = state {
            query = query.filter(deliveries::state.eq(state));
        }
        query
    };
    let total = match state {
        None => live_total(conn, user).await?,
        Some(_) => filtered().count().get_result(conn).await?,
    };
    let rows: Vec<InboxRow> = filtered()
        .select(INBOX_COLUMNS)
        .order(deliveries::id.desc())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    Ok((rows.into_iter().map(inbox_item).collect(), total))
}

/// How many live deliveries `user` has: those not retracted, less those of
/// withdrawn announcements. Counted that way it walks only the inbox index
/// (`deliveries_user_kept_idx`) and the few withdrawn announcements, where
/// the `Live` join would fetch every announcement the student ever had.
async fn live_total(conn: &mut AsyncPgConnection, user: UserId) -> Result<i64, AppError> {
    #[derive(QueryableByName)]
    struct Total {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        total: i64,
    }
    let row: Total = diesel::sql_query(
        "SELECT (SELECT count(*) FROM deliveries WHERE user_id = $1 AND retracted_at IS NULL)
              - (SELECT count(*) FROM announcements
                   JOIN deliveries ON deliveries.announcement_id = announcements.id
                  WHERE announcements.status = 'withdrawn' AND deliveries.user_id = $1
                    AND deliveries.retracted_at IS NULL) AS total",
    )
    .bind::<diesel::sql_types::BigInt, _>(user)
    .get_result(conn)
    .await?;
    Ok(row.total)
}

/// `user`'s unread deliveries.
pub async fn unread_count(conn: &mut AsyncPgConnection, user: UserId) -> Result<i64, AppError> {
    Ok(unread_counts(conn, &[user])
        .await?
        .get(&user)
        .copied()
        .unwrap_or(0))
}

/// Unread counts of `users`; a user with none is absent from the map.
pub async fn unread_counts(
    conn: &mut AsyncPgConnection,
    users: &[UserId],
) -> Result<HashMap<UserId, i64>, AppError> {
    let rows: Vec<(UserId, i64)> = deliveries::table
        .inner_join(announcements::table.on(announcements::id.eq(deliveries::announcement_id)))
        .filter(deliveries::user_id.eq_any(users))
        .filter(Unread)
        .group_by(deliveries::user_id)
        .select((deliveries::user_id, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// A live delivery of a user's that changed at or after a cursor: the item as
/// it stands, and the transactions that created and last changed it.
pub struct Change {
    pub item: InboxItem,
    pub created_tx: i64,
    pub changed_tx: i64,
}

/// Whose new deliveries of an announcement the hub reads.
#[derive(Debug, Clone, Copy)]
pub enum Among<'a> {
    /// These users' (the connected ones in a chunk's range).
    Users(&'a [UserId]),
    /// Every delivery in this user-id range (a chunk's): cheaper when the
    /// chunk holds no more deliveries than the range has connected users, as
    /// a section's 500 spread over a school's ids do.
    Range(UserId, UserId),
}

/// The new inbox items of `announcement` for the recipients `among` selects.
///
/// The announcement is read once and shared by every item: a chunk of
/// 10,000 recipients would otherwise fetch, decode and hold its title and
/// body 10,000 times.
pub async fn created_for(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    among: Among<'_>,
) -> Result<Vec<(UserId, InboxItem)>, AppError> {
    let shown: Option<InboxAnnouncement> = announcements::table
        .inner_join(users::table.on(users::id.eq(announcements::publisher_id)))
        .filter(announcements::id.eq(announcement))
        .select(ANNOUNCEMENT_COLUMNS)
        .first::<AnnouncementRow>(conn)
        .await
        .optional()?
        .map(inbox_announcement);
    let Some(shown) = shown.map(Arc::new) else {
        return Ok(Vec::new());
    };
    let mut query = deliveries::table
        .inner_join(announcements::table.on(announcements::id.eq(deliveries::announcement_id)))
        .filter(deliveries::announcement_id.eq(announcement))
        .filter(Live)
        .select((deliveries::user_id, DELIVERY_COLUMNS))
        .into_boxed();
    query = match among {
        Among::Users(users) => query.filter(deliveries::user_id.eq_any(users)),
        Among::Range(first, last) => query.filter(deliveries::user_id.between(first, last)),
    };
    let rows: Vec<(UserId, DeliveryRow)> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(user, delivery)| (user, item(delivery, Arc::clone(&shown))))
        .collect())
}

/// Those of `users` who received `announcement`.
pub async fn recipients_among(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    users: &[UserId],
) -> Result<Vec<UserId>, AppError> {
    Ok(deliveries::table
        .filter(deliveries::announcement_id.eq(announcement))
        .filter(deliveries::user_id.eq_any(users))
        .select(deliveries::user_id)
        .load(conn)
        .await?)
}

/// An unread delivery of one announcement: (user, delivery, retry count).
pub type Unacknowledged = (UserId, DeliveryId, i32);

/// Those of `users` for whom `announcement` is unread.
pub async fn unacked_among(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    users: &[UserId],
) -> Result<Vec<Unacknowledged>, AppError> {
    Ok(deliveries::table
        .inner_join(announcements::table.on(announcements::id.eq(deliveries::announcement_id)))
        .filter(deliveries::announcement_id.eq(announcement))
        .filter(deliveries::user_id.eq_any(users))
        .filter(Unread)
        .select((deliveries::user_id, deliveries::id, deliveries::retry_count))
        .load(conn)
        .await?)
}
