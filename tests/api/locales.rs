//! The school's clock and languages: `GET /api/config`, local times read in
//! the school's zone, and each person's language.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, error_body, json_body};
use classbell::users::model::Role;

async fn config(app: &TestApp) -> serde_json::Value {
    json_body(app.client.get(app.url("/api/config")).send().await.unwrap()).await
}

#[actix_web::test]
async fn the_app_learns_the_school_before_sign_in() {
    let app = TestApp::spawn_with(|settings| {
        settings.school.timezone = "Asia/Shanghai".into();
        settings.school.default_locale = "zh-CN".parse().unwrap();
    })
    .await;
    let school = config(&app).await;
    assert_eq!(school["timezone"], "Asia/Shanghai");
    assert_eq!(school["default_locale"], "zh-CN");
    assert_eq!(school["locales"], json!(["en", "zh-CN"]));
    assert_eq!(school["registration"], json!({"mode": "open"}));
}

#[actix_web::test]
async fn a_local_time_is_read_on_the_school_clock() {
    let app =
        TestApp::spawn_with(|settings| settings.school.timezone = "Asia/Shanghai".into()).await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let create = |publish_at: &str| {
        json!({"title": "Sports day", "body": "Bring water.", "audience": {"kind": "all_students"},
               "publish_at": publish_at})
    };
    let response = app
        .send(
            Method::POST,
            "/api/announcements",
            &manager,
            create("2030-12-03T08:00"),
        )
        .await;
    let scheduled = json_body(response).await;
    assert_eq!(scheduled["status"], "scheduled");
    assert_eq!(
        scheduled["publish_at"], "2030-12-03T00:00:00Z",
        "08:00 in Shanghai"
    );
    // An offset wins over the school's zone.
    let response = app
        .send(
            Method::POST,
            "/api/announcements",
            &manager,
            create("2030-12-03T08:00:00+01:00"),
        )
        .await;
    assert_eq!(
        json_body(response).await["publish_at"],
        "2030-12-03T07:00:00Z"
    );
    // Rescheduled with a local time too.
    let path = format!("/api/announcements/{}", scheduled["id"]);
    let moved = app
        .send(
            Method::PATCH,
            &path,
            &manager,
            json!({"publish_at": "2030-12-04T17:30"}),
        )
        .await;
    assert_eq!(json_body(moved).await["publish_at"], "2030-12-04T09:30:00Z");
    for (bad, reason) in [
        ("tomorrow morning", "RFC 3339"),
        ("2001-01-01T08:00", "future"),
    ] {
        let refused = error_body(
            app.send(Method::POST, "/api/announcements", &manager, create(bad))
                .await,
            400,
            "validation_failed",
        )
        .await;
        let said = refused["error"]["fields"]["publish_at"][0]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(said.contains(reason), "{bad}: {said}");
    }
}

#[actix_web::test]
async fn people_choose_their_language_and_staff_can_set_it() {
    let app = TestApp::spawn().await;
    let (student, token) = app.signed_in(Role::Student).await;
    let me = json_body(app.get("/auth/me", &token).await).await;
    assert_eq!(me["locale"], serde_json::Value::Null, "not chosen yet");
    let chosen = app
        .send(
            Method::PATCH,
            "/auth/me",
            &token,
            json!({"locale": "zh-CN"}),
        )
        .await;
    assert_eq!(json_body(chosen).await["locale"], "zh-CN");
    assert_eq!(
        json_body(app.get("/auth/me", &token).await).await["locale"],
        "zh-CN"
    );
    let refused = app
        .send(Method::PATCH, "/auth/me", &token, json!({"locale": "fr"}))
        .await;
    assert_eq!(refused.status(), 400);
    let refused = app
        .send(
            Method::PATCH,
            "/auth/me",
            &token,
            json!({"locale": "en", "role": "admin"}),
        )
        .await;
    assert_eq!(
        refused.status(),
        400,
        "only the language is the user's to set"
    );
    assert_eq!(
        json_body(app.get("/auth/me", &token).await).await["role"],
        "student"
    );

    let (_, registrar) = app.signed_in(Role::Registrar).await;
    let set = app
        .send(
            Method::PATCH,
            &format!("/api/users/{}", student.user.id),
            &registrar,
            json!({"locale": "en"}),
        )
        .await;
    assert_eq!(json_body(set).await["locale"], "en");
}
