//! Register, password policy, login, tokens, refresh, logout.

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{PASSWORD, TestApp, error_body, field_codes, field_messages, json_body};
use classbell::ids::UserId;
use classbell::users::model::Role;

#[actix_web::test]
async fn register_creates_a_student_with_a_hashed_password() {
    let app = TestApp::spawn().await;
    let response = app
        .register("ada.lovelace", "Ada@School.example", PASSWORD)
        .await;
    assert_eq!(response.status(), 201);
    let body = json_body(response).await;
    assert_eq!(body["username"], "ada.lovelace");
    assert_eq!(body["email"], "Ada@School.example");
    assert_eq!(body["role"], "student");
    assert!(body["id"].as_i64().unwrap() > 0);
    assert!(body.get("password_hash").is_none());

    let mut conn = app.db.get().await.unwrap();
    let stored = classbell::users::store::find(&mut conn, UserId(body["id"].as_i64().unwrap()))
        .await
        .unwrap();
    let hash = stored
        .password_hash
        .expect("a registered account has a password");
    assert!(hash.starts_with("$argon2id$"));
    assert!(!hash.contains(PASSWORD));
}

#[actix_web::test]
async fn register_refuses_taken_names_whatever_their_case() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("grace", "grace@school.example", PASSWORD)
            .await
            .status(),
        201
    );

    let body = error_body(
        app.register("GRACE", "other@school.example", PASSWORD)
            .await,
        409,
        "already_exists",
    )
    .await;
    assert_eq!(field_codes(&body), json!({"username": ["taken"]}));

    let body = error_body(
        app.register("hopper", "Grace@SCHOOL.example", PASSWORD)
            .await,
        409,
        "already_exists",
    )
    .await;
    assert_eq!(field_codes(&body), json!({"email": ["taken"]}));
}

#[actix_web::test]
async fn register_lists_every_failed_password_rule() {
    let app = TestApp::spawn().await;
    let body = error_body(
        app.register("maria", "maria@school.example", "mariaQz")
            .await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_codes(&body)["password"],
        json!(["too_short", "character_classes", "personal"])
    );
    let reasons = &body["error"]["fields"]["password"];
    assert_eq!(reasons[0]["params"], json!({"min": 10}));
    assert_eq!(reasons[0]["message"], "must be at least 10 characters");
    assert_eq!(reasons[1]["params"], json!({"min": 3}));

    let body = error_body(
        app.register("maria", "maria@school.example", "1234567890")
            .await,
        400,
        "validation_failed",
    )
    .await;
    let codes = field_codes(&body)["password"].to_string();
    assert!(codes.contains("numeric"), "{codes}");
    assert!(codes.contains("common"), "{codes}");
}

#[actix_web::test]
async fn register_reports_bad_username_and_email_together() {
    let app = TestApp::spawn().await;
    let body = error_body(
        app.register("x", "not-an-email", PASSWORD).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_messages(&body),
        json!({
            "username": ["must be at least 3 characters"],
            "email": ["is not a valid email address"],
        })
    );
    assert_eq!(
        field_codes(&body),
        json!({"username": ["too_short"], "email": ["not_an_email"]})
    );
    let mut conn = app.db.get().await.unwrap();
    let (_, total) = classbell::users::store::list(
        &mut conn,
        &Default::default(),
        classbell::pagination::Page {
            limit: 10,
            offset: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(total, 0, "nothing is stored for a refused registration");
}

#[actix_web::test]
async fn password_policy_ticks_each_rule() {
    let app = TestApp::spawn().await;
    let body = json_body(
        app.post(
            "/auth/password-policy",
            json!({"password": "linus-2026", "username": "linus"}),
        )
        .await,
    )
    .await;
    assert_eq!(body["ok"], false);
    let rules: Vec<(String, bool)> = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    let failed: Vec<&str> = rules
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(failed, ["not_personal"]);
    assert_eq!(rules.len(), 6);
    assert!(body["rules"][0]["message"].is_string());

    let body = json_body(
        app.post("/auth/password-policy", json!({"password": PASSWORD}))
            .await,
    )
    .await;
    assert_eq!(body["ok"], true);
}

#[actix_web::test]
async fn login_accepts_username_or_email_and_me_answers() {
    let app = TestApp::spawn().await;
    let teacher = app.user(Role::Teacher).await;

    let by_name = app
        .tokens(&teacher.user.username.to_uppercase(), PASSWORD)
        .await;
    assert_eq!(by_name["token_type"], "Bearer");
    assert_eq!(by_name["expires_in"], 900);
    assert_eq!(by_name["user"]["role"], "teacher");
    assert!(by_name["refresh_token"].as_str().unwrap().len() >= 40);

    let by_email = app.tokens(&teacher.user.email, PASSWORD).await;
    let token = by_email["access_token"].as_str().unwrap();
    let me = json_body(app.get("/auth/me", token).await).await;
    assert_eq!(me["id"], teacher.user.id);
    assert_eq!(me["username"], teacher.user.username);
    assert_eq!(me["role"], "teacher");

    // The access token is an HS256 JWT with the documented claims.
    let claims = jwt_claims(token);
    assert_eq!(claims["sub"], teacher.user.id.to_string());
    assert_eq!(claims["role"], "teacher");
    for claim in ["exp", "iat", "jti", "sid"] {
        assert!(claims.get(claim).is_some(), "missing {claim}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[actix_web::test]
async fn wrong_credentials_get_one_answer_whether_or_not_the_user_exists() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;
    let wrong_password = error_body(
        app.login(&student.user.username, "Wrong-Password-1").await,
        401,
        "unauthorized",
    )
    .await;
    let no_such_user = error_body(
        app.login("nobody-here", "Wrong-Password-1").await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(wrong_password, no_such_user);
    assert_eq!(
        wrong_password["error"]["message"],
        "invalid username or password"
    );
}

#[actix_web::test]
async fn missing_or_bad_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let response = app.request(Method::GET, "/auth/me", None, None).await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    error_body(response, 401, "unauthorized").await;

    let response = app
        .client
        .get(app.url("/auth/me"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    let body = error_body(response, 401, "unauthorized").await;
    assert_eq!(body["error"]["message"], "expected a Bearer token");
}

/// Signs claims with `secret` as HS256.
fn forge(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[actix_web::test]
async fn tampered_unsigned_foreign_and_expired_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let (student, token) = app.signed_in(Role::Student).await;
    assert_eq!(app.get("/auth/me", &token).await.status(), 200);
    let claims = jwt_claims(&token);
    let [header, _, signature] = token.split('.').collect::<Vec<_>>()[..] else {
        panic!("not a JWT");
    };

    // Tampered: the payload now claims the admin role, with the old signature.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut raised = claims.clone();
    raised["role"] = json!("admin");
    let tampered = format!("{header}.{}.{signature}", b64.encode(raised.to_string()));
    let body = error_body(app.get("/auth/me", &tampered).await, 401, "unauthorized").await;
    assert_eq!(body["error"]["message"], "invalid access token");

    // alg: none, no signature.
    let none_header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", b64.encode(claims.to_string()));
    error_body(app.get("/auth/me", &unsigned).await, 401, "unauthorized").await;

    // Signed with another secret.
    let foreign = forge(&claims, "someone-elses-secret-someone-elses");
    error_body(app.get("/auth/me", &foreign).await, 401, "unauthorized").await;

    // Expired, though correctly signed for a live session.
    let mut old = claims.clone();
    let now = Utc::now().timestamp();
    old["iat"] = json!(now - 3600);
    old["exp"] = json!(now - 60);
    let expired = forge(&old, &app.settings.auth.jwt_secret);
    let body = error_body(app.get("/auth/me", &expired).await, 401, "unauthorized").await;
    assert_eq!(body["error"]["message"], "access token has expired");

    // Correctly signed but for a session that never existed.
    let mut stray = claims.clone();
    stray["sid"] = json!(Uuid::new_v4());
    let stray = forge(&stray, &app.settings.auth.jwt_secret);
    error_body(app.get("/auth/me", &stray).await, 401, "unauthorized").await;

    // The genuine token still works: nothing above harmed the session.
    let me = json_body(app.get("/auth/me", &token).await).await;
    assert_eq!(me["id"], student.user.id);
}

#[actix_web::test]
async fn refresh_rotates_and_reusing_a_spent_token_revokes_the_chain() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;
    let first = app.tokens(&student.user.username, PASSWORD).await;
    let first_refresh = first["refresh_token"].as_str().unwrap();

    let second = json_body(
        app.post("/auth/refresh", json!({"refresh_token": first_refresh}))
            .await,
    )
    .await;
    let second_refresh = second["refresh_token"].as_str().unwrap();
    let second_access = second["access_token"].as_str().unwrap();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(second["user"]["id"], student.user.id);
    assert_eq!(
        jwt_claims(second_access)["sid"],
        jwt_claims(first["access_token"].as_str().unwrap())["sid"]
    );
    assert_eq!(app.get("/auth/me", second_access).await.status(), 200);

    // Replaying the spent token revokes the whole session…
    let body = error_body(
        app.post("/auth/refresh", json!({"refresh_token": first_refresh}))
            .await,
        401,
        "unauthorized",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    // …so its successor and its access tokens stop working too.
    error_body(
        app.post("/auth/refresh", json!({"refresh_token": second_refresh}))
            .await,
        401,
        "unauthorized",
    )
    .await;
    error_body(
        app.get("/auth/me", second_access).await,
        401,
        "unauthorized",
    )
    .await;

    // Another login is unaffected.
    let (_, other) = (
        student.user.id,
        app.access_token(&student.user.username, PASSWORD).await,
    );
    assert_eq!(app.get("/auth/me", &other).await.status(), 200);

    error_body(
        app.post("/auth/refresh", json!({"refresh_token": "made-up"}))
            .await,
        401,
        "unauthorized",
    )
    .await;
}

#[actix_web::test]
async fn expired_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;
    let tokens = app.tokens(&student.user.username, PASSWORD).await;
    app.sql("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .await;
    error_body(
        app.post(
            "/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
}

#[actix_web::test]
async fn logout_ends_the_session_and_its_refresh_token() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;
    let tokens = app.tokens(&student.user.username, PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap();
    let other_device = app.access_token(&student.user.username, PASSWORD).await;

    let response = app
        .request(Method::POST, "/auth/logout", Some(access), None)
        .await;
    assert_eq!(response.status(), 204);
    error_body(app.get("/auth/me", access).await, 401, "unauthorized").await;
    error_body(
        app.post(
            "/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(
        app.get("/auth/me", &other_device).await.status(),
        200,
        "other sessions live on"
    );
}

#[actix_web::test]
async fn deactivated_users_lose_their_tokens_and_cannot_sign_in() {
    let app = TestApp::spawn().await;
    let (_, admin_token) = app.signed_in(Role::Admin).await;
    let student = app.user(Role::Student).await;
    let tokens = app.tokens(&student.user.username, PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap();

    let response = app
        .request(
            Method::PATCH,
            &format!("/api/users/{}", student.user.id),
            Some(&admin_token),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(json_body(response).await["is_active"], false);

    error_body(app.get("/auth/me", access).await, 401, "unauthorized").await;
    error_body(
        app.post(
            "/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    let body = error_body(
        app.login(&student.user.username, PASSWORD).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(body["error"]["message"], "invalid username or password");

    // Reactivation does not bring the old session back.
    app.request(
        Method::PATCH,
        &format!("/api/users/{}", student.user.id),
        Some(&admin_token),
        Some(json!({"is_active": true})),
    )
    .await;
    error_body(app.get("/auth/me", access).await, 401, "unauthorized").await;
    assert_eq!(
        app.login(&student.user.username, PASSWORD).await.status(),
        200
    );
}

#[actix_web::test]
async fn repeated_failures_for_one_username_are_throttled() {
    let app = TestApp::spawn_with(|s| s.auth.login_max_failures = 3).await;
    let student = app.user(Role::Student).await;
    let other = app.user(Role::Student).await;
    for _ in 0..3 {
        error_body(
            app.login(&student.user.username, "Wrong-Password-1").await,
            401,
            "unauthorized",
        )
        .await;
    }
    // Even the right password waits now, and the wait is announced.
    let response = app
        .login(&student.user.username.to_uppercase(), PASSWORD)
        .await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    error_body(response, 429, "too_many_requests").await;
    // Other users are not affected.
    assert_eq!(
        app.login(&other.user.username, PASSWORD).await.status(),
        200
    );
}

#[actix_web::test]
async fn a_success_clears_the_username_failure_count() {
    let app = TestApp::spawn_with(|s| s.auth.login_max_failures = 3).await;
    let student = app.user(Role::Student).await;
    for _ in 0..2 {
        app.login(&student.user.username, "Wrong-Password-1").await;
    }
    assert_eq!(
        app.login(&student.user.username, PASSWORD).await.status(),
        200
    );
    for _ in 0..2 {
        app.login(&student.user.username, "Wrong-Password-1").await;
    }
    assert_eq!(
        app.login(&student.user.username, PASSWORD).await.status(),
        200
    );
}

#[actix_web::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let app = TestApp::spawn_with(|s| {
        s.auth.login_max_failures_per_ip = 4;
        s.auth.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let student = app.user(Role::Student).await;
    let login_from = |address: &'static str, username: String, password: &'static str| {
        app.client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", address)
            .json(&json!({"username": username, "password": password}))
            .send()
    };
    for n in 0..4 {
        let response = login_from("203.0.113.7", format!("guess-{n}"), "Wrong-Password-1")
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = login_from("203.0.113.7", student.user.username.clone(), PASSWORD)
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    error_body(response, 429, "too_many_requests").await;
    let response = login_from("198.51.100.1", student.user.username.clone(), PASSWORD)
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "another address is not throttled");
}

#[actix_web::test]
async fn dead_credentials_are_pruned_and_live_ones_kept() {
    let app = TestApp::spawn().await;
    let student = app.user(Role::Student).await;
    let old = app.tokens(&student.user.username, PASSWORD).await;
    let live = app.tokens(&student.user.username, PASSWORD).await;
    app.post(
        "/auth/refresh",
        json!({"refresh_token": old["refresh_token"]}),
    )
    .await;
    app.request(
        Method::POST,
        "/auth/logout",
        old["access_token"].as_str(),
        None,
    )
    .await;
    app.post(
        "/auth/forgot-password",
        json!({"email": student.user.email}),
    )
    .await;
    // Age the dead ones past the keeping period.
    app.sql("UPDATE auth_sessions SET revoked_at = now() - interval '31 days' WHERE revoked_at IS NOT NULL").await;
    app.sql("UPDATE refresh_tokens SET spent_at = now() - interval '31 days' WHERE spent_at IS NOT NULL").await;
    app.sql("UPDATE password_resets SET expires_at = now() - interval '31 days'")
        .await;

    let mut conn = app.db.get().await.unwrap();
    let pruned = classbell::auth::store::prune_dead_credentials(
        &mut conn,
        classbell::auth::store::KEEP_DEAD_CREDENTIALS,
    )
    .await
    .unwrap();
    assert_eq!(pruned.sessions, 1);
    assert_eq!(pruned.password_resets, 1);
    assert_eq!(
        pruned.refresh_tokens, 1,
        "the spent token; the revoked session's successor went with it"
    );
    // The live session and its refresh token still work.
    assert_eq!(
        app.get("/auth/me", live["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    let refreshed = app
        .post(
            "/auth/refresh",
            json!({"refresh_token": live["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
}
