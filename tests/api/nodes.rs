//! Several `classbell serve` processes sharing PostgreSQL and Redis: events
//! cross nodes through the Redis bridge, and a Redis outage is caught up
//! through cursors.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Node, OwnRedis, TestApp, json_body};
use crate::ws_client::{Incoming, WsClient};
use classbell::ids::SectionId;
use classbell::sections::model::SectionStatus;
use classbell::users::model::Role;

/// A node that fans out only what it is kicked for (it never polls).
const QUIET_FANOUT: (&str, &str) = ("CLASSBELL_FANOUT_POLL_MS", "3600000");

/// A teacher and one enrolled student, both signed in (through `app`).
async fn teacher_and_student(app: &TestApp) -> (String, SectionId, String) {
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    let course = app.course("NODES").await;
    let section = app
        .section(course, teacher.user.id, 30, SectionStatus::Published)
        .await;
    let (student, student_token) = app.signed_in(Role::Student).await;
    app.sql(&format!(
        "INSERT INTO enrollments (section_id, student_id) VALUES ({section}, {})",
        student.user.id
    ))
    .await;
    (teacher_token, section, student_token)
}

async fn post(app: &TestApp, node: &Node, path: &str, token: &str, body: Value) -> Value {
    let response = app
        .client
        .post(node.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    json_body(response).await
}

async fn announce(app: &TestApp, node: &Node, token: &str, section: SectionId, title: &str) -> i64 {
    let body = json!({"title": title, "body": "B", "audience": {"kind": "section", "section_id": section}});
    post(app, node, "/api/announcements", token, body).await["id"]
        .as_i64()
        .unwrap()
}

/// Waits up to `wait` for a `delivery.created` of `announcement`.
async fn receives(client: &mut WsClient, announcement: i64, wait: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.recv_within(left).await {
            Incoming::Json(m)
                if m["type"] == "delivery.created"
                    && m["delivery"]["announcement"]["id"] == announcement =>
            {
                return m;
            }
            Incoming::Json(_) => continue,
            other => panic!("waited for announcement {announcement}, got {other:?}"),
        }
    }
}

#[actix_web::test]
async fn two_nodes_deliver_to_each_others_clients() {
    // Only A fans out (it is kicked when publishing; the others never look),
    // so what B's client hears crossed the bridge.
    let app = TestApp::spawn_with(|s| s.fanout.poll_ms = 3_600_000).await;
    let (teacher, section, student) = teacher_and_student(&app).await;
    let a = app.node(&[]).await;
    let b = app.node(&[QUIET_FANOUT]).await;
    let mut on_b = WsClient::connect(&b.address, "/ws", Some(&student)).await;
    assert_eq!(on_b.next_json().await["type"], "hello");
    wait_ready(&app, &a).await;
    wait_ready(&app, &b).await;

    // Published (and fanned out) on A; the student on B sees it live.
    let id = announce(&app, &a, &teacher, section, "From A").await;
    let created = receives(&mut on_b, id, Duration::from_secs(5)).await;
    let delivery = created["delivery"]["id"].as_i64().unwrap();

    // The teacher watches the figures on B while the student acknowledges on A.
    let mut teacher_on_b = WsClient::connect(&b.address, "/ws", Some(&teacher)).await;
    teacher_on_b.expect("hello").await;
    teacher_on_b
        .send_json(json!({"type": "subscribe_stats", "announcement_id": id}))
        .await;
    assert_eq!(
        teacher_on_b.expect("announcement.stats").await["stats"]["acknowledged"],
        0
    );
    let acked = post(
        &app,
        &a,
        &format!("/api/deliveries/{delivery}/ack"),
        &student,
        json!({}),
    )
    .await;
    assert_eq!(acked["state"], "acknowledged");
    let updated = on_b.expect("delivery.updated").await;
    assert_eq!(updated["delivery_id"], delivery);
    assert_eq!(updated["state"], "acknowledged");
    assert_eq!(
        teacher_on_b.expect("announcement.stats").await["stats"]["acknowledged"],
        1
    );

    // And the other way round: an ack over B's websocket reaches a session on A.
    let second = announce(&app, &a, &teacher, section, "Second").await;
    let second_delivery =
        receives(&mut on_b, second, Duration::from_secs(5)).await["delivery"]["id"]
            .as_i64()
            .unwrap();
    let mut on_a = WsClient::connect(&a.address, "/ws", Some(&student)).await;
    on_a.expect("hello").await;
    on_b.send_json(json!({"type": "ack", "delivery_id": second_delivery}))
        .await;
    let updated = on_a.expect("delivery.updated").await;
    assert_eq!(updated["delivery_id"], second_delivery);
    assert_eq!(updated["state"], "acknowledged");
}

/// Waits until the node's bridge is up (`/readyz` says ready).
async fn wait_ready(app: &TestApp, node: &Node) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let response = app.client.get(node.url("/readyz")).send().await.unwrap();
        last = json_body(response).await;
        if last["status"] == "ready" {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not become ready: {last}", node.address);
}

#[actix_web::test]
async fn a_redis_outage_is_caught_up_through_cursors() {
    let mut redis = OwnRedis::start().await;
    let url = redis.url();
    let app = TestApp::spawn_with(|s| {
        s.redis.url = url;
        s.fanout.poll_ms = 3_600_000;
    })
    .await;
    let (teacher, section, student) = teacher_and_student(&app).await;
    let a = app.node(&[]).await;
    // B's sessions check against the database only when told to (the bridge's return).
    let b = app
        .node(&[QUIET_FANOUT, ("CLASSBELL_WS_CHECKPOINT_SECS", "3600")])
        .await;
    wait_ready(&app, &a).await;
    wait_ready(&app, &b).await;
    let mut on_b = WsClient::connect(&b.address, "/ws", Some(&student)).await;
    let hello = on_b.next_json().await;
    let cursor = hello["cursor"].as_str().unwrap().to_owned();
    // Before the outage B's client hears of an announcement live…
    let before = announce(&app, &a, &teacher, section, "Before the outage").await;
    let heard = receives(&mut on_b, before, Duration::from_secs(10)).await;
    let delivery = heard["delivery"]["id"].as_i64().unwrap();

    redis.stop();
    // B says the bridge is down, and keeps serving HTTP.
    let mut readiness = Value::Null;
    for _ in 0..100 {
        let response = app.client.get(b.url("/readyz")).send().await.unwrap();
        let status = response.status();
        readiness = json_body(response).await;
        if status == 503 && readiness["error"]["fields"]["bridge"].is_array() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        readiness["error"]["fields"]["bridge"].is_array(),
        "{readiness}"
    );
    assert!(readiness["error"]["fields"]["redis"].is_array());
    // Published on A while Redis is gone; and the earlier one acknowledged there.
    let during = announce(&app, &a, &teacher, section, "During the outage").await;
    let acked = app
        .client
        .post(a.url(&format!("/api/deliveries/{delivery}/ack")))
        .bearer_auth(&student)
        .send()
        .await
        .unwrap();
    assert!(acked.status().is_success(), "{}", acked.status());
    // The same student connected to A still hears A's own events.
    let mut on_a = WsClient::connect(&a.address, "/ws", Some(&student)).await;
    on_a.expect("hello").await;
    let local = announce(&app, &a, &teacher, section, "Local to A").await;
    receives(&mut on_a, local, Duration::from_secs(5)).await;

    // Nothing crosses to B while Redis is gone, but B serves it over HTTP
    // (PostgreSQL is the truth).
    let heard = on_b.drain(Duration::from_millis(300)).await;
    assert!(
        heard.iter().all(|m| m["type"] != "delivery.created"),
        "{heard:?}"
    );
    let inbox = app
        .client
        .get(b.url("/api/deliveries"))
        .bearer_auth(&student)
        .send()
        .await
        .unwrap();
    let inbox = json_body(inbox).await;
    let titles: Vec<&str> = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["announcement"]["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"During the outage"), "{titles:?}");

    redis.restart().await;
    wait_ready(&app, &b).await;
    // B's bridge is back: its sessions catch up from their cursors — the new
    // announcement as created, the one it heard of before as an update, and
    // nothing twice.
    let mut created = Vec::new();
    let mut updated = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(created.contains(&during) && updated.is_some()) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match on_b.recv_within(left).await {
            Incoming::Json(m) if m["type"] == "delivery.created" => {
                created.push(m["delivery"]["announcement"]["id"].as_i64().unwrap());
            }
            Incoming::Json(m)
                if m["type"] == "delivery.updated" && m["delivery_id"] == delivery =>
            {
                updated = Some(m);
            }
            Incoming::Json(_) => {}
            other => panic!("waited for the catch-up, got {other:?} ({created:?})"),
        }
    }
    assert_eq!(created, [during], "each created once");
    assert_eq!(updated.unwrap()["state"], "acknowledged");

    // A client that reconnects with its old cursor gets it as well.
    let mut again =
        WsClient::connect(&b.address, &format!("/ws?since={cursor}"), Some(&student)).await;
    assert_eq!(again.next_json().await["type"], "hello");
    receives(&mut again, during, Duration::from_secs(5)).await;
}
