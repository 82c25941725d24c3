//! Hostile clients: what one anonymous client (or a curious user) tries,
//! and what classbell does about it. One test per point of the hardening
//! list; each failed before its fix.

use reqwest::Method;
use serde_json::json;

use crate::attachments::{form, upload};
use crate::helpers::{PASSWORD, TestApp, error_body, field_codes, json_body};
use crate::jobs::{export, finished, start};
use crate::ws_client::{Incoming, WsClient};
use classbell::config::Environment;
use classbell::sections::model::SectionStatus;
use classbell::users::model::Role;

/// A formula in a course title reaches a spreadsheet as text, and what the
/// export wrote imports back as it was.
#[actix_web::test]
async fn csv_exports_neutralise_formulas_and_import_back_unchanged() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let formula = r#"=HYPERLINK("http://evil.example","click")"#;
    let response = app
        .send(
            Method::POST,
            "/api/courses",
            &manager,
            json!({"code": "EVIL-1", "title": formula, "description": "-5 points, @teacher"}),
        )
        .await;
    assert_eq!(response.status(), 201);

    let (_, csv) = export(&app, &manager, "/api/exports/courses").await;
    assert!(
        csv.contains(
            r#"EVIL-1,"'=HYPERLINK(""http://evil.example"",""click"")","'-5 points, @teacher",3.0"#
        ),
        "{csv}"
    );

    // Someone changes the course; importing the export puts it back exactly.
    app.sql("UPDATE courses SET title = 'changed', description = '' WHERE code = 'EVIL-1'")
        .await;
    let task = start(&app, "/api/imports/courses", &manager, Some(csv.as_bytes())).await;
    let done = finished(&app, &manager, &task).await;
    assert_eq!(done["result"]["status"], "success", "{done}");
    let courses = json_body(app.get("/api/courses?q=EVIL-1", &manager).await).await;
    assert_eq!(courses["items"][0]["title"], formula);
    assert_eq!(courses["items"][0]["description"], "-5 points, @teacher");
}

/// Made-up HTTP methods do not mint metric series: they count as `other`.
#[actix_web::test]
async fn made_up_methods_share_one_metric_label() {
    let app = TestApp::spawn().await;
    for n in 0..30 {
        let method = Method::from_bytes(format!("XEVIL{n}").as_bytes()).unwrap();
        let response = app.request(method, "/healthz", None, None).await;
        assert_eq!(response.status(), 405);
    }
    let metrics = app.metrics_text().await;
    assert!(
        !metrics.contains("XEVIL"),
        "a made-up method became a label"
    );
    assert!(metrics.contains(r#"method="other""#));
}

/// `/readyz` names what is down and says nothing of why: no host, no
/// dependency's error text.
#[actix_web::test]
async fn readiness_names_what_is_down_without_its_error() {
    let app = TestApp::spawn_with(|s| {
        s.redis.url = "redis://127.0.0.1:1".into();
        s.server.pool_timeout_secs = 1;
    })
    .await;
    let response = app.request(Method::GET, "/readyz", None, None).await;
    let body = error_body(response, 503, "unavailable").await;
    assert_eq!(field_codes(&body)["redis"], json!(["down"]));
    assert_eq!(field_codes(&body)["bridge"], json!(["down"]));
    let text = body.to_string();
    assert!(!text.contains("127.0.0.1"), "{text}");
    assert!(!text.to_lowercase().contains("refused"), "{text}");
}

/// Sign-ins beyond what the hashers take wait briefly, then get 503 with
/// `Retry-After` (unknown usernames included: they hash a decoy in the same
/// queue); health and the inbox keep answering meanwhile.
#[actix_web::test]
async fn parallel_sign_ins_are_bounded_not_piled_up() {
    let app = TestApp::spawn_with(|s| {
        s.auth.password_hash_concurrency = 1;
        s.auth.password_hash_wait_ms = 20;
    })
    .await;
    let (_, student) = app.signed_in(Role::Student).await;
    let names: Vec<String> = (0..24).map(|n| format!("nobody-{n}")).collect();
    let burst = names
        .iter()
        .map(|name| app.login(name, "Wrong-Password-42"));
    let meanwhile = async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let health = app.request(Method::GET, "/healthz", None, None).await;
        let inbox = app.get("/api/deliveries", &student).await;
        (health.status().as_u16(), inbox.status().as_u16())
    };
    let (answers, (health, inbox)) = tokio::join!(futures_util::future::join_all(burst), meanwhile);
    assert_eq!((health, inbox), (200, 200));
    let (mut refused, mut busy) = (0, 0);
    for answer in answers {
        match answer.status().as_u16() {
            401 => refused += 1,
            503 => {
                busy += 1;
                assert_eq!(answer.headers()["retry-after"], "1");
                let body = json_body(answer).await;
                assert_eq!(body["error"]["code"], "unavailable");
            }
            other => panic!("a sign-in answered {other}"),
        }
    }
    assert!(refused >= 1 && busy >= 1, "{refused} refused, {busy} busy");
    let metrics = app.metrics_text().await;
    let rejected = metrics
        .lines()
        .find(|line| line.starts_with("classbell_password_hashing_rejected_total"))
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(rejected >= busy as f64, "{rejected} < {busy}");
}

/// A teacher demoted to student loses, at once, what publishers see: the
/// figures, the unacknowledged list (with e-mails), reminding, the export,
/// and the live figures; their open websocket closes to reconnect as who
/// they are now.
#[actix_web::test]
async fn a_demoted_publisher_loses_what_publishers_see_at_once() {
    let app = TestApp::spawn().await;
    let class = crate::realtime::class(&app).await;
    let (id, _) = crate::realtime::published(&app, &class).await;
    let (mut socket, _) = crate::realtime::open(&app, &class.teacher).await;
    socket
        .send_json(json!({"type": "subscribe_stats", "announcement_id": id}))
        .await;
    socket.expect("announcement.stats").await;
    for path in ["stats", "unacked"] {
        let response = app
            .get(&format!("/api/announcements/{id}/{path}"), &class.teacher)
            .await;
        assert_eq!(response.status(), 200, "{path} before the change");
    }

    let me = json_body(app.get("/auth/me", &class.teacher).await).await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let response = app
        .send(
            Method::PATCH,
            &format!("/api/users/{}", me["id"]),
            &admin,
            json!({"role": "student"}),
        )
        .await;
    assert_eq!(response.status(), 200);

    let (code, reason) = socket.closed(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        (code, reason.as_str()),
        (1013, "your role changed; reconnect")
    );
    for path in ["stats", "unacked"] {
        let response = app
            .get(&format!("/api/announcements/{id}/{path}"), &class.teacher)
            .await;
        error_body(response, 404, "not_found").await;
    }
    for path in ["remind_unacked", "exports/unacked"] {
        let response = app
            .send(
                Method::POST,
                &format!("/api/announcements/{id}/{path}"),
                &class.teacher,
                json!({}),
            )
            .await;
        error_body(response, 404, "not_found").await;
    }
    let (mut again, _) = crate::realtime::open(&app, &class.teacher).await;
    again
        .send_json(json!({"type": "subscribe_stats", "announcement_id": id}))
        .await;
    assert_eq!(again.expect("error").await["code"], "forbidden");
}

/// Credentials in an address (a websocket ticket, a reset token) never reach
/// the log: their values are redacted in every line; and the reset mail puts
/// its token in the link's fragment, which browsers do not send at all.
#[actix_web::test]
async fn credentials_in_addresses_never_reach_the_log() {
    let app = TestApp::spawn().await;
    let log = app.outbox.path().join("node.log");
    let node = app.node_logging(&[("RUST_LOG", "info")], Some(&log)).await;
    for path in [
        "/ws?ticket=TICKET-SECRET-1&since=5",
        "/reset-password?token=RESET-SECRET-2",
        "/api/deliveries?limit=5&Token=CASE-SECRET-3",
    ] {
        reqwest::get(node.url(path)).await.unwrap();
    }
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("REDACTED").count() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(text.contains("since=5"), "{text}");
    for secret in ["TICKET-SECRET-1", "RESET-SECRET-2", "CASE-SECRET-3"] {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
    }
    assert!(text.matches("REDACTED").count() >= 3, "{text}");
}

/// The failed-sign-in limit holds against a parallel burst (each attempt is
/// counted before it is checked), counts per account whichever identifier
/// was typed, and a password longer than any can be is refused unhashed.
#[actix_web::test]
async fn sign_in_limits_hold_under_bursts_and_across_identifiers() {
    let app = TestApp::spawn_with(|s| s.auth.login_max_failures = 3).await;
    let target = app.user(Role::Student).await;
    let username = target.user.username.clone();
    let burst = (0..12).map(|_| app.login(&username, "Wrong-Password-42"));
    let answers = futures_util::future::join_all(burst).await;
    let refused = answers.iter().filter(|a| a.status() == 401).count();
    let limited = answers.iter().filter(|a| a.status() == 429).count();
    assert_eq!(
        (refused, limited),
        (3, 9),
        "only the limit's worth get checked"
    );

    // 2 wrong by username and 2 by e-mail are 4 failures of one account.
    let other = app.user(Role::Student).await;
    for login in [
        &other.user.username,
        &other.user.username,
        &other.user.email,
    ] {
        let response = app.login(login, "Wrong-Password-42").await;
        assert_eq!(response.status(), 401);
    }
    let response = app.login(&other.user.email, "Wrong-Password-42").await;
    assert_eq!(
        response.status(),
        429,
        "the e-mail shares the username's count"
    );
    let response = app
        .login(&other.user.username, crate::helpers::PASSWORD)
        .await;
    error_body(response, 429, "too_many_requests").await;

    let long = "x".repeat(10_000);
    let response = app
        .login(&app.user(Role::Student).await.user.username, &long)
        .await;
    let body = error_body(response, 400, "validation_failed").await;
    assert!(body["error"]["fields"]["password"].is_array());
}

/// Behind a trusted proxy, the client is the right-most forwarded address
/// that is not a proxy: writing a new first hop per request does not make
/// a new address. From a peer that is not a trusted proxy, the header is
/// not believed at all.
#[actix_web::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let behind = TestApp::spawn_with(|s| {
        s.auth.login_max_failures_per_ip = 4;
        s.auth.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let direct = TestApp::spawn_with(|s| s.auth.login_max_failures_per_ip = 4).await;
    for app in [&behind, &direct] {
        let mut statuses = Vec::new();
        for n in 0..6 {
            let response = app
                .client
                .post(app.url("/auth/login"))
                .header("x-forwarded-for", format!("10.9.{n}.1, 203.0.113.9"))
                .json(&json!({"username": format!("guess-{n}"), "password": "Wrong-Password-1"}))
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    }
    // Behind the proxy, another client (another right-most address) is not throttled.
    let response = behind
        .client
        .post(behind.url("/auth/login"))
        .header("x-forwarded-for", "203.0.113.10")
        .json(&json!({"username": "guess-x", "password": "Wrong-Password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// Guessing a password through change-password is as slow as signing in
/// (counted per account before the check); registrations and forgotten-
/// password or -username requests are capped per address.
#[actix_web::test]
async fn password_checks_and_account_requests_are_throttled_too() {
    let app = TestApp::spawn_with(|s| {
        s.auth.login_max_failures = 3;
        s.auth.account_requests_per_ip = 3;
    })
    .await;
    let (student, token) = app.signed_in(Role::Student).await;
    let change = |current: String| {
        app.send(
            Method::POST,
            "/auth/change-password",
            &token,
            json!({"current_password": current, "new_password": "Lantern-Orchard-57"}),
        )
    };
    // A current password longer than any can be is wrong, unhashed; it counts.
    for guess in [
        "x".repeat(10_000),
        "Wrong-Guess-123".into(),
        "Wrong-Guess-456".into(),
    ] {
        let body = error_body(change(guess).await, 400, "validation_failed").await;
        assert_eq!(field_codes(&body)["current_password"], json!(["incorrect"]));
    }
    let response = change(crate::helpers::PASSWORD.into()).await;
    assert!(response.headers().contains_key("retry-after"));
    error_body(response, 429, "too_many_requests").await;
    assert_eq!(
        app.login(&student.user.username, crate::helpers::PASSWORD)
            .await
            .status(),
        200,
        "the password did not change"
    );

    // Registrations and mail requests from one address share one count.
    for n in 0..2 {
        let response = app
            .register(
                &format!("newcomer{n}"),
                &format!("newcomer{n}@school.example"),
                "Lantern-Orchard-57",
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    let response = app
        .post(
            "/auth/forgot-username",
            json!({"email": "someone@school.example"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let response = app
        .post(
            "/auth/forgot-password",
            json!({"email": "someone@school.example"}),
        )
        .await;
    error_body(response, 429, "too_many_requests").await;
    let response = app
        .register(
            "newcomer9",
            "newcomer9@school.example",
            "Lantern-Orchard-57",
        )
        .await;
    error_body(response, 429, "too_many_requests").await;
}

/// In production, `classbell demo` (accounts with a published password)
/// runs only when forced.
#[test]
fn the_demo_school_is_not_seeded_in_production_unless_forced() {
    let database = crate::helpers::TestDatabase::migrated();
    let outbox = tempfile::tempdir().unwrap();
    let demo = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_classbell"))
            .arg("demo")
            .args(args)
            .env("CLASSBELL_ENV", "production")
            .env(
                "CLASSBELL_JWT_SECRET",
                "a-production-secret-of-at-least-32-bytes",
            )
            .env("CLASSBELL_DATABASE_URL", database.url())
            .env("CLASSBELL_REDIS_URL", crate::helpers::redis_url())
            .env("CLASSBELL_MAIL_OUTBOX", outbox.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let refused = demo(&[]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--force"), "{said}");
    let forced = demo(&["--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(String::from_utf8_lossy(&forced.stdout).contains("25 accounts created"));
}

/// A deactivated student is not reminded, in the app or by mail.
#[actix_web::test]
async fn reminders_skip_deactivated_accounts() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let mut students = Vec::new();
    for _ in 0..3 {
        students.push(app.user(Role::Student).await.user);
    }
    let announcement = app.announce(&admin, json!({"kind": "all_students"})).await;
    let id = announcement["id"].as_i64().unwrap();
    app.fanned_out(&admin, id).await;
    let gone = &students[0];
    let response = app
        .send(
            Method::PATCH,
            &format!("/api/users/{}", gone.id),
            &admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(response.status(), 200);

    let path = format!("/api/announcements/{id}/remind_unacked");
    let reminded = json_body(app.send(Method::POST, &path, &admin, json!({})).await).await;
    assert_eq!(reminded, json!({"reminded": 2}));
    let mails =
        crate::helpers::wait_for_files(app.outbox.path(), 2, |text| text.contains("Reminder"))
            .await;
    assert_eq!(mails.len(), 2);
    assert!(mails.iter().all(|mail| !mail.contains(&gone.email)));
}

/// A job that reports progress seldom (an export reads and writes in one
/// go) keeps its claim while it runs: another node never runs it again.
#[actix_web::test]
async fn a_long_job_keeps_its_claim_while_it_runs() {
    let app = TestApp::spawn_with(|s| {
        s.jobs.lease_secs = 1;
        s.jobs.poll_ms = 100;
        s.jobs.chunk_delay_ms = 2500;
    })
    .await;
    let _other = app
        .node(&[
            ("CLASSBELL_JOB_LEASE_SECS", "1"),
            ("CLASSBELL_JOB_POLL_MS", "100"),
            ("CLASSBELL_JOB_CHUNK_DELAY_MS", "2500"),
        ])
        .await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    app.course("LONG-1").await;
    let task = start(&app, "/api/exports/courses", &manager, None).await;
    let done = finished(&app, &manager, &task).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    let attempts = crate::jobs::id_of(
        &app,
        &format!("SELECT attempts::bigint AS id FROM jobs WHERE id = '{task}'"),
    )
    .await;
    assert_eq!(attempts, 1, "the job ran once");
}

/// An uploaded file's name cannot disguise it: text-reordering characters
/// go, and the download names it in an ASCII `filename` and the exact
/// `filename*` (RFC 6266).
#[actix_web::test]
async fn attachment_names_cannot_disguise_themselves() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let course = app.course("NAMES-1").await;
    let file = reqwest::multipart::Part::bytes(b"%PDF-1.4 answers".to_vec())
        .file_name("\u{dc}bung\u{202e}fdp.exe")
        .mime_str("application/pdf")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .percent_encode_noop()
        .text("course", course.to_string())
        .text("title", "Answers")
        .part("file", file);
    let response = app
        .client
        .post(app.url("/api/course_attachments"))
        .bearer_auth(&manager)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created = json_body(response).await;
    assert_eq!(created["filename"], "\u{dc}bungfdp.exe");
    let response = app
        .get(
            &format!("/api/course_attachments/{}/download", created["id"]),
            &manager,
        )
        .await;
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.contains(r#"filename="_bungfdp.exe""#),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''%C3%9Cbungfdp.exe"),
        "{disposition}"
    );
}

/// A websocket message past the frame limit closes the socket with 1009
/// (message too big), not as a protocol error.
#[actix_web::test]
async fn an_oversize_websocket_message_closes_with_1009() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_in(Role::Student).await;
    let (mut socket, _) = crate::realtime::open(&app, &token).await;
    socket.send_text(&"x".repeat(64 * 1024)).await;
    let (code, reason) = socket.closed(std::time::Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (1009, "message too big"));
}

/// A course's files reach its current teachers, staff and the students of
/// its current sections only; a student lists their own sections; a course
/// announcement skips archived sections.
#[actix_web::test]
async fn course_files_and_sections_are_seen_by_their_people_only() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    let (_, outsider_teacher) = app.signed_in(Role::Teacher).await;
    let (student, student_token) = app.signed_in(Role::Student).await;
    let (_, stranger) = app.signed_in(Role::Student).await;
    let physics = app.course("SEE-PHYS").await;
    let history = app.course("SEE-HIST").await;
    let current = app
        .section(physics, teacher.user.id, 30, SectionStatus::Published)
        .await;
    let other = app
        .section(physics, teacher.user.id, 30, SectionStatus::Published)
        .await;
    // Last year's history section: taught by the same teacher, with the same student.
    let archived = app
        .section(history, teacher.user.id, 30, SectionStatus::Archived)
        .await;
    app.sql(&format!(
        "INSERT INTO enrollments (section_id, student_id) VALUES ({current}, {0}), ({archived}, {0})",
        student.user.id
    ))
    .await;
    let mut files = vec![];
    for course in [physics, history] {
        let response = upload(
            &app,
            &manager,
            form(course, "Answer key", "key.pdf", b"%PDF".to_vec()),
        )
        .await;
        assert_eq!(response.status(), 201);
        files.push(json_body(response).await["id"].clone());
    }
    let listed = async |token: &str| {
        let page = json_body(app.get("/api/course_attachments", token).await).await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&manager).await.len(), 2);
    assert_eq!(listed(&student_token).await, vec![files[0].clone()]);
    assert_eq!(listed(&teacher_token).await, vec![files[0].clone()]);
    assert!(listed(&stranger).await.is_empty());
    assert!(listed(&outsider_teacher).await.is_empty());
    let download = async |token: &str, file: &serde_json::Value| {
        app.get(&format!("/api/course_attachments/{file}/download"), token)
            .await
    };
    assert_eq!(download(&student_token, &files[0]).await.status(), 200);
    error_body(download(&student_token, &files[1]).await, 404, "not_found").await;
    error_body(download(&stranger, &files[0]).await, 404, "not_found").await;
    error_body(
        download(&outsider_teacher, &files[0]).await,
        404,
        "not_found",
    )
    .await;
    error_body(download(&teacher_token, &files[1]).await, 404, "not_found").await;
    // An archived section no longer makes its teacher the course's teacher.
    let response = upload(
        &app,
        &teacher_token,
        form(history, "Old", "old.pdf", b"%PDF".to_vec()),
    )
    .await;
    error_body(response, 403, "forbidden").await;

    // Sections: a student lists and opens their own.
    let mine = json_body(app.get("/api/sections", &student_token).await).await;
    assert_eq!(mine["total"], 1, "{mine}");
    assert_eq!(mine["items"][0]["id"], current);
    let none = json_body(app.get("/api/sections", &stranger).await).await;
    assert_eq!(none["total"], 0, "{none}");
    error_body(
        app.get(&format!("/api/sections/{other}"), &student_token)
            .await,
        404,
        "not_found",
    )
    .await;
    let all = json_body(app.get("/api/sections", &manager).await).await;
    assert_eq!(all["total"], 3);

    // A course announcement reaches the course's current sections only.
    let announcement = app
        .announce(&manager, json!({"kind": "course", "course_id": history}))
        .await;
    app.fanned_out(&manager, announcement["id"].as_i64().unwrap())
        .await;
    assert!(
        app.recipients(announcement["id"].as_i64().unwrap())
            .await
            .is_empty()
    );
}

/// Registration follows CLASSBELL_REGISTRATION: closed by default in
/// production, or only for the school's e-mail domains.
#[actix_web::test]
async fn registration_follows_the_school_policy() {
    let production = TestApp::spawn_with(|settings| {
        settings.server.env = Environment::Production;
        settings.auth.jwt_secret = "p".repeat(40);
    })
    .await;
    let policy = json_body(
        production
            .client
            .get(production.url("/api/config"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(policy["registration"], json!({"mode": "closed"}));
    let response = production
        .register("walk-in", "walk.in@school.example", PASSWORD)
        .await;
    error_body(response, 403, "forbidden").await;

    let domains = TestApp::spawn_with(|settings| {
        settings.auth.registration = Some("school.example".parse().unwrap());
    })
    .await;
    let policy = json_body(
        domains
            .client
            .get(domains.url("/api/config"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        policy["registration"],
        json!({"mode": "domains", "domains": ["school.example"]})
    );
    let refused = error_body(
        domains
            .register("outsider", "someone@mail.example", PASSWORD)
            .await,
        400,
        "validation_failed",
    )
    .await;
    assert!(
        refused["error"]["fields"]["email"][0]["params"]["domains"]
            .as_str()
            .unwrap()
            .contains("school.example")
    );
    assert_eq!(
        domains
            .register("pupil", "pupil@School.example", PASSWORD)
            .await
            .status(),
        201
    );

    let open = TestApp::spawn().await;
    let policy = json_body(
        open.client
            .get(open.url("/api/config"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(policy["registration"], json!({"mode": "open"}));
}

/// A reconnect from an old cursor replays at most a page; past that the
/// client is told to read its inbox over HTTP, and live pushes go on.
#[actix_web::test]
async fn a_stale_cursor_replays_a_page_at_most() {
    let app = TestApp::spawn_with(|settings| settings.realtime.replay_limit = 3).await;
    let class = crate::realtime::class(&app).await;
    let token = class.enrolled[0].1.clone();
    let (socket, hello) = crate::realtime::open(&app, &token).await;
    let cursor = hello["cursor"].as_str().unwrap().to_owned();
    drop(socket);
    for _ in 0..2 {
        crate::realtime::published(&app, &class).await;
    }
    // Two changes fit the page: replayed as usual.
    let path = format!("/ws?since={cursor}");
    let mut socket = WsClient::connect(&app.address, &path, Some(&token)).await;
    socket.expect("hello").await;
    socket.expect("delivery.created").await;
    socket.expect("delivery.created").await;
    drop(socket);
    for _ in 0..3 {
        crate::realtime::published(&app, &class).await;
    }
    // Five do not: no replay, a resync with the unread count instead.
    let mut socket = WsClient::connect(&app.address, &path, Some(&token)).await;
    socket.expect("hello").await;
    let resync = socket.next_json().await;
    assert_eq!(resync["type"], "resync", "{resync}");
    assert_eq!(resync["unread_count"], 5);
    assert_ne!(resync["cursor"], json!(cursor));
    let quiet = socket.drain(std::time::Duration::from_millis(300)).await;
    assert!(
        quiet.is_empty(),
        "nothing replayed after a resync: {quiet:?}"
    );
    // The socket stays live.
    crate::realtime::published(&app, &class).await;
    socket.expect("delivery.created").await;
    let cut = crate::realtime::metric(&app.metrics_text().await, "classbell_ws_replays_cut_total");
    assert!(cut >= Some(1.0), "{cut:?}");
}

/// Websockets are opened a few at a time. While every turn is taken (here
/// the one there is, by an opening whose session lookup waits on a lock),
/// the next waits `hello_wait` and is refused with 503 and Retry-After; the
/// waiting one comes in once the lookup can run, and so does the next try.
/// A bad credential takes no turn.
#[actix_web::test]
async fn websocket_openings_wait_their_turn_and_past_the_wait_are_refused() {
    let app = TestApp::spawn_with(|settings| {
        settings.realtime.hello_concurrency = 1;
        settings.realtime.hello_wait_ms = 300;
    })
    .await;
    let (_, token) = app.signed_in(Role::Student).await;
    let mut lock = app.open_transaction().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("LOCK TABLE auth_sessions IN ACCESS EXCLUSIVE MODE"),
        &mut *lock,
    )
    .await
    .unwrap();
    let first = actix_web::rt::spawn({
        let (address, token) = (app.address.clone(), token.clone());
        async move { WsClient::connect(&address, "/ws", Some(&token)).await }
    });
    // The first opening holds the turn once its lookup waits on the lock.
    let mut waits = 0;
    let waiting_on_locks = "SELECT count(*) AS id FROM pg_stat_activity \
                            WHERE wait_event_type = 'Lock' AND datname = current_database()";
    while crate::jobs::id_of(&app, waiting_on_locks).await == 0 {
        waits += 1;
        assert!(waits < 100, "the first opening never reached its lookup");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A bad credential is refused at once: it never waits for a turn.
    let started = std::time::Instant::now();
    assert_eq!(upgrade(&app, "not-a-token").await.status(), 401);
    assert!(started.elapsed() < std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let refused = upgrade(&app, &token).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("1".to_owned())
    );
    let body = error_body(refused, 503, "unavailable").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("live inbox"),
        "{body}"
    );
    let metrics = app.metrics_text().await;
    assert_eq!(
        crate::realtime::metric(&metrics, "classbell_ws_hellos_refused_total"),
        Some(1.0)
    );
    assert_eq!(
        crate::realtime::metric(&metrics, "classbell_ws_hellos_waiting"),
        Some(0.0),
        "the refused one no longer waits"
    );
    drop(lock);
    let mut first = first.await.unwrap();
    first.expect("hello").await;
    assert_eq!(upgrade(&app, &token).await.status(), 101);
}

/// A websocket opening request as a browser sends it, answered as a plain
/// HTTP response (101, or the refusal's JSON).
async fn upgrade(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/ws"))
        .bearer_auth(token)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap()
}

/// A websocket client that floods is closed with 1008; one within its
/// burst is answered in full.
#[actix_web::test]
async fn a_websocket_flood_is_closed_with_1008() {
    let app = TestApp::spawn_with(|settings| {
        settings.realtime.messages_per_sec = 5;
        settings.realtime.message_burst = 20;
    })
    .await;
    let (_, token) = app.signed_in(Role::Student).await;
    let (mut honest, _) = crate::realtime::open(&app, &token).await;
    for _ in 0..20 {
        honest.send_json(json!({"type": "ping"})).await;
    }
    for _ in 0..20 {
        honest.expect("pong").await;
    }
    let (mut flood, _) = crate::realtime::open(&app, &token).await;
    for _ in 0..200 {
        flood.send_text("{not json").await;
    }
    let mut answered = 0;
    let (code, reason) = loop {
        match flood.recv_within(std::time::Duration::from_secs(5)).await {
            Incoming::Json(message) if message["type"] == "error" => answered += 1,
            Incoming::Json(_) => {}
            Incoming::Closed(Some(reason)) => {
                break (
                    u16::from(reason.code),
                    reason.description.unwrap_or_default(),
                );
            }
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!((code, reason.as_str()), (1008, "too many messages"));
    assert!(
        answered <= 20,
        "{answered} malformed messages were answered"
    );
    let closed = crate::realtime::metric(
        &app.metrics_text().await,
        "classbell_ws_floods_closed_total",
    );
    assert!(closed >= Some(1.0), "{closed:?}");
}

/// An upload claiming a type a browser would run is served as opaque bytes.
#[actix_web::test]
async fn uploads_are_served_with_allowed_types_only() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let course = app.course("TYPES-1").await;
    for (claimed, served) in [
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("application/pdf", "application/pdf"),
    ] {
        let file = reqwest::multipart::Part::bytes(b"<script>alert(1)</script>".to_vec())
            .file_name("page.html")
            .mime_str(claimed)
            .unwrap();
        let form = reqwest::multipart::Form::new()
            .text("course", course.to_string())
            .text("title", "A page")
            .part("file", file);
        let created = json_body(upload(&app, &manager, form).await).await;
        assert_eq!(created["content_type"], served, "{claimed}");
        let response = app
            .get(
                &format!("/api/course_attachments/{}/download", created["id"]),
                &manager,
            )
            .await;
        assert_eq!(response.headers()["content-type"], served, "{claimed}");
    }
    // A row stored before the allowlist is held to it when served.
    app.sql("UPDATE course_attachments SET content_type = 'text/html'")
        .await;
    let page = json_body(app.get("/api/course_attachments", &manager).await).await;
    let response = app
        .get(
            &format!(
                "/api/course_attachments/{}/download",
                page["items"][0]["id"]
            ),
            &manager,
        )
        .await;
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
}

/// A sections import cannot lower a capacity below the enrollment, even
/// when students are enrolled between its read and its write.
#[actix_web::test]
async fn imports_keep_sections_within_capacity_under_concurrency() {
    use classbell::sections::{bulk as sections, enrollments, model::NewSection};
    let app = TestApp::spawn_with(|settings| settings.database.pool_size = 8).await;
    let (teacher, _) = app.signed_in(Role::Teacher).await;
    let course = app.course("CAP-1").await;
    let section = app
        .section(course, teacher.user.id, 50, SectionStatus::Published)
        .await;
    app.bulk_students("cap", 40).await;
    let students: Vec<classbell::ids::UserId> = {
        use classbell::db::schema::users;
        use diesel::{QueryDsl, TextExpressionMethods};
        use diesel_async::RunQueryDsl;
        users::table
            .filter(users::username.like("cap%"))
            .select(users::id)
            .order(users::id)
            .load(&mut app.db.get().await.unwrap())
            .await
            .unwrap()
    };
    let stored = classbell::sections::store::find(&mut app.db.get().await.unwrap(), section)
        .await
        .unwrap();
    let lowered = |capacity: i32| NewSection {
        course_id: course,
        section_code: stored.section_code.to_lowercase(),
        term: stored.term.to_uppercase(),
        teacher_id: teacher.user.id,
        capacity,
        status: SectionStatus::Published,
    };
    // Students enrolled in batches while imports lower the capacity step by step.
    let enrolling = students.chunks(4).map(|batch| {
        let db = app.db.clone();
        let batch = batch.to_vec();
        async move {
            enrollments::enroll_many(&mut db.get().await.unwrap(), section, &batch)
                .await
                .unwrap();
        }
    });
    let lowering = (0..10).map(|step| {
        let db = app.db.clone();
        let row = lowered(40 - 3 * step);
        async move {
            sections::upsert_many(&mut db.get().await.unwrap(), &[row])
                .await
                .unwrap()
        }
    });
    let (_, outcomes) = futures_util::join!(
        futures_util::future::join_all(enrolling),
        futures_util::future::join_all(lowering)
    );
    let after = classbell::sections::store::find_view(&mut app.db.get().await.unwrap(), section)
        .await
        .unwrap();
    assert!(
        after.enrolled <= i64::from(after.section.capacity),
        "{} enrolled in a section of {}",
        after.enrolled,
        after.section.capacity
    );
    // Straight: a capacity below what is enrolled is refused, with the count.
    let refused = sections::upsert_many(&mut app.db.get().await.unwrap(), &[lowered(1)])
        .await
        .unwrap();
    assert_eq!(refused, vec![Err(after.enrolled)]);
    assert!(outcomes.iter().flatten().any(Result::is_ok));
}
