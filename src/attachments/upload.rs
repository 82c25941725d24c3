//! Reading an attachment upload (`multipart/form-data` with `course`, `title`
//! and `file`) and streaming its file straight into object storage.
//!
//! The course must come before the file, so who may upload is settled before
//! a single byte is stored. The file never sits whole in memory: chunks pass
//! through a small bounded channel into the store, and counting them enforces
//! the size limit on the way.

use std::io;

use actix_multipart::{Field, Multipart, MultipartError};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::{filename, media};
use crate::db::DbPool;
use crate::error::{AppError, Code, FieldError, FieldErrors};
use crate::ids::CourseId;
use crate::storage::{ByteStream, Storage, deletions};
use crate::validate::short_text;

/// Chunks in flight between the request and the store.
const CHANNEL_CHUNKS: usize = 4;
/// Largest `course` or `title` field accepted.
const TEXT_FIELD_LIMIT: usize = 4 * 1024;

fn malformed(error: MultipartError) -> AppError {
    AppError::BadRequest(format!("malformed multipart body: {error}"))
}

/// A file that has reached the store.
pub struct StoredFile {
    pub key: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
}

/// The parts of an upload, as they were read.
#[derive(Default)]
pub struct Upload {
    pub course: Option<CourseId>,
    pub title: Option<String>,
    pub file: Option<StoredFile>,
}

/// Reads the whole form. `admit` runs as soon as the course field is read: it
/// checks the uploader may attach to that course and returns the object key
/// to store under. On any error after the file was stored, the stored object
/// is removed before the error is returned.
pub async fn read(
    mut form: Multipart,
    db: &DbPool,
    storage: &Storage,
    limit: u64,
    mut admit: impl AsyncFnMut(CourseId) -> Result<String, AppError>,
) -> Result<Upload, AppError> {
    let mut upload = Upload::default();
    let mut key = None;
    let outcome = async {
        while let Some(mut field) = form.try_next().await.map_err(malformed)? {
            match field.name().unwrap_or_default() {
                "course" => {
                    if upload.course.is_some() {
                        return Err(AppError::field("course", Code::Repeated));
                    }
                    let text = text_field(&mut field).await?;
                    let course = text
                        .trim()
                        .parse::<CourseId>()
                        .map_err(|_| AppError::field("course", Code::NotAnId))?;
                    key = Some(admit(course).await?);
                    upload.course = Some(course);
                }
                "title" => upload.title = Some(text_field(&mut field).await?),
                "file" => {
                    let Some(key) = key.clone() else {
                        return Err(AppError::field(
                            "file",
                            FieldError::new(Code::OutOfOrder).with("after", "course"),
                        ));
                    };
                    if upload.file.is_some() {
                        return Err(AppError::field("file", Code::Repeated));
                    }
                    let filename = filename::sanitize(
                        field
                            .content_disposition()
                            .and_then(|cd| cd.get_filename())
                            .unwrap_or_default(),
                    );
                    let content_type = field
                        .content_type()
                        .map_or(media::OPAQUE, |claimed| {
                            media::served_type(claimed.as_ref())
                        })
                        .to_owned();
                    // Until `store` answers, the object may exist: clean up on any error.
                    upload.file = Some(StoredFile {
                        key: key.clone(),
                        filename,
                        content_type: content_type.clone(),
                        size: 0,
                    });
                    let size = store(storage, &key, &content_type, field, limit).await?;
                    if let Some(file) = upload.file.as_mut() {
                        file.size = size;
                    }
                }
                _ => drain(field).await?,
            }
        }
        let mut errors = FieldErrors::new();
        if upload.course.is_none() {
            errors.add("course", Code::Required);
        }
        if upload.file.is_none() {
            errors.add("file", Code::Required);
        }
        match upload.title.as_deref() {
            Some(title) => upload.title = Some(short_text(&mut errors, "title", title, 200)),
            None => errors.add("title", Code::Blank),
        }
        errors.into_result()
    }
    .await;
    match outcome {
        Ok(()) => Ok(upload),
        Err(error) => {
            if let Some(file) = upload.file {
                deletions::discard(db, storage, &file.key).await;
            }
            Err(error)
        }
    }
}

async fn text_field(field: &mut Field) -> Result<String, AppError> {
    let name = field.name().unwrap_or_default().to_owned();
    let bytes = field
        .bytes(TEXT_FIELD_LIMIT)
        .await
        .map_err(|_| AppError::field(&name, FieldError::too_long(TEXT_FIELD_LIMIT)))?
        .map_err(malformed)?;
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|_| AppError::field(&name, Code::NotUtf8))?;
    // PostgreSQL stores no NUL.
    if text.contains('\0') {
        return Err(AppError::field(&name, Code::ControlCharacters));
    }
    Ok(text)
}

async fn drain(mut field: Field) -> Result<(), AppError> {
    while field.try_next().await.map_err(malformed)?.is_some() {}
    Ok(())
}

/// Streams `field` into the store under `key`, refusing more than `limit` bytes.
async fn store(
    storage: &Storage,
    key: &str,
    content_type: &str,
    mut field: Field,
    limit: u64,
) -> Result<u64, AppError> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let body: ByteStream = Box::pin(futures_util::stream::poll_fn(move |cx| {
        receiver.poll_recv(cx)
    }));
    let feed = async move {
        let mut received: u64 = 0;
        while let Some(chunk) = field.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    let _ = sender.send(Err(io::Error::other(error.to_string()))).await;
                    return Err(malformed(error));
                }
            };
            received += chunk.len() as u64;
            if received > limit {
                let _ = sender
                    .send(Err(io::Error::other("the file is larger than allowed")))
                    .await;
                drop(sender);
                // Read on, so the client is still listening when the 413 comes.
                let mut rest = received;
                while let Some(Ok(chunk)) = field.next().await {
                    rest += chunk.len() as u64;
                    if rest > limit.saturating_mul(2) {
                        break;
                    }
                }
                return Err(AppError::PayloadTooLarge {
                    limit: usize::try_from(limit).unwrap_or(usize::MAX),
                });
            }
            if sender.send(Ok(chunk)).await.is_err() {
                // The store stopped reading; its own error explains why.
                break;
            }
        }
        Ok(())
    };
    let (fed, stored) = futures_util::join!(feed, storage.put(key, content_type, body));
    fed?;
    Ok(stored?)
}
