//! The browser app: plain HTML, CSS and JavaScript modules, embedded in the
//! binary, served at the app's page paths (the pages route themselves in
//! the browser) and under `/assets/`.
//!
//! The page paths are listed once, in `js/pages.json`: each entry's `path`
//! (e.g. `/courses/:id`), the page module and view that render it, whether
//! it needs a signed-in user and, optionally, the roles it is for. The app's
//! router imports that file; the server answers each `path` with the page.
//!
//! Pages carry a content security policy that allows scripts from this
//! origin only (no inline script), and no referrer: the password-reset page's
//! address holds its token.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::Embed;
use serde::Deserialize;

use crate::error::AppError;
use crate::http::resource;

#[derive(Embed)]
#[folder = "src/web/assets/"]
struct Assets;

/// The list of the app's pages, shared with the browser's router.
const PAGE_LIST: &str = "js/pages.json";

/// One of the app's pages, as `js/pages.json` lists it. The server needs
/// only where it is; the rest (which module and view render it, whether it
/// needs a signed-in user, which roles it is for) is the router's, and this
/// module's tests check it.
#[derive(Debug, Deserialize)]
struct Page {
    /// With `:name` for a path segment, e.g. `/courses/:id`.
    path: String,
}

fn pages() -> Result<Vec<Page>, String> {
    let file = Assets::get(PAGE_LIST).ok_or_else(|| format!("{PAGE_LIST} is missing"))?;
    serde_json::from_slice(&file.data).map_err(|error| format!("{PAGE_LIST}: {error}"))
}

/// A page's path as an actix route: `/courses/:id` → `/courses/{id}`.
fn route(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Embedded in the binary and checked by this module's tests.
    let pages = pages().unwrap_or_else(|error| panic!("the web app's page list: {error}"));
    for page in pages {
        cfg.service(
            resource(&route(&page.path))
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
        "json" => "application/json",
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

#[cfg(test)]
mod catalogs;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use actix_web::App;
    use actix_web::http::{Method, StatusCode, header};
    use actix_web::test::{TestRequest, call_service, init_service};
    use serde::Deserialize;

    use super::{Assets, PAGE_LIST, configure, content_type, pages, route};
    use crate::users::model::Role;

    /// A `js/pages.json` entry with everything the router reads.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        path: String,
        module: String,
        view: String,
        signed_in: bool,
        #[serde(default)]
        roles: Vec<Role>,
    }

    fn text(path: &str) -> String {
        let file = Assets::get(path).unwrap_or_else(|| panic!("{path} is embedded"));
        String::from_utf8(file.data.into_owned()).unwrap()
    }

    #[test]
    fn every_page_maps_to_a_route_and_a_view() {
        let entries: Vec<Entry> = serde_json::from_str(&text(PAGE_LIST)).unwrap();
        assert_eq!(entries.len(), pages().unwrap().len());
        assert!(entries.iter().any(|e| e.path == "/login" && !e.signed_in));
        let app = text("js/app.js");
        let mut seen = HashSet::new();
        for entry in &entries {
            let path = &entry.path;
            assert!(seen.insert(path.as_str()), "{path} is listed twice");
            assert!(path.starts_with('/') && !path.contains('{'), "{path}");
            assert!(!route(path).contains(':'), "{path} → {}", route(path));
            let module = format!("js/pages/{}.js", entry.module);
            assert!(
                app.contains(&format!(
                    "import * as {} from \"./pages/{}.js\"",
                    entry.module, entry.module
                )),
                "app.js imports {module} for {path}"
            );
            let source = text(&module);
            assert!(
                [
                    format!("export function {}(", entry.view),
                    format!("export async function {}(", entry.view),
                ]
                .iter()
                .any(|export| source.contains(export.as_str())),
                "{module} exports {} for {path}",
                entry.view
            );
            assert!(
                entry.signed_in || entry.roles.is_empty(),
                "{path}: a page for some roles needs a signed-in user"
            );
        }
    }

    #[test]
    fn named_segments_become_actix_parameters() {
        assert_eq!(route("/"), "/");
        assert_eq!(route("/login"), "/login");
        assert_eq!(route("/courses/:id"), "/courses/{id}");
        assert_eq!(route("/a/:x/b/:y"), "/a/{x}/b/{y}");
    }

    #[test]
    fn the_page_list_is_served_as_json() {
        assert_eq!(content_type(PAGE_LIST), "application/json");
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
    }

    #[actix_web::test]
    async fn the_page_is_served_at_every_listed_path() {
        let app = init_service(App::new().configure(configure)).await;
        for page in pages().unwrap() {
            let path = (page.path.split('/'))
                .map(|segment| {
                    if segment.starts_with(':') {
                        "7"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            for request in [
                TestRequest::get(),
                TestRequest::default().method(Method::HEAD),
            ] {
                let response = call_service(&app, request.uri(&path).to_request()).await;
                assert_eq!(response.status(), StatusCode::OK, "{path}");
                assert!(
                    response
                        .headers()
                        .contains_key(header::CONTENT_SECURITY_POLICY),
                    "{path}"
                );
            }
        }
        let list = call_service(
            &app,
            TestRequest::get().uri("/assets/js/pages.json").to_request(),
        )
        .await;
        assert_eq!(list.status(), StatusCode::OK);
        let kind = list.headers().get(header::CONTENT_TYPE).unwrap();
        assert_eq!(kind.to_str().unwrap(), "application/json");
    }
}
