//! The school's people: names in any script, school numbers, accounts made
//! by staff with invitations, and who may manage whom.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_body, json_body, unfold_mail};
use classbell::users::model::Role;

/// The invitation tokens mailed to `email` once `mails` mails are out, in
/// no particular order.
async fn invitation_tokens(app: &TestApp, email: &str, mails: usize) -> Vec<String> {
    let prefix = format!(
        "{}/accept-invitation#token=",
        app.settings.server.public_url
    );
    app.outbox_mail(mails)
        .await
        .iter()
        .map(|raw| unfold_mail(raw))
        .filter(|mail| mail.contains(email))
        .filter_map(|mail| {
            let start = mail.find(&prefix)? + prefix.len();
            Some(
                mail[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect(),
            )
        })
        .collect()
}

/// The one invitation token mailed to `email` that is not in `seen`.
async fn invitation_token(app: &TestApp, email: &str, seen: &[String]) -> String {
    let tokens = invitation_tokens(app, email, seen.len() + 1).await;
    let new: Vec<String> = tokens.into_iter().filter(|t| !seen.contains(t)).collect();
    assert_eq!(new.len(), 1, "one new invitation to {email}");
    new[0].clone()
}

async fn accept(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post(
        "/auth/accept-invitation",
        json!({"token": token, "new_password": password}),
    )
    .await
}

#[actix_web::test]
async fn people_have_names_in_any_script() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/auth/register",
            json!({"username": "zhang.wei", "email": "zhang.wei@school.example",
                   "password": PASSWORD, "display_name": "  张伟 "}),
        )
        .await;
    let created = json_body(response).await;
    assert_eq!(created["display_name"], "张伟");
    assert_eq!(created["number"], Value::Null);
    assert_eq!(created["invitation_pending"], false);
    let plain = json_body(
        app.register("zoe.obrien", "zoe@school.example", PASSWORD)
            .await,
    )
    .await;
    assert_eq!(
        plain["display_name"], "zoe.obrien",
        "the username stands in"
    );
    let refused = app
        .post(
            "/auth/register",
            json!({"username": "eve.x", "email": "eve@school.example",
                   "password": PASSWORD, "display_name": "Eve\u{202e}nimda"}),
        )
        .await;
    let body = error_body(refused, 400, "validation_failed").await;
    assert!(body["error"]["fields"]["display_name"].is_array(), "{body}");

    let token = app.access_token("zhang.wei", PASSWORD).await;
    let me = json_body(app.get("/auth/me", &token).await).await;
    assert_eq!(me["display_name"], "张伟");
}

#[actix_web::test]
async fn a_registrar_invites_a_student_who_sets_a_password_once() {
    let app = TestApp::spawn().await;
    let (_, registrar) = app.signed_in(Role::Registrar).await;
    let response = app
        .send(
            Method::POST,
            "/api/users",
            &registrar,
            json!({"username": "li.na", "display_name": "Li Na", "email": "li.na@school.example",
                   "role": "student", "number": "S-2026-001"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created = json_body(response).await;
    assert_eq!(created["invitation_pending"], true);
    assert_eq!(created["number"], "S-2026-001");
    assert!(created.get("password").is_none() && created.get("token").is_none());
    // No password yet: signing in fails like any wrong password.
    error_body(app.login("li.na", "").await, 400, "validation_failed").await;
    error_body(app.login("li.na", PASSWORD).await, 401, "unauthorized").await;

    let token = invitation_token(&app, "li.na@school.example", &[]).await;
    // An invitation is not a reset token, and the password rules hold.
    let reset = app
        .post(
            "/auth/reset-password",
            json!({"token": token, "new_password": PASSWORD}),
        )
        .await;
    error_body(reset, 400, "validation_failed").await;
    error_body(
        accept(&app, &token, "short").await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(accept(&app, &token, PASSWORD).await.status(), 204);
    let signed_in = app.tokens("li.na", PASSWORD).await;
    assert_eq!(signed_in["user"]["display_name"], "Li Na");
    assert_eq!(signed_in["user"]["invitation_pending"], false);
    // Once only.
    error_body(
        accept(&app, &token, "Another-Horse-43").await,
        400,
        "validation_failed",
    )
    .await;
    let again = app
        .send(
            Method::POST,
            &format!("/api/users/{}/invitation", created["id"]),
            &registrar,
            json!({}),
        )
        .await;
    error_body(again, 409, "already_accepted").await;
}

#[actix_web::test]
async fn an_invitation_expires_and_a_new_one_replaces_it() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let created = json_body(
        app.send(
            Method::POST,
            "/api/users",
            &admin,
            json!({"username": "mr.tan", "display_name": "Tan Hui", "email": "tan@school.example",
                   "role": "teacher"}),
        )
        .await,
    )
    .await;
    let first = invitation_token(&app, "tan@school.example", &[]).await;
    let path = format!("/api/users/{}/invitation", created["id"]);
    assert_eq!(
        app.send(Method::POST, &path, &admin, json!({}))
            .await
            .status(),
        202
    );
    let second = invitation_token(&app, "tan@school.example", std::slice::from_ref(&first)).await;
    assert_ne!(first, second);
    error_body(
        accept(&app, &first, PASSWORD).await,
        400,
        "validation_failed",
    )
    .await;
    app.sql("UPDATE password_resets SET expires_at = now() - interval '1 second' WHERE purpose = 'invitation'")
        .await;
    error_body(
        accept(&app, &second, PASSWORD).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(
        app.send(Method::POST, &path, &admin, json!({}))
            .await
            .status(),
        202
    );
    let third =
        invitation_token(&app, "tan@school.example", &[first.clone(), second.clone()]).await;
    assert_eq!(accept(&app, &third, PASSWORD).await.status(), 204);
    app.tokens("mr.tan", PASSWORD).await;
}

#[actix_web::test]
async fn registrars_manage_students_and_teachers_only() {
    let app = TestApp::spawn().await;
    let (_, registrar) = app.signed_in(Role::Registrar).await;
    let (manager, _) = app.signed_in(Role::Manager).await;
    let (student, _) = app.signed_in(Role::Student).await;
    let (_, teacher_token) = app.signed_in(Role::Teacher).await;
    let new = |role: &str, name: &str| json!({"username": name, "display_name": name, "email": format!("{name}@school.example"), "role": role});
    for role in ["admin", "manager", "registrar"] {
        let response = app
            .send(
                Method::POST,
                "/api/users",
                &registrar,
                new(role, &format!("x-{role}")),
            )
            .await;
        error_body(response, 403, "forbidden").await;
    }
    let response = app
        .send(
            Method::POST,
            "/api/users",
            &teacher_token,
            new("student", "by-teacher"),
        )
        .await;
    error_body(response, 403, "forbidden").await;
    // Not a staff account's e-mail, and never a role above teacher.
    let manager_path = format!("/api/users/{}", manager.user.id);
    let takeover = app
        .send(
            Method::PATCH,
            &manager_path,
            &registrar,
            json!({"email": "mine@evil.example"}),
        )
        .await;
    error_body(takeover, 403, "forbidden").await;
    let student_path = format!("/api/users/{}", student.user.id);
    let promote = app
        .send(
            Method::PATCH,
            &student_path,
            &registrar,
            json!({"role": "manager"}),
        )
        .await;
    error_body(promote, 403, "forbidden").await;
    // What a registrar may do.
    let edited = app
        .send(
            Method::PATCH,
            &student_path,
            &registrar,
            json!({"display_name": "Chen Jing 陈静", "number": "S-7", "role": "teacher"}),
        )
        .await;
    let edited = json_body(edited).await;
    assert_eq!(edited["display_name"], "Chen Jing 陈静");
    assert_eq!(edited["role"], "teacher");
    let cleared = json_body(
        app.send(
            Method::PATCH,
            &student_path,
            &registrar,
            json!({"number": ""}),
        )
        .await,
    )
    .await;
    assert_eq!(cleared["number"], Value::Null);
    // Nothing of the manager changed.
    let stored = classbell::users::store::find(&mut app.db.get().await.unwrap(), manager.user.id)
        .await
        .unwrap();
    assert_eq!(stored.email, manager.user.email);
}

#[actix_web::test]
async fn numbers_are_unique_and_people_are_found_by_any_name() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let create = |username: &str, name: &str, number: &str| {
        json!({"username": username, "display_name": name, "email": format!("{username}@school.example"),
               "role": "student", "number": number})
    };
    let first = app
        .send(
            Method::POST,
            "/api/users",
            &admin,
            create("wang.fang", "王芳", "S-100"),
        )
        .await;
    assert_eq!(first.status(), 201);
    let clash = app
        .send(
            Method::POST,
            "/api/users",
            &admin,
            create("other.one", "Other", "s-100"),
        )
        .await;
    let body = error_body(clash, 409, "already_exists").await;
    assert!(body["error"]["fields"]["number"].is_array(), "{body}");
    for q in ["王芳", "wang.f", "S-100", "wang.fang@school"] {
        let found = json_body(
            app.get(&format!("/api/users?q={}", urlencode(q)), &admin)
                .await,
        )
        .await;
        assert_eq!(found["total"], 1, "{q}: {found}");
        assert_eq!(found["items"][0]["username"], "wang.fang");
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
