//! Deadlines: acknowledge by, expiry, and the escalation ladder that chases
//! those who have not acknowledged — once per step, across nodes, deferred
//! by quiet hours, cancelled by withdrawal, and run late (once) by a node
//! that was down when its time came. The ladder's offsets are seconds here.

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, field_codes, json_body};
use crate::jobs::id_of;
use classbell::users::model::Role;

/// `secs` from now, as RFC 3339.
fn in_secs(secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A manager, `n` students (all of the school's), and an announcement to
/// them all with `extra` fields (made once the students are, so times
/// relative to now hold).
async fn announce_to(
    app: &TestApp,
    n: usize,
    extra: impl FnOnce() -> Value,
) -> (String, Vec<String>, i64) {
    let (_, manager) = app.signed_in(Role::Manager).await;
    let mut students = Vec::new();
    for _ in 0..n {
        students.push(app.signed_in(Role::Student).await.1);
    }
    let mut body = json!({"title": "Lab report form", "body": "Hand it in.",
                          "audience": {"kind": "all_students"}});
    for (key, value) in extra().as_object().unwrap() {
        body[key] = value.clone();
    }
    let created = app
        .send(Method::POST, "/api/announcements", &manager, body)
        .await;
    let created = json_body(created).await;
    let id = created["id"].as_i64().expect("created");
    app.fanned_out(&manager, id).await;
    (manager, students, id)
}

async fn acknowledge(app: &TestApp, student: &str) {
    let inbox = json_body(app.get("/api/deliveries", student).await).await;
    let id = inbox["items"][0]["id"].as_i64().unwrap();
    let acked = app
        .send(
            Method::POST,
            &format!("/api/deliveries/{id}/ack"),
            student,
            json!({}),
        )
        .await;
    assert_eq!(acked.status(), 200);
}

async fn steps(app: &TestApp, token: &str, id: i64) -> Vec<Value> {
    let path = format!("/api/announcements/{id}/escalation");
    let body = json_body(app.get(&path, token).await).await;
    body.as_array().unwrap().clone()
}

/// Waits until every ladder step has left `pending`.
async fn settled(app: &TestApp, token: &str, id: i64, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let steps = steps(app, token, id).await;
        if !steps.is_empty() && steps.iter().all(|s| s["state"] != "pending") {
            return steps;
        }
        assert!(Instant::now() < deadline, "steps still pending: {steps:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn step<'a>(steps: &'a [Value], channel: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["channel"] == channel)
        .unwrap_or_else(|| panic!("no {channel} step: {steps:?}"))
}

async fn mails(app: &TestApp, kind: &str) -> i64 {
    id_of(
        app,
        &format!("SELECT count(*) AS id FROM mail_queue WHERE kind = '{kind}'"),
    )
    .await
}

#[actix_web::test]
async fn each_step_runs_once_on_time_for_those_still_missing_across_two_nodes() {
    let ladder = "in_app@4s,mail@2s,summary@0s";
    let app = TestApp::spawn_with(|settings| {
        settings.announcements.escalation = ladder.into();
        settings.announcements.escalation_poll_ms = 100;
    })
    .await;
    let _other = app
        .node(&[
            ("CLASSBELL_ESCALATION", ladder),
            ("CLASSBELL_ESCALATION_POLL_MS", "100"),
        ])
        .await;
    let (manager, students, id) = announce_to(&app, 3, || json!({"ack_due_at": in_secs(6)})).await;
    let (mut publisher, _) = crate::realtime::open(&app, &manager).await;
    acknowledge(&app, &students[0]).await;
    let planned = steps(&app, &manager, id).await;
    assert_eq!(planned.len(), 3, "{planned:?}");
    assert!(planned.iter().all(|s| s["state"] == "pending"));

    let ran = settled(&app, &manager, id, Duration::from_secs(20)).await;
    for channel in ["in_app", "mail", "summary"] {
        let step = step(&ran, channel);
        assert_eq!(step["state"], "done", "{step}");
        assert_eq!(
            step["reached"], 2,
            "only the two who had not acknowledged: {step}"
        );
        let planned_at: chrono::DateTime<Utc> =
            step["planned_at"].as_str().unwrap().parse().unwrap();
        let ran_at: chrono::DateTime<Utc> = step["ran_at"].as_str().unwrap().parse().unwrap();
        let late = ran_at - planned_at;
        assert!(
            late >= chrono::Duration::zero() && late < chrono::Duration::seconds(3),
            "{channel} ran {late} after its time"
        );
    }
    // Once each, though two nodes looked: one in-app reminder per student
    // still missing, one mail each, one summary.
    for (i, student) in students.iter().enumerate() {
        let inbox = json_body(app.get("/api/deliveries", student).await).await;
        let reminders = &inbox["items"][0]["retry_count"];
        assert_eq!(*reminders, if i == 0 { 0 } else { 1 }, "student {i}");
    }
    assert_eq!(mails(&app, "reminder").await, 2);
    assert_eq!(mails(&app, "due_summary").await, 1);
    // The publisher hears the summary live, whichever node ran it.
    let due = publisher.expect("announcement.due").await;
    assert_eq!(due["announcement_id"], id);
    assert_eq!(due["missing"], 2);
    let stats = json_body(
        app.get(&format!("/api/announcements/{id}/stats"), &manager)
            .await,
    )
    .await;
    assert_eq!(stats["deadline"]["on_time"], 1, "{stats}");
    assert_eq!(stats["deadline"]["missing"], 2, "{stats}");
    assert_eq!(stats["deadline"]["late"], 0, "{stats}");
    acknowledge(&app, &students[1]).await;
    let stats = json_body(
        app.get(&format!("/api/announcements/{id}/stats"), &manager)
            .await,
    )
    .await;
    assert_eq!(stats["deadline"]["late"], 1, "{stats}");
    assert_eq!(stats["deadline"]["missing"], 1, "{stats}");
}

#[actix_web::test]
async fn quiet_hours_defer_the_steps_to_their_end() {
    let now = Utc::now();
    let start = (now - chrono::Duration::minutes(2)).format("%H:%M");
    let end = (now + chrono::Duration::minutes(3))
        .format("%H:%M")
        .to_string();
    let app = TestApp::spawn_with(|settings| {
        settings.announcements.escalation = "in_app@1s,summary@0s".into();
        settings.announcements.escalation_poll_ms = 100;
        settings.school.quiet_hours = Some(format!("{start}-{end}"));
    })
    .await;
    let (manager, students, id) = announce_to(&app, 1, || json!({"ack_due_at": in_secs(2)})).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let waiting = steps(&app, &manager, id).await;
    for step in &waiting {
        assert_eq!(step["state"], "pending", "{step}");
        let run_at: chrono::DateTime<Utc> = step["run_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            run_at.format("%H:%M").to_string(),
            end,
            "deferred to the end: {step}"
        );
    }
    let inbox = json_body(app.get("/api/deliveries", &students[0]).await).await;
    assert_eq!(
        inbox["items"][0]["retry_count"], 0,
        "no reminder during quiet hours"
    );
    assert_eq!(mails(&app, "due_summary").await, 0);
}

#[actix_web::test]
async fn withdrawal_cancels_what_has_not_run() {
    let app = TestApp::spawn_with(|settings| {
        settings.announcements.escalation = "in_app@1s,mail@1s,summary@0s".into();
        settings.announcements.escalation_poll_ms = 100;
    })
    .await;
    let (manager, _, id) = announce_to(&app, 2, || json!({"ack_due_at": in_secs(3)})).await;
    let withdrawn = app
        .send(
            Method::POST,
            &format!("/api/announcements/{id}/withdraw"),
            &manager,
            json!({}),
        )
        .await;
    assert_eq!(withdrawn.status(), 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = steps(&app, &manager, id).await;
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|s| s["state"] == "cancelled"), "{after:?}");
    assert_eq!(mails(&app, "reminder").await, 0);
    assert_eq!(mails(&app, "due_summary").await, 0);
}

#[actix_web::test]
async fn a_node_down_when_a_step_was_due_runs_it_once_when_back() {
    let ladder = "in_app@1s";
    // This process never looks: only the node runs the ladder.
    let app = TestApp::spawn_with(|settings| {
        settings.announcements.escalation = ladder.into();
        settings.announcements.escalation_poll_ms = 3_600_000;
    })
    .await;
    let env = [
        ("CLASSBELL_ESCALATION", ladder),
        ("CLASSBELL_ESCALATION_POLL_MS", "100"),
    ];
    let mut node = app.node(&env).await;
    let (manager, students, id) = announce_to(&app, 2, || json!({"ack_due_at": in_secs(3)})).await;
    node.kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(steps(&app, &manager, id).await[0]["state"], "pending");
    let _back = app.node(&env).await;
    let ran = settled(&app, &manager, id, Duration::from_secs(10)).await;
    assert_eq!(ran[0]["state"], "done");
    assert_eq!(ran[0]["reached"], 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for student in &students {
        let inbox = json_body(app.get("/api/deliveries", student).await).await;
        assert_eq!(inbox["items"][0]["retry_count"], 1, "late, and once");
    }
}

#[actix_web::test]
async fn an_expired_announcement_leaves_the_badge_and_the_ladder() {
    let app = TestApp::spawn_with(|settings| {
        settings.announcements.escalation = "in_app@0s".into();
        settings.announcements.escalation_poll_ms = 100;
    })
    .await;
    let (manager, students, id) = announce_to(
        &app,
        1,
        || json!({"ack_due_at": in_secs(2), "expires_at": in_secs(2)}),
    )
    .await;
    let unread = |token: String| {
        let app = &app;
        async move { json_body(app.get("/api/unread_count", &token).await).await }
    };
    assert_eq!(unread(students[0].clone()).await["unread"], 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(unread(students[0].clone()).await["unread"], 0, "expired");
    let inbox = json_body(app.get("/api/deliveries", &students[0]).await).await;
    assert_eq!(inbox["total"], 1, "still listed, under Earlier");
    assert!(inbox["items"][0]["announcement"]["expires_at"].is_string());
    let ran = settled(&app, &manager, id, Duration::from_secs(5)).await;
    assert_eq!(ran[0]["state"], "cancelled", "expiry cancels the ladder");
}

#[actix_web::test]
async fn deadlines_are_checked_against_publication_and_each_other() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let create = |extra: Value| {
        let mut body = json!({"title": "T", "body": "B", "audience": {"kind": "all_students"}});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    for (extra, codes) in [
        (
            json!({"ack_due_at": in_secs(-60)}),
            json!({"ack_due_at": ["before_publication"]}),
        ),
        (
            json!({"publish_at": in_secs(3600), "expires_at": in_secs(1800)}),
            json!({"expires_at": ["before_publication"]}),
        ),
        (
            json!({"ack_due_at": in_secs(7200), "expires_at": in_secs(3600)}),
            json!({"ack_due_at": ["after_expiry"]}),
        ),
        (
            json!({"ack_due_at": in_secs(3600), "escalation": "sms@1h"}),
            json!({"escalation": ["ladder"]}),
        ),
        (
            json!({"ack_due_at": "Friday"}),
            json!({"ack_due_at": ["not_a_time"]}),
        ),
    ] {
        let refused = app
            .send(
                Method::POST,
                "/api/announcements",
                &manager,
                create(extra.clone()),
            )
            .await;
        let body = error_body(refused, 400, "validation_failed").await;
        assert_eq!(field_codes(&body), codes, "{extra}");
    }
    // A due time in the school's local time, and an announcement's own ladder.
    let made = app
        .send(
            Method::POST,
            "/api/announcements",
            &manager,
            create(json!({"ack_due_at": "2031-03-05T18:00", "escalation": "mail@90m, in_app@1d"})),
        )
        .await;
    let made = json_body(made).await;
    assert_eq!(made["ack_due_at"], "2031-03-05T18:00:00Z");
    assert_eq!(made["escalation"], "in_app@1d,mail@90m");
    let id = made["id"].as_i64().unwrap();
    let planned = steps(&app, &manager, id).await;
    let at: Vec<&str> = planned
        .iter()
        .map(|s| s["planned_at"].as_str().unwrap())
        .collect();
    assert_eq!(at, ["2031-03-04T18:00:00Z", "2031-03-05T16:30:00Z"]);
    // Nothing stored for the refused ones.
    let count = id_of(&app, "SELECT count(*) AS id FROM announcements").await;
    assert_eq!(count, 1);
}
