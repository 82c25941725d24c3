//! `/api/course_attachments`: files attached to courses.

use actix_multipart::Multipart;
use actix_web::http::header::{
    Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::model::{AttachmentView, NewAttachment};
use super::{filename, media, store, upload};
use crate::auth::AuthUser;
use crate::config;
use crate::courses::store as courses;
use crate::db::DbPool;
use crate::error::AppError;
use crate::http::resource;
use crate::ids::{AttachmentId, CourseId};
use crate::pagination::{PageQuery, Paginated};
use crate::sections::store as sections;
use crate::storage::Storage;
use crate::storage::deletions;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/course_attachments")
            .route(web::get().to(list_attachments))
            .route(web::post().to(upload_attachment)),
    )
    .service(resource("/api/course_attachments/{id}").route(web::delete().to(delete_attachment)))
    .service(
        resource("/api/course_attachments/{id}/download").route(web::get().to(download_attachment)),
    );
}

/// Staff, and teachers of one of the course's sections, manage its files.
async fn require_course_editor(
    db: &DbPool,
    auth: &AuthUser,
    course_id: CourseId,
) -> Result<(), AppError> {
    if auth.role().is_staff() {
        return Ok(());
    }
    if sections::teaches_course(&mut *db.get().await?, auth.id(), course_id).await? {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only staff and the course's teachers manage its files",
        ))
    }
}

/// Who may see a course's files: staff, the teachers of its current
/// sections and the students enrolled in one. To anyone else the files do
/// not exist (404), so their names and number leak nothing.
async fn require_course_reader(
    db: &DbPool,
    auth: &AuthUser,
    course_id: CourseId,
) -> Result<(), AppError> {
    if auth.role().is_staff()
        || sections::takes_part_in(&mut *db.get().await?, auth.id(), auth.role(), course_id).await?
    {
        Ok(())
    } else {
        Err(AppError::NotFound("attachment"))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AttachmentQuery {
    /// Only this course's files.
    pub course: Option<CourseId>,
}

/// Lists the attachments of the courses the caller may read, newest first
/// (staff: all; teachers and students: their current sections' courses).
#[utoipa::path(get, path = "/api/course_attachments", tag = "attachments", security(("bearer" = [])),
    params(AttachmentQuery, PageQuery),
    responses((status = 200, body = Paginated<AttachmentView>)))]
pub async fn list_attachments(
    db: web::Data<DbPool>,
    auth: AuthUser,
    query: web::Query<AttachmentQuery>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<AttachmentView>>, AppError> {
    let page = page.into_inner().page()?;
    let reader = (!auth.role().is_staff()).then(|| (auth.id(), auth.role()));
    let (items, total) = store::list(&mut *db.get().await?, query.course, reader, page).await?;
    Ok(web::Json(Paginated {
        items: items.into_iter().map(AttachmentView::from).collect(),
        total,
    }))
}

/// The form of an upload, for the API description.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The course id; must come before `file`.
    course: CourseId,
    title: String,
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Uploads a file to a course (staff, and teachers of the course's sections).
/// The bytes stream to object storage; larger than the configured limit → 413.
#[utoipa::path(post, path = "/api/course_attachments", tag = "attachments", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = AttachmentView),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, description = "no such course", body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody),
        (status = 503, description = "object storage unavailable", body = crate::error::ErrorBody),
    ))]
pub async fn upload_attachment(
    db: web::Data<DbPool>,
    limits: web::Data<config::Storage>,
    storage: web::Data<Storage>,
    auth: AuthUser,
    form: Multipart,
) -> Result<HttpResponse, AppError> {
    let admit = async |course_id: CourseId| {
        courses::find(&mut *db.get().await?, course_id).await?;
        require_course_editor(&db, &auth, course_id).await?;
        let key = format!("attachments/{course_id}/{}", uuid::Uuid::new_v4());
        deletions::reserve(&db, &key, limits.upload_grace()).await?;
        Ok(key)
    };
    let limit = limits.max_upload_bytes;
    let upload = upload::read(form, &db, &storage, limit, admit).await?;
    let (Some(course_id), Some(title), Some(file)) = (upload.course, upload.title, upload.file)
    else {
        return Err(AppError::internal("a validated upload lacks a part"));
    };
    let new = NewAttachment {
        course_id,
        title,
        filename: file.filename,
        object_key: file.key,
        size: i64::try_from(file.size).unwrap_or(i64::MAX),
        content_type: file.content_type,
        uploaded_by: Some(auth.id()),
    };
    let inserted = match db.get().await {
        Ok(mut conn) => store::insert(&mut conn, &new).await,
        Err(error) => Err(error),
    };
    match inserted {
        Ok(attachment) => {
            deletions::release(&db, &new.object_key).await;
            Ok(HttpResponse::Created().json(AttachmentView::from(attachment)))
        }
        Err(error) => {
            // No row, so no object either (the course may have gone meanwhile).
            deletions::discard(&db, &storage, &new.object_key).await;
            Err(error)
        }
    }
}

/// Streams the file with its name and type (staff, and the teachers and
/// students of the course's current sections).
#[utoipa::path(get, path = "/api/course_attachments/{id}/download", tag = "attachments", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "the file's bytes", content_type = "application/octet-stream"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody),
    ))]
pub async fn download_attachment(
    db: web::Data<DbPool>,
    storage: web::Data<Storage>,
    auth: AuthUser,
    id: web::Path<AttachmentId>,
) -> Result<HttpResponse, AppError> {
    let attachment = store::find(&mut *db.get().await?, id.into_inner()).await?;
    require_course_reader(&db, &auth, attachment.course_id).await?;
    let download = storage.get(&attachment.object_key).await?;
    // RFC 6266: an ASCII `filename`, and the exact name in `filename*`.
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![
            DispositionParam::Filename(filename::ascii_fallback(&attachment.filename)),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: Charset::Ext("UTF-8".to_owned()),
                language_tag: None,
                value: attachment.filename.into_bytes(),
            }),
        ],
    };
    let mut response = HttpResponse::Ok();
    response
        // Rows stored before the allowlist existed are held to it here too.
        .content_type(media::served_type(&attachment.content_type))
        .insert_header(disposition)
        // Uploaded bytes are never to be run as a page of this site.
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Content-Security-Policy", "sandbox"));
    if let Some(size) = download.size {
        response.no_chunking(size);
    }
    Ok(response.streaming(download.body))
}

/// Deletes the attachment and its stored bytes (staff, and teachers of the course's sections).
#[utoipa::path(delete, path = "/api/course_attachments/{id}", tag = "attachments", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_attachment(
    db: web::Data<DbPool>,
    storage: web::Data<Storage>,
    auth: AuthUser,
    id: web::Path<AttachmentId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let attachment = store::find(&mut *db.get().await?, id).await?;
    require_course_editor(&db, &auth, attachment.course_id).await?;
    store::delete(&mut *db.get().await?, id).await?;
    deletions::purge(&db, &storage).await;
    Ok(HttpResponse::NoContent().finish())
}
