//! The live inbox over real websockets: authentication, the protocol, the
//! hub's pushes, heartbeats, slow consumers, and catching up from a cursor.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, json_body};
use crate::ws_client::WsClient;
use classbell::ids::{SectionId, UserId};
use classbell::sections::model::SectionStatus;
use classbell::users::model::Role;

/// A teacher with one section of two enrolled students, and a third student
/// outside it; everyone signed in.
pub struct Class {
    pub teacher: String,
    pub teacher_name: String,
    pub section: SectionId,
    pub enrolled: Vec<(UserId, String)>,
    pub outsider: (UserId, String),
}

pub async fn class(app: &TestApp) -> Class {
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    let course = app.course("LIVE1").await;
    let section = app
        .section(course, teacher.user.id, 30, SectionStatus::Published)
        .await;
    let mut enrolled = Vec::new();
    for _ in 0..2 {
        let (student, token) = app.signed_in(Role::Student).await;
        app.sql(&format!(
            "INSERT INTO enrollments (section_id, student_id) VALUES ({section}, {})",
            student.user.id
        ))
        .await;
        enrolled.push((student.user.id, token));
    }
    let (outsider, outsider_token) = app.signed_in(Role::Student).await;
    Class {
        teacher: teacher_token,
        teacher_name: teacher.user.username.clone(),
        section,
        enrolled,
        outsider: (outsider.user.id, outsider_token),
    }
}

impl Class {
    fn audience(&self) -> Value {
        json!({"kind": "section", "section_id": self.section})
    }
}

/// Opens `/ws` with a Bearer token and returns the client and its `hello`.
pub async fn open(app: &TestApp, token: &str) -> (WsClient, Value) {
    let mut client = WsClient::connect(&app.address, "/ws", Some(token)).await;
    let hello = client.next_json().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    (client, hello)
}

/// A websocket upgrade over plain HTTP, to read a refusal's status and body.
async fn upgrade(app: &TestApp, path_and_query: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(path_and_query))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn ticket(app: &TestApp, token: &str) -> String {
    let body = json_body(
        app.request(Method::POST, "/auth/ws-ticket", Some(token), None)
            .await,
    )
    .await;
    assert_eq!(body["expires_in"], 30);
    body["ticket"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn bearer_tokens_and_tickets_open_the_inbox_and_everything_else_is_refused() {
    let app = TestApp::spawn().await;
    let (student, token) = app.signed_in(Role::Student).await;

    // A Bearer token: hello names the user, the unread count and a cursor.
    let (_, hello) = open(&app, &token).await;
    assert_eq!(hello["user"]["id"], student.user.id);
    assert_eq!(hello["user"]["username"], student.user.username);
    assert_eq!(hello["user"]["role"], "student");
    assert_eq!(hello["unread_count"], 0);
    let cursor: i64 = hello["cursor"].as_str().unwrap().parse().unwrap();
    assert!(cursor > 0);

    // A ticket opens one websocket, once.
    let one = ticket(&app, &token).await;
    let mut client = WsClient::connect(&app.address, &format!("/ws?ticket={one}"), None).await;
    let hello = client.next_json().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["user"]["id"], student.user.id);
    let reused = upgrade(&app, &format!("/ws?ticket={one}"), None).await;
    let body = error_body(reused, 401, "unauthorized").await;
    assert_eq!(body["error"]["message"], "invalid, used or expired ticket");

    // An expired ticket.
    let stale = ticket(&app, &token).await;
    let redis = &app.state.redis;
    let key = classbell::realtime::ticket::redis_key(redis, &stale);
    let mut conn = redis.get().await.unwrap();
    let _: i64 = bb8_redis::redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(1)
        .query_async(&mut *conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    error_body(
        upgrade(&app, &format!("/ws?ticket={stale}"), None).await,
        401,
        "unauthorized",
    )
    .await;

    // No credentials, a forged token, a made-up ticket.
    let body = error_body(upgrade(&app, "/ws", None).await, 401, "unauthorized").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ws-ticket")
    );
    error_body(
        upgrade(&app, "/ws", Some("not.a.token")).await,
        401,
        "unauthorized",
    )
    .await;
    error_body(
        upgrade(&app, "/ws?ticket=made-up", None).await,
        401,
        "unauthorized",
    )
    .await;
    // A ticket needs a signed-in caller.
    error_body(
        app.request(Method::POST, "/auth/ws-ticket", None, None)
            .await,
        401,
        "unauthorized",
    )
    .await;
    // Not a websocket request, and a cursor that is not one.
    let plain = app.get("/ws", &token).await;
    error_body(plain, 400, "bad_request").await;
    let body = error_body(
        upgrade(&app, "/ws?since=yesterday", Some(&token)).await,
        400,
        "validation_failed",
    )
    .await;
    assert!(body["error"]["fields"]["since"].is_array());

    // A signed-out session's token no longer opens anything.
    let (_, other_token) = app.signed_in(Role::Student).await;
    let response = app
        .request(Method::POST, "/auth/logout", Some(&other_token), None)
        .await;
    assert_eq!(response.status(), 204);
    error_body(
        upgrade(&app, "/ws", Some(&other_token)).await,
        401,
        "unauthorized",
    )
    .await;
}

#[actix_web::test]
async fn a_deactivated_or_signed_out_user_is_disconnected() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let (student, token) = app.signed_in(Role::Student).await;
    let (mut phone, _) = open(&app, &token).await;
    let (mut laptop, _) = open(&app, &token).await;
    let response = app
        .send(
            Method::PATCH,
            &format!("/api/users/{}", student.user.id),
            &admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(response.status(), 200);
    for client in [&mut phone, &mut laptop] {
        assert_eq!(
            client.closed(Duration::from_secs(5)).await,
            (1008, "signed out".to_owned())
        );
    }

    // Logging out closes that login's websockets, not the user's others.
    let (other, _) = app.signed_in(Role::Student).await;
    let first = app
        .access_token(&other.user.username, &other.password)
        .await;
    let second = app
        .access_token(&other.user.username, &other.password)
        .await;
    let (mut leaving, _) = open(&app, &first).await;
    let (mut staying, _) = open(&app, &second).await;
    app.request(Method::POST, "/auth/logout", Some(&first), None)
        .await;
    assert_eq!(
        leaving.closed(Duration::from_secs(5)).await,
        (1008, "signed out".to_owned())
    );
    staying.send_json(json!({"type": "ping"})).await;
    assert_eq!(staying.expect("pong").await["type"], "pong");
}

#[actix_web::test]
async fn a_new_announcement_reaches_exactly_its_audience_live() {
    let app = TestApp::spawn().await;
    let class = class(&app).await;
    let (mut first, _) = open(&app, &class.enrolled[0].1).await;
    let (mut second, _) = open(&app, &class.enrolled[1].1).await;
    let (mut outsider, _) = open(&app, &class.outsider.1).await;

    let announcement = app.announce(&class.teacher, class.audience()).await;
    let id = announcement["id"].as_i64().unwrap();
    let mut deliveries = BTreeSet::new();
    for client in [&mut first, &mut second] {
        let created = client.expect("delivery.created").await;
        let delivery = &created["delivery"];
        assert_eq!(delivery["state"], "queued");
        assert_eq!(delivery["announcement"]["id"], id);
        assert_eq!(delivery["announcement"]["title"], "Field trip");
        assert_eq!(delivery["announcement"]["body"], "Bring a packed lunch.");
        assert_eq!(delivery["announcement"]["publisher"], class.teacher_name);
        assert!(created["cursor"].is_string());
        deliveries.insert(delivery["id"].as_i64().unwrap());
        let unread = client.expect("unread_count").await;
        assert_eq!(unread["unread"], 1);
    }
    assert_eq!(deliveries.len(), 2, "one delivery each");
    // The inbox over HTTP agrees with what was pushed.
    let inbox = json_body(app.get("/api/deliveries", &class.enrolled[0].1).await).await;
    assert!(deliveries.contains(&inbox["items"][0]["id"].as_i64().unwrap()));

    let heard = outsider.drain(Duration::from_millis(800)).await;
    assert!(heard.is_empty(), "the outsider heard {heard:?}");
}

/// A section whose two students have connected students between them in id
/// order: the hub reads the chunk's range (two deliveries, four connected)
/// and must still push to the two alone, once each.
#[actix_web::test]
async fn a_section_among_connected_students_reaches_only_its_own() {
    let app = TestApp::spawn().await;
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    let course = app.course("RANGE1").await;
    let section = app
        .section(course, teacher.user.id, 30, SectionStatus::Published)
        .await;
    let mut students = Vec::new();
    for _ in 0..4 {
        students.push(app.signed_in(Role::Student).await);
    }
    students.sort_by_key(|(student, _)| student.user.id);
    for (student, _) in [&students[0], &students[3]] {
        app.sql(&format!(
            "INSERT INTO enrollments (section_id, student_id) VALUES ({section}, {})",
            student.user.id
        ))
        .await;
    }
    let mut clients = Vec::new();
    for (_, token) in &students {
        clients.push(open(&app, token).await.0);
    }

    let audience = json!({"kind": "section", "section_id": section});
    let id = app.announce(&teacher_token, audience).await["id"]
        .as_i64()
        .unwrap();
    app.fanned_out(&teacher_token, id).await;
    for (n, client) in clients.iter_mut().enumerate() {
        let heard = client.drain(Duration::from_millis(800)).await;
        let created: Vec<&Value> = heard
            .iter()
            .filter(|m| m["type"] == "delivery.created")
            .collect();
        if n == 0 || n == 3 {
            assert_eq!(created.len(), 1, "student {n} heard {heard:?}");
            assert_eq!(created[0]["delivery"]["announcement"]["id"], id);
        } else {
            assert!(
                heard.is_empty(),
                "student {n}, outside the section, heard {heard:?}"
            );
        }
    }
}

/// An announcement to the class, its fan-out done; returns (id, the first
/// enrolled student's delivery id).
pub async fn published(app: &TestApp, class: &Class) -> (i64, i64) {
    let announcement = app.announce(&class.teacher, class.audience()).await;
    let id = announcement["id"].as_i64().unwrap();
    app.fanned_out(&class.teacher, id).await;
    let inbox = json_body(app.get("/api/deliveries", &class.enrolled[0].1).await).await;
    let delivery = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["announcement"]["id"] == id)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    (id, delivery)
}

#[actix_web::test]
async fn updates_reach_every_session_of_the_user_from_websocket_and_http() {
    let app = TestApp::spawn().await;
    let class = class(&app).await;
    let (_, first_delivery) = published(&app, &class).await;
    let (_, second_delivery) = published(&app, &class).await;
    let token = &class.enrolled[0].1;
    let (mut phone, hello) = open(&app, token).await;
    assert_eq!(hello["unread_count"], 2);
    let (mut laptop, _) = open(&app, token).await;

    // Delivered, then acknowledged, from the phone: both devices hear each step.
    phone
        .send_json(json!({"type": "delivered", "delivery_id": first_delivery}))
        .await;
    for client in [&mut phone, &mut laptop] {
        let updated = client.expect("delivery.updated").await;
        assert_eq!(updated["delivery_id"], first_delivery);
        assert_eq!(updated["state"], "delivered");
        assert!(updated["delivered_at"].is_string());
        assert!(updated["ack_at"].is_null());
    }
    phone
        .send_json(json!({"type": "ack", "delivery_id": first_delivery}))
        .await;
    for client in [&mut phone, &mut laptop] {
        let updated = client.expect("delivery.updated").await;
        assert_eq!(updated["state"], "acknowledged");
        assert!(updated["ack_at"].is_string());
        assert_eq!(client.expect("unread_count").await["unread"], 1);
    }
    // A repeat changes nothing and answers with the current state, to the asker only.
    phone
        .send_json(json!({"type": "ack", "delivery_id": first_delivery}))
        .await;
    let repeat = phone.expect("delivery.updated").await;
    assert_eq!(repeat["state"], "acknowledged");
    let quiet = laptop.drain(Duration::from_millis(500)).await;
    assert!(
        quiet.iter().all(|m| m["type"] != "delivery.updated"),
        "{quiet:?}"
    );

    // Over HTTP: both sessions hear it.
    let response = app
        .send(
            Method::POST,
            &format!("/api/deliveries/{second_delivery}/ack"),
            token,
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    for client in [&mut phone, &mut laptop] {
        let updated = client.expect("delivery.updated").await;
        assert_eq!(updated["delivery_id"], second_delivery);
        assert_eq!(updated["state"], "acknowledged");
        assert_eq!(client.expect("unread_count").await["unread"], 0);
    }

    // Someone else's delivery, or none at all: an error, and nothing moves.
    let mut other = open(&app, &class.enrolled[1].1).await.0;
    other
        .send_json(json!({"type": "ack", "delivery_id": first_delivery}))
        .await;
    let error = other.expect("error").await;
    assert_eq!(error["code"], "not_found");
    other
        .send_json(json!({"type": "delivered", "delivery_id": 987654321}))
        .await;
    assert_eq!(other.expect("error").await["code"], "not_found");
    let theirs = json_body(app.get("/api/deliveries", &class.enrolled[1].1).await).await;
    assert!(
        theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["state"] == "queued")
    );
}

/// The badges a socket hears until (and including) one showing `until`.
async fn badges_until(client: &mut WsClient, until: i64) -> Vec<i64> {
    let mut seen = Vec::new();
    while seen.last() != Some(&until) {
        seen.push(
            client.expect("unread_count").await["unread"]
                .as_i64()
                .unwrap(),
        );
    }
    seen
}

#[actix_web::test]
async fn a_badge_moves_with_each_acknowledgment_and_not_for_an_expired_one() {
    let app = TestApp::spawn().await;
    let class = class(&app).await;
    let mut deliveries = Vec::new();
    for _ in 0..4 {
        deliveries.push(published(&app, &class).await);
    }
    // The last one has expired: it is off the badge, and acknowledging it
    // late must not take one more off.
    let (expired, late) = deliveries.pop().unwrap();
    app.sql(&format!(
        "UPDATE announcements SET expires_at = now() - interval '1 minute' WHERE id = {expired}"
    ))
    .await;
    let token = &class.enrolled[0].1;
    let (mut student, hello) = open(&app, token).await;
    assert_eq!(hello["unread_count"], 3);

    let ack = |delivery: i64| json!({"type": "ack", "delivery_id": delivery});
    // The first is counted; the ones after move the count the hub knows.
    student.send_json(ack(deliveries[0].1)).await;
    assert_eq!(badges_until(&mut student, 2).await, vec![2]);
    // Marking one delivered leaves the badge as it is.
    student
        .send_json(json!({"type": "delivered", "delivery_id": deliveries[1].1}))
        .await;
    student.send_json(ack(late)).await;
    let heard = student.drain(Duration::from_millis(500)).await;
    let acknowledged = heard
        .iter()
        .filter(|m| m["type"] == "delivery.updated" && m["state"] == "acknowledged")
        .count();
    assert_eq!(acknowledged, 1, "{heard:?}");
    assert!(
        heard
            .iter()
            .filter(|m| m["type"] == "unread_count")
            .all(|m| m["unread"] == 2),
        "{heard:?}"
    );
    student.send_json(ack(deliveries[1].1)).await;
    student.send_json(ack(deliveries[2].1)).await;
    let badges = badges_until(&mut student, 0).await;
    assert!(badges.iter().all(|b| [1, 0].contains(b)), "{badges:?}");
    let badge = json_body(app.get("/api/unread_count", token).await).await;
    assert_eq!(badge["unread"], 0);
    let quiet = student.drain(Duration::from_millis(300)).await;
    assert!(
        quiet.iter().all(|m| m["type"] != "unread_count"),
        "{quiet:?}"
    );
}

#[actix_web::test]
async fn withdrawals_and_reminders_are_pushed() {
    let app = TestApp::spawn().await;
    let class = class(&app).await;
    let (id, delivery) = published(&app, &class).await;
    let (mut student, hello) = open(&app, &class.enrolled[0].1).await;
    assert_eq!(hello["unread_count"], 1);

    let path = format!("/api/announcements/{id}/remind_unacked");
    let reminded = json_body(
        app.send(Method::POST, &path, &class.teacher, json!({}))
            .await,
    )
    .await;
    assert_eq!(reminded["reminded"], 2);
    let reminder = student.expect("reminder").await;
    assert_eq!(reminder["delivery_id"], delivery);
    assert_eq!(reminder["announcement_id"], id);
    assert_eq!(reminder["retry_count"], 1);

    let path = format!("/api/announcements/{id}/withdraw");
    let response = app
        .send(Method::POST, &path, &class.teacher, json!({}))
        .await;
    assert_eq!(response.status(), 200);
    let withdrawn = student.expect("announcement.withdrawn").await;
    assert_eq!(withdrawn["announcement_id"], id);
    assert_eq!(student.expect("unread_count").await["unread"], 0);
}

#[actix_web::test]
async fn live_figures_are_for_the_publisher_and_staff() {
    let app = TestApp::spawn().await;
    let class = class(&app).await;
    let (id, delivery) = published(&app, &class).await;
    let (mut teacher, _) = open(&app, &class.teacher).await;
    teacher
        .send_json(json!({"type": "subscribe_stats", "announcement_id": id}))
        .await;
    let stats = teacher.expect("announcement.stats").await;
    assert_eq!(stats["announcement_id"], id);
    assert_eq!(stats["stats"]["total"], 2);
    assert_eq!(stats["stats"]["acknowledged"], 0);

    let (_, admin) = app.signed_in(Role::Manager).await;
    let (mut manager, _) = open(&app, &admin).await;
    manager
        .send_json(json!({"type": "subscribe_stats", "announcement_id": id}))
        .await;
    assert_eq!(
        manager.expect("announcement.stats").await["stats"]["total"],
        2
    );

    // A student acknowledges: the figures move for both watchers.
    let response = app
        .send(
            Method::POST,
            &format!("/api/deliveries/{delivery}/ack"),
            &class.enrolled[0].1,
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    for client in [&mut teacher, &mut manager] {
        let stats = client.expect("announcement.stats").await;
        assert_eq!(stats["stats"]["acknowledged"], 1, "{stats}");
        assert_eq!(stats["stats"]["ack_rate"], 0.5);
    }

    // Unsubscribed: no more figures.
    teacher
        .send_json(json!({"type": "unsubscribe_stats", "announcement_id": id}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = app
        .send(
            Method::POST,
            &format!("/api/announcements/{id}/remind_unacked"),
            &class.teacher,
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        manager.expect("announcement.stats").await["stats"]["reminders_sent"],
        1
    );
    let after = teacher.drain(Duration::from_millis(600)).await;
    assert!(
        after.iter().all(|m| m["type"] != "announcement.stats"),
        "{after:?}"
    );

    // A student, and a teacher who did not publish it, are refused.
    let (mut student, _) = open(&app, &class.enrolled[0].1).await;
    student
        .send_json(json!({"type": "subscribe_stats", "announcement_id": id}))
        .await;
    assert_eq!(student.expect("error").await["code"], "forbidden");
    let (_, stranger_token) = app.signed_in(Role::Teacher).await;
    let (mut stranger, _) = open(&app, &stranger_token).await;
    stranger
        .send_json(json!({"type": "subscribe_stats", "announcement_id": id}))
        .await;
    assert_eq!(stranger.expect("error").await["code"], "not_found");
    let heard = stranger.drain(Duration::from_millis(400)).await;
    assert!(heard.iter().all(|m| m["type"] != "announcement.stats"));
}

#[actix_web::test]
async fn a_malformed_message_is_answered_with_an_error_and_the_session_stays_open() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_in(Role::Student).await;
    let (mut client, _) = open(&app, &token).await;
    let cases: [(&str, &str); 4] = [
        ("nonsense", "not a JSON object"),
        (r#"{"type": "shout"}"#, "unknown variant `shout`"),
        (r#"{"type": "ack"}"#, "missing field `delivery_id`"),
        (r#"{"type": "ack", "delivery_id": "seven"}"#, "invalid type"),
    ];
    for (text, reason) in cases {
        client.send_text(text).await;
        let error = client.expect("error").await;
        assert_eq!(error["code"], "bad_message", "{text}");
        assert!(
            error["message"].as_str().unwrap().contains(reason),
            "{text}: {error}"
        );
        assert!(error.get("cursor").is_none());
    }
    client.send_binary(b"\x00\x01").await;
    assert_eq!(client.expect("error").await["code"], "bad_message");
    client.send_json(json!({"type": "ping"})).await;
    assert_eq!(client.expect("pong").await["type"], "pong");
}

#[actix_web::test]
async fn a_silent_client_is_closed_after_the_heartbeat_timeout() {
    let app = TestApp::spawn_with(|s| {
        s.realtime.heartbeat_secs = 1;
        s.realtime.timeout_secs = 2;
    })
    .await;
    let (_, token) = app.signed_in(Role::Student).await;
    let (mut answering, _) = open(&app, &token).await;
    let (mut silent, _) = open(&app, &token).await;
    // The answering client reads (and so answers pings) throughout.
    let drained = answering.drain(Duration::from_millis(3500)).await;
    assert!(drained.is_empty());
    // The silent one said nothing for over two seconds: the server closed it.
    let (code, reason) = silent.closed(Duration::from_secs(2)).await;
    assert_eq!((code, reason.as_str()), (1001, "heartbeat timeout"));
    answering.send_json(json!({"type": "ping"})).await;
    assert_eq!(answering.expect("pong").await["type"], "pong");
}

/// Applies pushed inbox messages to a client-side inbox: delivery id → state,
/// with withdrawn announcements removed, as a browser would.
#[derive(Debug, Default, PartialEq)]
struct Inbox {
    items: BTreeMap<i64, (i64, String)>,
}

impl Inbox {
    fn apply(&mut self, message: &Value) {
        match message["type"].as_str().unwrap() {
            "delivery.created" => {
                let delivery = &message["delivery"];
                self.items.insert(
                    delivery["id"].as_i64().unwrap(),
                    (
                        delivery["announcement"]["id"].as_i64().unwrap(),
                        delivery["state"].as_str().unwrap().to_owned(),
                    ),
                );
            }
            "delivery.updated" => {
                let id = message["delivery_id"].as_i64().unwrap();
                let announcement = message["announcement_id"].as_i64().unwrap();
                self.items.insert(
                    id,
                    (announcement, message["state"].as_str().unwrap().to_owned()),
                );
            }
            "announcement.withdrawn" => {
                let gone = message["announcement_id"].as_i64().unwrap();
                self.items
                    .retain(|_, (announcement, _)| *announcement != gone);
            }
            _ => {}
        }
    }

    async fn truth(app: &TestApp, token: &str) -> Inbox {
        let inbox = json_body(app.get("/api/deliveries?limit=100", token).await).await;
        let items = inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["id"].as_i64().unwrap(),
                    (
                        item["announcement"]["id"].as_i64().unwrap(),
                        item["state"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect();
        Inbox { items }
    }
}

#[actix_web::test]
async fn reconnecting_with_the_cursor_misses_nothing() {
    let app = TestApp::spawn().await;
    let class = class(&app).await;
    let token = class.enrolled[0].1.clone();
    let (mut client, hello) = open(&app, &token).await;
    let mut cursor = hello["cursor"].as_str().unwrap().to_owned();
    let mut inbox = Inbox::default();

    // Announcements are published, acknowledged (by the other device, over
    // HTTP) and withdrawn while this client drops and comes back four times.
    let mut published_ids = Vec::new();
    for round in 0..4 {
        let (id, delivery) = published(&app, &class).await;
        published_ids.push(id);
        // Some of it arrives live.
        for message in client.drain(Duration::from_millis(150)).await {
            cursor = message["cursor"].as_str().map_or(cursor, str::to_owned);
            inbox.apply(&message);
        }
        // The connection drops; meanwhile the inbox changes.
        drop(client);
        app.send(
            Method::POST,
            &format!("/api/deliveries/{delivery}/ack"),
            &token,
            json!({}),
        )
        .await;
        published(&app, &class).await;
        if round % 2 == 1 {
            let withdraw = format!("/api/announcements/{}/withdraw", published_ids[round - 1]);
            let response = app
                .send(Method::POST, &withdraw, &class.teacher, json!({}))
                .await;
            assert_eq!(response.status(), 200);
        }
        // Back, from the cursor: hello first, then what was missed, in order.
        client =
            WsClient::connect(&app.address, &format!("/ws?since={cursor}"), Some(&token)).await;
        let hello = client.next_json().await;
        assert_eq!(hello["type"], "hello");
        cursor = hello["cursor"].as_str().unwrap().to_owned();
        for message in client.drain(Duration::from_millis(300)).await {
            assert!(message["cursor"].is_string(), "{message}");
            cursor = message["cursor"].as_str().unwrap().to_owned();
            inbox.apply(&message);
        }
        assert_eq!(
            inbox,
            Inbox::truth(&app, &token).await,
            "after reconnect {round}"
        );
    }
    assert_eq!(inbox.items.len(), 6, "8 published, 2 withdrawn");
    assert_eq!(
        inbox
            .items
            .values()
            .filter(|(_, state)| state == "acknowledged")
            .count(),
        2,
        "the two acknowledged ones not withdrawn"
    );
}

/// A websocket that upgrades and then reads nothing, with a small receive
/// buffer so the server's side fills quickly.
async fn stalled_client(address: &str, token: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    stream
}

/// A gauge or counter's value in Prometheus text, when exported.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_closed_while_others_keep_receiving() {
    use actix_codec::Framed;
    use awc::ws::{Codec, Frame};
    use futures_util::StreamExt;

    // A node of its own, so its session and slow-consumer figures are this test's alone.
    let app = TestApp::spawn().await;
    let class = class(&app).await;
    let node = app
        .node(&[
            ("CLASSBELL_WS_OUTBOUND_QUEUE", "16"),
            ("CLASSBELL_WS_SEND_BUFFER_BYTES", "4096"),
            ("CLASSBELL_WS_STALL_TIMEOUT_SECS", "6"),
        ])
        .await;
    let mut reader = WsClient::connect(&node.address, "/ws", Some(&class.enrolled[0].1)).await;
    assert_eq!(reader.next_json().await["type"], "hello");
    // Two clients that stop reading: one resumes later, one never does.
    let resumes = stalled_client(&node.address, &class.enrolled[1].1).await;
    let (_, third) = app.signed_in(Role::Student).await;
    let never = stalled_client(&node.address, &third).await;
    let sessions = async || {
        metric(
            &get_text(&app, &node.url("/metrics")).await,
            "classbell_ws_sessions_open",
        )
    };
    assert_eq!(sessions().await, Some(3.0));

    // The reading client reads throughout.
    let expected = 30;
    let reading = actix_web::rt::spawn(async move {
        let mut seen = BTreeSet::new();
        while seen.len() < expected {
            let created = reader.expect("delivery.created").await;
            seen.insert(created["delivery"]["announcement"]["id"].as_i64().unwrap());
        }
        seen
    });
    // Announcements to all students with long bodies, far more than the
    // stalled clients' buffers hold.
    let body = "Read this carefully. ".repeat(900);
    let (_, admin) = app.signed_in(Role::Manager).await;
    let mut ids = BTreeSet::new();
    for n in 0..expected {
        let response = app
            .client
            .post(node.url("/api/announcements"))
            .bearer_auth(&admin)
            .json(&json!({"title": format!("Notice {n}"), "body": body, "audience": {"kind": "all_students"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        ids.insert(json_body(response).await["id"].as_i64().unwrap());
    }
    // The reading client got every one of them.
    assert_eq!(reading.await.unwrap(), ids);
    let text = get_text(&app, &node.url("/metrics")).await;
    assert_eq!(
        metric(&text, "classbell_ws_slow_consumer_closes_total"),
        Some(2.0)
    );

    // The one that resumes reading finds what fitted, then the close frame.
    let mut framed = Framed::new(resumes, Codec::new().client_mode());
    let mut texts = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), framed.next()).await {
            Ok(Some(Ok(Frame::Text(_)))) => texts += 1,
            Ok(Some(Ok(Frame::Close(reason)))) => break reason,
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let close = close.expect("a close reason");
    assert_eq!(u16::from(close.code), 1013);
    assert!(close.description.unwrap().starts_with("slow consumer"));
    assert!(
        texts < 2 * expected,
        "it was closed before it got everything ({texts})"
    );

    // The one that never reads is dropped by the stall timeout: only the
    // reader's session is left.
    let mut left = None;
    for _ in 0..100 {
        left = sessions().await;
        if left == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(left, Some(1.0), "the silent client's session ended");
    // Its connection, with everything queued for it, is dropped by the
    // kernel's stall timeout: it reads a few kilobytes, then a reset.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut never = never;
    let mut read = 0;
    let outcome = loop {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 65536];
        match tokio::time::timeout(Duration::from_secs(3), never.read(&mut buffer)).await {
            Ok(Ok(0)) => break "end of stream".to_owned(),
            Ok(Ok(n)) => read += n,
            Ok(Err(error)) => break error.kind().to_string(),
            Err(_) => break "nothing more".to_owned(),
        }
    };
    assert_eq!(outcome, std::io::ErrorKind::ConnectionReset.to_string());
    assert!(read < 64 * 1024, "{read} bytes were kept for it");
}

async fn get_text(app: &TestApp, url: &str) -> String {
    app.client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[actix_web::test]
async fn pushes_go_through_the_hub_only_to_connected_users() {
    // The hub resolves a fan-out chunk with one query over the users it has:
    // a large audience with one connected student still reaches that student.
    let app = TestApp::spawn_with(|s| s.fanout.chunk = 50).await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    app.bulk_students("crowd", 300).await;
    let (_, token) = app.signed_in(Role::Student).await;
    let (mut client, _) = open(&app, &token).await;
    let announcement = app.announce(&admin, json!({"kind": "all_students"})).await;
    let created = client.expect("delivery.created").await;
    assert_eq!(
        created["delivery"]["announcement"]["id"],
        announcement["id"]
    );
    let others = client.drain(Duration::from_millis(500)).await;
    assert!(
        others.iter().all(|m| m["type"] != "delivery.created"),
        "one item, not one per chunk: {others:?}"
    );
    let metrics = app.metrics().await;
    for family in [
        "classbell_ws_sessions_open",
        "classbell_ws_messages_sent_total{type=\"delivery.created\"}",
        "classbell_ws_push_latency_seconds_bucket",
        "classbell_actor_mailbox_depth{actor=\"hub\"}",
        "classbell_bridge_connected",
    ] {
        assert!(metrics.contains(family), "{family} is exported");
    }
}

#[actix_web::test]
async fn a_lost_push_is_healed_at_the_next_checkpoint_and_the_cursor_moves_on() {
    // The cursor is to move on: no other test may hold a transaction open.
    let _cursors = crate::helpers::cursors_free().await;
    let app = TestApp::spawn_with(|s| s.realtime.checkpoint_secs = 1).await;
    let class = class(&app).await;
    let (_, delivery) = published(&app, &class).await;
    let (mut client, hello) = open(&app, &class.enrolled[0].1).await;
    assert_eq!(hello["unread_count"], 1);
    let first_cursor: i64 = hello["cursor"].as_str().unwrap().parse().unwrap();

    // A change whose push never comes (as when Redis drops it between nodes).
    app.sql(&format!(
        "UPDATE deliveries SET state = 'acknowledged', delivered_at = now(), ack_at = now(), \
         changed_tx = pg_current_xact_id()::text::bigint WHERE id = {delivery}"
    ))
    .await;
    // Pushes go on; the session's next checkpoint finds what it never sent.
    // Which comes first depends on when that checkpoint runs (a session
    // whose cursor is held back, say by another database's long
    // transaction, checkpoints every interval), so both are awaited.
    let announcement = app.announce(&class.teacher, class.audience()).await;
    let (mut created, mut healed, mut unread) = (None, None, None);
    let mut created_first = false;
    while created.is_none() || healed.is_none() || unread.is_none() {
        let message = client.next_json().await;
        match message["type"].as_str() {
            // A cursor held back below the first delivery's creation
            // replays it as a creation in its current state (the client
            // merges by id): that heals it as well as an update does.
            Some("delivery.created") if message["delivery"]["id"] == delivery => {
                healed = Some(json!({
                    "state": message["delivery"]["state"],
                    "cursor": message["cursor"],
                }))
            }
            Some("delivery.created") => {
                created_first = healed.is_none();
                created = Some(message)
            }
            Some("delivery.updated") if message["delivery_id"] == delivery => {
                healed = Some(message)
            }
            // The count sent with the healed change.
            Some("unread_count") if healed.is_some() => unread = Some(message),
            _ => {}
        }
    }
    let (created, healed, unread) = (created.unwrap(), healed.unwrap(), unread.unwrap());
    assert_eq!(
        created["delivery"]["announcement"]["id"],
        announcement["id"]
    );
    assert_eq!(healed["state"], "acknowledged");
    // The count read with the healed change: the new one is unread once
    // it was there to read (always, when its push came first).
    let counted = unread["unread"].as_i64().unwrap();
    assert!(counted == 1 || (!created_first && counted == 0), "{unread}");
    let badge = json_body(app.get("/api/unread_count", &class.enrolled[0].1).await).await;
    assert_eq!(badge["unread"], 1, "only the new one is unread");
    let moved: i64 = unread["cursor"].as_str().unwrap().parse().unwrap();
    assert!(moved > first_cursor, "{moved} > {first_cursor}");

    // Reconnecting from the moved cursor: nothing to replay.
    drop(client);
    let path = format!("/ws?since={moved}");
    let mut again = WsClient::connect(&app.address, &path, Some(&class.enrolled[0].1)).await;
    assert_eq!(again.next_json().await["type"], "hello");
    let replayed = again.drain(Duration::from_millis(400)).await;
    assert!(
        replayed
            .iter()
            .all(|m| m["type"] != "delivery.created" && m["type"] != "delivery.updated"),
        "{replayed:?}"
    );
}

#[actix_web::test]
async fn a_cursor_held_back_by_a_long_transaction_never_repeats_a_creation() {
    let app = TestApp::spawn_with(|s| s.realtime.checkpoint_secs = 1).await;
    let class = class(&app).await;
    let student = &class.enrolled[0].1;
    let (mut client, _) = open(&app, student).await;
    // Begun before the announcement: every checkpoint's cursor stays below it.
    let long = app.open_transaction().await;
    let announcement = app.announce(&class.teacher, class.audience()).await;
    let created = client.expect("delivery.created").await;
    assert_eq!(
        created["delivery"]["announcement"]["id"],
        announcement["id"]
    );
    let delivery = created["delivery"]["id"].as_i64().unwrap();
    // Checkpoints read the item again and again while the transaction runs…
    let quiet = client.drain(Duration::from_millis(2_500)).await;
    let marked = app
        .request(
            Method::POST,
            &format!("/api/deliveries/{delivery}/delivered"),
            Some(student),
            None,
        )
        .await;
    assert_eq!(marked.status(), 200);
    // …and its new state among them: the client hears an update, never a
    // second creation.
    let later = client.drain(Duration::from_millis(3_500)).await;
    drop(long);
    let heard: Vec<&Value> = quiet.iter().chain(&later).collect();
    assert!(
        heard.iter().all(|m| m["type"] != "delivery.created"),
        "{heard:?}"
    );
    let updates: Vec<&&Value> = heard
        .iter()
        .filter(|m| m["type"] == "delivery.updated")
        .collect();
    assert_eq!(updates.len(), 1, "{heard:?}");
    assert_eq!(updates[0]["state"], "delivered");
}

/// Connections read and write through small buffers
/// (`CLASSBELL_CONNECTION_BUFFER_BYTES`, 1 KiB by default, so that an idle
/// websocket costs little): a request head and a body many times that size
/// arrive whole, and so does a long announcement pushed to a websocket.
#[actix_web::test]
async fn requests_and_pushes_larger_than_a_connection_buffer_arrive_whole() {
    let app = TestApp::spawn().await;
    assert!(app.settings.server.connection_buffer_bytes <= 1024);
    let class = class(&app).await;
    let (student, token) = &class.enrolled[0];
    let (mut client, _) = open(&app, token).await;

    // A head of 8 KiB and more: a long header beside the token.
    let response = app
        .client
        .get(app.url("/auth/me"))
        .bearer_auth(token)
        .header("x-padding", "p".repeat(8 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await["id"], *student);

    // A body of 20,000 characters, 60,000 bytes of UTF-8, out and back.
    let body = "通知".repeat(10_000);
    let response = app
        .send(
            Method::POST,
            "/api/announcements",
            &class.teacher,
            json!({"title": "长通知", "body": body, "audience": class.audience()}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(json_body(response).await["body"], body);
    let pushed = client.expect("delivery.created").await;
    assert_eq!(pushed["delivery"]["announcement"]["body"], body);
}
