//! `/api/announcements`: publish, follow and remind.

use actix::Addr;
use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::checks::{announce_published, check_audience, visible};
use super::compose;
use super::fanout::{FANOUT_SUPERVISOR, FanoutSupervisor, StopFanout};
use super::model::{AnnouncementStats, AnnouncementStatus, AnnouncementView, Unacked};
use super::reminders;
use super::store;
use super::store::steps::{self, StepRow};
use crate::auth::AuthUser;
use crate::config;
use crate::db::DbPool;
use crate::deliveries::store as deliveries;
use crate::error::AppError;
use crate::events::{Event, EventBus};
use crate::http::resource;
use crate::ids::AnnouncementId;
use crate::mail::Postage;
use crate::pagination::{PageQuery, Paginated};
use crate::telemetry::mailbox;
use crate::users::model::Role;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/announcements")
            .route(web::get().to(list_announcements))
            .route(web::post().to(compose::create_announcement)),
    )
    .service(
        resource("/api/announcements/{id}")
            .route(web::get().to(get_announcement))
            .route(web::patch().to(compose::update_announcement)),
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
    .service(resource("/api/announcements/{id}/unacked").route(web::get().to(list_unacked)))
    .service(
        resource("/api/announcements/{id}/escalation").route(web::get().to(escalation_history)),
    );
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

/// The escalation ladder's steps (planned, run, skipped or cancelled, and
/// whom each reached) and the manual reminders, in time order.
#[utoipa::path(get, path = "/api/announcements/{id}/escalation", tag = "announcements", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<StepRow>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn escalation_history(
    db: web::Data<DbPool>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
) -> Result<web::Json<Vec<StepRow>>, AppError> {
    let announcement = visible(&db, &auth, id.into_inner()).await?;
    Ok(web::Json(
        steps::history(&mut *db.get().await?, announcement.id).await?,
    ))
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
