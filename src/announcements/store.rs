//! Queries on `announcements` and on deliveries as their publisher sees them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::audience::Audience;
use super::model::{
    Announcement, AnnouncementStats, AnnouncementStatus, FanoutProgress, NewAnnouncement, Unacked,
};
use crate::db::schema::{announcements, deliveries, users};
use crate::deliveries::model::DeliveryState;
use crate::error::{AppError, FieldErrors};
use crate::pagination::Page;

pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: NewAnnouncement,
) -> Result<Announcement, AppError> {
    Ok(diesel::insert_into(announcements::table)
        .values(&new)
        .returning(Announcement::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> Result<Announcement, AppError> {
    announcements::table
        .find(id)
        .select(Announcement::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("announcement"))
}

/// The announcement, if `user` published it or `staff` is set; 404 otherwise,
/// so nobody learns what others publish.
pub async fn find_visible(
    conn: &mut AsyncPgConnection,
    id: i64,
    user: i64,
    staff: bool,
) -> Result<Announcement, AppError> {
    let announcement = find(conn, id).await?;
    if staff || announcement.publisher_id == user {
        Ok(announcement)
    } else {
        Err(AppError::NotFound("announcement"))
    }
}

/// Announcements, newest first; only `publisher`'s when given.
pub async fn list(
    conn: &mut AsyncPgConnection,
    publisher: Option<i64>,
    status: Option<AnnouncementStatus>,
    page: Page,
) -> Result<(Vec<Announcement>, i64), AppError> {
    let filtered = || {
        let mut query = announcements::table.into_boxed();
        if let Some(publisher) = publisher {
            query = query.filter(announcements::publisher_id.eq(publisher));
        }
        if let Some(status) = status {
            query = query.filter(announcements::status.eq(status));
        }
        query
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(Announcement::as_select())
        .order(announcements::id.desc())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    Ok((items, total))
}

/// What an edit may change while the announcement is a draft or scheduled.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = announcements)]
pub struct AnnouncementChanges {
    pub title: Option<String>,
    pub body: Option<String>,
    pub audience_kind: Option<&'static str>,
    pub audience_id: Option<Option<i64>>,
    pub status: Option<AnnouncementStatus>,
    pub publish_at: Option<Option<DateTime<Utc>>>,
}

fn not_editable() -> AppError {
    AppError::conflict(
        "not_editable",
        "only draft and scheduled announcements can be edited or published",
        FieldErrors::new(),
    )
}

/// Applies `changes` if the announcement is still a draft or scheduled.
pub async fn update_unpublished(
    conn: &mut AsyncPgConnection,
    id: i64,
    changes: AnnouncementChanges,
) -> Result<Announcement, AppError> {
    diesel::update(announcements::table.find(id))
        .filter(
            announcements::status
                .eq_any([AnnouncementStatus::Draft, AnnouncementStatus::Scheduled]),
        )
        .set((&changes, announcements::updated_at.eq(Utc::now())))
        .returning(Announcement::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(not_editable)
}

/// Publishes a draft or scheduled announcement now; publishing a published
/// one again changes nothing.
pub async fn publish(conn: &mut AsyncPgConnection, id: i64) -> Result<Announcement, AppError> {
    let now = Utc::now();
    let published = diesel::update(announcements::table.find(id))
        .filter(
            announcements::status
                .eq_any([AnnouncementStatus::Draft, AnnouncementStatus::Scheduled]),
        )
        .set((
            announcements::status.eq(AnnouncementStatus::Published),
            announcements::published_at.eq(now),
            announcements::updated_at.eq(now),
        ))
        .returning(Announcement::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match published {
        Some(announcement) => Ok(announcement),
        None => {
            let current = find(conn, id).await?;
            if current.status == AnnouncementStatus::Published {
                Ok(current)
            } else {
                Err(not_editable())
            }
        }
    }
}

/// Withdraws the announcement (idempotent); `true` when this call did it.
/// A running fan-out sees the status at its next chunk and stops.
pub async fn withdraw(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> Result<(Announcement, bool), AppError> {
    let now = Utc::now();
    let withdrawn = diesel::update(announcements::table.find(id))
        .filter(announcements::status.ne(AnnouncementStatus::Withdrawn))
        .set((
            announcements::status.eq(AnnouncementStatus::Withdrawn),
            announcements::withdrawn_at.eq(now),
            announcements::withdrawn_tx.eq(crate::db::current_tx::<Nullable<BigInt>>()),
            announcements::updated_at.eq(now),
        ))
        .returning(Announcement::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match withdrawn {
        Some(announcement) => Ok((announcement, true)),
        None => Ok((find(conn, id).await?, false)),
    }
}

/// Scheduled announcements whose time has come become published, each by
/// exactly one node (the UPDATE takes the row).
pub async fn publish_due(conn: &mut AsyncPgConnection) -> Result<Vec<i64>, AppError> {
    let now = Utc::now();
    Ok(diesel::update(announcements::table)
        .filter(announcements::status.eq(AnnouncementStatus::Scheduled))
        .filter(announcements::publish_at.le(now))
        .set((
            announcements::status.eq(AnnouncementStatus::Published),
            announcements::published_at.eq(now),
            announcements::updated_at.eq(now),
        ))
        .returning(announcements::id)
        .get_results(conn)
        .await?)
}

#[derive(QueryableByName)]
struct StatsRow {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    queued: i64,
    #[diesel(sql_type = BigInt)]
    delivered: i64,
    #[diesel(sql_type = BigInt)]
    acknowledged: i64,
    #[diesel(sql_type = BigInt)]
    reminders_sent: i64,
    #[diesel(sql_type = Nullable<Double>)]
    median: Option<f64>,
}

pub async fn stats(
    conn: &mut AsyncPgConnection,
    announcement: &Announcement,
) -> Result<AnnouncementStats, AppError> {
    // Progress first: once it says finished, the counts below include every delivery.
    let fanout: Fanout = announcements::table
        .find(announcement.id)
        .select(Fanout::as_select())
        .first(conn)
        .await?;
    let row: StatsRow = diesel::sql_query(
        "SELECT count(*) AS total,
                count(*) FILTER (WHERE state = 'queued') AS queued,
                count(*) FILTER (WHERE state = 'delivered') AS delivered,
                count(*) FILTER (WHERE state = 'acknowledged') AS acknowledged,
                COALESCE(sum(retry_count), 0)::bigint AS reminders_sent,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ack_at - created_at))
                    FILTER (WHERE ack_at IS NOT NULL) AS median
         FROM deliveries WHERE announcement_id = $1",
    )
    .bind::<BigInt, _>(announcement.id)
    .get_result(conn)
    .await?;
    Ok(AnnouncementStats {
        total: row.total,
        queued: row.queued,
        delivered: row.delivered,
        acknowledged: row.acknowledged,
        ack_rate: if row.total == 0 {
            0.0
        } else {
            row.acknowledged as f64 / row.total as f64
        },
        median_seconds_to_ack: row.median,
        reminders_sent: row.reminders_sent,
        fanout: fanout.into(),
    })
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = announcements, check_for_backend(diesel::pg::Pg))]
struct Fanout {
    fanout_target: Option<i32>,
    fanout_done: i32,
    fanout_finished_at: Option<DateTime<Utc>>,
}

impl From<Fanout> for FanoutProgress {
    fn from(f: Fanout) -> Self {
        FanoutProgress {
            target: f.fanout_target,
            done: f.fanout_done,
            finished: f.fanout_finished_at.is_some(),
            finished_at: f.fanout_finished_at,
        }
    }
}

type UnackedRow = (
    i64,
    i64,
    String,
    String,
    DeliveryState,
    i32,
    Option<DateTime<Utc>>,
);

pub async fn unacked(
    conn: &mut AsyncPgConnection,
    announcement: i64,
    page: Page,
) -> Result<(Vec<Unacked>, i64), AppError> {
    let filtered = || {
        deliveries::table
            .inner_join(users::table.on(users::id.eq(deliveries::user_id)))
            .filter(deliveries::announcement_id.eq(announcement))
            .filter(deliveries::state.ne(DeliveryState::Acknowledged))
    };
    let total = filtered().count().get_result(conn).await?;
    let rows: Vec<UnackedRow> = filtered()
        .select((
            deliveries::id,
            users::id,
            users::username,
            users::email,
            deliveries::state,
            deliveries::retry_count,
            deliveries::last_push_at,
        ))
        .order(users::username)
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    let items = rows
        .into_iter()
        .map(
            |(delivery_id, user_id, username, email, state, retry_count, last_push_at)| Unacked {
                delivery_id,
                user_id,
                username,
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
    pub delivery_id: i64,
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
    #[diesel(sql_type = Integer)]
    pub retry_count: i32,
    #[diesel(sql_type = Text)]
    pub username: String,
    #[diesel(sql_type = Text)]
    pub email: String,
}

/// Why a reminder was refused.
pub enum RemindRefused {
    NotPublished,
    CoolingDown { retry_after_secs: u64 },
}

/// Takes the reminder slot (one per cooldown, across nodes) and bumps every
/// unacknowledged delivery, in one transaction.
pub async fn remind_unacked(
    conn: &mut AsyncPgConnection,
    announcement: i64,
    cooldown_secs: u64,
) -> Result<Result<Vec<Reminded>, RemindRefused>, AppError> {
    let cooldown = i64::try_from(cooldown_secs).unwrap_or(i64::MAX / 2);
    conn.transaction(async |conn| {
        let now = Utc::now();
        let slot =
            diesel::update(announcements::table.find(announcement))
                .filter(announcements::status.eq(AnnouncementStatus::Published))
                .filter(announcements::last_reminded_at.is_null().or(
                    announcements::last_reminded_at.le(now - chrono::Duration::seconds(cooldown)),
                ))
                .set(announcements::last_reminded_at.eq(now))
                .execute(conn)
                .await?;
        if slot == 0 {
            let current: (AnnouncementStatus, Option<DateTime<Utc>>) = announcements::table
                .find(announcement)
                .select((announcements::status, announcements::last_reminded_at))
                .first(conn)
                .await?;
            return Ok(match current {
                (AnnouncementStatus::Published, Some(last)) => {
                    let waited = (now - last).num_seconds().max(0);
                    Err(RemindRefused::CoolingDown {
                        retry_after_secs: u64::try_from(cooldown - waited).unwrap_or(1).max(1),
                    })
                }
                _ => Err(RemindRefused::NotPublished),
            });
        }
        let reminded: Vec<Reminded> = diesel::sql_query(
            "UPDATE deliveries d SET retry_count = d.retry_count + 1, last_push_at = now()
             FROM users u
             WHERE d.announcement_id = $1 AND d.state <> 'acknowledged' AND u.id = d.user_id
             RETURNING d.id AS delivery_id, d.user_id, d.retry_count, u.username, u.email",
        )
        .bind::<BigInt, _>(announcement)
        .load(conn)
        .await?;
        Ok(Ok(reminded))
    })
    .await
}

/// A fan-out this node has claimed.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub audience_kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub audience_id: Option<i64>,
    #[diesel(sql_type = Integer)]
    pub fanout_attempts: i32,
}

impl Claimed {
    pub fn audience(&self) -> Audience {
        Audience::from_columns(&self.audience_kind, self.audience_id)
    }
}

/// Claims up to `limit` published announcements whose fan-out is unfinished
/// and unowned (or whose owner's lease lapsed), skipping rows other nodes
/// are claiming right now.
pub async fn claim_fanouts(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    lease_secs: u64,
    running: &[i64],
    limit: i64,
) -> Result<Vec<Claimed>, AppError> {
    Ok(diesel::sql_query(
        "UPDATE announcements SET fanout_owner = $1, fanout_lease_until = now() + make_interval(secs => $2)
         WHERE id IN (
             SELECT id FROM announcements
             WHERE status = 'published' AND fanout_finished_at IS NULL
               AND (fanout_lease_until IS NULL OR fanout_lease_until < now())
               AND (fanout_retry_at IS NULL OR fanout_retry_at <= now())
               AND NOT (id = ANY($3))
             ORDER BY id LIMIT $4
             FOR UPDATE SKIP LOCKED)
         RETURNING id, audience_kind, audience_id, fanout_attempts",
    )
    .bind::<SqlUuid, _>(owner)
    .bind::<Double, _>(lease_secs as f64)
    .bind::<Array<BigInt>, _>(running)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Counts the recipients once, when the fan-out first starts.
pub async fn set_fanout_target(
    conn: &mut AsyncPgConnection,
    id: i64,
    audience: Audience,
) -> Result<(), AppError> {
    diesel::sql_query(format!(
        "UPDATE announcements SET fanout_target = (SELECT count(*) FROM ({}) r)
         WHERE id = $1 AND fanout_target IS NULL",
        audience.recipients_sql()
    ))
    .bind::<BigInt, _>(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// What one fan-out chunk did.
#[derive(Debug, QueryableByName)]
pub struct Chunk {
    /// False when the announcement was withdrawn or another node holds it.
    #[diesel(sql_type = Bool)]
    pub claimed: bool,
    /// Recipients this chunk covered.
    #[diesel(sql_type = BigInt)]
    pub scanned: i64,
    /// Deliveries it wrote (fewer than `scanned` only if some already existed).
    #[diesel(sql_type = BigInt)]
    pub written: i64,
    /// The user-id range it covered: `first..=last`.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub first: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last: Option<i64>,
    #[diesel(sql_type = Bool)]
    pub finished: bool,
}

/// Writes the next chunk of deliveries (recipients after the cursor, in id
/// order) and moves the cursor, the count and the lease, in one statement:
/// whatever committed is exactly what the cursor says, so a fan-out resumes
/// after a crash with no duplicate and no gap.
///
/// The cursor is read under the announcement's row lock, so no two
/// statements ever cover overlapping ranges and a plain `INSERT … SELECT`
/// suffices (`ON CONFLICT` would cost a third more). Should the unique
/// (announcement, user) key still find a delivery already there, the chunk
/// is redone with `ON CONFLICT DO NOTHING`.
pub async fn fanout_chunk(
    conn: &mut AsyncPgConnection,
    id: i64,
    audience: Audience,
    owner: Uuid,
    chunk: i64,
    lease_secs: u64,
) -> Result<Chunk, AppError> {
    match run_chunk(conn, id, audience, owner, chunk, lease_secs, false).await {
        Err(error) if crate::db::violates(&error, "deliveries_announcement_id_user_id_key") => {
            tracing::warn!(
                announcement = id,
                "fan-out met existing deliveries; redoing the chunk tolerantly"
            );
            Ok(run_chunk(conn, id, audience, owner, chunk, lease_secs, true).await?)
        }
        other => Ok(other?),
    }
}

async fn run_chunk(
    conn: &mut AsyncPgConnection,
    id: i64,
    audience: Audience,
    owner: Uuid,
    chunk: i64,
    lease_secs: u64,
    tolerate_existing: bool,
) -> Result<Chunk, diesel::result::Error> {
    let (on_conflict, written) = if tolerate_existing {
        (
            "ON CONFLICT (announcement_id, user_id) DO NOTHING RETURNING 1",
            "(SELECT count(*) FROM ins)",
        )
    } else {
        ("", "(SELECT n FROM covered)")
    };
    let sql = format!(
        "WITH claimed AS (
             SELECT id, fanout_cursor FROM announcements
             WHERE id = $1 AND status = 'published' AND fanout_owner = $2 AND fanout_finished_at IS NULL
             FOR UPDATE
         ), chunk AS (
             SELECT r.id FROM ({recipients}) r
             WHERE r.id > (SELECT fanout_cursor FROM claimed)
             ORDER BY r.id LIMIT $3
         ), ins AS (
             INSERT INTO deliveries (announcement_id, user_id) SELECT $1, chunk.id FROM chunk {on_conflict}
         ), covered AS (
             SELECT count(*) AS n, min(id) AS first, max(id) AS last FROM chunk
         ), progress AS (
             UPDATE announcements SET
                 fanout_cursor = COALESCE((SELECT last FROM covered), fanout_cursor),
                 fanout_done = fanout_done + {written},
                 fanout_lease_until = now() + make_interval(secs => $4),
                 fanout_finished_at = CASE WHEN (SELECT n FROM covered) < $3 THEN now() END,
                 fanout_error = NULL,
                 updated_at = now()
             WHERE id IN (SELECT id FROM claimed)
             RETURNING fanout_finished_at
         )
         SELECT EXISTS (SELECT 1 FROM claimed) AS claimed,
                covered.n AS scanned, {written} AS written, covered.first, covered.last,
                COALESCE((SELECT fanout_finished_at IS NOT NULL FROM progress), false) AS finished
         FROM covered",
        recipients = audience.recipients_sql()
    );
    diesel::sql_query(sql)
        .bind::<BigInt, _>(id)
        .bind::<SqlUuid, _>(owner)
        .bind::<BigInt, _>(chunk)
        .bind::<Double, _>(lease_secs as f64)
        .get_result(conn)
        .await
}

/// Gives a failed fan-out back, to be retried after `backoff_secs` by any node.
pub async fn fanout_failed(
    conn: &mut AsyncPgConnection,
    id: i64,
    owner: Uuid,
    error: &str,
    backoff_secs: u64,
) -> Result<(), AppError> {
    diesel::sql_query(
        "UPDATE announcements SET fanout_attempts = fanout_attempts + 1, fanout_error = $3,
                fanout_owner = NULL, fanout_lease_until = NULL,
                fanout_retry_at = now() + make_interval(secs => $4)
         WHERE id = $1 AND fanout_owner = $2",
    )
    .bind::<BigInt, _>(id)
    .bind::<SqlUuid, _>(owner)
    .bind::<Text, _>(error)
    .bind::<Double, _>(backoff_secs as f64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives up this node's claim at once (it is shutting down), so any node may
/// resume the fan-out from its cursor.
pub async fn release_fanout(
    conn: &mut AsyncPgConnection,
    id: i64,
    owner: Uuid,
) -> Result<(), AppError> {
    diesel::sql_query(
        "UPDATE announcements SET fanout_owner = NULL, fanout_lease_until = NULL
         WHERE id = $1 AND fanout_owner = $2 AND fanout_finished_at IS NULL",
    )
    .bind::<BigInt, _>(id)
    .bind::<SqlUuid, _>(owner)
    .execute(conn)
    .await?;
    Ok(())
}

/// Announcements waiting for (or in) their fan-out.
pub async fn fanout_backlog(conn: &mut AsyncPgConnection) -> Result<i64, AppError> {
    Ok(announcements::table
        .filter(announcements::status.eq(AnnouncementStatus::Published))
        .filter(announcements::fanout_finished_at.is_null())
        .count()
        .get_result(conn)
        .await?)
}

/// When the fan-out of `id` finished, if it has.
pub async fn fanout_finished_at(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> Result<Option<DateTime<Utc>>, AppError> {
    Ok(announcements::table
        .find(id)
        .select(announcements::fanout_finished_at)
        .first::<Option<DateTime<Utc>>>(conn)
        .await?)
}

pub async fn fanout_attempts(conn: &mut AsyncPgConnection, id: i64) -> Result<i32, AppError> {
    Ok(announcements::table
        .find(id)
        .select(announcements::fanout_attempts)
        .first(conn)
        .await?)
}
