//! HTTP plumbing shared by every route: the listening socket, extractor
//! errors in the one JSON shape, 404 and 405 answers, the resource helper,
//! and the gate that keeps text PostgreSQL cannot store out.

use std::net::{TcpListener, ToSocketAddrs};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::BytesMut;
use actix_web::{HttpRequest, HttpResponse, Resource, web};
use futures_util::StreamExt;

use crate::error::{AppError, Code, FieldErrors};

/// The listening socket on `bind`, with room for `backlog` connections
/// waiting to be accepted. (`TcpListener::bind` queues 128: a node whose
/// websockets all come back at once dropped most of their handshakes.)
pub fn listener(bind: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let address = bind.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // As `TcpListener::bind` does: a restart may bind while old connections linger.
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// A resource whose unsupported methods answer 405 in the JSON error shape.
pub fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::MethodNotAllowed(req.method().to_string()))
}

/// Unknown paths.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, AppError> {
    tracing::debug!(path = req.path(), "no route");
    Err(AppError::NotFound("route"))
}

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |error, _req| json_error(error, limit).into())
}

fn json_error(error: JsonPayloadError, limit: usize) -> AppError {
    match error {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            AppError::PayloadTooLarge { limit }
        }
        JsonPayloadError::ContentType => AppError::UnsupportedMediaType(
            "expected a JSON body (Content-Type: application/json)".into(),
        ),
        JsonPayloadError::Deserialize(error) if error.is_data() => {
            let message = error.to_string();
            match missing_field(&message) {
                Some((field, reason)) => {
                    AppError::Validation(FieldErrors::new().with(&field, reason))
                }
                None => AppError::BadRequest(format!("invalid JSON body: {message}")),
            }
        }
        JsonPayloadError::Deserialize(error) => {
            AppError::BadRequest(format!("malformed JSON: {error}"))
        }
        other => AppError::BadRequest(format!("could not read the JSON body: {other}")),
    }
}

/// Pulls the field name out of serde's "missing field `x`" messages so clients
/// get it in `fields`, like any other invalid field.
fn missing_field(message: &str) -> Option<(String, Code)> {
    let rest = message.strip_prefix("missing field `")?;
    let field = rest.split('`').next()?;
    Some((field.to_owned(), Code::Required))
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        let message = match error {
            QueryPayloadError::Deserialize(error) => error.to_string(),
            other => other.to_string(),
        };
        AppError::BadRequest(format!("invalid query string: {message}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error, _req| {
        let message = match error {
            PathError::Deserialize(error) => error.to_string(),
            other => other.to_string(),
        };
        AppError::BadRequest(format!("invalid path parameter: {message}")).into()
    })
}

/// Refuses text PostgreSQL cannot store — a NUL character — where requests
/// bring text in: JSON bodies (NUL can only be written `\u0000` there) and
/// query strings (`%00`). Checked once, before any handler, so no field can
/// forget it; multipart text and CSV cells are checked where they are read
/// (`attachments::upload`, `jobs::sheet`). The answer names the field.
pub async fn refuse_unstorable(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
    json_limit: usize,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.query_string().contains("%00") {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
        let field = pairs
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
            .map_or("query", |(name, _)| name.as_str());
        return Err(AppError::field(field, Code::ControlCharacters).into());
    }
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.to_ascii_lowercase().contains("json"));
    if json {
        let mut payload = std::mem::replace(req.parts_mut().1, Payload::None);
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > json_limit {
                return Err(AppError::PayloadTooLarge { limit: json_limit }.into());
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        if let Some(field) = nul_field(&body) {
            return Err(AppError::field(&field, Code::ControlCharacters).into());
        }
        req.set_payload(Payload::from(body));
    }
    next.call(req).await
}

/// The top-level field of a JSON body that holds a NUL (written `\u0000`,
/// the only way JSON can), `body` if it is not in a field; `None` when
/// there is none.
fn nul_field(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let escaped = text.match_indices("\\u0000").any(|(at, _)| {
        // An odd run of backslashes before `u0000` escapes it; an even one is text.
        let run = text[..at].bytes().rev().take_while(|b| *b == b'\\').count();
        run % 2 == 0
    });
    if !escaped {
        return None;
    }
    let holds_nul = |value: &serde_json::Value| value.to_string().contains("\\u0000");
    let field = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(fields)) => fields
            .iter()
            .find(|(name, value)| name.contains('\0') || holds_nul(value))
            .map(|(name, _)| name.replace('\0', "")),
        _ => None,
    };
    Some(field.unwrap_or_else(|| "body".to_owned()))
}
