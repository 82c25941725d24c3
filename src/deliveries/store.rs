//! Queries on a recipient's deliveries (the inbox). Transitions are the
//! writer's (`writer.rs`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::model::{DeliveryState, InboxAnnouncement, InboxItem};
use crate::announcements::model::AnnouncementStatus;
use crate::db::schema::{announcements, deliveries, users};
use crate::error::AppError;
use crate::pagination::Page;

/// The columns of an inbox item, for every query that shows one.
pub const INBOX_COLUMNS: (
    deliveries::id,
    deliveries::state,
    deliveries::delivered_at,
    deliveries::ack_at,
    deliveries::retry_count,
    announcements::id,
    announcements::title,
    announcements::body,
    users::username,
    announcements::published_at,
) = (
    deliveries::id,
    deliveries::state,
    deliveries::delivered_at,
    deliveries::ack_at,
    deliveries::retry_count,
    announcements::id,
    announcements::title,
    announcements::body,
    users::username,
    announcements::published_at,
);

/// A row of `INBOX_COLUMNS`.
pub type InboxRow = (
    i64,
    DeliveryState,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i32,
    i64,
    String,
    String,
    String,
    Option<DateTime<Utc>>,
);

pub fn inbox_item(row: InboxRow) -> InboxItem {
    let (id, state, delivered_at, ack_at, retry_count, a_id, title, body, publisher, published_at) =
        row;
    InboxItem {
        id,
        state,
        delivered_at,
        ack_at,
        retry_count,
        announcement: InboxAnnouncement {
            id: a_id,
            title,
            body,
            publisher,
            published_at,
        },
    }
}

/// `user`'s deliveries of announcements that are not withdrawn, newest first.
pub async fn inbox(
    conn: &mut AsyncPgConnection,
    user: i64,
    state: Option<DeliveryState>,
    page: Page,
) -> Result<(Vec<InboxItem>, i64), AppError> {
    let filtered = || {
        let mut query = deliveries::table
            .inner_join(announcements::table.on(announcements::id.eq(deliveries::announcement_id)))
            .inner_join(users::table.on(users::id.eq(announcements::publisher_id)))
            .filter(deliveries::user_id.eq(user))
            .filter(announcements::status.ne(AnnouncementStatus::Withdrawn))
            .into_boxed();
        if let Some(state) = state {
            query = query.filter(deliveries::state.eq(state));
        }
        query
    };
    let total = filtered().count().get_result(conn).await?;
    let rows: Vec<InboxRow> = filtered()
        .select(INBOX_COLUMNS)
        .order(deliveries::id.desc())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    Ok((rows.into_iter().map(inbox_item).collect(), total))
}

/// Deliveries not yet acknowledged, of announcements not withdrawn.
pub async fn unread_count(conn: &mut AsyncPgConnection, user: i64) -> Result<i64, AppError> {
    Ok(deliveries::table
        .inner_join(announcements::table.on(announcements::id.eq(deliveries::announcement_id)))
        .filter(deliveries::user_id.eq(user))
        .filter(deliveries::state.ne(DeliveryState::Acknowledged))
        .filter(announcements::status.ne(AnnouncementStatus::Withdrawn))
        .count()
        .get_result(conn)
        .await?)
}

/// Acknowledges `users`' deliveries of `announcement` in one statement, for
/// seeding; live transitions go through the delivery writer.
pub async fn acknowledge_now(
    conn: &mut AsyncPgConnection,
    announcement: i64,
    users: &[i64],
) -> Result<usize, AppError> {
    let now = Utc::now();
    Ok(diesel::update(deliveries::table)
        .filter(deliveries::announcement_id.eq(announcement))
        .filter(deliveries::user_id.eq_any(users))
        .set((
            deliveries::state.eq(DeliveryState::Acknowledged),
            deliveries::delivered_at.eq(now),
            deliveries::ack_at.eq(now),
        ))
        .execute(conn)
        .await?)
}

/// Deliveries by state, from the totals the table's triggers keep
/// (`delivery_counts`): a few rows, whatever the number of deliveries.
pub async fn counts_by_state(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(DeliveryState, i64)>, AppError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::Text)]
        state: DeliveryState,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rows: Vec<Count> =
        diesel::sql_query("SELECT state, sum(n)::bigint AS n FROM delivery_counts GROUP BY state")
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|row| (row.state, row.n)).collect())
}
