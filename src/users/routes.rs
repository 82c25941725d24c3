//! `/api/users`: accounts as the school office keeps them. Admins manage
//! every account; registrars manage students and teachers only, so a
//! registrar can never take over a staff account (by its e-mail, say).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::accounts::{self, NewAccount};
use super::fields::{DisplayName, Email, SchoolNumber, parse_field};
use super::model::{Role, User, UserView};
use super::store::{self, UserChanges, UserFilter};
use crate::auth::AuthUser;
use crate::auth::hashing::Hasher;
use crate::auth::recovery;
use crate::auth::store as auth_store;
use crate::config;
use crate::db::DbPool;
use crate::deliveries::reach;
use crate::deliveries::store as deliveries;
use crate::error::{AppError, FieldErrors};
use crate::events::{Event, EventBus};
use crate::http::resource;
use crate::ids::UserId;
use crate::locale::Locale;
use crate::mail::Postage;
use crate::pagination::{PageQuery, Paginated};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/users")
            .route(web::get().to(list_users))
            .route(web::post().to(create_user)),
    )
    .service(resource("/api/users/{id}").route(web::patch().to(update_user)))
    .service(resource("/api/users/{id}/invitation").route(web::post().to(resend_invitation)));
}

/// Whether `manager` may create, edit or invite an account of `role`:
/// admins any; registrars students and teachers.
fn may_manage(manager: &AuthUser, role: Role) -> Result<(), AppError> {
    match manager.role() {
        Role::Admin => Ok(()),
        Role::Registrar if matches!(role, Role::Student | Role::Teacher) => Ok(()),
        Role::Registrar => Err(AppError::Forbidden(
            "registrars manage students and teachers only",
        )),
        _ => Err(AppError::Forbidden(
            "only admins and registrars manage accounts",
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UserQuery {
    /// Matches anywhere in the name, username, school number or e-mail.
    pub q: Option<String>,
    pub role: Option<Role>,
}

/// Lists accounts (admins, managers and registrars).
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    params(UserQuery, PageQuery),
    responses((status = 200, body = Paginated<UserView>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_users(
    db: web::Data<DbPool>,
    auth: AuthUser,
    query: web::Query<UserQuery>,
    page: web::Query<PageQuery>,
) -> Result<web::Json<Paginated<UserView>>, AppError> {
    auth.require(&[Role::Admin, Role::Manager, Role::Registrar])?;
    let page = page.into_inner().page()?;
    let query = query.into_inner();
    let filter = UserFilter {
        q: query.q,
        role: query.role,
    };
    let (users, total) = store::list(&mut *db.get().await?, &filter, page).await?;
    Ok(web::Json(Paginated {
        items: users.into_iter().map(UserView::from).collect(),
        total,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    /// Any script, 1–100 characters.
    pub display_name: String,
    pub email: String,
    pub role: Role,
    /// The school's student or staff number; unique when set.
    pub number: Option<String>,
}

/// Creates an account without a password and mails its owner an invitation
/// to set one (admins: any role; registrars: students and teachers).
#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserView),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 409, description = "username, e-mail or number taken", body = crate::error::ErrorBody),
    ))]
pub async fn create_user(
    db: web::Data<DbPool>,
    hasher: web::Data<Hasher>,
    postage: web::Data<Postage>,
    auth_settings: web::Data<config::Auth>,
    auth: AuthUser,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, AppError> {
    may_manage(&auth, body.role)?;
    let account = NewAccount {
        username: &body.username,
        email: &body.email,
        display_name: Some(&body.display_name),
        number: body.number.as_deref(),
        role: body.role,
    };
    let user = accounts::create(&db, &hasher, &account, None).await?;
    recovery::send_invitation(&db, &postage, &auth_settings, &user).await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// An empty string clears it.
    pub number: Option<String>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    /// `en` or `zh-CN`: the language the app and the mails speak to them in.
    pub locale: Option<Locale>,
}

impl UpdateUserRequest {
    /// The changes, each field checked as on creation.
    fn changes(self) -> Result<UserChanges, AppError> {
        let mut errors = FieldErrors::new();
        let display_name = self.display_name.and_then(|name| {
            parse_field(&mut errors, "display_name", &name, DisplayName::parse)
                .map(|name| name.as_str().to_owned())
        });
        let email = self.email.and_then(|email| {
            parse_field(&mut errors, "email", &email, Email::parse)
                .map(|email| email.as_str().to_owned())
        });
        let number = match self.number.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(number) => parse_field(&mut errors, "number", number, SchoolNumber::parse)
                .map(|number| Some(number.as_str().to_owned())),
        };
        errors.into_result()?;
        Ok(UserChanges {
            display_name,
            email,
            number,
            role: self.role,
            is_active: self.is_active,
            locale: self.locale,
        })
    }
}

/// Edits an account: names, e-mail, number, role, active, language. Admins edit
/// anyone; registrars students and teachers, and never give a role above
/// teacher. Deactivating ends the user's sessions; a role change closes
/// their websockets; the last active admin cannot be demoted or deactivated.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, body = UserView),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "would leave no active admin, or e-mail or number taken", body = crate::error::ErrorBody),
    ))]
pub async fn update_user(
    db: web::Data<DbPool>,
    bus: web::Data<EventBus>,
    auth: AuthUser,
    id: web::Path<UserId>,
    body: web::Json<UpdateUserRequest>,
) -> Result<web::Json<UserView>, AppError> {
    may_manage(&auth, Role::Student)?;
    let body = body.into_inner();
    if let Some(role) = body.role {
        may_manage(&auth, role)?;
    }
    let changes = body.changes()?;
    let mut conn = db.get().await?;
    // Checked against the account as it stands, under its lock.
    let allowed = |current: &User| may_manage(&auth, current.role);
    let (before, user) = store::update(&mut conn, id.into_inner(), changes, allowed).await?;
    if user.role != before.role {
        bus.publish(Event::RoleChanged { user_id: user.id });
    }
    // Back as an active student: what was published meanwhile reaches them.
    if user.role == Role::Student
        && user.is_active
        && !(before.role == Role::Student && before.is_active)
    {
        let reached = deliveries::deliver_due(&mut conn, &[user.id]).await?;
        reach::reached(&bus, &reached);
    }
    if !user.is_active {
        auth_store::revoke_all_sessions(&mut conn, user.id).await?;
        bus.publish(Event::SignedOut {
            user_id: user.id,
            session: None,
        });
    }
    Ok(web::Json(user.into()))
}

/// Mails a new invitation (the earlier links stop working): for an account
/// whose owner has not set a password yet.
#[utoipa::path(post, path = "/api/users/{id}/invitation", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 202, body = UserView),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "`already_accepted`: the account has a password", body = crate::error::ErrorBody),
    ))]
pub async fn resend_invitation(
    db: web::Data<DbPool>,
    postage: web::Data<Postage>,
    auth_settings: web::Data<config::Auth>,
    auth: AuthUser,
    id: web::Path<UserId>,
) -> Result<HttpResponse, AppError> {
    let user: User = store::find(&mut *db.get().await?, id.into_inner()).await?;
    may_manage(&auth, user.role)?;
    if user.password_hash.is_some() {
        return Err(AppError::conflict(
            "already_accepted",
            "the account already has a password; its owner can reset it",
            FieldErrors::new(),
        ));
    }
    if !user.is_active {
        return Err(AppError::conflict(
            "inactive",
            "the account is deactivated",
            FieldErrors::new(),
        ));
    }
    recovery::send_invitation(&db, &postage, &auth_settings, &user).await?;
    Ok(HttpResponse::Accepted().json(UserView::from(user)))
}
