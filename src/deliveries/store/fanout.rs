//! Fan-out's statement: the next chunk of an announcement's deliveries.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::announcements::audience::Audience;
use crate::error::AppError;
use crate::ids::{AnnouncementId, UserId};

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
    pub first: Option<UserId>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last: Option<UserId>,
    #[diesel(sql_type = Bool)]
    pub finished: bool,
}

/// Which fan-out's next chunk to write, and how.
#[derive(Debug, Clone, Copy)]
pub struct NextChunk {
    pub announcement: AnnouncementId,
    pub audience: Audience,
    /// The node holding the fan-out's claim; another node's chunk is refused.
    pub owner: Uuid,
    /// Recipients at most.
    pub size: i64,
    /// How long the claim lasts after this chunk.
    pub lease_secs: u64,
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
    next: &NextChunk,
) -> Result<Chunk, AppError> {
    match run_chunk(conn, next, false).await {
        Err(error) if crate::db::violates(&error, "deliveries_announcement_id_user_id_key") => {
            tracing::warn!(
                announcement = %next.announcement,
                "fan-out met existing deliveries; redoing the chunk tolerantly"
            );
            Ok(run_chunk(conn, next, true).await?)
        }
        other => Ok(other?),
    }
}

async fn run_chunk(
    conn: &mut AsyncPgConnection,
    next: &NextChunk,
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
        recipients = next.audience.recipients_sql()
    );
    diesel::sql_query(sql)
        .bind::<BigInt, _>(next.announcement)
        .bind::<SqlUuid, _>(next.owner)
        .bind::<BigInt, _>(next.size)
        .bind::<Double, _>(next.lease_secs as f64)
        .get_result(conn)
        .await
}
