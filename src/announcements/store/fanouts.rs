//! The fan-out lease queue: which node fans out which announcement, its
//! failures and backoff, and what is still waiting.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::announcements::audience::Audience;
use crate::announcements::model::AnnouncementStatus;
use crate::db::schema::announcements;
use crate::error::AppError;
use crate::ids::AnnouncementId;

/// A fan-out this node has claimed.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub id: AnnouncementId,
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
    running: &[AnnouncementId],
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
    id: AnnouncementId,
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

/// Gives a failed fan-out back, to be retried after `backoff_secs` by any node.
pub async fn fanout_failed(
    conn: &mut AsyncPgConnection,
    id: AnnouncementId,
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
    id: AnnouncementId,
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
    id: AnnouncementId,
) -> Result<Option<DateTime<Utc>>, AppError> {
    Ok(announcements::table
        .find(id)
        .select(announcements::fanout_finished_at)
        .first::<Option<DateTime<Utc>>>(conn)
        .await?)
}

pub async fn fanout_attempts(
    conn: &mut AsyncPgConnection,
    id: AnnouncementId,
) -> Result<i32, AppError> {
    Ok(announcements::table
        .find(id)
        .select(announcements::fanout_attempts)
        .first(conn)
        .await?)
}
