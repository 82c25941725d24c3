//! Getting into an account by mail: the forgotten username, the password
//! reset by a mailed link, and the invitation staff send with an account
//! they created. The requests answer the same whether or not an account
//! uses the address, so nothing is revealed.

use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ClientAddr;
use super::hashing::Hasher;
use super::password::{self, Owner};
use super::store::{self, TokenPurpose};
use super::throttle::{self, Limit};
use crate::config;
use crate::db::DbPool;
use crate::error::{AppError, Code};
use crate::events::{Event, EventBus};
use crate::http::resource;
use crate::locale::AskedLocale;
use crate::mail::{Postage, templates};
use crate::redis::Redis;
use crate::users::fields::Email;
use crate::users::model::User;
use crate::users::store as user_store;

/// Mail requests per address per hour before further ones are quietly dropped.
const MAIL_REQUESTS_PER_HOUR: u32 = 5;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/forgot-username").route(web::post().to(forgot_username)))
        .service(resource("/auth/forgot-password").route(web::post().to(forgot_password)))
        .service(resource("/auth/reset-password").route(web::post().to(reset_password)))
        .service(resource("/auth/accept-invitation").route(web::post().to(accept_invitation)));
}

#[derive(Deserialize, ToSchema)]
pub struct EmailRequest {
    #[schema(max_length = 254, format = Email)]
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub detail: &'static str,
}

/// Parses the address and counts the request against the caller's address
/// (429 past its limit) and the mailbox's limit (`None` past it, quietly:
/// nothing about the account is revealed).
async fn mail_request(
    redis: &Redis,
    db: &DbPool,
    asker: (&ClientAddr, &config::Auth),
    scope: &'static str,
    raw: &str,
) -> Result<Option<User>, AppError> {
    let email = Email::parse(raw).map_err(|reason| AppError::field("email", reason))?;
    let (client, settings) = asker;
    let per_client = throttle::account_requests(client, settings);
    throttle::take_or_refuse(redis, &[per_client], "too many requests from this address").await?;
    let limit = Limit {
        scope,
        subject: email.as_str(),
        max: MAIL_REQUESTS_PER_HOUR,
        window_secs: 3600,
    };
    if !throttle::allow(redis, &[limit]).await? {
        tracing::info!(scope, "mail request over its hourly limit; not sending");
        return Ok(None);
    }
    user_store::find_active_by_email(&mut *db.get().await?, email.as_str()).await
}

/// Mails the username to the address if an account uses it; answers the same either way.
#[utoipa::path(post, path = "/auth/forgot-username", tag = "auth", request_body = EmailRequest,
    responses(
        (status = 202, body = Accepted),
        (status = 400, body = crate::error::ErrorBody),
        (status = 429, description = "too many requests from this address; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn forgot_username(
    redis: web::Data<Redis>,
    db: web::Data<DbPool>,
    auth_settings: web::Data<config::Auth>,
    postage: web::Data<Postage>,
    client: ClientAddr,
    asked: AskedLocale,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, AppError> {
    let asker = (&client, auth_settings.as_ref());
    if let Some(user) = mail_request(&redis, &db, asker, "forgot-username", &body.email).await? {
        // Their own choice, else the language their browser asked in.
        let locale = user.locale.or(asked.0);
        let to = postage.recipient(&user.display_name, &user.email, locale);
        let mail = templates::forgot_username(to, &user.username);
        postage.queue(&mut *db.get().await?, [mail]).await?;
        postage.post();
    }
    Ok(HttpResponse::Accepted().json(Accepted {
        detail: "If an account uses that address, its username is on the way.",
    }))
}

/// Mails a single-use reset link if an account uses the address; answers the same either way.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth", request_body = EmailRequest,
    responses(
        (status = 202, body = Accepted),
        (status = 400, body = crate::error::ErrorBody),
        (status = 429, description = "too many requests from this address; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn forgot_password(
    redis: web::Data<Redis>,
    db: web::Data<DbPool>,
    auth_settings: web::Data<config::Auth>,
    postage: web::Data<Postage>,
    client: ClientAddr,
    asked: AskedLocale,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, AppError> {
    let asker = (&client, auth_settings.as_ref());
    if let Some(user) = mail_request(&redis, &db, asker, "forgot-password", &body.email).await? {
        let ttl_secs = auth_settings.reset_token_ttl_secs;
        let ttl = config::seconds(ttl_secs);
        let locale = user.locale.or(asked.0);
        // The token and its mail are stored together, or neither is.
        db.get()
            .await?
            .transaction(async |conn| {
                let token =
                    store::create_password_reset(conn, user.id, TokenPurpose::Reset, ttl).await?;
                // In the fragment: browsers never send it, so no server's log sees it.
                let link = postage.link(&format!("/reset-password#token={token}"));
                let to = postage.recipient(&user.display_name, &user.email, locale);
                let mail = templates::password_reset(to, &link, ttl_secs / 60);
                postage.queue(conn, [mail]).await
            })
            .await?;
        postage.post();
    }
    Ok(HttpResponse::Accepted().json(Accepted {
        detail: "If an account uses that address, a reset link is on the way.",
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    /// From the mailed link.
    #[schema(min_length = 1, max_length = 128)]
    pub token: String,
    #[schema(min_length = 10, max_length = 128)]
    pub new_password: String,
}

/// Sets a new password with a mailed token and ends every session.
#[utoipa::path(post, path = "/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses(
        (status = 204),
        (status = 400, description = "invalid, used or expired token, or a weak password", body = crate::error::ErrorBody),
        (status = 503, description = "too many password checks at once; try again after Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn reset_password(
    hasher: web::Data<Hasher>,
    db: web::Data<DbPool>,
    bus: web::Data<EventBus>,
    body: web::Json<ResetPasswordRequest>,
) -> Result<HttpResponse, AppError> {
    set_password(&hasher, &db, &bus, body.into_inner(), TokenPurpose::Reset).await
}

/// Sets the first password of an account staff created, with the token its
/// invitation mailed (the shape of reset-password).
#[utoipa::path(post, path = "/auth/accept-invitation", tag = "auth", request_body = ResetPasswordRequest,
    responses(
        (status = 204),
        (status = 400, description = "invalid, used or expired token, or a weak password", body = crate::error::ErrorBody),
        (status = 503, description = "too many password checks at once; try again after Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn accept_invitation(
    hasher: web::Data<Hasher>,
    db: web::Data<DbPool>,
    bus: web::Data<EventBus>,
    body: web::Json<ResetPasswordRequest>,
) -> Result<HttpResponse, AppError> {
    set_password(
        &hasher,
        &db,
        &bus,
        body.into_inner(),
        TokenPurpose::Invitation,
    )
    .await
}

/// Spends a mailed token of `purpose` for a new password, under the
/// password rules, and ends every session the account had.
async fn set_password(
    hasher: &Hasher,
    db: &DbPool,
    bus: &EventBus,
    body: ResetPasswordRequest,
    purpose: TokenPurpose,
) -> Result<HttpResponse, AppError> {
    let token = body.token.trim().to_owned();
    let invalid = || AppError::field("token", Code::InvalidToken);
    let user = store::password_reset_user(&mut *db.get().await?, &token, purpose)
        .await?
        .ok_or_else(invalid)?;
    let owner = Owner {
        username: Some(&user.username),
        email: Some(&user.email),
    };
    password::enforce(&body.new_password, owner, "new_password")?;
    let password_hash = hasher.hash(&body.new_password).await?;
    let done = store::complete_password_reset(
        &mut *db.get().await?,
        &token,
        purpose,
        user.id,
        &password_hash,
    )
    .await?;
    if !done {
        return Err(invalid());
    }
    bus.publish(Event::SignedOut {
        user_id: user.id,
        session: None,
    });
    Ok(HttpResponse::NoContent().finish())
}

/// Mails `user` a link to set their first password, valid for
/// CLASSBELL_INVITATION_TTL_SECS; a new invitation voids the earlier ones.
pub async fn send_invitation(
    db: &DbPool,
    postage: &Postage,
    auth_settings: &config::Auth,
    user: &User,
) -> Result<(), AppError> {
    let ttl_secs = auth_settings.invitation_ttl_secs;
    let ttl = config::seconds(ttl_secs);
    db.get()
        .await?
        .transaction(async |conn| {
            let token =
                store::create_password_reset(conn, user.id, TokenPurpose::Invitation, ttl).await?;
            // In the fragment, as for resets: no server's log sees it.
            let link = postage.link(&format!("/accept-invitation#token={token}"));
            let days = ttl_secs.div_ceil(24 * 3600).max(1);
            let to = postage.recipient(&user.display_name, &user.email, user.locale);
            let mail = templates::invitation(to, &user.username, &link, days);
            postage.queue(conn, [mail]).await
        })
        .await?;
    postage.post();
    Ok(())
}
