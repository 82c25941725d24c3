//! The queue of stored objects whose rows are gone (`object_deletions`).
//! Rows land there in the transaction that deletes an attachment or its
//! course; `purge` removes the bytes and then the row. What fails stays
//! queued and the sweeper tries again, so no object is forgotten.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use metrics::counter;

use super::Storage;
use crate::db::DbPool;
use crate::db::schema::object_deletions;
use crate::error::AppError;

/// Objects handled per purge round.
const BATCH: i64 = 100;

/// Queues `key` for removal (an upload whose row could not be written).
pub async fn queue(conn: &mut AsyncPgConnection, key: &str) -> Result<(), AppError> {
    diesel::insert_into(object_deletions::table)
        .values(object_deletions::object_key.eq(key))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
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
    }
}

/// Removes queued objects now; returns how many went. Failures are logged and
/// left for the next round.
pub async fn purge(db: &DbPool, storage: &Storage) -> usize {
    match purge_batch(db, storage).await {
        Ok(purged) => purged,
        Err(error) => {
            tracing::warn!(%error, "could not purge deleted objects; will retry");
            0
        }
    }
}

async fn purge_batch(db: &DbPool, storage: &Storage) -> Result<usize, AppError> {
    let mut conn = db.get().await?;
    let keys: Vec<String> = object_deletions::table
        .select(object_deletions::object_key)
        .order(object_deletions::queued_at)
        .limit(BATCH)
        .load(&mut *conn)
        .await?;
    let mut purged = 0;
    for key in keys {
        match storage.delete(&key).await {
            Ok(()) => {
                diesel::delete(object_deletions::table.find(&key))
                    .execute(&mut *conn)
                    .await?;
                purged += 1;
            }
            Err(error) => {
                tracing::warn!(%error, key, "could not delete a stored object; will retry");
                counter!("classbell_storage_purge_failures_total").increment(1);
                diesel::update(object_deletions::table.find(&key))
                    .set(object_deletions::attempts.eq(object_deletions::attempts + 1))
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(purged)
}

/// Retries queued deletions every `every` for as long as the system runs.
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
