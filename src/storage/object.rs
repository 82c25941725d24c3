//! What the stores share: the byte streams they carry, a download, and how
//! they fail.

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

use crate::error::AppError;

/// Bytes on their way in or out; `Send` so either backend can carry them.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no such object")]
    NotFound,
    /// The upload's own stream failed (e.g. the client went away or sent too much).
    #[error("upload interrupted: {0}")]
    Interrupted(io::Error),
    #[error("object storage failed: {0}")]
    Backend(String),
}

impl From<StorageError> for AppError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => AppError::NotFound("stored file"),
            StorageError::Interrupted(e) => {
                AppError::BadRequest(format!("upload interrupted: {e}"))
            }
            StorageError::Backend(e) => {
                tracing::warn!(error = %e, "object storage failed");
                AppError::unavailable("object storage")
            }
        }
    }
}

/// A stored object on its way out.
pub struct Download {
    pub body: ByteStream,
    pub size: Option<u64>,
}
