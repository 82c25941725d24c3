//! Text PostgreSQL cannot store — a NUL character — is refused where it
//! comes in (JSON bodies, query strings, multipart text, CSV cells) with a
//! 400 that names the field, never a 500, and nothing is stored. Found by
//! fuzzing the API from its OpenAPI description.

use reqwest::Method;
use serde_json::json;

use crate::attachments::{form, upload};
use crate::helpers::{TestApp, error_body, field_codes, json_body};
use crate::jobs::{finished, id_of, start};
use classbell::ids::CourseId;
use classbell::users::model::Role;

#[actix_web::test]
async fn a_nul_in_any_json_field_is_a_400_naming_the_field() {
    let app = TestApp::spawn().await;
    // Anonymous: the login the fuzzer broke.
    let refused = app
        .post(
            "/auth/login",
            json!({"username": "ada\u{0}", "password": "x"}),
        )
        .await;
    let body = error_body(refused, 400, "validation_failed").await;
    assert_eq!(
        field_codes(&body),
        json!({"username": ["control_characters"]})
    );

    let (_, admin) = app.signed_in(Role::Admin).await;
    for (path, sent, field) in [
        (
            "/api/courses",
            json!({"code": "NUL-1", "title": "Nul\u{0}l"}),
            "title",
        ),
        (
            "/api/announcements",
            json!({"title": "T", "body": "B", "audience": {"kind": "all\u{0}"}}),
            "audience",
        ),
        (
            "/auth/forgot-password",
            json!({"email": "a@b.example\u{0}"}),
            "email",
        ),
    ] {
        let refused = app.send(Method::POST, path, &admin, sent).await;
        let body = error_body(refused, 400, "validation_failed").await;
        assert_eq!(
            field_codes(&body),
            json!({field: ["control_characters"]}),
            "{path}"
        );
    }
    assert_eq!(id_of(&app, "SELECT count(*) AS id FROM courses").await, 0);

    // A backslash followed by "u0000" is text, and is kept.
    let kept = app
        .send(
            Method::POST,
            "/api/courses",
            &admin,
            json!({"code": "PATH-1", "title": "C:\\u0000 drive"}),
        )
        .await;
    assert_eq!(json_body(kept).await["title"], "C:\\u0000 drive");
}

#[actix_web::test]
async fn a_nul_in_a_query_string_is_a_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    for path in [
        "/api/users?q=ada%00",
        "/api/courses?q=%00",
        "/api/sections?term=x%00",
    ] {
        let body = error_body(app.get(path, &admin).await, 400, "validation_failed").await;
        let name = path.split('?').nth(1).unwrap().split('=').next().unwrap();
        assert_eq!(
            field_codes(&body),
            json!({name: ["control_characters"]}),
            "{path}"
        );
    }
}

#[actix_web::test]
async fn a_nul_in_multipart_text_or_a_csv_cell_is_refused_there() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let course = CourseId(
        json_body(
            app.send(
                Method::POST,
                "/api/courses",
                &manager,
                json!({"code": "BIO-1", "title": "Biology"}),
            )
            .await,
        )
        .await["id"]
            .as_i64()
            .unwrap(),
    );
    let refused = upload(
        &app,
        &manager,
        form(course, "Notes\u{0}", "notes.pdf", b"%PDF-1.4".to_vec()),
    )
    .await;
    let body = error_body(refused, 400, "validation_failed").await;
    assert_eq!(field_codes(&body), json!({"title": ["control_characters"]}));
    let stored = id_of(&app, "SELECT count(*) AS id FROM course_attachments").await;
    assert_eq!(stored, 0);

    // A NUL past the first 8 KiB (which the upload check reads) fails its
    // row, not the import.
    let mut csv = String::from("code,title\n");
    for i in 0..400 {
        csv.push_str(&format!("FILL-{i},Filler course number {i}\n"));
    }
    csv.push_str("NUL-9,Bad\u{0}title\n");
    let task = start(&app, "/api/imports/courses", &manager, Some(csv.as_bytes())).await;
    let done = finished(&app, &manager, &task).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(done["result"]["ok"], 400, "{done}");
    assert_eq!(done["result"]["failed"], 1, "{done}");
}
