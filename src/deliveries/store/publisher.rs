//! What a publisher sees of an announcement's deliveries: the figures, who
//! has not acknowledged, and the reminders that go to them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::rules::{Counted, counted_sql, unread_sql};
use crate::announcements::model::Unacked;
use crate::db::schema::{deliveries, users};
use crate::deliveries::model::DeliveryState;
use crate::error::AppError;
use crate::ids::{AnnouncementId, DeliveryId, UserId};
use crate::pagination::Page;

/// An announcement's deliveries by state, its reminders and the median time
/// to acknowledge.
#[derive(QueryableByName)]
pub struct StateCounts {
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    #[diesel(sql_type = BigInt)]
    pub queued: i64,
    #[diesel(sql_type = BigInt)]
    pub delivered: i64,
    #[diesel(sql_type = BigInt)]
    pub acknowledged: i64,
    #[diesel(sql_type = BigInt)]
    pub reminders_sent: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub median: Option<f64>,
}

/// The figures of `announcement`'s deliveries, in one scan of them.
pub async fn state_counts(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
) -> Result<StateCounts, AppError> {
    Ok(diesel::sql_query(concat!(
        "SELECT count(*) AS total,
                count(*) FILTER (WHERE deliveries.state = 'queued') AS queued,
                count(*) FILTER (WHERE deliveries.state = 'delivered') AS delivered,
                count(*) FILTER (WHERE deliveries.state = 'acknowledged') AS acknowledged,
                COALESCE(sum(deliveries.retry_count), 0)::bigint AS reminders_sent,
                percentile_cont(0.5) WITHIN GROUP
                    (ORDER BY extract(epoch FROM deliveries.ack_at - deliveries.created_at))
                    FILTER (WHERE deliveries.ack_at IS NOT NULL) AS median
         FROM deliveries JOIN users ON users.id = deliveries.user_id
         WHERE deliveries.announcement_id = $1 AND ",
        counted_sql!()
    ))
    .bind::<BigInt, _>(announcement)
    .get_result(conn)
    .await?)
}

type UnackedRow = (
    DeliveryId,
    UserId,
    String,
    String,
    Option<String>,
    String,
    DeliveryState,
    i32,
    Option<DateTime<Utc>>,
);

/// Recipients of `announcement` who have not acknowledged it, by name.
pub async fn unacked(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    page: Page,
) -> Result<(Vec<Unacked>, i64), AppError> {
    let filtered = || {
        deliveries::table
            .inner_join(users::table.on(users::id.eq(deliveries::user_id)))
            .filter(deliveries::announcement_id.eq(announcement))
            .filter(deliveries::state.ne(DeliveryState::Acknowledged))
            .filter(Counted)
    };
    let total = filtered().count().get_result(conn).await?;
    let rows: Vec<UnackedRow> = filtered()
        .select((
            deliveries::id,
            users::id,
            users::username,
            users::display_name,
            users::number,
            users::email,
            deliveries::state,
            deliveries::retry_count,
            deliveries::last_push_at,
        ))
        .order((users::display_name, users::username))
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    let items = rows
        .into_iter()
        .map(
            |(
                delivery_id,
                user_id,
                username,
                display_name,
                number,
                email,
                state,
                retry_count,
                last_push_at,
            )| Unacked {
                delivery_id,
                user_id,
                username,
                display_name,
                number,
                email,
                state,
                retry_count,
                last_push_at,
            },
        )
        .collect();
    Ok((items, total))
}

/// A recipient just reminded.
#[derive(Debug, QueryableByName)]
pub struct Reminded {
    #[diesel(sql_type = BigInt)]
    pub delivery_id: DeliveryId,
    #[diesel(sql_type = BigInt)]
    pub user_id: UserId,
    #[diesel(sql_type = Integer)]
    pub retry_count: i32,
    #[diesel(sql_type = Text)]
    pub username: String,
    #[diesel(sql_type = Text)]
    pub display_name: String,
    #[diesel(sql_type = Text)]
    pub email: String,
}

/// Counts a reminder on every unread delivery of `announcement` whose
/// recipient is still active, and returns who was reminded.
pub async fn mark_reminded(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
) -> Result<Vec<Reminded>, AppError> {
    Ok(diesel::sql_query(concat!(
        "UPDATE deliveries SET retry_count = deliveries.retry_count + 1, last_push_at = now()
         FROM users, announcements
         WHERE deliveries.announcement_id = $1 AND users.id = deliveries.user_id
           AND users.is_active AND announcements.id = deliveries.announcement_id AND ",
        unread_sql!(),
        " RETURNING deliveries.id AS delivery_id, deliveries.user_id, deliveries.retry_count,
                   users.username, users.display_name, users.email"
    ))
    .bind::<BigInt, _>(announcement)
    .load(conn)
    .await?)
}
