//! HTTP plumbing shared by every route: extractor errors in the one JSON
//! shape, 404 and 405 answers, and the resource helper.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, Resource, web};

use crate::error::{AppError, Code, FieldErrors};

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
