//! Queries on `jobs`: queueing, claiming (one node per job, `SKIP LOCKED`),
//! progress that renews the claim, the end, and expiring files.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::{Job, JobKind, JobState, NewJob};
use crate::db::schema::jobs;
use crate::error::AppError;
use crate::ids::JobId;

pub async fn insert(conn: &mut AsyncPgConnection, new: NewJob) -> Result<Job, AppError> {
    Ok(diesel::insert_into(jobs::table)
        .values(&new)
        .returning(Job::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn find(conn: &mut AsyncPgConnection, id: JobId) -> Result<Job, AppError> {
    jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("task"))
}

/// Jobs whose node died `max_attempts` times running them fail for good.
pub async fn give_up_abandoned(
    conn: &mut AsyncPgConnection,
    max_attempts: i32,
) -> Result<Vec<Job>, AppError> {
    Ok(diesel::update(jobs::table)
        .filter(jobs::state.eq(JobState::Running))
        .filter(jobs::lease_until.lt(Utc::now()))
        .filter(jobs::attempts.ge(max_attempts))
        .set((
            jobs::state.eq(JobState::Failed),
            jobs::error.eq(format!(
                "stopped {max_attempts} times before finishing (the server running it went away)"
            )),
            jobs::finished_at.eq(Utc::now()),
            jobs::claimed_by.eq(None::<Uuid>),
        ))
        .returning(Job::as_returning())
        .get_results(conn)
        .await?)
}

/// Claims up to `limit` jobs that are pending, or running under a lapsed
/// lease (their node died) fewer than `max_attempts` times, oldest first,
/// skipping rows other nodes are claiming right now and the jobs this node
/// is `running` (a slow one's lease may lapse while it works; it must not
/// run twice here). The attempts bound is checked here as well as in
/// [`give_up_abandoned`]: a lease may lapse between the two statements.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    node: Uuid,
    lease_secs: u64,
    running: &[JobId],
    limit: i64,
    max_attempts: i32,
) -> Result<Vec<JobId>, AppError> {
    #[derive(QueryableByName)]
    struct Claimed {
        #[diesel(sql_type = SqlUuid)]
        id: JobId,
    }
    let claimed: Vec<Claimed> = diesel::sql_query(
        "UPDATE jobs SET state = 'running', claimed_by = $1,
                lease_until = now() + make_interval(secs => $2),
                attempts = attempts + 1, started_at = COALESCE(started_at, now())
         WHERE id IN (
             SELECT id FROM jobs
             WHERE (state = 'pending'
                    OR (state = 'running' AND lease_until < now() AND attempts < $5))
               AND NOT (id = ANY($4))
             ORDER BY created_at LIMIT $3
             FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind::<SqlUuid, _>(node)
    .bind::<Double, _>(lease_secs as f64)
    .bind::<BigInt, _>(limit)
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(running)
    .bind::<diesel::sql_types::Integer, _>(max_attempts)
    .load(conn)
    .await?;
    Ok(claimed.into_iter().map(|c| c.id).collect())
}

/// Records progress and renews the claim; `false` when this node no longer
/// holds the job (its lease lapsed and another node took it).
pub async fn progress(
    conn: &mut AsyncPgConnection,
    id: JobId,
    node: Uuid,
    done: i32,
    total: Option<i32>,
    lease_secs: u64,
) -> Result<bool, AppError> {
    let updated = diesel::sql_query(
        "UPDATE jobs SET progress_done = $3, progress_total = COALESCE($4, progress_total),
                lease_until = now() + make_interval(secs => $5)
         WHERE id = $1 AND claimed_by = $2 AND state = 'running'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(node)
    .bind::<Integer, _>(done)
    .bind::<diesel::sql_types::Nullable<Integer>, _>(total)
    .bind::<Double, _>(lease_secs as f64)
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// Renews `node`'s claim on a running job; false when it holds it no more.
pub async fn renew(
    conn: &mut AsyncPgConnection,
    id: JobId,
    node: Uuid,
    lease_secs: u64,
) -> Result<bool, AppError> {
    let updated = diesel::sql_query(
        "UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND claimed_by = $2 AND state = 'running'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(node)
    .bind::<Double, _>(lease_secs as f64)
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// How a job ended.
pub struct Ending {
    pub state: JobState,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub output_key: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Ends the job if this node still holds it, returning the progress it
/// ended at (`None`: another node took it over, and its ending counts). The
/// uploaded input is queued for deletion in the same transaction: the job is
/// done with it.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    id: JobId,
    node: Uuid,
    ending: Ending,
) -> Result<Option<(i32, Option<i32>)>, AppError> {
    conn.transaction(async |conn| {
        let held: Option<Option<String>> = jobs::table
            .find(id)
            .filter(jobs::claimed_by.eq(node))
            .filter(jobs::state.eq(JobState::Running))
            .select(jobs::input_key)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some(input_key) = held else {
            return Ok(None);
        };
        if let Some(key) = input_key {
            crate::storage::deletions::queue(conn, &key).await?;
        }
        if let Some(key) = &ending.output_key {
            crate::storage::deletions::owned(conn, key).await?;
        }
        let progress = diesel::update(jobs::table.find(id))
            .set((
                jobs::state.eq(ending.state),
                jobs::result.eq(ending.result),
                jobs::error.eq(ending.error),
                jobs::output_key.eq(ending.output_key),
                jobs::expires_at.eq(ending.expires_at),
                jobs::input_key.eq(None::<String>),
                jobs::finished_at.eq(Utc::now()),
                jobs::claimed_by.eq(None::<Uuid>),
                jobs::lease_until.eq(None::<DateTime<Utc>>),
            ))
            .returning((jobs::progress_done, jobs::progress_total))
            .get_result(conn)
            .await?;
        Ok(Some(progress))
    })
    .await
}

/// Forgets the files of jobs past their expiry and queues the objects for
/// deletion, in one statement; returns how many.
pub async fn expire_files(conn: &mut AsyncPgConnection) -> Result<usize, AppError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query(
        "WITH old AS (
             SELECT id, output_key FROM jobs
             WHERE output_key IS NOT NULL AND expires_at < now()
             FOR UPDATE SKIP LOCKED
         ), cleared AS (
             UPDATE jobs j SET output_key = NULL FROM old WHERE j.id = old.id
         ), queued AS (
             INSERT INTO object_deletions (object_key) SELECT output_key FROM old
             ON CONFLICT (object_key) DO NOTHING
         )
         SELECT count(*) AS n FROM old",
    )
    .get_result(conn)
    .await?;
    Ok(usize::try_from(count.n).unwrap_or(0))
}

/// Jobs waiting and running, by kind, for the queue gauges.
pub async fn open_counts(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(JobKind, JobState, i64)>, AppError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        kind: JobKind,
        #[diesel(sql_type = Text)]
        state: JobState,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT kind, state, count(*) AS n FROM jobs
         WHERE state IN ('pending', 'running') GROUP BY kind, state",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.kind, r.state, r.n)).collect())
}
