//! Fixed-window counters in Redis that slow down password guessing and mail
//! flooding. Kept in Redis so every classbell node sees the same counts.

use bb8_redis::redis;
use metrics::counter;

use super::extract::ClientAddr;
use crate::config;
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

/// Counts one attempt against every limit first, in one atomic step, then
/// answers `Some(seconds until it lifts)` when this attempt is past any of
/// them. Counting before checking means a parallel burst cannot slip past a
/// limit between a check and its count. A window starts at its first attempt.
pub async fn take(redis: &Redis, limits: &[Limit<'_>]) -> Result<Option<u64>, AppError> {
    let mut conn = redis.get().await?;
    let mut pipe = redis::pipe();
    pipe.atomic();
    for limit in limits {
        let key = limit.key(redis);
        pipe.incr(&key, 1)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(limit.window_secs)
            .arg("NX")
            .ignore()
            .ttl(&key);
    }
    let replies: Vec<(u32, i64)> = pipe.query_async(&mut *conn).await?;
    let mut retry_after = None;
    for (limit, (count, ttl)) in limits.iter().zip(replies) {
        if count > limit.max {
            counter!("classbell_throttled_total", "scope" => limit.scope).increment(1);
            let wait = u64::try_from(ttl).unwrap_or(limit.window_secs).max(1);
            retry_after = retry_after.max(Some(wait));
        }
    }
    Ok(retry_after)
}

/// Gives back an attempt `take` counted (a sign-in that succeeded does not
/// count against its address).
pub async fn give_back(redis: &Redis, limit: &Limit<'_>) -> Result<(), AppError> {
    let mut conn = redis.get().await?;
    let _: i64 = redis::cmd("DECR")
        .arg(limit.key(redis))
        .query_async(&mut *conn)
        .await?;
    Ok(())
}

/// `take`, answering 429 with `Retry-After` past a limit.
pub async fn take_or_refuse(
    redis: &Redis,
    limits: &[Limit<'_>],
    message: &'static str,
) -> Result<(), AppError> {
    match take(redis, limits).await? {
        Some(retry_after_secs) => Err(AppError::TooManyRequests {
            message,
            retry_after_secs,
        }),
        None => Ok(()),
    }
}

/// Counts one attempt and tells whether it is still within every limit.
pub async fn allow(redis: &Redis, limits: &[Limit<'_>]) -> Result<bool, AppError> {
    Ok(take(redis, limits).await?.is_none())
}

pub async fn clear(redis: &Redis, limit: &Limit<'_>) -> Result<(), AppError> {
    let mut conn = redis.get().await?;
    let () = redis::cmd("DEL")
        .arg(limit.key(redis))
        .query_async(&mut *conn)
        .await?;
    Ok(())
}

/// Registrations and mail requests from one client address, per hour,
/// counted together.
pub fn account_requests<'a>(client: &'a ClientAddr, settings: &config::Auth) -> Limit<'a> {
    Limit {
        scope: "account-requests",
        subject: &client.0,
        max: settings.account_requests_per_ip,
        window_secs: 3600,
    }
}
