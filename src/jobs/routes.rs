//! Exports, imports and their tasks: `POST /api/exports/*`,
//! `POST /api/imports/*` (202 with a task id), `GET /api/tasks/{id}` and the
//! task's file.

use actix::Addr;
use actix_multipart::Multipart;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, Modify, ToSchema};

use super::model::{ExportParams, Job, JobKind, NewJob, Queued, TaskView};
use super::runner::{JOB_RUNNER, JobRunner, Kick};
use super::{imports, store, upload};
use crate::announcements::store as announcements;
use crate::auth::AuthUser;
use crate::config;
use crate::db::DbPool;
use crate::error::AppError;
use crate::http::resource;
use crate::ids::{AnnouncementId, CourseId, JobId};
use crate::sections::model::SectionStatus;
use crate::storage::{Storage, deletions};
use crate::telemetry::mailbox;
use crate::users::model::Role;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/exports/courses").route(web::post().to(export_courses)))
        .service(resource("/api/exports/sections").route(web::post().to(export_sections)))
        .service(resource("/api/exports/enrollments").route(web::post().to(export_enrollments)))
        .service(resource("/api/exports/users").route(web::post().to(export_users)))
        .service(
            resource("/api/announcements/{id}/exports/unacked")
                .route(web::post().to(export_unacked)),
        )
        .service(resource("/api/imports/{kind}").route(web::post().to(import_file)))
        .service(resource("/api/tasks/{id}").route(web::get().to(get_task)))
        .service(resource("/api/tasks/{id}/download").route(web::get().to(download)));
}

/// Queues the job and wakes the runner: 202 `{task_id}`.
async fn queue(
    db: &DbPool,
    runner: &Addr<JobRunner>,
    new: NewJob,
) -> Result<HttpResponse, AppError> {
    let job = store::insert(&mut *db.get().await?, new).await?;
    mailbox::tell(runner, JOB_RUNNER, Kick);
    Ok(HttpResponse::Accepted().json(Queued { task_id: job.id }))
}

async fn export(
    db: &DbPool,
    runner: &Addr<JobRunner>,
    auth: &AuthUser,
    kind: JobKind,
    params: ExportParams,
) -> Result<HttpResponse, AppError> {
    let new = NewJob {
        id: JobId::new(),
        kind,
        owner_id: auth.id(),
        params: serde_json::to_value(params).map_err(AppError::internal)?,
        input_key: None,
    };
    queue(db, runner, new).await
}

/// An export of the school's records, which only staff may take.
async fn staff_export(
    db: &DbPool,
    runner: &Addr<JobRunner>,
    auth: &AuthUser,
    kind: JobKind,
    params: ExportParams,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    export(db, runner, auth, kind, params).await
}

/// Every course as CSV: `code,title,description,credits` (managers, registrars, admins).
#[utoipa::path(post, path = "/api/exports/courses", tag = "jobs", security(("bearer" = [])),
    responses((status = 202, body = Queued), (status = 403, body = crate::error::ErrorBody)))]
pub async fn export_courses(
    db: web::Data<DbPool>,
    runner: web::Data<Addr<JobRunner>>,
    auth: AuthUser,
) -> Result<HttpResponse, AppError> {
    staff_export(
        &db,
        &runner,
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
    pub course: Option<CourseId>,
}

/// Sections as CSV: `course_code,term,section_code,teacher_username,capacity,status`.
#[utoipa::path(post, path = "/api/exports/sections", tag = "jobs", security(("bearer" = [])),
    params(SectionExportQuery),
    responses((status = 202, body = Queued), (status = 403, body = crate::error::ErrorBody)))]
pub async fn export_sections(
    db: web::Data<DbPool>,
    runner: web::Data<Addr<JobRunner>>,
    auth: AuthUser,
    query: web::Query<SectionExportQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let params = ExportParams {
        term: query.term,
        status: query.status,
        course: query.course,
        announcement: None,
    };
    staff_export(&db, &runner, &auth, JobKind::ExportSections, params).await
}

/// Enrollments as CSV: `course_code,term,section_code,student_username`.
#[utoipa::path(post, path = "/api/exports/enrollments", tag = "jobs", security(("bearer" = [])),
    responses((status = 202, body = Queued), (status = 403, body = crate::error::ErrorBody)))]
pub async fn export_enrollments(
    db: web::Data<DbPool>,
    runner: web::Data<Addr<JobRunner>>,
    auth: AuthUser,
) -> Result<HttpResponse, AppError> {
    staff_export(
        &db,
        &runner,
        &auth,
        JobKind::ExportEnrollments,
        ExportParams::default(),
    )
    .await
}

/// Every account as CSV: `username,display_name,email,role,number`, the
/// columns the roster import reads (admins, managers, registrars). No
/// password or token is ever part of it.
#[utoipa::path(post, path = "/api/exports/users", tag = "jobs", security(("bearer" = [])),
    responses((status = 202, body = Queued), (status = 403, body = crate::error::ErrorBody)))]
pub async fn export_users(
    db: web::Data<DbPool>,
    runner: web::Data<Addr<JobRunner>>,
    auth: AuthUser,
) -> Result<HttpResponse, AppError> {
    staff_export(
        &db,
        &runner,
        &auth,
        JobKind::ExportUsers,
        ExportParams::default(),
    )
    .await
}

/// Who has not acknowledged, as CSV: `username,display_name,number,email,state,retry_count,last_push_at`
/// (staff, and its publisher while a teacher).
#[utoipa::path(post, path = "/api/announcements/{id}/exports/unacked", tag = "jobs", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 202, body = Queued), (status = 404, body = crate::error::ErrorBody)))]
pub async fn export_unacked(
    db: web::Data<DbPool>,
    runner: web::Data<Addr<JobRunner>>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
) -> Result<HttpResponse, AppError> {
    let announcement = announcements::find_visible(
        &mut *db.get().await?,
        id.into_inner(),
        auth.id(),
        auth.role(),
    )
    .await?;
    let params = ExportParams {
        announcement: Some(announcement.id),
        ..ExportParams::default()
    };
    export(&db, &runner, &auth, JobKind::ExportUnacked, params).await
}

/// What a CSV import is of: the `{kind}` of `/api/imports/{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportOf {
    Courses,
    Sections,
    Enrollments,
    Users,
}

impl ImportOf {
    const ALL: [ImportOf; 4] = [
        ImportOf::Courses,
        ImportOf::Sections,
        ImportOf::Enrollments,
        ImportOf::Users,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ImportOf::Courses => "courses",
            ImportOf::Sections => "sections",
            ImportOf::Enrollments => "enrollments",
            ImportOf::Users => "users",
        }
    }

    fn parse(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == path)
    }

    fn job(self) -> JobKind {
        match self {
            ImportOf::Courses => JobKind::ImportCourses,
            ImportOf::Sections => JobKind::ImportSections,
            ImportOf::Enrollments => JobKind::ImportEnrollments,
            ImportOf::Users => JobKind::ImportUsers,
        }
    }

    /// What the import does, with its columns (optional ones in brackets).
    fn summary(self) -> &'static str {
        match self {
            ImportOf::Courses => {
                "Upserts courses by `code` from a CSV file (columns \
                 `code,title[,description,credits]`)."
            }
            ImportOf::Sections => {
                "Upserts sections by course code, term and section code (columns \
                 `course_code,term,section_code,teacher_username[,capacity,status]`)."
            }
            ImportOf::Enrollments => {
                "Enrolls students (columns `course_code,term,section_code,student_username` \
                 or `student_number` in its place), within each section's capacity."
            }
            ImportOf::Users => {
                "Upserts accounts by `username` (columns \
                 `username,display_name,email,role[,number]`; admins and registrars, who \
                 manage students and teachers only). New accounts are mailed an invitation."
            }
        }
    }
}

/// Documents `/api/imports/{kind}` as the one path per kind that clients
/// post to, each with its columns.
pub struct ImportPaths;

impl Modify for ImportPaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(template) = openapi.paths.paths.remove("/api/imports/{kind}") else {
            return;
        };
        for kind in ImportOf::ALL {
            let mut item = template.clone();
            if let Some(operation) = item.post.as_mut() {
                operation.summary = Some(kind.summary().to_owned());
                operation.operation_id = Some(format!("import_{}", kind.as_str()));
                let parameters = operation.parameters.take().unwrap_or_default();
                let rest: Vec<_> = parameters
                    .into_iter()
                    .filter(|p| !matches!(p, RefOr::T(p) if p.name == "kind"))
                    .collect();
                operation.parameters = (!rest.is_empty()).then_some(rest);
            }
            openapi
                .paths
                .paths
                .insert(format!("/api/imports/{}", kind.as_str()), item);
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImportQuery {
    /// Check and report every row, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Imports a CSV file (multipart `file`) as a background task (managers,
/// registrars, admins). The header names the columns, in any order and case.
#[utoipa::path(post, path = "/api/imports/{kind}", tag = "jobs", security(("bearer" = [])),
    params(("kind" = ImportOf, Path, description = "what the file holds"), ImportQuery),
    request_body(content_type = "multipart/form-data", description = "a `file` part"),
    responses(
        (status = 202, body = Queued),
        (status = 400, description = "not a CSV file, not UTF-8, or missing columns", body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, description = "not a kind of import", body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody),
    ))]
// Each argument is an extractor actix fills in.
#[allow(clippy::too_many_arguments)]
pub async fn import_file(
    db: web::Data<DbPool>,
    runner: web::Data<Addr<JobRunner>>,
    storage: web::Data<Storage>,
    limits: web::Data<config::Jobs>,
    storage_settings: web::Data<config::Storage>,
    auth: AuthUser,
    kind: web::Path<String>,
    query: web::Query<ImportQuery>,
    form: Multipart,
) -> Result<HttpResponse, AppError> {
    let kind = ImportOf::parse(&kind)
        .ok_or(AppError::NotFound("route"))?
        .job();
    if kind == JobKind::ImportUsers {
        auth.require(&[Role::Admin, Role::Registrar])?;
    } else {
        auth.require_staff()?;
    }
    let upload = upload::read_csv(
        form,
        limits.max_import_bytes,
        imports::required_columns(kind),
    )
    .await?;
    let bytes = upload.bytes;
    let id = JobId::new();
    let key = format!("jobs/{id}/upload.csv");
    deletions::reserve(&db, &key, storage_settings.upload_grace()).await?;
    storage.put_bytes(&key, "text/csv", bytes).await?;
    let new = NewJob {
        id,
        kind,
        owner_id: auth.id(),
        params: serde_json::to_value(imports::ImportParams {
            dry_run: query.dry_run,
            encoding: upload.encoding.to_owned(),
        })
        .map_err(AppError::internal)?,
        input_key: Some(key.clone()),
    };
    let queued = queue(&db, &runner, new).await;
    match queued {
        Ok(_) => deletions::release(&db, &key).await,
        Err(_) => deletions::discard(&db, &storage, &key).await,
    }
    queued
}

/// The job, if the caller owns it or is an admin; 404 otherwise.
async fn owned(db: &DbPool, auth: &AuthUser, id: &str) -> Result<Job, AppError> {
    let id: JobId = id.parse().map_err(|_| AppError::NotFound("task"))?;
    let job = store::find(&mut *db.get().await?, id).await?;
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
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<String>,
) -> Result<web::Json<TaskView>, AppError> {
    Ok(web::Json(owned(&db, &auth, &id).await?.into()))
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
    db: web::Data<DbPool>,
    storage: web::Data<Storage>,
    auth: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let job = owned(&db, &auth, &id).await?;
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
    let download = storage.get(&key).await?;
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
