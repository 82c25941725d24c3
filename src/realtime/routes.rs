//! `GET /ws` (the live inbox) and `POST /auth/ws-ticket` (how browsers open it).

use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::protocol::Cursor;
use super::session::Session;
use super::sessions::SessionServices;
use super::socket;
use super::ticket::{self, TICKET_TTL_SECS};
use crate::auth::jwt::JwtKeys;
use crate::auth::{AuthUser, store as auth_store};
use crate::error::AppError;
use crate::http::resource;
use crate::redis::Redis;
use crate::users::model::User;

/// Largest frame a client may send; its messages are a few dozen bytes.
const MAX_CLIENT_FRAME: usize = 16 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/ws").route(web::get().to(connect)))
        .service(resource("/auth/ws-ticket").route(web::post().to(issue_ticket)));
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ConnectQuery {
    /// A ticket from `POST /auth/ws-ticket` (browsers); others send a Bearer token.
    pub ticket: Option<String>,
    /// The `cursor` of the last message received: every inbox change since
    /// then is sent before live events.
    pub since: Option<String>,
}

/// Opens the live inbox. See the README for the protocol.
#[utoipa::path(get, path = "/ws", tag = "realtime", security(("bearer" = [])),
    params(ConnectQuery),
    responses(
        (status = 101, description = "switching to the websocket protocol"),
        (status = 400, description = "not a websocket request, or a bad `since`", body = crate::error::ErrorBody),
        (status = 401, description = "no valid token or ticket", body = crate::error::ErrorBody),
        (status = 503, description = "too many websockets are being opened at once, or the database is unreachable; retry after `Retry-After`", body = crate::error::ErrorBody),
    ))]
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    jwt: web::Data<JwtKeys>,
    redis: web::Data<Redis>,
    sessions: web::Data<SessionServices>,
    query: web::Query<ConnectQuery>,
) -> Result<HttpResponse, AppError> {
    let since = query
        .since
        .as_deref()
        .map(str::parse::<Cursor>)
        .transpose()
        .map_err(|reason| AppError::field("since", reason))?;
    ws::handshake(&req).map_err(|error| AppError::BadRequest(error.to_string()))?;
    let ticket = query.ticket.as_deref();
    let (user, auth_session, turn) = authenticate(&req, &jwt, &redis, &sessions, ticket).await?;
    let settings = &sessions.settings;
    socket::configure(&req, settings.send_buffer_bytes, settings.stall_timeout);
    let session = Session::new(user, auth_session, since, sessions.clone(), turn);
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(MAX_CLIENT_FRAME)
        .start()
        .map_err(|error| AppError::BadRequest(error.to_string()))
}

/// The user and login session behind a Bearer token or a ticket, and the
/// session's turn among those being opened.
async fn authenticate(
    req: &HttpRequest,
    jwt: &JwtKeys,
    redis: &Redis,
    sessions: &SessionServices,
    ticket: Option<&str>,
) -> Result<(User, Uuid, OwnedSemaphorePermit), AppError> {
    let (user_id, session) = if req
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
    {
        let claims = crate::auth::extract::verified_claims(req, jwt)?;
        (claims.user_id()?, claims.sid)
    } else if let Some(ticket) = ticket {
        ticket::redeem(redis, ticket)
            .await?
            .ok_or(AppError::Unauthorized("invalid, used or expired ticket"))?
    } else {
        return Err(AppError::Unauthorized(
            "authentication required: a Bearer token, or a ticket from POST /auth/ws-ticket",
        ));
    };
    // Taken once the credential checks out (so a flood of bad ones holds no
    // turn) and held until the catch-up is read: the lookup and the replay
    // are the two reads a reconnect storm multiplies.
    let turn = sessions.admit().await?;
    let user = auth_store::session_user(&mut *sessions.db.get().await?, session, user_id)
        .await?
        .ok_or(AppError::Unauthorized("session has ended; sign in again"))?;
    Ok((user, session, turn))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WsTicket {
    pub ticket: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

/// A single-use ticket that opens `/ws?ticket=…` within 30 seconds.
#[utoipa::path(post, path = "/auth/ws-ticket", tag = "realtime", security(("bearer" = [])),
    responses((status = 200, body = WsTicket), (status = 401, body = crate::error::ErrorBody)))]
pub async fn issue_ticket(
    redis: web::Data<Redis>,
    auth: AuthUser,
) -> Result<web::Json<WsTicket>, AppError> {
    let ticket = ticket::issue(&redis, auth.id(), auth.claims.sid).await?;
    Ok(web::Json(WsTicket {
        ticket,
        expires_in: TICKET_TTL_SECS,
    }))
}
