//! What a publisher sees of an announcement's deliveries: the figures, who
//! has not acknowledged, and the reminders that go to them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::rules::{Counted, counted_sql, unread_sql};
use crate::announcements::model::{AckPoint, SectionFigures, Unacked};
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
    /// Acknowledged by the due time (0 without one).
    #[diesel(sql_type = BigInt)]
    pub on_time: i64,
    /// Acknowledged after it.
    #[diesel(sql_type = BigInt)]
    pub late: i64,
    /// Not acknowledged, and the due time has passed.
    #[diesel(sql_type = BigInt)]
    pub missing: i64,
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
                    FILTER (WHERE deliveries.ack_at IS NOT NULL) AS median,
                count(*) FILTER (WHERE deliveries.state = 'acknowledged'
                    AND deliveries.ack_at <= announcements.ack_due_at) AS on_time,
                count(*) FILTER (WHERE deliveries.state = 'acknowledged'
                    AND deliveries.ack_at > announcements.ack_due_at) AS late,
                count(*) FILTER (WHERE deliveries.state <> 'acknowledged'
                    AND announcements.ack_due_at <= now()) AS missing
         FROM deliveries JOIN users ON users.id = deliveries.user_id
         JOIN announcements ON announcements.id = deliveries.announcement_id
         WHERE deliveries.announcement_id = $1 AND ",
        counted_sql!()
    ))
    .bind::<BigInt, _>(announcement)
    .get_result(conn)
    .await?)
}

/// SQL: the section joined as `s` is one through which the audience of the
/// announcement joined as `a` holds its student (a current section of the
/// course or of everyone; the section itself, archived or not).
macro_rules! audience_section_sql {
    () => {
        "CASE a.audience_kind WHEN 'section' THEN s.id = a.audience_id
              WHEN 'course' THEN s.course_id = a.audience_id AND s.status <> 'archived'
              ELSE s.status <> 'archived' END"
    };
}

/// The announcement's figures per section of its audience (at most 200
/// sections, by course code, term and section code).
pub async fn section_figures(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
) -> Result<Vec<SectionFigures>, AppError> {
    Ok(diesel::sql_query(concat!(
        "SELECT s.id AS section_id, c.code AS course_code, s.section_code, s.term,
                count(*) AS total,
                count(*) FILTER (WHERE deliveries.state = 'queued') AS queued,
                count(*) FILTER (WHERE deliveries.state = 'delivered') AS delivered,
                count(*) FILTER (WHERE deliveries.state = 'acknowledged') AS acknowledged
         FROM deliveries
         JOIN users ON users.id = deliveries.user_id
         JOIN announcements a ON a.id = deliveries.announcement_id
         JOIN enrollments e ON e.student_id = deliveries.user_id
         JOIN sections s ON s.id = e.section_id
         JOIN courses c ON c.id = s.course_id
         WHERE deliveries.announcement_id = $1 AND ",
        counted_sql!(),
        " AND ",
        audience_section_sql!(),
        " GROUP BY s.id, c.code, s.section_code, s.term
         ORDER BY c.code, s.term, s.section_code
         LIMIT 200"
    ))
    .bind::<BigInt, _>(announcement)
    .load(conn)
    .await?)
}

#[derive(QueryableByName)]
struct Bucket {
    #[diesel(sql_type = BigInt)]
    bucket: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Acknowledgments per `bucket_seconds` since publication, counted up.
pub async fn ack_timeline(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    bucket_seconds: i64,
) -> Result<Vec<AckPoint>, AppError> {
    let buckets: Vec<Bucket> = diesel::sql_query(concat!(
        "SELECT GREATEST(0, floor(extract(epoch FROM deliveries.ack_at - a.published_at) / $2))::bigint
                    AS bucket,
                count(*) AS n
         FROM deliveries
         JOIN users ON users.id = deliveries.user_id
         JOIN announcements a ON a.id = deliveries.announcement_id
         WHERE deliveries.announcement_id = $1 AND deliveries.ack_at IS NOT NULL AND ",
        counted_sql!(),
        " GROUP BY 1 ORDER BY 1"
    ))
    .bind::<BigInt, _>(announcement)
    .bind::<Double, _>(bucket_seconds.max(1) as f64)
    .load(conn)
    .await?;
    let mut acknowledged = 0;
    Ok(buckets
        .into_iter()
        .map(|Bucket { bucket, n }| {
            acknowledged += n;
            AckPoint {
                after_seconds: (bucket + 1) * bucket_seconds,
                acknowledged,
            }
        })
        .collect())
}

/// The sections (`MATH101 A`) through which the audience of `announcement`
/// holds each of `users`.
pub async fn audience_sections(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    users: &[UserId],
) -> Result<Vec<(UserId, String)>, AppError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        user_id: UserId,
        #[diesel(sql_type = Text)]
        section: String,
    }
    let rows: Vec<Row> = diesel::sql_query(concat!(
        "SELECT e.student_id AS user_id, c.code || ' ' || s.section_code AS section
         FROM announcements a
         JOIN enrollments e ON e.student_id = ANY($2)
         JOIN sections s ON s.id = e.section_id
         JOIN courses c ON c.id = s.course_id
         WHERE a.id = $1 AND ",
        audience_section_sql!(),
        " ORDER BY c.code, s.section_code"
    ))
    .bind::<BigInt, _>(announcement)
    .bind::<diesel::sql_types::Array<BigInt>, _>(users)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.section)).collect())
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
                sections: Vec::new(),
                state,
                retry_count,
                last_push_at,
            },
        )
        .collect::<Vec<Unacked>>();
    let users: Vec<UserId> = items.iter().map(|u| u.user_id).collect();
    let mut items = items;
    for (user, section) in audience_sections(conn, announcement, &users).await? {
        if let Some(item) = items.iter_mut().find(|u| u.user_id == user) {
            item.sections.push(section);
        }
    }
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
    #[diesel(sql_type = Nullable<Text>)]
    pub locale: Option<crate::locale::Locale>,
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
                   users.username, users.display_name, users.email, users.locale"
    ))
    .bind::<BigInt, _>(announcement)
    .load(conn)
    .await?)
}

/// Who has not acknowledged `announcement` (unread, recipient active), as
/// `mark_reminded` returns them but without counting a reminder: a mail
/// step reaches them without an in-app push.
pub async fn not_acknowledged(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
) -> Result<Vec<Reminded>, AppError> {
    Ok(diesel::sql_query(concat!(
        "SELECT deliveries.id AS delivery_id, deliveries.user_id, deliveries.retry_count,
                users.username, users.display_name, users.email, users.locale
         FROM deliveries
         JOIN users ON users.id = deliveries.user_id
         JOIN announcements ON announcements.id = deliveries.announcement_id
         WHERE deliveries.announcement_id = $1 AND users.is_active AND ",
        unread_sql!()
    ))
    .bind::<BigInt, _>(announcement)
    .load(conn)
    .await?)
}
