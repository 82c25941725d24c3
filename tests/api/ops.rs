//! Health, readiness, metrics, the API description and CORS.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, json_body};
use classbell::users::model::Role;

#[actix_web::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let health = json_body(app.request(Method::GET, "/healthz", None, None).await).await;
    assert_eq!(health, json!({"status": "ok"}));
    // The bridge subscribes to Redis moments after start.
    let mut ready = json!(null);
    for _ in 0..40 {
        ready = json_body(app.request(Method::GET, "/readyz", None, None).await).await;
        if ready["status"] == "ready" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ready, json!({"status": "ready"}));
}

#[actix_web::test]
async fn metrics_count_requests_by_route_template_and_report_both_pools() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let user_path = "/api/users/987654321";
    app.request(
        Method::PATCH,
        user_path,
        Some(&admin),
        Some(json!({"role": "teacher"})),
    )
    .await;
    app.get("/api/users", &admin).await;

    let response = app.request(Method::GET, "/metrics", None, None).await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();

    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle) && !l.starts_with('#'))
            .map(str::to_owned)
    };
    assert!(
        line(
            r#"classbell_http_requests_total{method="PATCH",route="/api/users/{id}",status="404"}"#
        )
        .is_some(),
        "route templates label requests:\n{text}"
    );
    assert!(!text.contains("987654321"), "raw paths never become labels");
    assert!(line(r#"classbell_http_request_duration_seconds_bucket{method="GET",route="/api/users",status="200",le="0.1"}"#).is_some());
    for pool in ["postgres", "redis"] {
        for family in [
            "classbell_pool_connections",
            "classbell_pool_idle_connections",
            "classbell_pool_in_use_connections",
            "classbell_pool_max_size",
            "classbell_pool_waiters",
            "classbell_pool_acquire_wait_seconds_bucket",
            "classbell_pool_acquire_timeouts_total",
        ] {
            assert!(
                line(&format!("{family}{{pool=\"{pool}\"")).is_some(),
                "{family} for {pool} missing:\n{text}"
            );
        }
    }
    let acquired: f64 = line(r#"classbell_pool_acquire_wait_seconds_count{pool="postgres"}"#)
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        acquired >= 3.0,
        "each request that used the database waited for a connection"
    );
    assert!(line("classbell_build_info{").is_some());
}

/// Every endpoint this service routes, as `METHOD path` in OpenAPI form.
const ENDPOINTS: &[&str] = &[
    "post /auth/register",
    "post /auth/password-policy",
    "post /auth/login",
    "post /auth/refresh",
    "post /auth/logout",
    "get /auth/me",
    "post /auth/change-password",
    "post /auth/forgot-username",
    "post /auth/forgot-password",
    "post /auth/reset-password",
    "get /api/users",
    "patch /api/users/{id}",
    "get /api/courses",
    "post /api/courses",
    "get /api/courses/{id}",
    "patch /api/courses/{id}",
    "delete /api/courses/{id}",
    "get /api/sections",
    "post /api/sections",
    "get /api/sections/{id}",
    "patch /api/sections/{id}",
    "delete /api/sections/{id}",
    "get /api/sections/{id}/enrollments",
    "post /api/sections/{id}/enrollments",
    "delete /api/sections/{id}/enrollments/{student_id}",
    "get /api/me/sections",
    "get /api/course_attachments",
    "post /api/course_attachments",
    "delete /api/course_attachments/{id}",
    "get /api/course_attachments/{id}/download",
    "get /api/announcements",
    "post /api/announcements",
    "get /api/announcements/{id}",
    "patch /api/announcements/{id}",
    "post /api/announcements/{id}/publish",
    "post /api/announcements/{id}/withdraw",
    "get /api/announcements/{id}/stats",
    "post /api/announcements/{id}/remind_unacked",
    "get /api/announcements/{id}/unacked",
    "get /api/deliveries",
    "post /api/deliveries/{id}/delivered",
    "post /api/deliveries/{id}/ack",
    "get /api/unread_count",
    "get /ws",
    "post /auth/ws-ticket",
    "post /api/exports/courses",
    "post /api/exports/sections",
    "post /api/exports/enrollments",
    "post /api/announcements/{id}/exports/unacked",
    "post /api/imports/courses",
    "post /api/imports/sections",
    "post /api/imports/enrollments",
    "get /api/tasks/{id}",
    "get /api/tasks/{id}/download",
    "get /healthz",
    "get /readyz",
    "get /metrics",
    "get /api/openapi.json",
];

#[actix_web::test]
async fn openapi_lists_every_endpoint() {
    let app = TestApp::spawn().await;
    let doc = json_body(
        app.request(Method::GET, "/api/openapi.json", None, None)
            .await,
    )
    .await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.push(format!("{method} {path}"));
        }
    }
    documented.sort();
    let mut expected: Vec<String> = ENDPOINTS.iter().map(|e| e.to_string()).collect();
    expected.sort();
    assert_eq!(documented, expected);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());

    // And every documented endpoint is routed (a 404 "route" answer would mean it is not).
    for endpoint in ENDPOINTS {
        let (method, path) = endpoint.split_once(' ').unwrap();
        let path = path.replace("{id}", "1").replace("{student_id}", "1");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app.request(method, &path, None, None).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            !(status == 404 && text.contains("route not found")),
            "{endpoint} is documented but not routed"
        );
    }
}

#[actix_web::test]
async fn cors_admits_configured_origins_only() {
    let app = TestApp::spawn().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.school.example").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.school.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// Every `classbell_*` series named in `value`'s `expr` strings (dashboards, rules).
fn metric_names(value: &serde_json::Value, names: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                if key == "expr"
                    && let Some(expr) = inner.as_str()
                {
                    names.extend(
                        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .filter(|token| token.starts_with("classbell_"))
                            .map(str::to_owned),
                    );
                }
                metric_names(inner, names);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| metric_names(item, names)),
        _ => {}
    }
}

#[actix_web::test]
async fn every_metric_a_dashboard_uses_is_exported() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    app.get("/api/users", &admin).await;
    let exported = app
        .request(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/dashboards");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut names = std::collections::BTreeSet::new();
        metric_names(&dashboard, &mut names);
        assert!(!names.is_empty(), "{} names no metric", path.display());
        for name in names {
            assert!(
                exported
                    .lines()
                    .any(|line| line.starts_with(&format!("{name}{{"))
                        || line.starts_with(&format!("{name} "))),
                "{} uses {name}, which /metrics does not export",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 10);
}

#[actix_web::test]
async fn every_response_names_its_request_id() {
    let app = TestApp::spawn().await;
    let mut seen = std::collections::BTreeSet::new();
    for path in ["/healthz", "/api/users", "/no/such/route"] {
        let response = app.request(Method::GET, path, None, None).await;
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(id.parse::<uuid::Uuid>().is_ok(), "{path}: {id}");
        seen.insert(id);
    }
    assert_eq!(seen.len(), 3, "one id per request");
    // Browsers may read it (CORS).
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://app.school.example")
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

#[actix_web::test]
async fn sigterm_closes_websockets_with_going_away_and_exits_cleanly() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_in(Role::Student).await;
    let mut node = app.node(&[]).await;
    let mut client = crate::ws_client::WsClient::connect(&node.address, "/ws", Some(&token)).await;
    assert_eq!(client.next_json().await["type"], "hello");
    let status = node.terminate(std::time::Duration::from_secs(15)).await;
    let (code, reason) = client.closed(std::time::Duration::from_secs(5)).await;
    assert_eq!(code, 1001);
    assert!(reason.starts_with("server shutting down"), "{reason}");
    let status = status.expect("the server exited within its shutdown deadline");
    assert!(status.success(), "{status}");
}
