//! Reading an import's upload: one `file` part of a `multipart/form-data`
//! body, at most the configured size, checked before a job is queued.

use actix_multipart::{Multipart, MultipartError};
use futures_util::TryStreamExt;

use super::sheet;
use crate::error::AppError;

fn malformed(error: MultipartError) -> AppError {
    AppError::BadRequest(format!("malformed multipart body: {error}"))
}

/// The `file` part's bytes, refused (413) past `limit`, and checked to be a
/// CSV file in UTF-8 with the `required` columns (400 saying what is wrong).
pub async fn read_csv(
    mut form: Multipart,
    limit: usize,
    required: &[&str],
) -> Result<Vec<u8>, AppError> {
    let mut file = None;
    while let Some(mut field) = form.try_next().await.map_err(malformed)? {
        let is_file = field.name() == Some("file");
        let mut bytes = Vec::new();
        while let Some(chunk) = field.try_next().await.map_err(malformed)? {
            if is_file {
                if bytes.len() + chunk.len() > limit {
                    return Err(AppError::PayloadTooLarge { limit });
                }
                bytes.extend_from_slice(&chunk);
            }
        }
        if is_file {
            if file.is_some() {
                return Err(AppError::field("file", "only one file per import"));
            }
            file = Some(bytes);
        }
    }
    let file = file.ok_or_else(|| AppError::field("file", "is required (a CSV file)"))?;
    sheet::check(&file, required).map_err(|reason| AppError::field("file", reason))?;
    Ok(file)
}
