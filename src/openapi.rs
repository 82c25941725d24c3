//! `GET /api/openapi.json`: the machine-readable description of every endpoint.

use actix_web::web;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::resource;
use crate::jobs::routes::ImportPaths;
use crate::web as app;
use crate::{
    announcements, attachments, auth, courses, deliveries, health, jobs, postmaster, realtime,
    school, sections, users,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "classbell", description = "Announcements, deliveries and acknowledgments for a school."),
    paths(
        auth::routes::register,
        school::school_config,
        auth::routes::password_policy,
        auth::routes::login,
        auth::routes::refresh,
        auth::routes::logout,
        auth::routes::me,
        auth::routes::update_me,
        auth::routes::change_password,
        auth::recovery::forgot_username,
        auth::recovery::forgot_password,
        auth::recovery::reset_password,
        auth::recovery::accept_invitation,
        users::routes::list_users,
        users::routes::create_user,
        users::routes::update_user,
        users::routes::resend_invitation,
        courses::routes::list_courses,
        courses::routes::get_course,
        courses::routes::create_course,
        courses::routes::update_course,
        courses::routes::delete_course,
        sections::routes::list_sections,
        sections::routes::get_section,
        sections::routes::create_section,
        sections::routes::update_section,
        sections::routes::delete_section,
        sections::routes::list_enrollments,
        sections::routes::enroll,
        sections::routes::withdraw,
        sections::routes::my_sections,
        attachments::routes::list_attachments,
        attachments::routes::upload_attachment,
        attachments::routes::download_attachment,
        attachments::routes::delete_attachment,
        announcements::compose::create_announcement,
        announcements::routes::list_announcements,
        announcements::routes::get_announcement,
        announcements::compose::update_announcement,
        announcements::routes::publish_announcement,
        announcements::routes::withdraw_announcement,
        announcements::routes::announcement_stats,
        announcements::routes::remind_unacked,
        announcements::routes::list_unacked,
        announcements::routes::escalation_history,
        deliveries::routes::inbox,
        deliveries::routes::mark_delivered,
        deliveries::routes::acknowledge,
        deliveries::routes::unread_count,
        jobs::routes::export_courses,
        jobs::routes::export_sections,
        jobs::routes::export_enrollments,
        jobs::routes::export_users,
        jobs::routes::export_unacked,
        jobs::routes::import_file,
        jobs::routes::get_task,
        jobs::routes::download,
        realtime::routes::connect,
        realtime::routes::issue_ticket,
        app::page_shell,
        app::asset,
        health::healthz,
        health::readyz,
        health::metrics,
        postmaster::list_mail,
        postmaster::resend_mail,
        openapi_json,
    ),
    modifiers(&BearerAuth, &ImportPaths, &ErrorCodes, &ErrorAnswers, &Links),
    tags(
        (name = "school", description = "The school: time zone, languages, registration"),
        (name = "auth", description = "The account loop"),
        (name = "users", description = "Accounts and roles"),
        (name = "courses", description = "The catalogue"),
        (name = "sections", description = "Sections and enrollments"),
        (name = "attachments", description = "Course files in object storage"),
        (name = "announcements", description = "Publishing, stats and reminders"),
        (name = "deliveries", description = "A recipient's inbox"),
        (name = "realtime", description = "The live inbox over a websocket"),
        (name = "jobs", description = "CSV exports and imports as background tasks"),
        (name = "ops", description = "Health and metrics"),
        (name = "web", description = "The browser app"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Lists every error `code` (`error::CODES`) as the enum of `ErrorDetail.code`,
/// which Rust keeps as a string because conflicts name their own.
struct ErrorCodes;

impl Modify for ErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(detail) = components.schemas.get_mut("ErrorDetail") else {
            return;
        };
        let Ok(mut json) = serde_json::to_value(&*detail) else {
            return;
        };
        json["properties"]["code"]["enum"] = serde_json::json!(crate::error::CODES);
        if let Ok(listed) = serde_json::from_value(json) {
            *detail = listed;
        }
    }
}

/// The error answers any operation can give besides its own, written once:
/// 400 (a malformed query, path or body, or text PostgreSQL cannot store),
/// 503 (a pool or the database unavailable), 401 and 403 where a token is
/// needed, 404 where a path names a record, 413 and 415 where a body is sent.
struct ErrorAnswers;

impl ErrorAnswers {
    fn answer(description: &str) -> serde_json::Value {
        serde_json::json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        })
    }

    fn complete(path: &str, operation: &mut serde_json::Value) {
        let secured = operation["security"]
            .as_array()
            .is_some_and(|requirements| !requirements.is_empty());
        let mut answers = vec![
            ("400", "malformed or invalid input"),
            (
                "503",
                "a dependency is unavailable; try again after Retry-After",
            ),
        ];
        if secured {
            answers.push(("401", "no valid access token"));
            answers.push(("403", "not allowed for this user"));
        }
        if path.contains('{') {
            answers.push(("404", "no such record, or not one this user may see"));
        }
        if operation.get("requestBody").is_some() {
            answers.push(("413", "the body is larger than the limit"));
            answers.push(("415", "the body is not of the documented type"));
        }
        let Some(responses) = operation["responses"].as_object_mut() else {
            return;
        };
        for (status, description) in answers {
            responses
                .entry(status)
                .or_insert_with(|| Self::answer(description));
        }
    }
}

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        edit_paths(openapi, |items| {
            for (path, item) in items.iter_mut() {
                let Some(operations) = item.as_object_mut() else {
                    continue;
                };
                for (method, operation) in operations.iter_mut() {
                    if METHODS.contains(&method.as_str()) {
                        Self::complete(path, operation);
                    }
                }
            }
        });
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Edits the document's paths as JSON (utoipa's types have no mutable walk).
fn edit_paths(
    openapi: &mut utoipa::openapi::OpenApi,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let Ok(mut paths) = serde_json::to_value(&openapi.paths) else {
        return;
    };
    let nested = paths.get("paths").is_some_and(serde_json::Value::is_object);
    let items = if nested {
        paths["paths"].as_object_mut()
    } else {
        paths.as_object_mut()
    };
    if let Some(items) = items {
        edit(items);
    }
    if let Ok(edited) = serde_json::from_value(paths) {
        openapi.paths = edited;
    }
}

/// OpenAPI links from the answers that name a record to the operations on
/// that record, so a client (or a fuzzer) can follow them: a `201` from
/// `POST /api/x` and the first item of `GET /api/x` lead to every operation
/// under `/api/x/{id}`, and a queued task's `task_id` (`202 Queued`) to
/// `/api/tasks/{id}`.
struct Links;

impl Links {
    /// Operations on one record: (path prefix before `/{id}`, operation id).
    fn targets(items: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
        let mut targets = Vec::new();
        for (path, item) in items {
            let Some(prefix) = path.find("/{id}").map(|at| path[..at].to_owned()) else {
                continue;
            };
            // One named record: `{student_id}` and the like need more than one answer.
            if path.matches('{').count() > 1 {
                continue;
            }
            for method in METHODS {
                if let Some(id) = item[method]["operationId"].as_str() {
                    targets.push((prefix.clone(), id.to_owned()));
                }
            }
        }
        targets
    }

    fn link(operation_id: &str, value: &str) -> serde_json::Value {
        serde_json::json!({"operationId": operation_id, "parameters": {"path.id": value}})
    }
}

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        edit_paths(openapi, |items| {
            let targets = Self::targets(items);
            for (path, item) in items.iter_mut() {
                for (method, status, value) in [
                    ("post", "201", "$response.body#/id"),
                    ("get", "200", "$response.body#/items/0/id"),
                    ("post", "202", "$response.body#/task_id"),
                ] {
                    let Some(answer) = item
                        .get_mut(method)
                        .and_then(|operation| operation["responses"].get_mut(status))
                        .and_then(serde_json::Value::as_object_mut)
                    else {
                        continue;
                    };
                    let prefix = if status == "202" {
                        // Only a queued task's answer names one.
                        let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                        if schema != "#/components/schemas/Queued" {
                            continue;
                        }
                        "/api/tasks"
                    } else {
                        path
                    };
                    let links: serde_json::Map<_, _> = targets
                        .iter()
                        .filter(|(target, _)| target == prefix)
                        .map(|(_, id)| (id.clone(), Self::link(id, value)))
                        .collect();
                    if !links.is_empty() {
                        answer.insert("links".into(), links.into());
                    }
                }
            }
        });
    }
}

/// Built once: it is fixed for the life of the process, and building it (the
/// modifiers edit every path as JSON) is not work each request should buy.
static DOCUMENT: std::sync::LazyLock<utoipa::openapi::OpenApi> =
    std::sync::LazyLock::new(ApiDoc::openapi);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/openapi.json").route(web::get().to(openapi_json)));
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json() -> web::Json<utoipa::openapi::OpenApi> {
    web::Json(DOCUMENT.clone())
}
