//! Exports, imports and their tasks: `POST /api/exports/*`,
//! `POST /api/imports/*` (202 with a task id), `GET /api/tasks/{id}` and the
//! task's file.

use actix_multipart::Multipart;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::model::{ExportParams, Job, JobKind, NewJob, Queued, TaskView};
use super::runner::{JOB_RUNNER, Kick};
use super::{imports, store, upload};
use crate::announcements::store as announcements;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::http::resource;
use crate::sections::model::SectionStatus;
use crate::state::AppState;
use crate::telemetry::mailbox;
use crate::users::model::Role;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/exports/courses").route(web::post().to(export_courses)))
        .service(resource("/api/exports/sections").route(web::post().to(export_sections)))
        .service(resource("/api/exports/enrollments").route(web::post().to(export_enrollments)))
        .service(
            resource("/api/announcements/{id}/exports/unacked")
                .route(web::post().to(export_unacked)),
        )
        .service(resource("/api/imports/courses").route(web::post().to(import_courses)))
        .service(resource("/api/imports/sections").route(web::post().to(import_sections)))
        .service(resource("/api/imports/enrollments").route(web::post().to(import_enrollments)))
        .service(resource("/api/tasks/{id}").route(web::get().to(get_task)))
        .service(resource("/api/tasks/{id}/download").route(web::get().to(download)));
}

/// Queues the job and wakes the runner: 202 `{task_id}`.
async fn queue(state: &AppState, new: NewJob) -> Result<HttpResponse, AppError> {
    let job = store::insert(&mut *state.conn().await?, new).await?;
    mailbox::tell(&state.jobs, JOB_RUNNER, Kick);
    Ok(HttpResponse::Accepted().json(Queued { task_id: job.id }))
}

async fn export(
    state: &AppState,
    auth: &AuthUser,
    kind: JobKind,
    params: ExportParams,
) -> Result<HttpResponse, AppError> {
    let new = NewJob {
        id: Uuid::new_v4(),
        kind,
        owner_id: auth.id(),
        params: serde_json::to_value(params).map_err(AppError::internal)?,
        input_key: None,
    };
    queue(state, new).await
}

/// Every course as CSV: `code,title,description,credits` (managers, registrars, admins).
#[utoipa::path(post, path = "/api/exports/courses", tag = "jobs", security(("bearer" = [])),
    responses((status = 202, body = Queued), (status = 403, body = crate::error::ErrorBody)))]
pub async fn export_courses(
    state: web::Data<AppState>,
    auth: AuthUser,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    export(
        &state,
        &auth,
        JobKind::ExportCourses,
        ExportParams::default(),
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SectionExportQuery {
    pub term: Option<String>,
    pub status: Option<SectionStatus>,
    /// A course id.
    pub course: Option<i64>,
}

/// Sections as CSV: `course_code,term,section_code,teacher_username,capacity,status`.
#[utoipa::path(post, path = "/api/exports/sections", tag = "jobs", security(("bearer" = [])),
    params(SectionExportQuery),
    responses((status = 202, body = Queued), (status = 403, body = crate::error::ErrorBody)))]
pub async fn export_sections(
    state: web::Data<AppState>,
    auth: AuthUser,
    query: web::Query<SectionExportQuery>,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    let query = query.into_inner();
    let params = ExportParams {
        term: query.term,
        status: query.status,
        course: query.course,
        announcement: None,
    };
    export(&state, &auth, JobKind::ExportSections, params).await
}

/// Enrollments as CSV: `course_code,term,section_code,student_username`.
#[utoipa::path(post, path = "/api/exports/enrollments", tag = "jobs", security(("bearer" = [])),
    responses((status = 202, body = Queued), (status = 403, body = crate::error::ErrorBody)))]
pub async fn export_enrollments(
    state: web::Data<AppState>,
    auth: AuthUser,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    export(
        &state,
        &auth,
        JobKind::ExportEnrollments,
        ExportParams::default(),
    )
    .await
}

/// Who has not acknowledged, as CSV: `username,email,state,retry_count,last_push_at`
/// (the publisher and staff).
#[utoipa::path(post, path = "/api/announcements/{id}/exports/unacked", tag = "jobs", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 202, body = Queued), (status = 404, body = crate::error::ErrorBody)))]
pub async fn export_unacked(
    state: web::Data<AppState>,
    auth: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let (staff, user) = (auth.role().is_staff(), auth.id());
    let announcement =
        announcements::find_visible(&mut *state.conn().await?, id.into_inner(), user, staff)
            .await?;
    let params = ExportParams {
        announcement: Some(announcement.id),
        ..ExportParams::default()
    };
    export(&state, &auth, JobKind::ExportUnacked, params).await
}

async fn import(
    state: &AppState,
    auth: &AuthUser,
    kind: JobKind,
    form: Multipart,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    let limit = state.settings.max_import_bytes;
    let bytes = upload::read_csv(form, limit, imports::required_columns(kind)).await?;
    let id = Uuid::new_v4();
    let key = format!("jobs/{id}/upload.csv");
    state.storage.put_bytes(&key, "text/csv", bytes).await?;
    let new = NewJob {
        id,
        kind,
        owner_id: auth.id(),
        params: serde_json::json!({}),
        input_key: Some(key.clone()),
    };
    let queued = queue(state, new).await;
    if queued.is_err() {
        crate::attachments::upload::discard(state, &key).await;
    }
    queued
}

/// Upserts courses by `code` from a CSV file (multipart `file`; columns
/// `code,title[,description,credits]`).
#[utoipa::path(post, path = "/api/imports/courses", tag = "jobs", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "a `file` part"),
    responses(
        (status = 202, body = Queued),
        (status = 400, description = "not a CSV file, not UTF-8, or missing columns", body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody),
    ))]
pub async fn import_courses(
    state: web::Data<AppState>,
    auth: AuthUser,
    form: Multipart,
) -> Result<HttpResponse, AppError> {
    import(&state, &auth, JobKind::ImportCourses, form).await
}

/// Upserts sections by course code, term and section code (columns
/// `course_code,term,section_code,teacher_username[,capacity,status]`).
#[utoipa::path(post, path = "/api/imports/sections", tag = "jobs", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "a `file` part"),
    responses((status = 202, body = Queued), (status = 400, body = crate::error::ErrorBody)))]
pub async fn import_sections(
    state: web::Data<AppState>,
    auth: AuthUser,
    form: Multipart,
) -> Result<HttpResponse, AppError> {
    import(&state, &auth, JobKind::ImportSections, form).await
}

/// Enrolls students (columns `course_code,term,section_code,student_username`),
/// within each section's capacity.
#[utoipa::path(post, path = "/api/imports/enrollments", tag = "jobs", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "a `file` part"),
    responses((status = 202, body = Queued), (status = 400, body = crate::error::ErrorBody)))]
pub async fn import_enrollments(
    state: web::Data<AppState>,
    auth: AuthUser,
    form: Multipart,
) -> Result<HttpResponse, AppError> {
    import(&state, &auth, JobKind::ImportEnrollments, form).await
}

/// The job, if the caller owns it or is an admin; 404 otherwise.
async fn owned(state: &AppState, auth: &AuthUser, id: &str) -> Result<Job, AppError> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound("task"))?;
    let job = store::find(&mut *state.conn().await?, id).await?;
    if job.owner_id == auth.id() || auth.role() == Role::Admin {
        Ok(job)
    } else {
        Err(AppError::NotFound("task"))
    }
}

/// A task's state, progress and result (its owner and admins).
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_task(
    state: web::Data<AppState>,
    auth: AuthUser,
    id: web::Path<String>,
) -> Result<web::Json<TaskView>, AppError> {
    Ok(web::Json(owned(&state, &auth, &id).await?.into()))
}

/// The task's file: an export, or an import's error report (its owner and
/// admins); 410 once it expired.
#[utoipa::path(get, path = "/api/tasks/{id}/download", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "CSV", content_type = "text/csv"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 410, description = "the file expired", body = crate::error::ErrorBody),
    ))]
pub async fn download(
    state: web::Data<AppState>,
    auth: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let job = owned(&state, &auth, &id).await?;
    let Some(key) = job.output_key else {
        return Err(match job.expires_at {
            Some(at) if at <= Utc::now() => AppError::Gone("the file has expired"),
            _ => AppError::NotFound("task file"),
        });
    };
    let name = if job.kind.is_import() {
        format!(
            "{}-errors-{}.csv",
            job.kind,
            job.created_at.format("%Y%m%d-%H%M%S")
        )
    } else {
        format!(
            "{}-{}.csv",
            job.kind,
            job.created_at.format("%Y%m%d-%H%M%S")
        )
    };
    let download = state.storage.get(&key).await?;
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/csv; charset=utf-8")
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(name)],
        })
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if let Some(size) = download.size {
        response.no_chunking(size);
    }
    Ok(response.streaming(download.body))
}
