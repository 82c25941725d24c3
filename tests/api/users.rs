//! Admin user management.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, error_body, field_messages, json_body};
use classbell::users::model::Role;

#[actix_web::test]
async fn staff_list_users_with_search_role_filter_and_paging() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    for _ in 0..3 {
        app.user(Role::Student).await;
    }
    let teacher = app.user(Role::Teacher).await;

    let all = json_body(app.get("/api/users", &manager).await).await;
    assert_eq!(all["total"], 5);
    assert_eq!(all["items"].as_array().unwrap().len(), 5);
    assert!(all["items"][0].get("password_hash").is_none());

    let students = json_body(
        app.get("/api/users?role=student&limit=2&offset=0", &manager)
            .await,
    )
    .await;
    assert_eq!(students["total"], 3);
    assert_eq!(students["items"].as_array().unwrap().len(), 2);
    let rest = json_body(
        app.get("/api/users/?role=student&limit=2&offset=2", &manager)
            .await,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_ne!(rest["items"][0]["id"], students["items"][0]["id"]);

    let found = json_body(
        app.get(
            &format!(
                "/api/users?q={}",
                &teacher.user.username[4..].to_uppercase()
            ),
            &manager,
        )
        .await,
    )
    .await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["id"], teacher.user.id);

    // LIKE wildcards in q match literally.
    let none = json_body(app.get("/api/users?q=%25", &manager).await).await;
    assert_eq!(none["total"], 0);

    let body = error_body(
        app.get("/api/users?role=janitor", &manager).await,
        400,
        "bad_request",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("janitor")
    );
    let body = error_body(
        app.get("/api/users?limit=0", &manager).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_messages(&body),
        json!({"limit": ["must be between 1 and 200"]})
    );
    assert_eq!(
        body["error"]["fields"]["limit"][0]["params"],
        json!({"min": 1, "max": 200})
    );
}

#[actix_web::test]
async fn students_and_teachers_may_not_list_users() {
    let app = TestApp::spawn().await;
    for role in [Role::Student, Role::Teacher] {
        let (_, token) = app.signed_in(role).await;
        error_body(app.get("/api/users", &token).await, 403, "forbidden").await;
    }
    for role in [Role::Registrar, Role::Admin] {
        let (_, token) = app.signed_in(role).await;
        assert_eq!(app.get("/api/users", &token).await.status(), 200);
    }
}

#[actix_web::test]
async fn only_admins_change_roles() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let student = app.user(Role::Student).await;
    let path = format!("/api/users/{}", student.user.id);

    let response = app
        .request(
            Method::PATCH,
            &path,
            Some(&manager),
            Some(json!({"role": "teacher"})),
        )
        .await;
    error_body(response, 403, "forbidden").await;

    let response = app
        .request(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"role": "teacher"})),
        )
        .await;
    let body = json_body(response).await;
    assert_eq!(body["role"], "teacher");
    assert_eq!(body["is_active"], true);
    let token = app
        .access_token(&student.user.username, &student.password)
        .await;
    assert_eq!(
        json_body(app.get("/auth/me", &token).await).await["role"],
        "teacher"
    );

    let response = app
        .request(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"role": "principal"})),
        )
        .await;
    error_body(response, 400, "bad_request").await;
    let response = app
        .request(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"password_hash": "x"})),
        )
        .await;
    error_body(response, 400, "bad_request").await;
    let response = app
        .request(
            Method::PATCH,
            "/api/users/999999",
            Some(&admin),
            Some(json!({"role": "teacher"})),
        )
        .await;
    error_body(response, 404, "not_found").await;
}

#[actix_web::test]
async fn the_last_active_admin_stays() {
    let app = TestApp::spawn().await;
    let (admin, token) = app.signed_in(Role::Admin).await;
    let own = format!("/api/users/{}", admin.user.id);

    for change in [json!({"role": "teacher"}), json!({"is_active": false})] {
        let response = app
            .request(Method::PATCH, &own, Some(&token), Some(change))
            .await;
        error_body(response, 409, "last_admin").await;
    }
    assert_eq!(
        json_body(app.get("/auth/me", &token).await).await["role"],
        "admin"
    );

    // With a second admin, the first may step down.
    let second = app.user(Role::Admin).await;
    let response = app
        .request(
            Method::PATCH,
            &own,
            Some(&token),
            Some(json!({"role": "manager"})),
        )
        .await;
    assert_eq!(json_body(response).await["role"], "manager");
    let second_token = app
        .access_token(&second.user.username, &second.password)
        .await;
    let response = app
        .request(
            Method::PATCH,
            &format!("/api/users/{}", second.user.id),
            Some(&second_token),
            Some(json!({"is_active": false})),
        )
        .await;
    error_body(response, 409, "last_admin").await;
}
