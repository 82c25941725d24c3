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

/// The reverse proxies whose `X-Forwarded-For` is believed (none by default).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<ipnet::IpNet>) -> Self {
        TrustedProxies(networks)
    }

    fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }
}

/// The caller's address, as throttles count it (see `client_addr`).
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl FromRequest for ClientAddr {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            part::<TrustedProxies>(req).map(|trusted| ClientAddr(client_addr(req, &trusted))),
        )
    }
}

/// The caller's address for throttling: the socket peer, unless the peer is
/// a trusted proxy; then the right-most `X-Forwarded-For` address that is
/// not one (each proxy appends who it heard from, so what is left of that
/// was written by the client and is not believed).
pub fn client_addr(req: &HttpRequest, trusted: &TrustedProxies) -> String {
    let Some(peer) = req.peer_addr().map(|addr| addr.ip()) else {
        return "unknown".to_owned();
    };
    if !trusted.contains(peer) {
        return peer.to_string();
    }
    let hops: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(address) if trusted.contains(address) => client = address,
            Ok(address) => return address.to_string(),
            // Not what a proxy of ours writes: stop at the last one believed.
            Err(_) => break,
        }
    }
    client.to_string()
}
