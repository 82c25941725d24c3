//! `/api/users`: what Django Admin did for accounts.

use actix_web::web;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::model::{Role, UserView};
use super::store::{self, UserChanges, UserFilter};
use crate::auth::AuthUser;
use crate::auth::store as auth_store;
use crate::db::DbPool;
use crate::error::AppError;
use crate::events::Event;
use crate::events::EventBus;
use crate::http::resource;
use crate::ids::UserId;
use crate::pagination::{PageQuery, Paginated};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/users").route(web::get().to(list_users)))
        .service(resource("/api/users/{id}").route(web::patch().to(update_user)));
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UserQuery {
    /// Matches anywhere in the username or email.
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
pub struct UpdateUserRequest {
    pub role: Option<Role>,
    pub is_active: Option<bool>,
}

/// Changes a user's role or active flag (admins only). Deactivating ends the
/// user's sessions; the last active admin cannot be demoted or deactivated.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, body = UserView),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "would leave no active admin", body = crate::error::ErrorBody),
    ))]
pub async fn update_user(
    db: web::Data<DbPool>,
    bus: web::Data<EventBus>,
    auth: AuthUser,
    id: web::Path<UserId>,
    body: web::Json<UpdateUserRequest>,
) -> Result<web::Json<UserView>, AppError> {
    auth.require(&[Role::Admin])?;
    let body = body.into_inner();
    let mut conn = db.get().await?;
    let changes = UserChanges {
        role: body.role,
        is_active: body.is_active,
    };
    let id = id.into_inner();
    let (before, user) = store::update_access(&mut conn, id, changes).await?;
    if user.role != before {
        bus.publish(Event::RoleChanged { user_id: user.id });
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
