//! `/api/deliveries` and `/api/unread_count`: a recipient's inbox.

use actix::Addr;
use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::model::{DeliveryState, DeliveryStatus, InboxItem};
use super::store;
use super::writer::{self, DeliveryWriter, Transition};
use crate::auth::AuthClaims;
use crate::auth::AuthUser;
use crate::db::DbPool;
use crate::error::AppError;
use crate::http::resource;
use crate::ids::DeliveryId;
use crate::pagination::{PageQuery, Paginated};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/deliveries").route(web::get().to(inbox)))
        .service(resource("/api/deliveries/{id}/delivered").route(web::post().to(mark_delivered)))
        .service(resource("/api/deliveries/{id}/ack").route(web::post().to(acknowledge)))
        .service(resource("/api/unread_count").route(web::get().to(unread_count)));
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct InboxQuery {
    pub state: Option<DeliveryState>,
}

/// The caller's inbox, newest first; withdrawn announcements are left out.
#[utoipa::path(get, path = "/api/deliveries", tag = "deliveries", security(("bearer" = [])),
    params(InboxQuery, PageQuery),
    responses((status = 200, body = Paginated<InboxItem>)))]
pub async fn inbox(
    db: web::Data<DbPool>,
    auth: AuthUser,
    query: web::Query<InboxQuery>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<InboxItem>>, AppError> {
    let page = page.into_inner().page()?;
    let (items, total) = store::inbox(&mut *db.get().await?, auth.id(), query.state, page).await?;
    Ok(web::Json(Paginated { items, total }))
}

async fn transition(
    writer: &Addr<DeliveryWriter>,
    auth: AuthClaims,
    delivery_id: DeliveryId,
    to: DeliveryState,
) -> Result<web::Json<DeliveryStatus>, AppError> {
    let request = Transition {
        delivery_id,
        user_id: auth.user_id,
        session: auth.claims.sid,
        to,
    };
    Ok(web::Json(writer::transition(writer, request).await?.status))
}

/// Marks the delivery delivered (the recipient has seen it). Repeats change nothing.
#[utoipa::path(post, path = "/api/deliveries/{id}/delivered", tag = "deliveries", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = DeliveryStatus),
        (status = 404, description = "not the caller's delivery", body = crate::error::ErrorBody),
    ))]
pub async fn mark_delivered(
    writer: web::Data<Addr<DeliveryWriter>>,
    auth: AuthClaims,
    id: web::Path<DeliveryId>,
) -> Result<web::Json<DeliveryStatus>, AppError> {
    transition(&writer, auth, id.into_inner(), DeliveryState::Delivered).await
}

/// Acknowledges the delivery (stamping delivered too if it was still queued).
#[utoipa::path(post, path = "/api/deliveries/{id}/ack", tag = "deliveries", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = DeliveryStatus),
        (status = 404, description = "not the caller's delivery", body = crate::error::ErrorBody),
    ))]
pub async fn acknowledge(
    writer: web::Data<Addr<DeliveryWriter>>,
    auth: AuthClaims,
    id: web::Path<DeliveryId>,
) -> Result<web::Json<DeliveryStatus>, AppError> {
    transition(&writer, auth, id.into_inner(), DeliveryState::Acknowledged).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    pub unread: i64,
}

/// Deliveries not yet acknowledged, of announcements not withdrawn.
#[utoipa::path(get, path = "/api/unread_count", tag = "deliveries", security(("bearer" = [])),
    responses((status = 200, body = UnreadCount)))]
pub async fn unread_count(
    db: web::Data<DbPool>,
    auth: AuthUser,
) -> Result<web::Json<UnreadCount>, AppError> {
    let unread = store::unread_count(&mut *db.get().await?, auth.id()).await?;
    Ok(web::Json(UnreadCount { unread }))
}
