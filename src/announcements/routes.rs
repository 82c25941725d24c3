//! `/api/announcements`: publish, follow and remind.

use actix::Addr;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::audience::Audience;
use super::fanout::{FANOUT_SUPERVISOR, FanoutSupervisor, Kick, StopFanout};
use super::model::{
    Announcement, AnnouncementStats, AnnouncementStatus, AnnouncementView, NewAnnouncement, Unacked,
};
use super::reminders;
use super::store::{self, AnnouncementChanges};
use crate::auth::AuthUser;
use crate::config;
use crate::courses::store as courses;
use crate::db::DbPool;
use crate::deliveries::store as deliveries;
use crate::error::{AppError, Code, FieldError, FieldErrors};
use crate::events::{Event, EventBus};
use crate::http::resource;
use crate::ids::AnnouncementId;
use crate::mail::Postage;
use crate::pagination::{PageQuery, Paginated};
use crate::sections::store as sections;
use crate::telemetry::mailbox;
use crate::users::model::Role;
use crate::validate::{future_time, short_text};

const MAX_BODY: usize = 20_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/announcements")
            .route(web::get().to(list_announcements))
            .route(web::post().to(create_announcement)),
    )
    .service(
        resource("/api/announcements/{id}")
            .route(web::get().to(get_announcement))
            .route(web::patch().to(update_announcement)),
    )
    .service(
        resource("/api/announcements/{id}/publish").route(web::post().to(publish_announcement)),
    )
    .service(
        resource("/api/announcements/{id}/withdraw").route(web::post().to(withdraw_announcement)),
    )
    .service(resource("/api/announcements/{id}/stats").route(web::get().to(announcement_stats)))
    .service(
        resource("/api/announcements/{id}/remind_unacked").route(web::post().to(remind_unacked)),
    )
    .service(resource("/api/announcements/{id}/unacked").route(web::get().to(list_unacked)));
}

/// Whether the caller may address `audience`: staff anyone; a teacher their
/// sections and the courses they teach in (and all students if the school
/// allows it); students no one. An audience that does not exist is a 400.
async fn check_audience(
    db: &DbPool,
    policy: &config::Announcements,
    auth: &AuthUser,
    audience: Audience,
) -> Result<(), AppError> {
    let mut conn = db.get().await?;
    let teacher_of_section = match audience {
        Audience::AllStudents => None,
        Audience::Course { course_id } => {
            courses::find(&mut conn, course_id).await.map_err(|_| {
                AppError::field(
                    "audience",
                    FieldError::new(Code::NoSuch).with("what", "course"),
                )
            })?;
            None
        }
        Audience::Section { section_id } => Some(
            sections::find(&mut conn, section_id)
                .await
                .map_err(|_| {
                    AppError::field(
                        "audience",
                        FieldError::new(Code::NoSuch).with("what", "section"),
                    )
                })?
                .teacher_id,
        ),
    };
    let allowed = match auth.role() {
        role if role.is_staff() => true,
        Role::Teacher => match audience {
            Audience::AllStudents => policy.teachers_may_announce_to_all,
            Audience::Course { course_id } => {
                sections::teaches_course(&mut conn, auth.id(), course_id).await?
            }
            Audience::Section { .. } => teacher_of_section == Some(auth.id()),
        },
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(AppError::Forbidden("you may not publish to this audience"))
    }
}

/// The announcement, if the caller may follow it (`store::find_visible`).
async fn visible(
    db: &DbPool,
    auth: &AuthUser,
    id: AnnouncementId,
) -> Result<Announcement, AppError> {
    store::find_visible(&mut *db.get().await?, id, auth.id(), auth.role()).await
}

fn body_text(errors: &mut FieldErrors, raw: &str) -> String {
    if raw.trim().is_empty() {
        errors.add("body", Code::Blank);
    } else if raw.chars().count() > MAX_BODY {
        errors.add("body", FieldError::too_long(MAX_BODY));
    }
    raw.to_owned()
}

/// Tells the fan-out supervisor about a freshly published announcement.
fn announce_published(fanout: &Addr<FanoutSupervisor>, announcement: &Announcement) {
    if announcement.status == AnnouncementStatus::Published {
        mailbox::tell(fanout, FANOUT_SUPERVISOR, Kick);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAnnouncementRequest {
    pub title: String,
    /// Plain text or Markdown.
    pub body: String,
    pub audience: Audience,
    /// In the future: publish then (scheduled). RFC 3339, or a local
    /// `YYYY-MM-DDTHH:MM` on the school's clock (`CLASSBELL_TIMEZONE`).
    pub publish_at: Option<String>,
    /// Keep as a draft.
    #[serde(default)]
    pub draft: bool,
}

/// Publishes now (default), at `publish_at`, or keeps a draft.
#[utoipa::path(post, path = "/api/announcements", tag = "announcements", security(("bearer" = [])),
    request_body = CreateAnnouncementRequest,
    responses(
        (status = 201, body = AnnouncementView),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, description = "not allowed to publish to that audience", body = crate::error::ErrorBody),
    ))]
pub async fn create_announcement(
    db: web::Data<DbPool>,
    policy: web::Data<config::Announcements>,
    school: web::Data<config::School>,
    fanout: web::Data<Addr<FanoutSupervisor>>,
    auth: AuthUser,
    body: web::Json<CreateAnnouncementRequest>,
) -> Result<HttpResponse, AppError> {
    if auth.role() == Role::Student {
        return Err(AppError::Forbidden("students do not publish announcements"));
    }
    let body = body.into_inner();
    let mut errors = FieldErrors::new();
    let title = short_text(&mut errors, "title", &body.title, 200);
    let text = body_text(&mut errors, &body.body);
    let publish_at = body
        .publish_at
        .as_deref()
        .and_then(|at| future_time(&mut errors, "publish_at", &school, at));
    errors.into_result()?;
    check_audience(&db, &policy, &auth, body.audience).await?;
    let status = match (body.draft, publish_at) {
        (true, _) => AnnouncementStatus::Draft,
        (false, Some(_)) => AnnouncementStatus::Scheduled,
        (false, None) => AnnouncementStatus::Published,
    };
    let new = NewAnnouncement {
        title,
        body: text,
        audience_kind: body.audience.kind(),
        audience_id: body.audience.id(),
        publisher_id: auth.id(),
        status,
        publish_at,
        published_at: (status == AnnouncementStatus::Published).then(Utc::now),
    };
    let mut conn = db.get().await?;
    let announcement = store::insert(&mut conn, new).await?;
    announce_published(&fanout, &announcement);
    Ok(HttpResponse::Created().json(store::view(&mut conn, announcement).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AnnouncementQuery {
    pub status: Option<AnnouncementStatus>,
}

/// A teacher's own announcements; staff see all. Newest first.
#[utoipa::path(get, path = "/api/announcements", tag = "announcements", security(("bearer" = [])),
    params(AnnouncementQuery, PageQuery),
    responses((status = 200, body = Paginated<AnnouncementView>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_announcements(
    db: web::Data<DbPool>,
    auth: AuthUser,
    query: web::Query<AnnouncementQuery>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<AnnouncementView>>, AppError> {
    let page = page.into_inner().page()?;
    let publisher = match auth.role() {
        role if role.is_staff() => None,
        Role::Teacher => Some(auth.id()),
        _ => {
            return Err(AppError::Forbidden(
                "students read announcements in their inbox",
            ));
        }
    };
    let mut conn = db.get().await?;
    let (items, total) = store::list(&mut conn, publisher, query.status, page).await?;
    Ok(web::Json(Paginated {
        items: store::views(&mut conn, items).await?,
        total,
    }))
}

#[utoipa::path(get, path = "/api/announcements/{id}", tag = "announcements", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = AnnouncementView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_announcement(
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
) -> Result<web::Json<AnnouncementView>, AppError> {
    let announcement = visible(&db, &auth, id.into_inner()).await?;
    Ok(web::Json(
        store::view(&mut *db.get().await?, announcement).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAnnouncementRequest {
    pub title: Option<String>,
    pub body: Option<String>,
    pub audience: Option<Audience>,
    /// A future time schedules it (as for creation); `null` makes it a
    /// draft again.
    #[serde(default, with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub publish_at: Option<Option<String>>,
}

/// Edits a draft or scheduled announcement (its publisher or staff).
#[utoipa::path(patch, path = "/api/announcements/{id}", tag = "announcements", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = UpdateAnnouncementRequest,
    responses(
        (status = 200, body = AnnouncementView),
        (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "already published or withdrawn", body = crate::error::ErrorBody),
    ))]
pub async fn update_announcement(
    db: web::Data<DbPool>,
    policy: web::Data<config::Announcements>,
    school: web::Data<config::School>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
    body: web::Json<UpdateAnnouncementRequest>,
) -> Result<web::Json<AnnouncementView>, AppError> {
    let current = visible(&db, &auth, id.into_inner()).await?;
    let body = body.into_inner();
    let mut errors = FieldErrors::new();
    let title = body
        .title
        .map(|t| short_text(&mut errors, "title", &t, 200));
    let text = body.body.map(|b| body_text(&mut errors, &b));
    let publish_at = body
        .publish_at
        .map(|at| at.and_then(|at| future_time(&mut errors, "publish_at", &school, &at)));
    errors.into_result()?;
    if let Some(audience) = body.audience {
        check_audience(&db, &policy, &auth, audience).await?;
    }
    let changes = AnnouncementChanges {
        title,
        body: text,
        audience_kind: body.audience.map(Audience::kind),
        audience_id: body.audience.map(Audience::id),
        status: publish_at.map(|at| match at {
            Some(_) => AnnouncementStatus::Scheduled,
            None => AnnouncementStatus::Draft,
        }),
        publish_at,
    };
    let mut conn = db.get().await?;
    let updated = store::update_unpublished(&mut conn, current.id, changes).await?;
    Ok(web::Json(store::view(&mut conn, updated).await?))
}

/// Publishes a draft or scheduled announcement now (idempotent for published ones).
#[utoipa::path(post, path = "/api/announcements/{id}/publish", tag = "announcements", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = AnnouncementView),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "withdrawn", body = crate::error::ErrorBody),
    ))]
pub async fn publish_announcement(
    db: web::Data<DbPool>,
    policy: web::Data<config::Announcements>,
    fanout: web::Data<Addr<FanoutSupervisor>>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
) -> Result<web::Json<AnnouncementView>, AppError> {
    let current = visible(&db, &auth, id.into_inner()).await?;
    check_audience(&db, &policy, &auth, current.audience()).await?;
    let mut conn = db.get().await?;
    let announcement = store::publish(&mut conn, current.id).await?;
    announce_published(&fanout, &announcement);
    Ok(web::Json(store::view(&mut conn, announcement).await?))
}

/// Withdraws: stops the fan-out and hides it from every inbox. Idempotent.
#[utoipa::path(post, path = "/api/announcements/{id}/withdraw", tag = "announcements", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = AnnouncementView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn withdraw_announcement(
    db: web::Data<DbPool>,
    fanout: web::Data<Addr<FanoutSupervisor>>,
    bus: web::Data<EventBus>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
) -> Result<web::Json<AnnouncementView>, AppError> {
    let current = visible(&db, &auth, id.into_inner()).await?;
    let mut conn = db.get().await?;
    let (announcement, changed) = store::withdraw(&mut conn, current.id).await?;
    if changed {
        let stop = StopFanout {
            announcement_id: announcement.id,
        };
        mailbox::tell(&fanout, FANOUT_SUPERVISOR, stop);
        bus.publish(Event::AnnouncementWithdrawn {
            announcement_id: announcement.id,
        });
    }
    Ok(web::Json(store::view(&mut conn, announcement).await?))
}

/// Delivery figures for the publisher.
#[utoipa::path(get, path = "/api/announcements/{id}/stats", tag = "announcements", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = AnnouncementStats), (status = 404, body = crate::error::ErrorBody)))]
pub async fn announcement_stats(
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
) -> Result<web::Json<AnnouncementStats>, AppError> {
    let announcement = visible(&db, &auth, id.into_inner()).await?;
    Ok(web::Json(
        store::stats(&mut *db.get().await?, &announcement).await?,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reminded {
    pub reminded: usize,
}

/// Reminds everyone who has not acknowledged, in the app and by mail. Once
/// per cooldown per announcement; sooner → 429 with `Retry-After`.
#[utoipa::path(post, path = "/api/announcements/{id}/remind_unacked", tag = "announcements", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = Reminded),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "not published", body = crate::error::ErrorBody),
        (status = 429, description = "reminded too recently", body = crate::error::ErrorBody),
    ))]
pub async fn remind_unacked(
    db: web::Data<DbPool>,
    policy: web::Data<config::Announcements>,
    bus: web::Data<EventBus>,
    postage: web::Data<Postage>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
) -> Result<web::Json<Reminded>, AppError> {
    let announcement = visible(&db, &auth, id.into_inner()).await?;
    let reminded =
        reminders::remind(&db, &postage, &announcement, policy.reminder_cooldown_secs).await?;
    postage.post();
    // One event for all of them: each node looks up its own connected recipients.
    bus.publish(Event::RemindersSent {
        announcement_id: announcement.id,
    });
    bus.publish(Event::AnnouncementStats {
        announcement_id: announcement.id,
    });
    Ok(web::Json(Reminded {
        reminded: reminded.len(),
    }))
}

/// Who has not acknowledged yet.
#[utoipa::path(get, path = "/api/announcements/{id}/unacked", tag = "announcements", security(("bearer" = [])),
    params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = Paginated<Unacked>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_unacked(
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<Unacked>>, AppError> {
    let page = page.into_inner().page()?;
    let announcement = visible(&db, &auth, id.into_inner()).await?;
    let (items, total) = deliveries::unacked(&mut *db.get().await?, announcement.id, page).await?;
    Ok(web::Json(Paginated { items, total }))
}
