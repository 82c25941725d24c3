//! `/auth/*`: the account loop.

use actix_web::{HttpResponse, web};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AuthUser;
use super::extract::ClientAddr;
use super::hashing::Hasher;
use super::jwt::JwtKeys;
use super::password::{self, Owner, RuleOutcome};
use super::store::{self, Refresh};
use super::throttle::{self, Limit};
use crate::config;
use crate::db::DbPool;
use crate::error::{AppError, Code, FieldError, FieldErrors};
use crate::events::{Event, EventBus};
use crate::http::resource;
use crate::locale::Locale;
use crate::redis::Redis;
use crate::users::accounts::{self, NewAccount};
use crate::users::model::{Role, User, UserView};
use crate::users::store as user_store;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/register").route(web::post().to(register)))
        .service(resource("/auth/password-policy").route(web::post().to(password_policy)))
        .service(resource("/auth/login").route(web::post().to(login)))
        .service(resource("/auth/refresh").route(web::post().to(refresh)))
        .service(resource("/auth/logout").route(web::post().to(logout)))
        .service(
            resource("/auth/me")
                .route(web::get().to(me))
                .route(web::patch().to(update_me)),
        )
        .service(resource("/auth/change-password").route(web::post().to(change_password)));
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–150 letters, digits, `.`, `_` and `-`.
    #[schema(min_length = 3, max_length = 150, pattern = "^[A-Za-z0-9._-]+$")]
    pub username: String,
    #[schema(max_length = 254, format = Email)]
    pub email: String,
    /// The password rules (`POST /auth/password-policy`) apply on top.
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    /// How to be called (any script, 1–100 characters); the username when absent.
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
}

/// Creates a student account, when the registration policy admits the address.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = UserView),
        (status = 400, description = "invalid fields; `fields.password` lists every failed rule, `fields.email` an address the policy does not admit", body = crate::error::ErrorBody),
        (status = 403, description = "registration is closed", body = crate::error::ErrorBody),
        (status = 409, description = "username or email taken", body = crate::error::ErrorBody),
        (status = 429, description = "too many requests from this address; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "too many password checks at once; try again after Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn register(
    db: web::Data<DbPool>,
    hasher: web::Data<Hasher>,
    redis: web::Data<Redis>,
    auth_settings: web::Data<config::Auth>,
    policy: web::Data<config::Registration>,
    client: ClientAddr,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, AppError> {
    match policy.get_ref() {
        config::Registration::Closed => {
            return Err(AppError::Forbidden(
                "registration is closed: the school creates accounts",
            ));
        }
        config::Registration::Domains(domains) if !policy.admits(&body.email) => {
            return Err(AppError::field(
                "email",
                FieldError::new(Code::Domain).with("domains", domains.join(", ")),
            ));
        }
        _ => {}
    }
    let per_client = throttle::account_requests(&client, &auth_settings);
    throttle::take_or_refuse(
        &redis,
        &[per_client],
        "too many registrations from this address",
    )
    .await?;
    let account = NewAccount {
        display_name: body.display_name.as_deref(),
        ..NewAccount::named(&body.username, &body.email, Role::Student)
    };
    let user = accounts::create(&db, &hasher, &account, Some(&body.password)).await?;
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
    #[schema(min_length = 1, max_length = 254)]
    pub username: String,
    #[schema(min_length = 1, max_length = 128)]
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
pub async fn login(
    hasher: web::Data<Hasher>,
    auth_settings: web::Data<config::Auth>,
    redis: web::Data<Redis>,
    db: web::Data<DbPool>,
    jwt: web::Data<JwtKeys>,
    client: ClientAddr,
    body: web::Json<LoginRequest>,
) -> Result<web::Json<TokenResponse>, AppError> {
    let login = body.username.trim();
    let mut errors = FieldErrors::new();
    if login.is_empty() {
        errors.add("username", Code::Required);
    }
    if body.password.is_empty() {
        errors.add("password", Code::Required);
    } else if body.password.chars().count() > password::MAX_LENGTH {
        // No password that long exists; refused before anything is hashed.
        errors.add("password", FieldError::too_long(password::MAX_LENGTH));
    }
    errors.into_result()?;

    // The address first, before any query: a flood from one address stops here.
    let per_client = Limit {
        scope: "login-ip",
        subject: &client.0,
        max: auth_settings.login_max_failures_per_ip,
        window_secs: auth_settings.login_throttle_window_secs,
    };
    let too_many = "too many failed sign-ins; try again later";
    throttle::take_or_refuse(&redis, std::slice::from_ref(&per_client), too_many).await?;
    let user = user_store::find_by_login(&mut *db.get().await?, login).await?;
    // Failures count per account, whichever of its identifiers was typed.
    let account = match &user {
        Some(user) => format!("user:{}", user.id),
        None => format!("name:{}", login.to_lowercase()),
    };
    let per_user = Limit {
        scope: "login-user",
        subject: &account,
        max: auth_settings.login_max_failures,
        window_secs: auth_settings.login_throttle_window_secs,
    };
    throttle::take_or_refuse(&redis, std::slice::from_ref(&per_user), too_many).await?;

    // An unknown user, or one whose invitation is not accepted yet, is
    // checked against a decoy: the same work, and never a match.
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let has_password = stored.is_some();
    let stored = stored.unwrap_or_else(|| password::DECOY_HASH.clone());
    let matches = hasher.verify(&body.password, &stored).await? && has_password;
    match user {
        Some(user) if matches && user.is_active => {
            throttle::clear(&redis, &per_user).await?;
            throttle::give_back(&redis, &per_client).await?;
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
        } => Ok(web::Json(tokens(&jwt, *user, session, refresh_token)?)),
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
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// `en` or `zh-CN`.
    pub locale: Locale,
}

/// Sets the signed-in user's language (the app and their mails follow it).
#[utoipa::path(patch, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, body = UserView),
        (status = 400, description = "not a language classbell speaks", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub async fn update_me(
    db: web::Data<DbPool>,
    auth: AuthUser,
    body: web::Json<UpdateMeRequest>,
) -> Result<web::Json<UserView>, AppError> {
    let user = user_store::set_locale(&mut *db.get().await?, auth.id(), body.locale).await?;
    Ok(web::Json(user.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    #[schema(min_length = 1, max_length = 128)]
    pub current_password: String,
    #[schema(min_length = 10, max_length = 128)]
    pub new_password: String,
}

/// Changes the password and ends every session, this one included.
#[utoipa::path(post, path = "/auth/change-password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 429, description = "too many wrong current passwords; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "too many password checks at once; try again after Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn change_password(
    hasher: web::Data<Hasher>,
    redis: web::Data<Redis>,
    auth_settings: web::Data<config::Auth>,
    db: web::Data<DbPool>,
    bus: web::Data<EventBus>,
    auth: AuthUser,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let user = auth.user;
    // Counted before the check, like sign-ins: guessing the current password
    // through this form is as slow as signing in.
    let account = format!("user:{}", user.id);
    let checks = Limit {
        scope: "password-check",
        subject: &account,
        max: auth_settings.login_max_failures,
        window_secs: auth_settings.login_throttle_window_secs,
    };
    throttle::take_or_refuse(
        &redis,
        std::slice::from_ref(&checks),
        "too many wrong passwords; try again later",
    )
    .await?;
    // No password is that long: wrong without hashing it.
    let possible = body.current_password.chars().count() <= password::MAX_LENGTH;
    let Some(current_hash) = user.password_hash.as_deref().filter(|_| possible) else {
        return Err(AppError::field("current_password", Code::Incorrect));
    };
    if !hasher.verify(&body.current_password, current_hash).await? {
        return Err(AppError::field("current_password", Code::Incorrect));
    }
    let owner = Owner {
        username: Some(&user.username),
        email: Some(&user.email),
    };
    password::enforce(&body.new_password, owner, "new_password")?;
    throttle::clear(&redis, &checks).await?;
    let password_hash = hasher.hash(&body.new_password).await?;
    store::replace_password(&mut *db.get().await?, user.id, &password_hash).await?;
    bus.publish(Event::SignedOut {
        user_id: user.id,
        session: None,
    });
    Ok(HttpResponse::NoContent().finish())
}
