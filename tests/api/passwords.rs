//! Change password, forgot username, forgot and reset password, and the mail they send.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    PASSWORD, TestApp, error_body, field_codes, json_body, smtp_server, unfold_mail, wait_for_files,
};
use classbell::users::model::Role;

const NEW_PASSWORD: &str = "Battery-Staple-77";

#[actix_web::test]
async fn change_password_checks_the_current_one_and_the_rules() {
    let app = TestApp::spawn().await;
    let (student, token) = app.signed_in(Role::Student).await;
    let change = |current: &str, new: &str| {
        app.request(
            Method::POST,
            "/auth/change-password",
            Some(&token),
            Some(json!({"current_password": current, "new_password": new})),
        )
    };

    let body = error_body(
        change("Not-My-Password-1", NEW_PASSWORD).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_codes(&body),
        json!({"current_password": ["incorrect"]})
    );

    let weak = format!("{}-Aa1", student.user.username);
    let body = error_body(change(PASSWORD, &weak).await, 400, "validation_failed").await;
    assert_eq!(field_codes(&body)["new_password"], json!(["personal"]));
    // Refusals changed nothing.
    assert_eq!(app.get("/auth/me", &token).await.status(), 200);
    assert_eq!(
        app.login(&student.user.username, PASSWORD).await.status(),
        200
    );
}

#[actix_web::test]
async fn change_password_ends_every_earlier_session() {
    let app = TestApp::spawn().await;
    let (student, token) = app.signed_in(Role::Student).await;
    let other_device = app.tokens(&student.user.username, PASSWORD).await;

    let response = app
        .request(
            Method::POST,
            "/auth/change-password",
            Some(&token),
            Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(response.status(), 204);

    error_body(app.get("/auth/me", &token).await, 401, "unauthorized").await;
    error_body(
        app.get("/auth/me", other_device["access_token"].as_str().unwrap())
            .await,
        401,
        "unauthorized",
    )
    .await;
    error_body(
        app.post(
            "/auth/refresh",
            json!({"refresh_token": other_device["refresh_token"]}),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    error_body(
        app.login(&student.user.username, PASSWORD).await,
        401,
        "unauthorized",
    )
    .await;
    let fresh = app.access_token(&student.user.username, NEW_PASSWORD).await;
    assert_eq!(app.get("/auth/me", &fresh).await.status(), 200);
}

#[actix_web::test]
async fn forgot_username_answers_the_same_and_mails_only_real_accounts() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;

    let known = app
        .post(
            "/auth/forgot-username",
            json!({"email": student.user.email.to_uppercase()}),
        )
        .await;
    assert_eq!(known.status(), 202);
    let known = json_body(known).await;
    let unknown = app
        .post(
            "/auth/forgot-username",
            json!({"email": "nobody@school.example"}),
        )
        .await;
    assert_eq!(unknown.status(), 202);
    assert_eq!(json_body(unknown).await, known);

    // The default transport: one .eml per message in the outbox folder.
    let mail = app.outbox_mail(1).await;
    assert_eq!(mail.len(), 1, "exactly one mail, for the real account");
    let mail = unfold_mail(&mail[0]);
    let to = mail
        .lines()
        .find(|l| l.starts_with("To: "))
        .expect("a To header");
    assert!(to.contains(&format!("<{}>", student.user.email)), "{to}");
    assert!(mail.contains("Subject: Your classbell username"));
    assert!(mail.contains(&format!("Your username is: {}", student.user.username)));

    error_body(
        app.post("/auth/forgot-username", json!({"email": "no-at-sign"}))
            .await,
        400,
        "validation_failed",
    )
    .await;
}

/// Starts an app that mails through the real SMTP server and returns the
/// reset link mailed to a fresh student.
async fn reset_link_by_smtp() -> (TestApp, crate::helpers::TestUser, String) {
    let (smtp_url, maildir) = smtp_server();
    let app = TestApp::spawn_with(|s| s.mail.smtp_url = Some(smtp_url)).await;
    let username = format!("reset-{}", &Uuid::new_v4().simple().to_string()[..10]);
    let student = {
        let email = format!("{username}@school.example");
        let account =
            classbell::users::accounts::NewAccount::named(&username, &email, Role::Student);
        let user = classbell::users::accounts::create(
            &app.db,
            &app.state.hasher,
            &account,
            Some(PASSWORD),
        )
        .await
        .unwrap();
        crate::helpers::TestUser {
            user,
            password: PASSWORD.into(),
        }
    };

    let response = app
        .post(
            "/auth/forgot-password",
            json!({"email": student.user.email}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let mails = wait_for_files(&maildir, 1, |text| text.contains(&student.user.email)).await;
    assert_eq!(mails.len(), 1, "the SMTP server received the reset mail");
    let mail = unfold_mail(&mails[0]);
    assert!(mail.contains("Subject: Reset your classbell password"));
    let prefix = format!("{}/reset-password#token=", app.settings.server.public_url);
    let start = mail.find(&prefix).expect("a reset link") + prefix.len();
    let token: String = mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(token.len() >= 40);
    assert!(
        app.outbox_mail(0).await.is_empty(),
        "with SMTP set, nothing goes to the outbox"
    );
    (app, student, token)
}

#[actix_web::test]
async fn reset_password_by_mailed_link_works_once_and_ends_sessions() {
    let (app, student, token) = reset_link_by_smtp().await;
    let session = app.access_token(&student.user.username, PASSWORD).await;

    let weak = error_body(
        app.post(
            "/auth/reset-password",
            json!({"token": token, "new_password": "short"}),
        )
        .await,
        400,
        "validation_failed",
    )
    .await;
    assert!(
        weak["error"]["fields"]["new_password"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );

    let response = app
        .post(
            "/auth/reset-password",
            json!({"token": token, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 204);
    error_body(app.get("/auth/me", &session).await, 401, "unauthorized").await;
    error_body(
        app.login(&student.user.username, PASSWORD).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(
        app.login(&student.user.username, NEW_PASSWORD)
            .await
            .status(),
        200
    );

    // Single use.
    let body = error_body(
        app.post(
            "/auth/reset-password",
            json!({"token": token, "new_password": "Another-Good-Pass-9"}),
        )
        .await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(field_codes(&body), json!({"token": ["invalid_token"]}));
    assert_eq!(
        app.login(&student.user.username, NEW_PASSWORD)
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn reset_tokens_expire() {
    let (app, student, token) = reset_link_by_smtp().await;
    app.sql("UPDATE password_resets SET expires_at = now() - interval '1 second'")
        .await;
    error_body(
        app.post(
            "/auth/reset-password",
            json!({"token": token, "new_password": NEW_PASSWORD}),
        )
        .await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(
        app.login(&student.user.username, PASSWORD).await.status(),
        200,
        "password unchanged"
    );
}

#[actix_web::test]
async fn reset_tokens_are_stored_only_as_hashes_and_expire_after_thirty_minutes() {
    let (app, _student, token) = reset_link_by_smtp().await;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        token_hash: Vec<u8>,
        #[diesel(sql_type = diesel::sql_types::Double)]
        minutes: f64,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = app.db.get().await.unwrap();
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT token_hash, extract(epoch FROM expires_at - created_at)::float8 / 60 AS minutes FROM password_resets",
    )
    .load(&mut *conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].token_hash,
        classbell::auth::secret_token::digest(&token)
    );
    assert_ne!(rows[0].token_hash, token.as_bytes());
    assert!((rows[0].minutes - 30.0).abs() < 0.1, "{}", rows[0].minutes);
}

#[actix_web::test]
async fn forgot_password_answers_the_same_for_unknown_addresses_and_mails_nothing() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;
    let unknown = app
        .post(
            "/auth/forgot-password",
            json!({"email": "ghost@school.example"}),
        )
        .await;
    assert_eq!(unknown.status(), 202);
    let unknown = json_body(unknown).await;
    assert!(app.outbox_mail(1).await.is_empty());

    let known = app
        .post(
            "/auth/forgot-password",
            json!({"email": student.user.email}),
        )
        .await;
    assert_eq!(known.status(), 202);
    assert_eq!(json_body(known).await, unknown);
    let mail = app.outbox_mail(1).await;
    assert_eq!(mail.len(), 1);
    assert!(unfold_mail(&mail[0]).contains("/reset-password#token="));
}

#[actix_web::test]
async fn mail_requests_for_one_address_are_capped_quietly() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;
    for _ in 0..7 {
        let response = app
            .post(
                "/auth/forgot-username",
                json!({"email": student.user.email}),
            )
            .await;
        assert_eq!(response.status(), 202);
    }
    let mail = app.outbox_mail(7).await;
    assert_eq!(
        mail.len(),
        5,
        "five mails an hour per address, then silence"
    );
}
