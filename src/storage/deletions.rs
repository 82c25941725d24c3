//! The queue of stored objects no row may own (`object_deletions`).
//!
//! Keys land there two ways: in the transaction that deletes an attachment,
//! its course or an expired job file; and *before* an upload stores its
//! bytes, due once the upload can no longer be running (`reserve`). The row
//! that comes to own an uploaded object takes its key off the queue
//! (`release`). `purge` removes what has fallen due — but never an object a
//! row still refers to (the `stored_objects` view), so a release lost to a
//! crash costs a queue entry, not a file. What fails stays queued and the
//! sweeper tries again, so no object is forgotten and none is orphaned.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use metrics::counter;

use super::Storage;
use crate::db::DbPool;
use crate::db::schema::object_deletions;
use crate::error::AppError;

/// Objects handled per purge round.
const BATCH: i64 = 100;

/// Queues `key` for removal now (an upload whose row could not be written).
pub async fn queue(conn: &mut AsyncPgConnection, key: &str) -> Result<(), AppError> {
    diesel::insert_into(object_deletions::table)
        .values(object_deletions::object_key.eq(key))
        .on_conflict(object_deletions::object_key)
        .do_update()
        .set(object_deletions::due_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Queues `key` for removal `grace` from now, before an upload stores bytes
/// under it: should the node die before a row owns the object, the sweeper
/// removes it then.
pub async fn reserve(db: &DbPool, key: &str, grace: Duration) -> Result<(), AppError> {
    let seconds = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 2);
    diesel::sql_query(
        "INSERT INTO object_deletions (object_key, due_at)
         VALUES ($1, now() + make_interval(secs => $2))
         ON CONFLICT (object_key)
         DO UPDATE SET due_at = GREATEST(object_deletions.due_at, EXCLUDED.due_at)",
    )
    .bind::<Text, _>(key)
    .bind::<BigInt, _>(seconds)
    .execute(&mut *db.get().await?)
    .await?;
    Ok(())
}

/// Takes `key` off the queue: a row owns its object now (in the
/// transaction that writes the row, where there is one).
pub async fn owned(conn: &mut AsyncPgConnection, key: &str) -> Result<(), AppError> {
    diesel::delete(object_deletions::table.find(key))
        .execute(conn)
        .await?;
    Ok(())
}

/// `owned`, after the row was written. Best effort: if it fails, the
/// sweeper finds the owning row and drops the entry itself.
pub async fn release(db: &DbPool, key: &str) {
    let released = match db.get().await {
        Ok(mut conn) => owned(&mut conn, key).await,
        Err(error) => Err(error),
    };
    if let Err(error) = released {
        tracing::warn!(%error, key, "could not release a stored object; the sweeper will");
    }
}

/// Removes an object a failed upload left behind, or queues it for the
/// sweeper when the store cannot be reached now.
pub async fn discard(db: &DbPool, storage: &Storage, key: &str) {
    if let Err(error) = storage.delete(key).await {
        tracing::warn!(%error, key, "could not remove the object of a failed upload; queueing it");
        let queued = match db.get().await {
            Ok(mut conn) => queue(&mut conn, key).await,
            Err(error) => Err(error),
        };
        if let Err(error) = queued {
            tracing::error!(%error, key, "an uploaded object is orphaned");
        }
    } else {
        release(db, key).await;
    }
}

/// Removes the objects that have fallen due now; returns how many went.
/// Failures are logged and left for the next round.
pub async fn purge(db: &DbPool, storage: &Storage) -> usize {
    match purge_batch(db, storage).await {
        Ok(purged) => purged,
        Err(error) => {
            tracing::warn!(%error, "could not purge deleted objects; will retry");
            0
        }
    }
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = Text)]
    object_key: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    owned: bool,
}

async fn purge_batch(db: &DbPool, storage: &Storage) -> Result<usize, AppError> {
    let mut conn = db.get().await?;
    let due: Vec<Due> = diesel::sql_query(
        "SELECT d.object_key,
                EXISTS (SELECT 1 FROM stored_objects s WHERE s.object_key = d.object_key) AS owned
         FROM object_deletions d WHERE d.due_at <= now()
         ORDER BY d.due_at LIMIT $1",
    )
    .bind::<BigInt, _>(BATCH)
    .load(&mut *conn)
    .await?;
    let mut purged = 0;
    for Due { object_key, owned } in due {
        if owned {
            // An upload whose release was lost: the file is in use.
            diesel::delete(object_deletions::table.find(&object_key))
                .execute(&mut *conn)
                .await?;
            continue;
        }
        match storage.delete(&object_key).await {
            Ok(()) => {
                diesel::delete(object_deletions::table.find(&object_key))
                    .execute(&mut *conn)
                    .await?;
                purged += 1;
            }
            Err(error) => {
                tracing::warn!(%error, key = object_key, "could not delete a stored object; will retry");
                counter!("classbell_storage_purge_failures_total").increment(1);
                diesel::update(object_deletions::table.find(&object_key))
                    .set(object_deletions::attempts.eq(object_deletions::attempts + 1))
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(purged)
}

/// Purges what has fallen due every `every` for as long as the system runs.
pub fn spawn_sweeper(db: DbPool, storage: Arc<Storage>, every: Duration) {
    counter!("classbell_storage_purge_failures_total").absolute(0);
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        loop {
            tick.tick().await;
            purge(&db, &storage).await;
        }
    });
}
