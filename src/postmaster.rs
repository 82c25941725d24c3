//! `/api/mail`: the mail queue as an admin sees it (who, what kind, which
//! state, the last error; never a mail's text, which may hold a one-time
//! link), and re-sending a mail that failed for good.

use actix_web::web;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::db::DbPool;
use crate::error::AppError;
use crate::http::resource;
use crate::mail::Postage;
use crate::mail::queue::{self, QueuedMail};
use crate::pagination::{PageQuery, Paginated};
use crate::users::model::Role;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/mail").route(web::get().to(list_mail)))
        .service(resource("/api/mail/{id}/resend").route(web::post().to(resend_mail)));
}

/// Which mails to list.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailState {
    Queued,
    Sending,
    Sent,
    Failed,
}

impl MailState {
    fn as_str(self) -> &'static str {
        match self {
            MailState::Queued => "queued",
            MailState::Sending => "sending",
            MailState::Sent => "sent",
            MailState::Failed => "failed",
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct MailQuery {
    /// `failed` (the default): mails that will not be tried again.
    #[param(inline)]
    pub state: Option<MailState>,
}

/// The mail queue in one state, newest first (admins).
#[utoipa::path(get, path = "/api/mail", tag = "ops", security(("bearer" = [])),
    params(MailQuery, PageQuery),
    responses((status = 200, body = Paginated<QueuedMail>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_mail(
    db: web::Data<DbPool>,
    auth: AuthUser,
    query: web::Query<MailQuery>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<QueuedMail>>, AppError> {
    auth.require(&[Role::Admin])?;
    let page = page.into_inner().page()?;
    let state = query.state.unwrap_or(MailState::Failed).as_str();
    let (items, total) = queue::list(&mut *db.get().await?, state, page.limit, page.offset).await?;
    Ok(web::Json(Paginated { items, total }))
}

/// Queues a failed mail again, from its first attempt (admins).
#[utoipa::path(post, path = "/api/mail/{id}/resend", tag = "ops", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = QueuedMail),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, description = "no failed mail with that id", body = crate::error::ErrorBody),
    ))]
pub async fn resend_mail(
    db: web::Data<DbPool>,
    postage: web::Data<Postage>,
    auth: AuthUser,
    id: web::Path<i64>,
) -> Result<web::Json<QueuedMail>, AppError> {
    auth.require(&[Role::Admin])?;
    let mail = queue::resend(&mut *db.get().await?, id.into_inner())
        .await?
        .ok_or(AppError::NotFound("failed mail"))?;
    postage.post();
    Ok(web::Json(mail))
}
