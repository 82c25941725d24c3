//! A bb8 pool that reports itself to Prometheus.
//!
//! bb8 knows its size and idle count but not how many callers are waiting or
//! how long they waited; `MeteredPool::get` measures both, and turns pool
//! exhaustion or an unreachable server into a 503 instead of a panic.

use std::time::Instant;

use bb8::{ManageConnection, PooledConnection, RunError};
use metrics::{counter, gauge, histogram};

use crate::error::AppError;

pub struct MeteredPool<M: ManageConnection> {
    inner: bb8::Pool<M>,
    /// The `pool` label, and the name used in 503 answers.
    name: &'static str,
}

impl<M: ManageConnection> Clone for MeteredPool<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            name: self.name,
        }
    }
}

/// Keeps the waiters gauge right even when the waiting future is dropped.
struct Waiting(&'static str);

impl Waiting {
    fn start(name: &'static str) -> Self {
        gauge!("classbell_pool_waiters", "pool" => name).increment(1.0);
        Waiting(name)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        gauge!("classbell_pool_waiters", "pool" => self.0).decrement(1.0);
    }
}

impl<M: ManageConnection> MeteredPool<M> {
    pub fn new(name: &'static str, inner: bb8::Pool<M>) -> Self {
        gauge!("classbell_pool_max_size", "pool" => name).set(f64::from(inner.config().max_size));
        // Registered at zero so dashboards and alerts see the series before the first failure.
        counter!("classbell_pool_acquire_timeouts_total", "pool" => name).absolute(0);
        counter!("classbell_pool_acquire_errors_total", "pool" => name).absolute(0);
        gauge!("classbell_pool_waiters", "pool" => name).increment(0.0);
        Self { inner, name }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub async fn get(&self) -> Result<PooledConnection<'static, M>, AppError> {
        let started = Instant::now();
        let waiting = Waiting::start(self.name);
        let result = self.inner.get_owned().await;
        drop(waiting);
        histogram!("classbell_pool_acquire_wait_seconds", "pool" => self.name)
            .record(started.elapsed().as_secs_f64());
        result.map_err(|error| {
            match error {
                RunError::TimedOut => {
                    counter!("classbell_pool_acquire_timeouts_total", "pool" => self.name)
                        .increment(1);
                    tracing::warn!(
                        pool = self.name,
                        "timed out waiting for a pooled connection"
                    );
                }
                RunError::User(error) => {
                    counter!("classbell_pool_acquire_errors_total", "pool" => self.name)
                        .increment(1);
                    tracing::warn!(
                        pool = self.name,
                        ?error,
                        "could not open a pooled connection"
                    );
                }
            }
            AppError::unavailable(self.name)
        })
    }

    /// Publishes size, idle and in-use gauges; called right before each scrape.
    pub fn report(&self) {
        let state = self.inner.state();
        let name = self.name;
        gauge!("classbell_pool_connections", "pool" => name).set(f64::from(state.connections));
        gauge!("classbell_pool_idle_connections", "pool" => name)
            .set(f64::from(state.idle_connections));
        gauge!("classbell_pool_in_use_connections", "pool" => name)
            .set(f64::from(state.connections - state.idle_connections));
    }
}
