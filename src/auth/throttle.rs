//! Fixed-window counters in Redis that slow down password guessing and mail
//! flooding. Kept in Redis so every classbell node sees the same counts.

use bb8_redis::redis;

use crate::error::AppError;
use crate::redis::Redis;

/// One kind of counted attempt, e.g. failed logins per username.
pub struct Limit<'a> {
    pub scope: &'static str,
    pub subject: &'a str,
    pub max: u32,
    pub window_secs: u64,
}

impl Limit<'_> {
    fn key(&self, redis: &Redis) -> String {
        redis.key(&format!(
            "throttle:{}:{}",
            self.scope,
            self.subject.to_lowercase()
        ))
    }
}

/// `Some(seconds until it lifts)` when any of `limits` is used up.
pub async fn blocked(redis: &Redis, limits: &[Limit<'_>]) -> Result<Option<u64>, AppError> {
    let mut conn = redis.get().await?;
    let mut pipe = redis::pipe();
    for limit in limits {
        let key = limit.key(redis);
        pipe.get(&key).ttl(&key);
    }
    let replies: Vec<(Option<u32>, i64)> = pipe.query_async(&mut *conn).await?;
    Ok(limits
        .iter()
        .zip(replies)
        .filter(|(limit, (count, _))| count.unwrap_or(0) >= limit.max)
        .map(|(limit, (_, ttl))| u64::try_from(ttl).unwrap_or(limit.window_secs).max(1))
        .max())
}

/// Counts one attempt against each limit; a window starts at its first attempt.
pub async fn hit(redis: &Redis, limits: &[Limit<'_>]) -> Result<(), AppError> {
    let mut conn = redis.get().await?;
    let mut pipe = redis::pipe();
    pipe.atomic();
    for limit in limits {
        let key = limit.key(redis);
        pipe.incr(&key, 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(limit.window_secs)
            .arg("NX")
            .ignore();
    }
    let () = pipe.query_async(&mut *conn).await?;
    Ok(())
}

/// Counts one attempt and tells whether it is still within every limit.
pub async fn allow(redis: &Redis, limits: &[Limit<'_>]) -> Result<bool, AppError> {
    if blocked(redis, limits).await?.is_some() {
        return Ok(false);
    }
    hit(redis, limits).await?;
    Ok(true)
}

pub async fn clear(redis: &Redis, limit: &Limit<'_>) -> Result<(), AppError> {
    let mut conn = redis.get().await?;
    let () = redis::cmd("DEL")
        .arg(limit.key(redis))
        .query_async(&mut *conn)
        .await?;
    Ok(())
}
