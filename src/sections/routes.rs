//! `/api/sections`, their enrollments, and `/api/me/sections`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::enrollments::{self, Enrollment};
use super::model::{NewSection, Section, SectionChanges, SectionStatus, SectionView};
use super::store::{self, SectionFilter};
use crate::auth::AuthUser;
use crate::courses::store as courses;
use crate::db::DbPool;
use crate::deliveries::reach;
use crate::error::{AppError, Code, FieldError, FieldErrors};
use crate::events::EventBus;
use crate::http::resource;
use crate::ids::{CourseId, SectionId, UserId};
use crate::pagination::{PageQuery, Paginated};
use crate::users::model::Role;
use crate::users::store as users;
use crate::validate::short_text;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/sections")
            .route(web::get().to(list_sections))
            .route(web::post().to(create_section)),
    )
    .service(
        resource("/api/sections/{id}")
            .route(web::get().to(get_section))
            .route(web::patch().to(update_section))
            .route(web::delete().to(delete_section)),
    )
    .service(
        resource("/api/sections/{id}/enrollments")
            .route(web::get().to(list_enrollments))
            .route(web::post().to(enroll)),
    )
    .service(
        resource("/api/sections/{id}/enrollments/{student_id}").route(web::delete().to(withdraw)),
    )
    .service(resource("/api/me/sections").route(web::get().to(my_sections)));
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SectionQuery {
    pub course: Option<CourseId>,
    pub term: Option<String>,
    pub teacher: Option<UserId>,
    pub status: Option<SectionStatus>,
}

/// Lists sections with their course and teacher; students see only the
/// published sections they are enrolled in.
#[utoipa::path(get, path = "/api/sections", tag = "sections", security(("bearer" = [])),
    params(SectionQuery, PageQuery),
    responses((status = 200, body = Paginated<SectionView>)))]
pub async fn list_sections(
    db: web::Data<DbPool>,
    auth: AuthUser,
    query: web::Query<SectionQuery>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<SectionView>>, AppError> {
    let page = page.into_inner().page()?;
    let query = query.into_inner();
    let mut filter = SectionFilter {
        course: query.course,
        term: query.term,
        teacher: query.teacher,
        status: query.status,
        student: None,
    };
    if auth.role() == Role::Student {
        if filter
            .status
            .is_some_and(|status| status != SectionStatus::Published)
        {
            return Ok(web::Json(Paginated {
                items: vec![],
                total: 0,
            }));
        }
        filter.status = Some(SectionStatus::Published);
        filter.student = Some(auth.id());
    }
    let (items, total) = store::list(&mut *db.get().await?, &filter, page).await?;
    Ok(web::Json(Paginated { items, total }))
}

/// One section; students see the published sections they are enrolled in
/// (others are not found).
#[utoipa::path(get, path = "/api/sections/{id}", tag = "sections", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = SectionView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_section(
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<SectionId>,
) -> Result<web::Json<SectionView>, AppError> {
    let mut conn = db.get().await?;
    let view = store::find_view(&mut conn, id.into_inner()).await?;
    if auth.role() == Role::Student
        && (view.section.status != SectionStatus::Published
            || !enrollments::is_enrolled(&mut conn, view.section.id, auth.id()).await?)
    {
        return Err(AppError::NotFound("section"));
    }
    Ok(web::Json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSectionRequest {
    pub course_id: CourseId,
    pub section_code: String,
    pub term: String,
    pub teacher_id: UserId,
    /// 1–1000, default 50.
    pub capacity: Option<i32>,
    /// Default `draft`.
    pub status: Option<SectionStatus>,
}

fn check_capacity(errors: &mut FieldErrors, capacity: i32) {
    if !(1..=1000).contains(&capacity) {
        errors.add(
            "capacity",
            FieldError::new(Code::OutOfRange)
                .with("min", 1)
                .with("max", 1000),
        );
    }
}

/// Checks that the course exists and the teacher is an active teacher.
async fn check_references(
    db: &DbPool,
    errors: &mut FieldErrors,
    course_id: Option<CourseId>,
    teacher_id: Option<UserId>,
) -> Result<(), AppError> {
    let mut conn = db.get().await?;
    if let Some(course_id) = course_id {
        match courses::find(&mut conn, course_id).await {
            Err(AppError::NotFound(_)) => errors.add(
                "course_id",
                FieldError::new(Code::NoSuch).with("what", "course"),
            ),
            other => drop(other?),
        }
    }
    if let Some(teacher_id) = teacher_id
        && !users::has_active_role(&mut conn, teacher_id, Role::Teacher).await?
    {
        errors.add(
            "teacher_id",
            FieldError::new(Code::NotActive).with("role", "teacher"),
        );
    }
    Ok(())
}

/// Creates a section (managers, registrars, admins).
#[utoipa::path(post, path = "/api/sections", tag = "sections", security(("bearer" = [])),
    request_body = CreateSectionRequest,
    responses(
        (status = 201, body = Section),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 409, description = "course, term and section code already used", body = crate::error::ErrorBody),
    ))]
pub async fn create_section(
    db: web::Data<DbPool>,
    auth: AuthUser,
    body: web::Json<CreateSectionRequest>,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    let body = body.into_inner();
    let mut errors = FieldErrors::new();
    let section_code = short_text(&mut errors, "section_code", &body.section_code, 32);
    let term = short_text(&mut errors, "term", &body.term, 32);
    let capacity = body.capacity.unwrap_or(50);
    check_capacity(&mut errors, capacity);
    check_references(
        &db,
        &mut errors,
        Some(body.course_id),
        Some(body.teacher_id),
    )
    .await?;
    errors.into_result()?;
    let section = store::insert(
        &mut *db.get().await?,
        NewSection {
            course_id: body.course_id,
            section_code,
            term,
            teacher_id: body.teacher_id,
            capacity,
            status: body.status.unwrap_or(SectionStatus::Draft),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(section))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSectionRequest {
    pub course_id: Option<CourseId>,
    pub section_code: Option<String>,
    pub term: Option<String>,
    pub teacher_id: Option<UserId>,
    pub capacity: Option<i32>,
    pub status: Option<SectionStatus>,
}

/// Edits a section: staff any section; a teacher only their own, without
/// reassigning its teacher or course. Capacity cannot drop below enrollment.
#[utoipa::path(patch, path = "/api/sections/{id}", tag = "sections", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = UpdateSectionRequest,
    responses(
        (status = 200, body = Section),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody),
    ))]
pub async fn update_section(
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<SectionId>,
    body: web::Json<UpdateSectionRequest>,
) -> Result<web::Json<Section>, AppError> {
    let id = id.into_inner();
    let body = body.into_inner();
    let current = store::find(&mut *db.get().await?, id).await?;
    match auth.role() {
        role if role.is_staff() => {}
        Role::Teacher if current.teacher_id == auth.id() => {
            let reassigns = body.teacher_id.is_some_and(|t| t != current.teacher_id)
                || body.course_id.is_some_and(|c| c != current.course_id);
            if reassigns {
                return Err(AppError::Forbidden(
                    "teachers may not reassign a section's teacher or course",
                ));
            }
        }
        _ => return Err(AppError::Forbidden("you may not edit this section")),
    }
    let mut errors = FieldErrors::new();
    let section_code = body
        .section_code
        .map(|code| short_text(&mut errors, "section_code", &code, 32));
    let term = body
        .term
        .map(|term| short_text(&mut errors, "term", &term, 32));
    if let Some(capacity) = body.capacity {
        check_capacity(&mut errors, capacity);
    }
    check_references(&db, &mut errors, body.course_id, body.teacher_id).await?;
    errors.into_result()?;
    let changes = SectionChanges {
        course_id: body.course_id,
        section_code,
        term,
        teacher_id: body.teacher_id,
        capacity: body.capacity,
        status: body.status,
    };
    Ok(web::Json(
        store::update(&mut *db.get().await?, id, changes).await?,
    ))
}

/// Deletes a section and its enrollments (managers, registrars, admins).
#[utoipa::path(delete, path = "/api/sections/{id}", tag = "sections", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_section(
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<SectionId>,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    store::delete(&mut *db.get().await?, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lists a section's students (staff, and the section's teacher).
#[utoipa::path(get, path = "/api/sections/{id}/enrollments", tag = "sections", security(("bearer" = [])),
    params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = Paginated<Enrollment>), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_enrollments(
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<SectionId>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<Enrollment>>, AppError> {
    let page = page.into_inner().page()?;
    let mut conn = db.get().await?;
    let section = store::find(&mut conn, id.into_inner()).await?;
    if !(auth.role().is_staff() || section.teacher_id == auth.id()) {
        return Err(AppError::Forbidden(
            "only staff and the section's teacher see its students",
        ));
    }
    let (items, total) = enrollments::list(&mut conn, section.id, page).await?;
    Ok(web::Json(Paginated { items, total }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub student_id: UserId,
}

/// Enrolls a student (managers, registrars, admins); the live announcements
/// of the section, its course and all students reach them at once.
#[utoipa::path(post, path = "/api/sections/{id}/enrollments", tag = "sections", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = EnrollRequest,
    responses(
        (status = 201, body = Enrollment),
        (status = 400, description = "not an active student", body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "`already_enrolled`, `section_full` or `section_archived`", body = crate::error::ErrorBody),
    ))]
pub async fn enroll(
    db: web::Data<DbPool>,
    bus: web::Data<EventBus>,
    auth: AuthUser,
    id: web::Path<SectionId>,
    body: web::Json<EnrollRequest>,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    let (enrollment, reached) =
        enrollments::enroll(&mut *db.get().await?, id.into_inner(), body.student_id).await?;
    reach::reached(&bus, &reached);
    Ok(HttpResponse::Created().json(enrollment))
}

/// Removes a student from a section (managers, registrars, admins); their
/// unacknowledged deliveries that came only through it are retracted.
#[utoipa::path(delete, path = "/api/sections/{id}/enrollments/{student_id}", tag = "sections", security(("bearer" = [])),
    params(("id" = i64, Path), ("student_id" = i64, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn withdraw(
    db: web::Data<DbPool>,
    bus: web::Data<EventBus>,
    auth: AuthUser,
    path: web::Path<(SectionId, UserId)>,
) -> Result<HttpResponse, AppError> {
    auth.require_staff()?;
    let (section_id, student_id) = path.into_inner();
    let retracted = enrollments::withdraw(&mut *db.get().await?, section_id, student_id).await?;
    reach::retracted(&bus, &retracted);
    Ok(HttpResponse::NoContent().finish())
}

/// A student's own sections, or the sections a teacher teaches.
#[utoipa::path(get, path = "/api/me/sections", tag = "sections", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = Paginated<SectionView>)))]
pub async fn my_sections(
    db: web::Data<DbPool>,
    auth: AuthUser,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<SectionView>>, AppError> {
    let page = page.into_inner().page()?;
    let filter = match auth.role() {
        Role::Student => SectionFilter {
            student: Some(auth.id()),
            ..SectionFilter::default()
        },
        _ => SectionFilter {
            teacher: Some(auth.id()),
            ..SectionFilter::default()
        },
    };
    let (items, total) = store::list(&mut *db.get().await?, &filter, page).await?;
    Ok(web::Json(Paginated { items, total }))
}
