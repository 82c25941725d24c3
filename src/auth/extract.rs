//! Request extractors for who is calling.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};

use super::jwt::{Claims, JwtKeys};
use super::store;
use crate::db::DbPool;
use crate::error::AppError;
use crate::ids::UserId;
use crate::users::model::{Role, User};

/// The signed-in user: a valid access token whose session is live and whose
/// user is still active. Anything less is a 401.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub claims: Claims,
}

impl AuthUser {
    pub fn id(&self) -> UserId {
        self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Managers, registrars and admins, who run the school's records.
    pub fn require_staff(&self) -> Result<(), AppError> {
        self.require(&[Role::Manager, Role::Registrar, Role::Admin])
    }

    /// 403 unless the user has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden("your role may not do this"))
        }
    }
}

fn bearer_token(req: &HttpRequest) -> Result<&str, AppError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(AppError::Unauthorized("authentication required"))?
        .to_str()
        .map_err(|_| AppError::Unauthorized("invalid authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AppError::Unauthorized("expected a Bearer token")),
    }
}

/// The claims of the request's Bearer token, verified (signature and expiry only).
pub fn verified_claims(req: &HttpRequest, jwt: &JwtKeys) -> Result<Claims, AppError> {
    jwt.verify(bearer_token(req)?)
}

/// A part the app registers at start-up (`startup::Parts`); missing, it is a bug.
fn part<T: 'static>(req: &HttpRequest) -> Result<web::Data<T>, AppError> {
    req.app_data::<web::Data<T>>().cloned().ok_or_else(|| {
        AppError::internal(format!("{} is not registered", std::any::type_name::<T>()))
    })
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let claims = part::<JwtKeys>(req).and_then(|jwt| verified_claims(req, &jwt));
        let db = part::<DbPool>(req);
        Box::pin(async move {
            let claims = claims?;
            let mut conn = db?.get().await?;
            let user = store::session_user(&mut conn, claims.sid, claims.user_id()?)
                .await?
                .ok_or(AppError::Unauthorized("session has ended; sign in again"))?;
            Ok(AuthUser { user, claims })
        })
    }
}

/// A caller known only by a valid, unexpired access token: the session and
/// user are not loaded. For endpoints whose own statement checks the session
/// (delivery transitions), saving a query per request.
#[derive(Debug, Clone)]
pub struct AuthClaims {
    pub user_id: UserId,
    pub claims: Claims,
}

impl FromRequest for AuthClaims {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verified = bearer_token(req).and_then(|token| {
            let claims = part::<JwtKeys>(req)?.verify(token)?;
            Ok(AuthClaims {
                user_id: claims.user_id()?,
                claims,
            })
        });
        std::future::ready(verified)
    }
}

/// The caller's address for throttling: the socket peer, or the first
/// `X-Forwarded-For` hop when classbell is told it sits behind a trusted proxy.
pub fn client_addr(req: &HttpRequest, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| req.headers().get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|value| value.split(',').next())
        .and_then(|first| first.trim().parse::<IpAddr>().ok());
    forwarded
        .or_else(|| req.peer_addr().map(|addr| addr.ip()))
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}
