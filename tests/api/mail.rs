//! The mail queue: every mail a row written with what caused it, sent with
//! a stable Message-ID, retried, failed for good after its attempts (where
//! an admin sees and re-sends it), and never lost to a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, json_body, smtp_server};
use crate::jobs::id_of;
use classbell::users::model::Role;

/// The Message-ID header of each file in `dir` whose text holds `tag`.
fn message_ids(dir: &Path, tag: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter(|text| text.contains(tag))
        .filter_map(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("Message-ID: "))
                .map(|id| id.trim().to_owned())
        })
        .collect()
}

async fn state_of(app: &TestApp, kind: &str) -> (String, i64) {
    use classbell::db::schema::mail_queue;
    use diesel::{ExpressionMethods, QueryDsl};
    use diesel_async::RunQueryDsl;
    let rows: Vec<(String, i32)> = mail_queue::table
        .filter(mail_queue::kind.eq(kind))
        .order(mail_queue::id)
        .select((mail_queue::state, mail_queue::attempts))
        .load(&mut app.db.get().await.unwrap())
        .await
        .unwrap();
    let (state, attempts) = rows.last().cloned().unwrap_or_default();
    (state, i64::from(attempts))
}

async fn wait_for_state(app: &TestApp, kind: &str, want: &str) -> i64 {
    for _ in 0..200 {
        let (state, attempts) = state_of(app, kind).await;
        if state == want {
            return attempts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no {kind} mail reached {want}: {:?}",
        state_of(app, kind).await
    );
}

#[actix_web::test]
async fn a_mail_is_a_row_until_the_relay_takes_it_and_keeps_its_message_id() {
    let (url, maildir) = smtp_server();
    let app = TestApp::spawn_with(|settings| settings.mail.smtp_url = Some(url)).await;
    let student = app.user(Role::Student).await;
    let response = app
        .post(
            "/auth/forgot-password",
            json!({"email": student.user.email}),
        )
        .await;
    assert_eq!(response.status(), 202);
    wait_for_state(&app, "password_reset", "sent").await;
    let stored: (String, i64) = {
        use classbell::db::schema::mail_queue;
        use diesel::{ExpressionMethods, QueryDsl};
        use diesel_async::RunQueryDsl;
        let (id, text): (String, Vec<u8>) = mail_queue::table
            .filter(mail_queue::kind.eq("password_reset"))
            .select((mail_queue::message_id, mail_queue::message))
            .first(&mut app.db.get().await.unwrap())
            .await
            .unwrap();
        (id, text.len() as i64)
    };
    assert_eq!(stored.1, 0, "a sent mail's text (and its link) is gone");
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = message_ids(&maildir, &student.user.email);
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        std::slice::from_ref(&stored.0),
        "the relay got the row's Message-ID"
    );
    assert!(stored.0.starts_with('<') && stored.0.ends_with('>'));
}

#[actix_web::test]
async fn a_relay_that_refuses_leaves_the_mail_failed_for_an_admin_to_resend() {
    // Nothing listens on this port: every attempt is refused, transiently.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = TestApp::spawn_with(|settings| {
        settings.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        settings.mail.max_attempts = 2;
        settings.mail.retry_secs = 1;
    })
    .await;
    let student = app.user(Role::Student).await;
    app.post(
        "/auth/forgot-password",
        json!({"email": student.user.email}),
    )
    .await;
    let attempts = wait_for_state(&app, "password_reset", "failed").await;
    assert_eq!(attempts, 2, "tried twice, then given up");

    let (_, admin) = app.signed_in(Role::Admin).await;
    let listed = json_body(app.get("/api/mail?state=failed", &admin).await).await;
    assert_eq!(listed["total"], 1, "{listed}");
    let mail = &listed["items"][0];
    assert_eq!(mail["kind"], "password_reset");
    assert_eq!(mail["recipient"], student.user.email);
    assert!(mail["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(
        mail.get("message").is_none(),
        "the text (and its link) is never shown"
    );
    assert!(!listed.to_string().contains("token="));
    let (_, registrar) = app.signed_in(Role::Registrar).await;
    error_body(app.get("/api/mail", &registrar).await, 403, "forbidden").await;

    let id = mail["id"].as_i64().unwrap();
    let path = format!("/api/mail/{id}/resend");
    let resent = json_body(app.send(Method::POST, &path, &admin, json!({})).await).await;
    assert_eq!(resent["attempts"], 0);
    // The relay is still down: it fails again, after its two attempts.
    assert_eq!(wait_for_state(&app, "password_reset", "failed").await, 2);
    let sent = app
        .send(Method::POST, "/api/mail/999999/resend", &admin, json!({}))
        .await;
    error_body(sent, 404, "not_found").await;

    // The queue's gauges see the failed mail.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        if text.contains("classbell_mail_queue{state=\"failed\"} 1") {
            assert!(text.contains("classbell_mail_oldest_queued_seconds"));
            break;
        }
        assert!(Instant::now() < deadline, "no failed gauge: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The slow SMTP server ops/test starts (`tests/smtp/slow_mailbox.py`).
fn slow_smtp_server() -> (String, PathBuf) {
    let url = std::env::var("CLASSBELL_TEST_SLOW_SMTP_URL").expect(
        "CLASSBELL_TEST_SLOW_SMTP_URL names a slow SMTP server; run the suite with ops/test",
    );
    let maildir = std::env::var("CLASSBELL_TEST_SLOW_MAILDIR").unwrap();
    (url, PathBuf::from(maildir).join("new"))
}

#[actix_web::test]
async fn a_killed_node_loses_no_mail_and_repeats_only_what_was_in_flight() {
    const MAILS: usize = 500;
    const CONCURRENCY: usize = 4;
    let (url, maildir) = slow_smtp_server();
    // This process's own mailer stays out of it: only the node sends.
    let app = TestApp::spawn_with(|settings| settings.mail.poll_ms = 3_600_000).await;
    let tag = format!("crash-{}", uuid::Uuid::new_v4().simple());
    app.bulk_students(&tag, MAILS as u32).await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let title = format!("Relay {tag}");
    let created = app
        .send(
            Method::POST,
            "/api/announcements",
            &manager,
            json!({"title": title, "body": "Slow mail.", "audience": {"kind": "all_students"}}),
        )
        .await;
    let id = json_body(created).await["id"].as_i64().unwrap();
    app.fanned_out(&manager, id).await;

    let concurrency = CONCURRENCY.to_string();
    let env = [
        ("CLASSBELL_SMTP_URL", url.as_str()),
        ("CLASSBELL_MAIL_CONCURRENCY", concurrency.as_str()),
        ("CLASSBELL_MAIL_POLL_MS", "50"),
        ("CLASSBELL_MAIL_LEASE_SECS", "2"),
    ];
    let mut node = app.node(&env).await;
    let response = app
        .client
        .post(node.url(&format!("/api/announcements/{id}/remind_unacked")))
        .bearer_auth(&manager)
        .send()
        .await
        .unwrap();
    let reminded: Value = json_body(response).await;
    let expected = reminded["reminded"].as_u64().unwrap() as usize;
    assert!(expected >= MAILS, "{reminded}");

    // Killed with mail half sent, and some in flight.
    let arrived = |ids: &[String]| ids.len();
    loop {
        let ids = message_ids(&maildir, &title);
        if arrived(&ids) >= expected / 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.kill();
    let before_restart = message_ids(&maildir, &title).len();
    assert!(
        before_restart < expected,
        "killed before the end ({before_restart})"
    );

    let _restarted = app.node(&env).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let ids = loop {
        let ids = message_ids(&maildir, &title);
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() >= expected {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {expected} arrived",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *copies.entry(id).or_default() += 1;
    }
    let repeats: usize = copies.values().map(|n| n - 1).sum();
    assert_eq!(copies.len(), expected, "every mail arrived");
    assert!(
        repeats <= CONCURRENCY,
        "{repeats} repeats; at most the {CONCURRENCY} in flight at the kill"
    );
    // A mail's row is marked sent just after the relay took it: the last
    // ones may trail their arrival by a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let unsent = id_of(
            &app,
            "SELECT count(*) AS id FROM mail_queue WHERE kind = 'reminder' AND state <> 'sent'",
        )
        .await;
        if unsent == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unsent} mails never marked sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{before_restart} before the kill, {repeats} sent twice");
}
