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
    "get /api/config",
    "post /auth/password-policy",
    "post /auth/login",
    "post /auth/refresh",
    "post /auth/logout",
    "get /auth/me",
    "patch /auth/me",
    "post /auth/change-password",
    "post /auth/forgot-username",
    "post /auth/forgot-password",
    "post /auth/reset-password",
    "post /auth/accept-invitation",
    "get /api/users",
    "post /api/users",
    "patch /api/users/{id}",
    "post /api/users/{id}/invitation",
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
    "post /api/exports/users",
    "post /api/imports/users",
    "post /api/announcements/{id}/exports/unacked",
    "post /api/imports/courses",
    "post /api/imports/sections",
    "post /api/imports/enrollments",
    "get /api/tasks/{id}",
    "get /api/tasks/{id}/download",
    "get /",
    "get /assets/{path}",
    "get /healthz",
    "get /readyz",
    "get /metrics",
    "get /api/openapi.json",
    "get /api/mail",
    "get /api/announcements/{id}/escalation",
    "post /api/mail/{id}/resend",
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
    // Every error code and field-reason code is listed, so clients can
    // translate them all.
    let schemas = &doc["components"]["schemas"];
    let field_codes: Vec<String> = classbell::error::Code::ALL
        .iter()
        .map(|code| code.as_str())
        .collect();
    assert_eq!(
        schemas["FieldErrorCode"]["enum"],
        serde_json::json!(field_codes)
    );
    assert_eq!(
        schemas["ErrorDetail"]["properties"]["code"]["enum"],
        serde_json::json!(classbell::error::CODES)
    );
    assert!(
        schemas["FieldError"]["properties"]["params"].is_object(),
        "{}",
        schemas["FieldError"]
    );

    // Links lead from what names a record to what acts on it, each to an
    // operation the document has.
    let operation_ids: std::collections::BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let links = |path: &str, method: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["links"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} {status} has links"))
            .clone()
    };
    let created = links("/api/announcements", "post", "201");
    assert!(created.len() >= 5, "{created:?}");
    for link in created.values() {
        assert_eq!(link["parameters"]["path.id"], "$response.body#/id");
        assert!(operation_ids.contains(link["operationId"].as_str().unwrap()));
    }
    let listed = links("/api/deliveries", "get", "200");
    assert!(
        listed
            .values()
            .all(|link| link["parameters"]["path.id"] == "$response.body#/items/0/id")
    );
    assert_eq!(listed.len(), 2, "delivered and ack: {listed:?}");
    let queued = links("/api/exports/courses", "post", "202");
    assert!(
        queued
            .values()
            .all(|link| link["parameters"]["path.id"] == "$response.body#/task_id")
    );

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

/// Every `classbell_*` name in a Prometheus rule file (expressions and all).
fn rule_metric_names(text: &str, names: &mut std::collections::BTreeSet<String>) {
    names.extend(
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|token| token.starts_with("classbell_"))
            .map(str::to_owned),
    );
}

/// A series' value in Prometheus text (`name` with its labels, as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A node that has served some of everything: sign-ins, a fan-out pushed to
/// a websocket, an acknowledgment over it, reminders by mail, an export job,
/// and an event from another node through Redis. Its `/metrics` must then
/// show every family the dashboards, the alert rules and the operators rely
/// on, with data.
#[actix_web::test]
async fn a_busy_node_exports_every_metric_the_dashboards_and_alerts_use() {
    use crate::ws_client::WsClient;

    // This process's fan-out and mailer stay out of it: the node does the work it measures.
    let app = TestApp::spawn_with(|s| {
        s.fanout.poll_ms = 3_600_000;
        s.mail.poll_ms = 3_600_000;
    })
    .await;
    let node = app.node(&[("CLASSBELL_JOB_POLL_MS", "100")]).await;
    let class = crate::realtime::class(&app).await;
    let (teacher_token, section) = (class.teacher.clone(), class.section);
    let students: Vec<String> = class.enrolled.iter().map(|(_, t)| t.clone()).collect();
    let (_, manager) = app.signed_in(Role::Manager).await;
    let post = |path: &str, token: &str, body: serde_json::Value| {
        app.client
            .post(node.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let mut ws = WsClient::connect(&node.address, "/ws", Some(&students[0])).await;
    ws.expect("hello").await;
    let announced = post(
        "/api/announcements",
        &teacher_token,
        json!({"title": "Ops", "body": "B", "audience": {"kind": "section", "section_id": section}}),
    )
    .await
    .unwrap();
    let id = json_body(announced).await["id"].as_i64().unwrap();
    let created = ws.expect("delivery.created").await;
    let delivery = created["delivery"]["id"].as_i64().unwrap();
    ws.send_json(json!({"type": "ack", "delivery_id": delivery}))
        .await;
    ws.expect("delivery.updated").await;
    let reminded = post(
        &format!("/api/announcements/{id}/remind_unacked"),
        &teacher_token,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(reminded.status(), 200);
    let exported = post("/api/exports/courses", &manager, json!({}))
        .await
        .unwrap();
    assert_eq!(exported.status(), 202);
    // An event from "another node", as the bridge carries it.
    let envelope = json!([{
        "origin": uuid::Uuid::new_v4(),
        "raised_at_ms": chrono::Utc::now().timestamp_millis(),
        "event": {"type": "announcement.stats", "announcement_id": id}
    }]);
    let mut redis = app.state.redis.get().await.unwrap();
    let _: i64 = bb8_redis::redis::cmd("PUBLISH")
        .arg(app.state.redis.key("events"))
        .arg(envelope.to_string())
        .query_async(&mut *redis)
        .await
        .unwrap();

    // Let the job, the mail and the scheduler run.
    let mut text = String::new();
    for _ in 0..100 {
        text = app
            .client
            .get(node.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let done = value(
            &text,
            "classbell_jobs_finished_total{kind=\"export_courses\",outcome=\"succeeded\"}",
        );
        let mailed = value(&text, "classbell_mail_sent_total{kind=\"reminder\"}");
        let received = value(&text, "classbell_bridge_received_total");
        if done == Some(1.0) && mailed == Some(1.0) && received >= Some(1.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Families the operators rely on, each with data from this traffic.
    let positive = [
        "classbell_http_requests_total{method=\"POST\",route=\"/api/announcements\",status=\"201\"}",
        "classbell_http_request_duration_seconds_count{method=\"POST\",route=\"/api/announcements\",status=\"201\"}",
        "classbell_pool_acquire_wait_seconds_count{pool=\"postgres\"}",
        "classbell_fanout_rows_total",
        "classbell_fanout_chunks_total",
        "classbell_deliveries{state=\"acknowledged\"}",
        "classbell_deliveries{state=\"queued\"}",
        "classbell_delivery_transitions_total{state=\"acknowledged\"}",
        "classbell_ws_sessions_open",
        "classbell_ws_sessions_opened_total",
        "classbell_ws_messages_sent_total{type=\"delivery.created\"}",
        "classbell_ws_push_latency_seconds_count",
        "classbell_bridge_published_total",
        "classbell_bridge_received_total",
        "classbell_bridge_lag_seconds_count",
        "classbell_bridge_connected",
        "classbell_mail_sent_total{kind=\"reminder\"}",
        "classbell_jobs_finished_total{kind=\"export_courses\",outcome=\"succeeded\"}",
        "classbell_job_duration_seconds_count{kind=\"export_courses\"}",
        "classbell_job_rows_total{kind=\"export_courses\",outcome=\"ok\"}",
        "classbell_events_published_total{type=\"deliveries.created\"}",
    ];
    for series in positive {
        let got = value(&text, series);
        assert!(got.is_some_and(|v| v > 0.0), "{series} = {got:?}");
    }
    for actor in [
        "fanout_supervisor",
        "fanout_worker",
        "scheduler",
        "delivery_writer",
        "hub",
        "session",
        "bridge",
        "mailer",
        "job_runner",
    ] {
        let handled = value(
            &text,
            &format!("classbell_actor_messages_total{{actor=\"{actor}\"}}"),
        );
        assert!(
            handled.is_some_and(|v| v > 0.0),
            "{actor} handled {handled:?}"
        );
        let depth = value(
            &text,
            &format!("classbell_actor_mailbox_depth{{actor=\"{actor}\"}}"),
        );
        assert!(depth.is_some_and(|v| v >= 0.0), "{actor} depth {depth:?}");
    }
    for present in [
        "classbell_pool_connections{pool=\"redis\"}",
        "classbell_pool_idle_connections{pool=\"postgres\"}",
        "classbell_pool_in_use_connections{pool=\"postgres\"}",
        "classbell_pool_waiters{pool=\"postgres\"}",
        "classbell_pool_acquire_timeouts_total{pool=\"postgres\"}",
        "classbell_pool_acquire_errors_total{pool=\"redis\"}",
        "classbell_fanout_backlog",
        "classbell_ws_messages_dropped_total{reason=\"slow_consumer\"}",
        "classbell_bridge_reconnects_total",
        "classbell_mail_failed_total{kind=\"reminder\"}",
        "classbell_jobs{kind=\"import_courses\",state=\"pending\"}",
    ] {
        assert!(value(&text, present).is_some(), "{present} is exported");
    }
    assert!(text.contains("classbell_build_info{version=\""));

    // Whatever a dashboard or an alert rule names, the node exports.
    let mut names = std::collections::BTreeSet::new();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut dashboards = 0;
    for entry in std::fs::read_dir(format!("{root}/grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let before = names.len();
        metric_names(&dashboard, &mut names);
        assert!(
            names.len() > before || !names.is_empty(),
            "{} names no metric",
            path.display()
        );
        dashboards += 1;
    }
    assert!(dashboards >= 1);
    let rules = std::fs::read_to_string(format!("{root}/ops/prometheus/alerts.yml")).unwrap();
    rule_metric_names(&rules, &mut names);
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("{name}{{"))
                    || line.starts_with(&format!("{name} "))),
            "{name} is used by a dashboard or an alert but not exported"
        );
    }
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
