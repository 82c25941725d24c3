//! Redis: a metered bb8 pool plus the key prefix every key is built with, so
//! deployments (and test runs) can share one server without meeting.

use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use bb8_redis::redis;

use crate::error::AppError;
use crate::pool::MeteredPool;

pub type RedisConnection = bb8::PooledConnection<'static, RedisConnectionManager>;

#[derive(Clone)]
pub struct Redis {
    pool: MeteredPool<RedisConnectionManager>,
    prefix: String,
}

impl Redis {
    pub fn new(url: &str, size: u32, timeout: Duration, prefix: &str) -> Result<Self, AppError> {
        let manager = RedisConnectionManager::new(url)
            .map_err(|e| AppError::internal(format!("invalid CLASSBELL_REDIS_URL: {e}")))?;
        let inner = bb8::Pool::builder()
            .max_size(size.max(1))
            .connection_timeout(timeout)
            .build_unchecked(manager);
        Ok(Redis {
            pool: MeteredPool::new("redis", inner),
            prefix: prefix.to_owned(),
        })
    }

    pub async fn get(&self) -> Result<RedisConnection, AppError> {
        self.pool.get().await
    }

    pub fn pool(&self) -> &MeteredPool<RedisConnectionManager> {
        &self.pool
    }

    /// `prefix` + `name`: the only way classbell names a Redis key.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub async fn ping(&self) -> Result<(), AppError> {
        let mut conn = self.get().await?;
        let _: String = redis::cmd("PING").query_async(&mut *conn).await?;
        Ok(())
    }
}
