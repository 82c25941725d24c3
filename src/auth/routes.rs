//! `/auth/*`: the account loop.

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AuthUser;
use super::extract::{TrustedProxies, client_addr};
use super::hashing::Hasher;
use super::jwt::JwtKeys;
use super::password::{self, Owner, RuleOutcome};
use super::store::{self, Refresh};
use super::throttle::{self, Limit};
use crate::config;
use crate::db::DbPool;
use crate::error::{AppError, FieldErrors};
use crate::events::Event;
use crate::events::EventBus;
use crate::http::resource;
use crate::mail::Mailer;
use crate::mail::{MAILER, templates};
use crate::redis::Redis;
use crate::telemetry::mailbox;
use crate::users::accounts;
use crate::users::fields::Email;
use crate::users::model::{Role, User, UserView};
use crate::users::store as user_store;

/// Mail requests per address per hour before further ones are quietly dropped.
const MAIL_REQUESTS_PER_HOUR: u32 = 5;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/register").route(web::post().to(register)))
        .service(resource("/auth/password-policy").route(web::post().to(password_policy)))
        .service(resource("/auth/login").route(web::post().to(login)))
        .service(resource("/auth/refresh").route(web::post().to(refresh)))
        .service(resource("/auth/logout").route(web::post().to(logout)))
        .service(resource("/auth/me").route(web::get().to(me)))
        .service(resource("/auth/change-password").route(web::post().to(change_password)))
        .service(resource("/auth/forgot-username").route(web::post().to(forgot_username)))
        .service(resource("/auth/forgot-password").route(web::post().to(forgot_password)))
        .service(resource("/auth/reset-password").route(web::post().to(reset_password)));
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub username: String,
    pub email: String,
    pub password: String,
}

/// Creates a student account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = UserView),
        (status = 400, description = "invalid fields; `fields.password` lists every failed rule", body = crate::error::ErrorBody),
        (status = 409, description = "username or email taken", body = crate::error::ErrorBody),
        (status = 503, description = "too many password checks at once; try again after Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn register(
    db: web::Data<DbPool>,
    hasher: web::Data<Hasher>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, AppError> {
    let user = accounts::create(
        &db,
        &hasher,
        &body.username,
        &body.email,
        &body.password,
        Role::Student,
    )
    .await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordPolicyRequest {
    pub password: String,
    pub username: Option<String>,
    pub email: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordPolicyResponse {
    pub ok: bool,
    pub rules: Vec<RuleOutcome>,
}

/// Checks a candidate password against every rule, for forms that tick them live.
#[utoipa::path(post, path = "/auth/password-policy", tag = "auth", request_body = PasswordPolicyRequest,
    responses((status = 200, body = PasswordPolicyResponse)))]
pub async fn password_policy(
    body: web::Json<PasswordPolicyRequest>,
) -> web::Json<PasswordPolicyResponse> {
    let rules = password::evaluate(
        &body.password,
        Owner {
            username: body.username.as_deref(),
            email: body.email.as_deref(),
        },
    );
    web::Json(PasswordPolicyResponse {
        ok: rules.iter().all(|rule| rule.ok),
        rules,
    })
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username or email address.
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user: UserView,
}

fn tokens(
    jwt: &JwtKeys,
    user: User,
    session: uuid::Uuid,
    refresh_token: String,
) -> Result<TokenResponse, AppError> {
    Ok(TokenResponse {
        access_token: jwt.issue(user.id, user.role, session)?,
        refresh_token,
        token_type: "Bearer",
        expires_in: jwt.ttl_secs(),
        user: user.into(),
    })
}

fn refresh_ttl(settings: &config::Auth) -> Duration {
    config::seconds(settings.refresh_token_ttl_secs)
}

/// Signs in with a username or email and returns an access and a refresh token.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, description = "a field is missing, or the password is longer than any password can be", body = crate::error::ErrorBody),
        (status = 401, description = "wrong credentials (same answer whether the user exists or not)", body = crate::error::ErrorBody),
        (status = 429, description = "too many failures for this username or address; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "too many password checks at once; try again after Retry-After", body = crate::error::ErrorBody),
    ))]
#[allow(clippy::too_many_arguments)]
pub async fn login(
    hasher: web::Data<Hasher>,
    proxies: web::Data<TrustedProxies>,
    auth_settings: web::Data<config::Auth>,
    redis: web::Data<Redis>,
    db: web::Data<DbPool>,
    jwt: web::Data<JwtKeys>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<web::Json<TokenResponse>, AppError> {
    let login = body.username.trim();
    let mut errors = FieldErrors::new();
    if login.is_empty() {
        errors.add("username", "is required");
    }
    if body.password.is_empty() {
        errors.add("password", "is required");
    } else if body.password.chars().count() > password::MAX_LENGTH {
        // No password that long exists; refused before anything is hashed.
        errors.add("password", "is longer than any password can be");
    }
    errors.into_result()?;

    let user = user_store::find_by_login(&mut *db.get().await?, login).await?;
    // Failures count per account, whichever of its identifiers was typed.
    let account = match &user {
        Some(user) => format!("user:{}", user.id),
        None => format!("name:{}", login.to_lowercase()),
    };
    let client = client_addr(&req, &proxies);
    let per_user = Limit {
        scope: "login-user",
        subject: &account,
        max: auth_settings.login_max_failures,
        window_secs: auth_settings.login_throttle_window_secs,
    };
    let per_client = Limit {
        scope: "login-ip",
        subject: &client,
        max: auth_settings.login_max_failures_per_ip,
        window_secs: auth_settings.login_throttle_window_secs,
    };
    let limits = [per_user, per_client];
    if let Some(retry_after_secs) = throttle::take(&redis, &limits).await? {
        return Err(AppError::TooManyRequests {
            message: "too many failed sign-ins; try again later",
            retry_after_secs,
        });
    }

    let stored = user
        .as_ref()
        .map_or_else(|| password::DECOY_HASH.clone(), |u| u.password_hash.clone());
    let matches = hasher.verify(&body.password, &stored).await?;
    match user {
        Some(user) if matches && user.is_active => {
            throttle::clear(&redis, &limits[0]).await?;
            throttle::give_back(&redis, &limits[1]).await?;
            let (session, refresh_token) =
                store::open_session(&mut *db.get().await?, user.id, refresh_ttl(&auth_settings))
                    .await?;
            Ok(web::Json(tokens(&jwt, user, session, refresh_token)?))
        }
        // Already counted, before the check.
        _ => Err(AppError::Unauthorized("invalid username or password")),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Spends a refresh token for a new pair. Reusing a spent one revokes the session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody)))]
pub async fn refresh(
    db: web::Data<DbPool>,
    auth_settings: web::Data<config::Auth>,
    jwt: web::Data<JwtKeys>,
    body: web::Json<RefreshRequest>,
) -> Result<web::Json<TokenResponse>, AppError> {
    let outcome = store::rotate_refresh_token(
        &mut *db.get().await?,
        body.refresh_token.trim(),
        refresh_ttl(&auth_settings),
    )
    .await?;
    match outcome {
        Refresh::Rotated {
            user,
            session,
            refresh_token,
        } => Ok(web::Json(tokens(&jwt, user, session, refresh_token)?)),
        Refresh::Reused => Err(AppError::Unauthorized(
            "refresh token was already used; the session has been revoked",
        )),
        Refresh::Invalid => Err(AppError::Unauthorized("invalid or expired refresh token")),
    }
}

/// Ends the current session: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody)))]
pub async fn logout(
    db: web::Data<DbPool>,
    bus: web::Data<EventBus>,
    auth: AuthUser,
) -> Result<HttpResponse, AppError> {
    store::revoke_session(&mut *db.get().await?, auth.claims.sid).await?;
    bus.publish(Event::SignedOut {
        user_id: auth.id(),
        session: Some(auth.claims.sid),
    });
    Ok(HttpResponse::NoContent().finish())
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(auth: AuthUser) -> web::Json<UserView> {
    web::Json(auth.user.into())
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the password and ends every session, this one included.
#[utoipa::path(post, path = "/auth/change-password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 503, description = "too many password checks at once; try again after Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn change_password(
    hasher: web::Data<Hasher>,
    db: web::Data<DbPool>,
    bus: web::Data<EventBus>,
    auth: AuthUser,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let user = auth.user;
    if !hasher
        .verify(&body.current_password, &user.password_hash)
        .await?
    {
        return Err(AppError::field("current_password", "is incorrect"));
    }
    let owner = Owner {
        username: Some(&user.username),
        email: Some(&user.email),
    };
    password::enforce(&body.new_password, owner, "new_password")?;
    let password_hash = hasher.hash(&body.new_password).await?;
    store::replace_password(&mut *db.get().await?, user.id, &password_hash).await?;
    bus.publish(Event::SignedOut {
        user_id: user.id,
        session: None,
    });
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub detail: &'static str,
}

/// Parses the address and counts the request against the per-address mail
/// limit; `None` when no mail should go out (quietly, to reveal nothing).
async fn mail_request(
    redis: &Redis,
    db: &DbPool,
    scope: &'static str,
    raw: &str,
) -> Result<Option<User>, AppError> {
    let email = Email::parse(raw).map_err(|reason| AppError::field("email", reason))?;
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
    responses((status = 202, body = Accepted), (status = 400, body = crate::error::ErrorBody)))]
pub async fn forgot_username(
    redis: web::Data<Redis>,
    db: web::Data<DbPool>,
    mailer: web::Data<Addr<Mailer>>,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, AppError> {
    if let Some(user) = mail_request(&redis, &db, "forgot-username", &body.email).await?
        && let Some(mail) = templates::forgot_username(&user.username, &user.email)
    {
        mailbox::tell(&mailer, MAILER, mail);
    }
    Ok(HttpResponse::Accepted().json(Accepted {
        detail: "If an account uses that address, its username is on the way.",
    }))
}

/// Mails a single-use reset link if an account uses the address; answers the same either way.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth", request_body = EmailRequest,
    responses((status = 202, body = Accepted), (status = 400, body = crate::error::ErrorBody)))]
pub async fn forgot_password(
    redis: web::Data<Redis>,
    db: web::Data<DbPool>,
    auth_settings: web::Data<config::Auth>,
    server: web::Data<config::Server>,
    mailer: web::Data<Addr<Mailer>>,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, AppError> {
    if let Some(user) = mail_request(&redis, &db, "forgot-password", &body.email).await? {
        let ttl_secs = auth_settings.reset_token_ttl_secs;
        let ttl = config::seconds(ttl_secs);
        let token = store::create_password_reset(&mut *db.get().await?, user.id, ttl).await?;
        // In the fragment: browsers never send it, so no server's log sees it.
        let link = server.public_link(&format!("/reset-password#token={token}"));
        if let Some(mail) =
            templates::password_reset(&user.username, &user.email, &link, ttl_secs / 60)
        {
            mailbox::tell(&mailer, MAILER, mail);
        }
    }
    Ok(HttpResponse::Accepted().json(Accepted {
        detail: "If an account uses that address, a reset link is on the way.",
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    pub token: String,
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
    let body = body.into_inner();
    let token = body.token.trim().to_owned();
    let invalid = || AppError::field("token", "is invalid, already used or expired");
    let user = store::password_reset_user(&mut *db.get().await?, &token)
        .await?
        .ok_or_else(invalid)?;
    let owner = Owner {
        username: Some(&user.username),
        email: Some(&user.email),
    };
    password::enforce(&body.new_password, owner, "new_password")?;
    let password_hash = hasher.hash(&body.new_password).await?;
    if !store::complete_password_reset(&mut *db.get().await?, &token, user.id, &password_hash)
        .await?
    {
        return Err(invalid());
    }
    bus.publish(Event::SignedOut {
        user_id: user.id,
        session: None,
    });
    Ok(HttpResponse::NoContent().finish())
}
