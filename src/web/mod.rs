//! The browser app: plain HTML, CSS and JavaScript modules, embedded in the
//! binary, served at the app's page paths (the pages route themselves in
//! the browser) and under `/assets/`.
//!
//! Pages carry a content security policy that allows scripts from this
//! origin only (no inline script), and no referrer: the password-reset page's
//! address holds its token.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::Embed;

use crate::error::AppError;
use crate::http::resource;

#[derive(Embed)]
#[folder = "src/web/assets/"]
struct Assets;

/// Addresses the app answers with its page (it renders the right view).
const PAGES: &[&str] = &[
    "/",
    "/login",
    "/register",
    "/forgot-username",
    "/forgot-password",
    "/reset-password",
    "/change-password",
    "/inbox",
    "/announcements",
    "/announcements/new",
    "/courses",
    "/courses/{id}",
    "/sections",
    "/sections/{id}",
    "/admin/users",
];

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    for page in PAGES {
        cfg.service(
            resource(page)
                .route(web::get().to(page_shell))
                .route(web::head().to(page_shell)),
        );
    }
    cfg.service(
        resource("/assets/{path:.*}")
            .route(web::get().to(asset))
            .route(web::head().to(asset)),
    );
}

/// The web app's page (also served at `/login`, `/inbox`, `/announcements`,
/// `/courses/{id}` and the app's other page paths; it renders the view).
#[utoipa::path(get, path = "/", tag = "web",
    responses((status = 200, description = "the web app", content_type = "text/html")))]
pub async fn page_shell() -> Result<HttpResponse, AppError> {
    let index = Assets::get("index.html").ok_or(AppError::NotFound("page"))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(index.data.into_owned()))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// An embedded file of the web app; revalidated by its content hash (`ETag`).
#[utoipa::path(get, path = "/assets/{path}", tag = "web",
    params(("path" = String, Path, description = "e.g. js/app.js")),
    responses(
        (status = 200, description = "the file"),
        (status = 304, description = "unchanged since the `If-None-Match` ETag"),
        (status = 404, body = crate::error::ErrorBody),
    ))]
pub async fn asset(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let path = path.into_inner();
    let file = Assets::get(&path).ok_or(AppError::NotFound("asset"))?;
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((
            header::ETAG,
            HeaderValue::from_str(&etag).map_err(AppError::internal)?,
        ))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if fresh {
        return Ok(response.finish());
    }
    Ok(response
        .content_type(content_type(&path))
        .body(file.data.into_owned()))
}
