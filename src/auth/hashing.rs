//! Password hashing, bounded. One argon2id run takes ~19 MiB and tens of
//! milliseconds of a core; unbounded, a few hundred parallel sign-ins take
//! gigabytes and starve every other request. At most `concurrency` hashes
//! run at once; a request waits up to `wait` for its turn, then gets 503
//! with `Retry-After`. Sign-ins of unknown users hash a decoy through the
//! same queue, so they cost what known ones cost.
//!
//! The hashes run on threads of their own, as many as may run at once: the
//! allocator keeps a thread's freed argon2 memory for its next use, so on a
//! shared blocking pool every thread that ever hashed would keep ~19 MiB.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{counter, gauge};
use tokio::sync::{Semaphore, oneshot};

use super::password;
use crate::config;
use crate::error::AppError;

type Work = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    wait: Duration,
    /// The hashing threads' queue; a permit is held for each queued work.
    threads: Sender<Work>,
}

/// Keeps a gauge right however its holder ends (a dropped request included).
struct Counted(&'static str);

impl Counted {
    fn new(name: &'static str) -> Self {
        gauge!(name).increment(1.0);
        Counted(name)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}

impl Hasher {
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        // Registered (not reset: several hashers may share a process's recorder).
        gauge!("classbell_password_hashing_in_flight").increment(0.0);
        gauge!("classbell_password_hashing_queued").increment(0.0);
        counter!("classbell_password_hashing_rejected_total").increment(0);
        let concurrency = concurrency.max(1);
        let (threads, queue) = channel::<Work>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take one work.
                        let next = queue.lock().map(|queue| queue.recv());
                        match next {
                            Ok(Ok(work)) => work(),
                            // Every `Hasher` is gone, or a thread panicked holding the lock.
                            _ => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password-hashing thread");
            }
        }
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency)),
            wait,
            threads,
        }
    }

    /// From the settings: one hasher per core unless configured.
    pub fn from_settings(settings: &config::Auth) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let concurrency = match settings.password_hash_concurrency {
            0 => cores,
            n => n,
        };
        Hasher::new(
            concurrency,
            Duration::from_millis(settings.password_hash_wait_ms),
        )
    }

    /// A new argon2id hash of `password`.
    pub async fn hash(&self, password: &str) -> Result<String, AppError> {
        let password = password.to_owned();
        self.run(move || password::hash(&password)).await?
    }

    /// Whether `password` matches the stored hash.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<bool, AppError> {
        let (password, stored) = (password.to_owned(), stored.to_owned());
        self.run(move || password::verify(&password, &stored)).await
    }

    /// Runs `work` on a hashing thread once a permit is free; the permit goes
    /// with the work, so a request that gives up cannot free it early.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let waiting = Counted::new("classbell_password_hashing_queued");
        let permit = tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .ok()
            .and_then(Result::ok);
        drop(waiting);
        let Some(permit) = permit else {
            counter!("classbell_password_hashing_rejected_total").increment(1);
            return Err(AppError::unavailable("password checking"));
        };
        let running = Counted::new("classbell_password_hashing_in_flight");
        let (answer, answered) = oneshot::channel();
        let job: Work = Box::new(move || {
            let (_permit, _running) = (permit, running);
            let _ = answer.send(work());
        });
        self.threads
            .send(job)
            .map_err(|_| AppError::internal("the password-hashing threads are gone"))?;
        answered
            .await
            .map_err(|_| AppError::internal("a password hash was dropped"))
    }
}
