//! The one error model: every failure is JSON with the right status.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, error_body, field_codes, json_body};
use classbell::users::model::Role;

#[actix_web::test]
async fn malformed_json_says_what_is_wrong() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body(r#"{"username": "ada", "password": "#)
        .send()
        .await
        .unwrap();
    let body = error_body(response, 400, "bad_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{body}"
    );

    let response = app
        .post("/auth/login", json!({"username": "ada", "password": 42}))
        .await;
    let body = error_body(response, 400, "bad_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid type"),
        "{body}"
    );

    let response = app
        .post(
            "/auth/register",
            json!({"username": "ada", "password": PASSWORD}),
        )
        .await;
    let body = error_body(response, 400, "validation_failed").await;
    assert_eq!(field_codes(&body), json!({"email": ["required"]}));
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "text/plain")
        .body("username=ada")
        .send()
        .await
        .unwrap();
    error_body(response, 415, "unsupported_media_type").await;
}

#[actix_web::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = TestApp::spawn_with(|s| s.server.max_json_bytes = 1024).await;
    let response = app
        .post(
            "/auth/password-policy",
            json!({"password": "x".repeat(4096)}),
        )
        .await;
    let body = error_body(response, 413, "payload_too_large").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("1024"));
}

#[actix_web::test]
async fn bad_query_and_path_values_are_400() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let body = error_body(
        app.get("/api/users?limit=many", &admin).await,
        400,
        "bad_request",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid query string")
    );
    let response = app
        .request(
            Method::PATCH,
            "/api/users/abc",
            Some(&admin),
            Some(json!({"role": "teacher"})),
        )
        .await;
    let body = error_body(response, 400, "bad_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid path parameter")
    );
}

#[actix_web::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::GET, "/api/no-such-thing", None, None)
        .await;
    error_body(response, 404, "not_found").await;
    let response = app.request(Method::GET, "/auth/login", None, None).await;
    let body = error_body(response, 405, "method_not_allowed").await;
    assert_eq!(body["error"]["message"], "GET is not allowed here");
}

#[actix_web::test]
async fn paths_work_with_a_trailing_slash() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;
    let response = app
        .post(
            "/auth/login/",
            json!({"username": student.user.username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let token = json_body(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = json_body(app.get("/auth/me/", &token).await).await;
    assert_eq!(me["id"], student.user.id);
}

#[actix_web::test]
async fn an_unreachable_redis_is_a_503_not_a_crash() {
    let app = TestApp::spawn_with(|s| {
        s.redis.url = "redis://127.0.0.1:1".into();
        s.server.pool_timeout_secs = 1;
    })
    .await;
    let student = app.user(Role::Student).await;
    let response = app.login(&student.user.username, PASSWORD).await;
    let body = error_body(response, 503, "unavailable").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("redis"));

    let response = app.request(Method::GET, "/readyz", None, None).await;
    let body = error_body(response, 503, "unavailable").await;
    assert_eq!(
        body["error"]["message"],
        "redis is unavailable, try again shortly"
    );
    assert!(body["error"]["fields"]["redis"].is_array());
    assert!(body["error"]["fields"].get("postgres").is_none());
}

#[actix_web::test]
async fn an_unreachable_database_is_a_503_naming_postgres() {
    let app = TestApp::spawn_with(|s| {
        s.database.url = crate::helpers::database_url("classbell_test_does_not_exist");
        s.server.pool_timeout_secs = 1;
    })
    .await;
    let response = app.request(Method::GET, "/readyz", None, None).await;
    let body = error_body(response, 503, "unavailable").await;
    assert_eq!(
        body["error"]["message"],
        "postgres is unavailable, try again shortly"
    );
    assert!(body["error"]["fields"]["postgres"].is_array());
    let response = app
        .post(
            "/auth/login",
            json!({"username": "ada", "password": PASSWORD}),
        )
        .await;
    error_body(response, 503, "unavailable").await;
}

#[actix_web::test]
async fn an_unexpected_failure_is_a_generic_500_that_leaks_nothing() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;
    app.sql("DROP TABLE refresh_tokens").await;
    let response = app.login(&student.user.username, PASSWORD).await;
    let body = error_body(response, 500, "internal").await;
    assert_eq!(
        body,
        json!({"error": {"code": "internal", "message": "internal server error", "fields": {}}})
    );
    // The server is still there.
    let response = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(response.status(), 200);
}
