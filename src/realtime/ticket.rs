//! Websocket tickets: browsers cannot set an `Authorization` header on a
//! websocket, and an access token in a URL ends up in logs. A ticket is a
//! random string that opens one websocket, once, within 30 seconds, for the
//! user and login session that asked for it. Kept in Redis (as a hash), so
//! any node can take it.

use bb8_redis::redis;
use uuid::Uuid;

use crate::auth::secret_token;
use crate::error::AppError;
use crate::ids::UserId;
use crate::redis::Redis;

/// Seconds a ticket stays valid.
pub const TICKET_TTL_SECS: u64 = 30;

/// The Redis key a ticket is kept under (a hash of it, never the ticket).
pub fn redis_key(redis: &Redis, ticket: &str) -> String {
    let digest: String = secret_token::digest(ticket)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    redis.key(&format!("ws-ticket:{digest}"))
}

/// A fresh ticket for `user`'s login session `session`.
pub async fn issue(redis: &Redis, user: UserId, session: Uuid) -> Result<String, AppError> {
    let ticket = secret_token::generate();
    let mut conn = redis.get().await?;
    let () = redis::cmd("SET")
        .arg(redis_key(redis, &ticket))
        .arg(format!("{user}:{session}"))
        .arg("EX")
        .arg(TICKET_TTL_SECS)
        .query_async(&mut *conn)
        .await?;
    Ok(ticket)
}

/// Takes the ticket (it cannot be used again) and says whose it was; `None`
/// when it is unknown, used or expired.
pub async fn redeem(redis: &Redis, ticket: &str) -> Result<Option<(UserId, Uuid)>, AppError> {
    let mut conn = redis.get().await?;
    let owner: Option<String> = redis::cmd("GETDEL")
        .arg(redis_key(redis, ticket))
        .query_async(&mut *conn)
        .await?;
    Ok(owner.and_then(|owner| {
        let (user, session) = owner.split_once(':')?;
        Some((user.parse().ok()?, session.parse().ok()?))
    }))
}
