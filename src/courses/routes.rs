//! `/api/courses`: everyone signed in reads; managers, registrars and admins write.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::credits::Credits;
use super::model::{Course, CourseChanges, NewCourse, credits, description};
use super::store;
use crate::auth::AuthUser;
use crate::db::DbPool;
use crate::error::{AppError, FieldErrors};
use crate::http::resource;
use crate::ids::CourseId;
use crate::pagination::{PageQuery, Paginated};
use crate::storage::Storage;
use crate::storage::deletions;
use crate::validate::short_text;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/courses")
            .route(web::get().to(list_courses))
            .route(web::post().to(create_course)),
    )
    .service(
        resource("/api/courses/{id}")
            .route(web::get().to(get_course))
            .route(web::patch().to(update_course))
            .route(web::delete().to(delete_course)),
    );
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CourseQuery {
    /// Matches anywhere in the code or title.
    pub q: Option<String>,
}

/// Lists courses by code.
#[utoipa::path(get, path = "/api/courses", tag = "courses", security(("bearer" = [])),
    params(CourseQuery, PageQuery),
    responses((status = 200, body = Paginated<Course>)))]
pub async fn list_courses(
    db: web::Data<DbPool>,
    _auth: AuthUser,
    query: web::Query<CourseQuery>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<Course>>, AppError> {
    let page = page.into_inner().page()?;
    let (items, total) = store::list(&mut *db.get().await?, query.q.as_deref(), page).await?;
    Ok(web::Json(Paginated { items, total }))
}

#[utoipa::path(get, path = "/api/courses/{id}", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = Course), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_course(
    db: web::Data<DbPool>,
    _auth: AuthUser,
    id: web::Path<CourseId>,
) -> Result<web::Json<Course>, AppError> {
    Ok(web::Json(
        store::find(&mut *db.get().await?, id.into_inner()).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCourseRequest {
    /// Unique whatever its case; at most 32 characters.
    pub code: String,
    /// At most 128 characters.
    pub title: String,
    pub description: Option<String>,
    /// 0.0–99.9 with one decimal place; default 3.0.
    pub credits: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCourseRequest {
    pub code: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub credits: Option<f64>,
}

/// Creates a course (managers, registrars, admins).
#[utoipa::path(post, path = "/api/courses", tag = "courses", security(("bearer" = [])),
    request_body = CreateCourseRequest,
    responses(
        (status = 201, body = Course),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 409, description = "code already used", body = crate::error::ErrorBody),
    ))]
pub async fn create_course(
    db: web::Data<DbPool>,
    auth: AuthUser,
    body: web::Json<CreateCourseRequest>,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    let body = body.into_inner();
    let mut errors = FieldErrors::new();
    let new = NewCourse {
        code: short_text(&mut errors, "code", &body.code, 32),
        title: short_text(&mut errors, "title", &body.title, 128),
        description: description(&mut errors, body.description.as_deref().unwrap_or_default()),
        credits: body
            .credits
            .map_or(Credits::DEFAULT, |c| credits(&mut errors, c)),
    };
    errors.into_result()?;
    let course = store::insert(&mut *db.get().await?, new).await?;
    Ok(HttpResponse::Created().json(course))
}

/// Edits a course (managers, registrars, admins).
#[utoipa::path(patch, path = "/api/courses/{id}", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = UpdateCourseRequest,
    responses(
        (status = 200, body = Course),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody),
    ))]
pub async fn update_course(
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<CourseId>,
    body: web::Json<UpdateCourseRequest>,
) -> Result<web::Json<Course>, AppError> {
    auth.require_staff()?;
    let body = body.into_inner();
    let mut errors = FieldErrors::new();
    let changes = CourseChanges {
        code: body
            .code
            .map(|code| short_text(&mut errors, "code", &code, 32)),
        title: body
            .title
            .map(|title| short_text(&mut errors, "title", &title, 128)),
        description: body.description.map(|d| description(&mut errors, &d)),
        credits: body.credits.map(|c| credits(&mut errors, c)),
    };
    errors.into_result()?;
    let mut conn = db.get().await?;
    let course = match changes {
        CourseChanges {
            code: None,
            title: None,
            description: None,
            credits: None,
        } => store::find(&mut conn, id.into_inner()).await?,
        changes => store::update(&mut conn, id.into_inner(), changes).await?,
    };
    Ok(web::Json(course))
}

/// Deletes a course with its sections, enrollments and attachments, and
/// removes the attachments' stored bytes (managers, registrars, admins).
#[utoipa::path(delete, path = "/api/courses/{id}", tag = "courses", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_course(
    db: web::Data<DbPool>,
    storage: web::Data<Storage>,
    auth: AuthUser,
    id: web::Path<CourseId>,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    store::delete(&mut *db.get().await?, id.into_inner()).await?;
    deletions::purge(&db, &storage).await;
    Ok(HttpResponse::NoContent().finish())
}
