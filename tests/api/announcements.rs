//! Announcements: audiences, who may publish, scheduling, withdrawal, stats,
//! reminders, and the fan-out's crash safety.

use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, error_body, field_codes, field_messages, json_body, smtp_server, unfold_mail,
    wait_for_files,
};
use classbell::announcements::audience::Audience;
use classbell::announcements::fanout::{FanoutJob, FanoutSettings, Kick, Step};
use classbell::announcements::store as announcements;
use classbell::events::Event;
use classbell::ids::{AnnouncementId, CourseId, SectionId, UserId};
use classbell::sections::model::SectionStatus;
use classbell::users::model::Role;

/// A small school: two courses, three sections, six students.
struct School {
    teacher: (UserId, String),
    other_teacher: (UserId, String),
    course1: CourseId,
    course2: CourseId,
    s1: SectionId,
    s2: SectionId,
    s3: SectionId,
    /// Students a..f; e is deactivated; f is in no section.
    students: Vec<UserId>,
}

async fn school(app: &TestApp) -> School {
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    let (other, other_token) = app.signed_in(Role::Teacher).await;
    let course1 = app.course("C1").await;
    let course2 = app.course("C2").await;
    let s1 = app
        .section(course1, teacher.user.id, 30, SectionStatus::Published)
        .await;
    let s2 = app
        .section(course1, other.user.id, 30, SectionStatus::Published)
        .await;
    let s3 = app
        .section(course2, other.user.id, 30, SectionStatus::Published)
        .await;
    let mut students = Vec::new();
    for _ in 0..6 {
        students.push(app.user(Role::Student).await.user.id);
    }
    let enroll = [(s1, 0), (s1, 1), (s2, 1), (s2, 2), (s3, 3), (s1, 4)];
    for (section, student) in enroll {
        app.sql(&format!(
            "INSERT INTO enrollments (section_id, student_id) VALUES ({section}, {})",
            students[student]
        ))
        .await;
    }
    app.sql(&format!(
        "UPDATE users SET is_active = false WHERE id = {}",
        students[4]
    ))
    .await;
    School {
        teacher: (teacher.user.id, teacher_token),
        other_teacher: (other.user.id, other_token),
        course1,
        course2,
        s1,
        s2,
        s3,
        students,
    }
}

#[actix_web::test]
async fn every_audience_reaches_exactly_its_students() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let school = school(&app).await;
    let st = &school.students;
    let cases = [
        (
            json!({"kind": "section", "section_id": school.s1}),
            vec![st[0], st[1]],
        ),
        (
            json!({"kind": "section", "section_id": school.s2}),
            vec![st[1], st[2]],
        ),
        (
            json!({"kind": "course", "course_id": school.course1}),
            vec![st[0], st[1], st[2]],
        ),
        (
            json!({"kind": "course", "course_id": school.course2}),
            vec![st[3]],
        ),
        (
            json!({"kind": "all_students"}),
            vec![st[0], st[1], st[2], st[3], st[5]],
        ),
    ];
    for (audience, expected) in cases {
        let announcement = app.announce(&admin, audience.clone()).await;
        assert_eq!(announcement["status"], "published");
        assert_eq!(announcement["audience"], audience);
        // Named, not just numbered: the course (and section) it went to.
        let name = &announcement["audience_name"];
        match audience["kind"].as_str().unwrap() {
            "all_students" => assert!(name.is_null(), "{name}"),
            "course" => assert!(
                name["course_code"].is_string() && name["section_code"].is_null(),
                "{name}"
            ),
            _ => assert!(
                name["section_code"].is_string() && name["term"] == "2026-fall",
                "{name}"
            ),
        }
        let id = announcement["id"].as_i64().unwrap();
        let stats = app.fanned_out(&admin, id).await;
        assert_eq!(app.recipients(id).await, expected, "{audience}");
        assert_eq!(stats["fanout"]["target"], expected.len());
        assert_eq!(stats["fanout"]["done"], expected.len());
        assert_eq!(stats["total"], expected.len());
        assert_eq!(stats["queued"], expected.len());
    }
}

#[actix_web::test]
async fn who_may_publish_to_what() {
    let app = TestApp::spawn().await;
    let school = school(&app).await;
    let (_, student) = app.signed_in(Role::Student).await;
    let (teacher_token, other) = (&school.teacher.1, &school.other_teacher.1);
    let post = |token: &str, audience: Value| {
        let token = token.to_owned();
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/api/announcements",
                &token,
                json!({"title": "T", "body": "B", "audience": audience, "draft": true}),
            )
            .await
        }
    };

    let own_section = json!({"kind": "section", "section_id": school.s1});
    let foreign_section = json!({"kind": "section", "section_id": school.s3});
    let taught_course = json!({"kind": "course", "course_id": school.course1});
    let untaught_course = json!({"kind": "course", "course_id": school.course2});
    let everyone = json!({"kind": "all_students"});

    for audience in [&own_section, &taught_course, &everyone] {
        error_body(post(&student, audience.clone()).await, 403, "forbidden").await;
    }
    assert_eq!(post(teacher_token, own_section.clone()).await.status(), 201);
    assert_eq!(
        post(teacher_token, taught_course.clone()).await.status(),
        201
    );
    error_body(
        post(teacher_token, foreign_section.clone()).await,
        403,
        "forbidden",
    )
    .await;
    error_body(
        post(teacher_token, untaught_course.clone()).await,
        403,
        "forbidden",
    )
    .await;
    error_body(
        post(teacher_token, everyone.clone()).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        post(other, untaught_course.clone()).await.status(),
        201,
        "teaches s3 in course 2"
    );
    for role in [Role::Manager, Role::Registrar, Role::Admin] {
        let (_, token) = app.signed_in(role).await;
        for audience in [&foreign_section, &untaught_course, &everyone] {
            assert_eq!(
                post(&token, audience.clone()).await.status(),
                201,
                "{role} → {audience}"
            );
        }
    }
    let body = error_body(
        post(
            teacher_token,
            json!({"kind": "course", "course_id": 999999}),
        )
        .await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(field_codes(&body), json!({"audience": ["no_such"]}));
    assert_eq!(
        body["error"]["fields"]["audience"][0]["params"],
        json!({"what": "course"})
    );
    error_body(
        post(teacher_token, json!({"kind": "galaxy"})).await,
        400,
        "bad_request",
    )
    .await;

    // Schools may let teachers address everyone.
    let open = TestApp::spawn_with(|s| s.announcements.teachers_may_announce_to_all = true).await;
    let (_, teacher) = open.signed_in(Role::Teacher).await;
    let response = open
        .send(
            Method::POST,
            "/api/announcements",
            &teacher,
            json!({"title": "T", "body": "B", "audience": everyone}),
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[actix_web::test]
async fn announcement_fields_are_validated() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let everyone = json!({"kind": "all_students"});
    let cases = [
        (
            json!({"title": "", "body": "B", "audience": everyone}),
            "title",
            "must not be blank",
        ),
        (
            json!({"title": "T".repeat(201), "body": "B", "audience": everyone}),
            "title",
            "must be at most 200 characters",
        ),
        (
            json!({"title": "T", "body": "  ", "audience": everyone}),
            "body",
            "must not be blank",
        ),
        (
            json!({"title": "T", "body": "B".repeat(20_001), "audience": everyone}),
            "body",
            "must be at most 20000 characters",
        ),
        (
            json!({"title": "T", "body": "B", "audience": everyone, "publish_at": "2020-01-01T00:00:00Z"}),
            "publish_at",
            "must be in the future",
        ),
    ];
    for (body, field, reason) in cases {
        let response = app
            .send(Method::POST, "/api/announcements", &admin, body)
            .await;
        let error = error_body(response, 400, "validation_failed").await;
        assert_eq!(field_messages(&error)[field], json!([reason]));
    }
    let listed = json_body(app.get("/api/announcements", &admin).await).await;
    assert_eq!(listed["total"], 0);
}

#[actix_web::test]
async fn drafts_are_edited_then_published_once() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let school = school(&app).await;
    let (teacher_id, teacher) = &school.teacher;
    let response = app
        .send(
            Method::POST,
            "/api/announcements",
            teacher,
            json!({"title": "Draft", "body": "B", "audience": {"kind": "section", "section_id": school.s1}, "draft": true}),
        )
        .await;
    let draft = json_body(response).await;
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["publisher_id"], *teacher_id);
    let path = format!("/api/announcements/{}", draft["id"]);
    let edited = json_body(
        app.send(
            Method::PATCH,
            &path,
            teacher,
            json!({"title": "Quiz on Friday"}),
        )
        .await,
    )
    .await;
    assert_eq!(edited["title"], "Quiz on Friday");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        app.recipients(draft["id"].as_i64().unwrap())
            .await
            .is_empty(),
        "drafts reach nobody"
    );

    // Other teachers do not see it; staff do.
    error_body(
        app.get(&path, &school.other_teacher.1).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.get(&path, &admin).await.status(), 200);
    let own = json_body(app.get("/api/announcements?status=draft", teacher).await).await;
    assert_eq!(own["total"], 1);
    let none = json_body(app.get("/api/announcements", &school.other_teacher.1).await).await;
    assert_eq!(none["total"], 0);

    let published = json_body(
        app.send(Method::POST, &format!("{path}/publish"), teacher, json!({}))
            .await,
    )
    .await;
    assert_eq!(published["status"], "published");
    let again = json_body(
        app.send(Method::POST, &format!("{path}/publish"), teacher, json!({}))
            .await,
    )
    .await;
    assert_eq!(again["published_at"], published["published_at"]);
    app.fanned_out(teacher, draft["id"].as_i64().unwrap()).await;
    assert_eq!(
        app.recipients(draft["id"].as_i64().unwrap()).await,
        vec![school.students[0], school.students[1]]
    );
    let body = error_body(
        app.send(Method::PATCH, &path, teacher, json!({"title": "Late"}))
            .await,
        409,
        "not_editable",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("draft"));
}

#[actix_web::test]
async fn scheduled_announcements_publish_when_their_time_comes() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let student = app.user(Role::Student).await;
    let at = Utc::now() + chrono::Duration::milliseconds(1500);
    let response = app
        .send(
            Method::POST,
            "/api/announcements",
            &admin,
            json!({"title": "Soon", "body": "B", "audience": {"kind": "all_students"}, "publish_at": at}),
        )
        .await;
    let scheduled = json_body(response).await;
    assert_eq!(scheduled["status"], "scheduled");
    let id = scheduled["id"].as_i64().unwrap();
    assert!(app.recipients(id).await.is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = json_body(app.get(&format!("/api/announcements/{id}"), &admin).await).await;
    assert_eq!(still["status"], "scheduled", "not before its time");

    app.fanned_out(&admin, id).await;
    let published = json_body(app.get(&format!("/api/announcements/{id}"), &admin).await).await;
    assert_eq!(published["status"], "published");
    let published_at: chrono::DateTime<Utc> =
        published["published_at"].as_str().unwrap().parse().unwrap();
    assert!(published_at >= at);
    assert_eq!(app.recipients(id).await, vec![student.user.id]);
}

#[actix_web::test]
async fn withdrawing_mid_fan_out_stops_it_and_hides_it() {
    let app = TestApp::spawn_with(|s| {
        s.fanout.chunk = 5;
        s.fanout.chunk_delay_ms = 150;
    })
    .await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    app.bulk_students("pupil-w", 60).await;
    let (student, student_token) = app.signed_in(Role::Student).await;
    let mut events = app.state.bus.subscribe();
    let id = app.announce(&admin, json!({"kind": "all_students"})).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/announcements/{id}");
    for _ in 0..100 {
        if !app.recipients(id).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let withdrawn = json_body(
        app.send(Method::POST, &format!("{path}/withdraw"), &admin, json!({}))
            .await,
    )
    .await;
    assert_eq!(withdrawn["status"], "withdrawn");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let written = app.recipients(id).await.len();
    assert!(
        (1..61).contains(&written),
        "stopped part way: {written} of 61"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        app.recipients(id).await.len(),
        written,
        "nothing written after the withdrawal"
    );

    // Hidden from every inbox and unread count, even where a delivery exists.
    let inbox = json_body(app.get("/api/deliveries", &student_token).await).await;
    assert_eq!(inbox["total"], 0);
    assert_eq!(
        json_body(app.get("/api/unread_count", &student_token).await).await["unread"],
        0
    );
    let _ = student;
    let again = json_body(
        app.send(Method::POST, &format!("{path}/withdraw"), &admin, json!({}))
            .await,
    )
    .await;
    assert_eq!(
        again["withdrawn_at"], withdrawn["withdrawn_at"],
        "idempotent"
    );
    error_body(
        app.send(Method::POST, &format!("{path}/publish"), &admin, json!({}))
            .await,
        409,
        "not_editable",
    )
    .await;

    let mut saw_withdrawal = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event.event, Event::AnnouncementWithdrawn { announcement_id } if announcement_id.0 == id)
        {
            saw_withdrawal += 1;
        }
    }
    assert_eq!(saw_withdrawal, 1, "one withdrawal event");
}

/// An announcement to all students, already published (straight into the
/// table, so no fan-out is kicked).
fn published_to_all(
    publisher: UserId,
    title: impl Into<String>,
) -> classbell::announcements::model::NewAnnouncement {
    classbell::announcements::model::NewAnnouncement {
        title: title.into(),
        body: "B".into(),
        audience_kind: "all_students",
        audience_id: None,
        publisher_id: publisher,
        status: classbell::announcements::model::AnnouncementStatus::Published,
        publish_at: None,
        published_at: Some(Utc::now()),
        ack_due_at: None,
        expires_at: None,
        escalation: None,
    }
}

/// Signs in the given users (they were made by `app.user`) and returns tokens.
async fn tokens_for(app: &TestApp, ids: &[UserId]) -> Vec<String> {
    let mut tokens = Vec::new();
    for id in ids {
        let username = classbell::users::store::find(&mut app.db.get().await.unwrap(), *id)
            .await
            .unwrap()
            .username;
        tokens.push(app.access_token(&username, crate::helpers::PASSWORD).await);
    }
    tokens
}

/// The student's delivery id for an announcement.
async fn delivery_of(app: &TestApp, token: &str, announcement: i64) -> i64 {
    let inbox = json_body(app.get("/api/deliveries", token).await).await;
    inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["announcement"]["id"] == announcement)
        .expect("the delivery is in the inbox")["id"]
        .as_i64()
        .unwrap()
}

#[actix_web::test]
async fn the_inbox_and_the_state_machine() {
    let app = TestApp::spawn().await;
    let (admin_user, admin) = app.signed_in(Role::Admin).await;
    let (student, token) = app.signed_in(Role::Student).await;
    let id = app.announce(&admin, json!({"kind": "all_students"})).await["id"]
        .as_i64()
        .unwrap();
    app.fanned_out(&admin, id).await;

    let inbox = json_body(app.get("/api/deliveries", &token).await).await;
    assert_eq!(inbox["total"], 1);
    let item = &inbox["items"][0];
    assert_eq!(item["state"], "queued");
    assert_eq!(item["retry_count"], 0);
    assert_eq!(item["announcement"]["title"], "Field trip");
    assert_eq!(item["announcement"]["body"], "Bring a packed lunch.");
    assert_eq!(item["announcement"]["publisher"], admin_user.user.username);
    assert!(item["announcement"]["published_at"].is_string());
    assert_eq!(
        json_body(app.get("/api/unread_count", &token).await).await["unread"],
        1
    );
    let delivery = item["id"].as_i64().unwrap();
    let post = |action: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            app.send(
                Method::POST,
                &format!("/api/deliveries/{delivery}/{action}"),
                token,
                json!({}),
            )
            .await
        }
    };

    let delivered = json_body(post("delivered").await).await;
    assert_eq!(delivered["state"], "delivered");
    assert!(delivered["delivered_at"].is_string());
    assert!(delivered["ack_at"].is_null());
    let repeat = json_body(post("delivered").await).await;
    assert_eq!(repeat, delivered, "repeating a transition changes nothing");
    assert_eq!(
        json_body(app.get("/api/unread_count", &token).await).await["unread"],
        1,
        "delivered is still unread"
    );

    let acked = json_body(post("ack").await).await;
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["delivered_at"], delivered["delivered_at"]);
    assert!(acked["ack_at"].as_str().unwrap() >= delivered["delivered_at"].as_str().unwrap());
    assert_eq!(json_body(post("ack").await).await, acked);
    assert_eq!(
        json_body(post("delivered").await).await,
        acked,
        "states never go back"
    );
    assert_eq!(
        json_body(app.get("/api/unread_count", &token).await).await["unread"],
        0
    );
    let acked_only = json_body(app.get("/api/deliveries?state=acknowledged", &token).await).await;
    assert_eq!(acked_only["total"], 1);
    let _ = student;

    // Acknowledging a queued delivery stamps both times at once.
    let second = app.announce(&admin, json!({"kind": "all_students"})).await["id"]
        .as_i64()
        .unwrap();
    app.fanned_out(&admin, second).await;
    let other = delivery_of(&app, &token, second).await;
    let direct = json_body(
        app.send(
            Method::POST,
            &format!("/api/deliveries/{other}/ack"),
            &token,
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(direct["state"], "acknowledged");
    assert_eq!(direct["delivered_at"], direct["ack_at"]);
}

#[actix_web::test]
async fn only_the_recipient_touches_a_delivery() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let (_, owner) = app.signed_in(Role::Student).await;
    let (_, other) = app.signed_in(Role::Student).await;
    let (_, teacher) = app.signed_in(Role::Teacher).await;
    let id = app.announce(&admin, json!({"kind": "all_students"})).await["id"]
        .as_i64()
        .unwrap();
    app.fanned_out(&admin, id).await;
    let delivery = delivery_of(&app, &owner, id).await;
    for token in [&other, &teacher, &admin] {
        for action in ["delivered", "ack"] {
            let response = app
                .send(
                    Method::POST,
                    &format!("/api/deliveries/{delivery}/{action}"),
                    token,
                    json!({}),
                )
                .await;
            error_body(response, 404, "not_found").await;
        }
    }
    error_body(
        app.send(
            Method::POST,
            "/api/deliveries/999999/ack",
            &owner,
            json!({}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let untouched = json_body(app.get("/api/deliveries", &owner).await).await;
    assert_eq!(untouched["items"][0]["state"], "queued");

    // A revoked session cannot move its deliveries either.
    app.request(Method::POST, "/auth/logout", Some(&owner), None)
        .await;
    let response = app
        .send(
            Method::POST,
            &format!("/api/deliveries/{delivery}/ack"),
            &owner,
            json!({}),
        )
        .await;
    error_body(response, 401, "unauthorized").await;
}

#[actix_web::test]
async fn a_hundred_concurrent_acks_make_one_transition() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let (_, token) = app.signed_in(Role::Student).await;
    let id = app.announce(&admin, json!({"kind": "all_students"})).await["id"]
        .as_i64()
        .unwrap();
    app.fanned_out(&admin, id).await;
    let delivery = delivery_of(&app, &token, id).await;
    let mut events = app.state.bus.subscribe();

    let path = format!("/api/deliveries/{delivery}/ack");
    let answers = futures_util::future::join_all(
        (0..100).map(|_| app.send(Method::POST, &path, &token, json!({}))),
    )
    .await;
    let mut bodies = Vec::new();
    for answer in answers {
        bodies.push(json_body(answer).await);
    }
    assert!(
        bodies.iter().all(|b| b["state"] == "acknowledged"),
        "{:?}",
        bodies[0]
    );
    assert!(
        bodies.iter().all(|b| b["ack_at"] == bodies[0]["ack_at"]),
        "one ack time for all"
    );
    assert!(
        bodies
            .iter()
            .all(|b| b["delivered_at"] == bodies[0]["delivered_at"])
    );

    let mut transitions = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event.event, Event::DeliveryUpdated { delivery_id, .. } if delivery_id.0 == delivery)
        {
            transitions += 1;
        }
    }
    assert_eq!(transitions, 1, "exactly one transition");
    let metrics = app
        .request(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    for series in [
        "classbell_delivery_writer_batch_size_bucket",
        "classbell_delivery_writer_queue_depth",
        "classbell_delivery_transitions_total{state=\"acknowledged\"}",
        "classbell_fanout_rows_total",
        "classbell_fanout_chunks_total",
        "classbell_fanout_backlog",
        "classbell_fanout_duration_seconds_bucket",
        "classbell_actor_mailbox_depth{actor=\"delivery_writer\"}",
        "classbell_actor_mailbox_depth{actor=\"fanout_supervisor\"}",
        "classbell_actor_mailbox_depth{actor=\"mailer\"}",
        "classbell_actor_messages_total{actor=\"delivery_writer\"}",
    ] {
        assert!(metrics.contains(series), "{series} is exported");
    }
}

#[actix_web::test]
async fn stats_follow_a_scripted_mix() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.user(Role::Student).await.user.id);
    }
    let tokens = tokens_for(&app, &ids).await;
    let id = app.announce(&admin, json!({"kind": "all_students"})).await["id"]
        .as_i64()
        .unwrap();
    app.fanned_out(&admin, id).await;
    let act = |n: usize, action: &'static str| {
        let app = &app;
        let tokens = &tokens;
        async move {
            let delivery = delivery_of(app, &tokens[n], id).await;
            app.send(
                Method::POST,
                &format!("/api/deliveries/{delivery}/{action}"),
                &tokens[n],
                json!({}),
            )
            .await
        }
    };
    act(0, "delivered").await;
    act(1, "delivered").await;
    act(2, "delivered").await;
    act(2, "ack").await;
    act(3, "ack").await;

    let stats = json_body(
        app.get(&format!("/api/announcements/{id}/stats"), &admin)
            .await,
    )
    .await;
    assert_eq!(stats["total"], 5);
    assert_eq!(stats["queued"], 1);
    assert_eq!(stats["delivered"], 2);
    assert_eq!(stats["acknowledged"], 2);
    assert_eq!(stats["ack_rate"], 0.4);
    assert!(stats["median_seconds_to_ack"].as_f64().unwrap() >= 0.0);
    assert_eq!(stats["reminders_sent"], 0);
    assert_eq!(
        stats["fanout"],
        json!({"target": 5, "done": 5, "finished": true, "finished_at": stats["fanout"]["finished_at"]})
    );
}

#[actix_web::test]
async fn reminders_reach_the_unacknowledged_once_per_cooldown() {
    let (smtp_url, maildir) = smtp_server();
    let app = TestApp::spawn_with(|s| {
        s.mail.smtp_url = Some(smtp_url);
        s.announcements.reminder_cooldown_secs = 2;
    })
    .await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let mut students = Vec::new();
    for _ in 0..3 {
        students.push(app.user(Role::Student).await.user);
    }
    let tokens = tokens_for(&app, &students.iter().map(|s| s.id).collect::<Vec<_>>()).await;
    let title = format!("Permission slip {}", Uuid::new_v4().simple());
    let response = app
        .send(
            Method::POST,
            "/api/announcements",
            &admin,
            json!({"title": title, "body": "Sign it.", "audience": {"kind": "all_students"}}),
        )
        .await;
    let id = json_body(response).await["id"].as_i64().unwrap();
    app.fanned_out(&admin, id).await;
    let acked = delivery_of(&app, &tokens[0], id).await;
    app.send(
        Method::POST,
        &format!("/api/deliveries/{acked}/ack"),
        &tokens[0],
        json!({}),
    )
    .await;

    let mut events = app.state.bus.subscribe();
    let path = format!("/api/announcements/{id}/remind_unacked");
    let reminded = json_body(app.send(Method::POST, &path, &admin, json!({})).await).await;
    assert_eq!(reminded, json!({"reminded": 2}));

    let unacked = json_body(
        app.get(&format!("/api/announcements/{id}/unacked"), &admin)
            .await,
    )
    .await;
    assert_eq!(unacked["total"], 2);
    for item in unacked["items"].as_array().unwrap() {
        assert_eq!(item["retry_count"], 1);
        assert_eq!(item["state"], "queued");
        assert!(item["last_push_at"].is_string());
        assert_ne!(item["user_id"], students[0].id);
    }
    let mut reminder_events = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event.event, Event::RemindersSent { announcement_id } if announcement_id.0 == id)
        {
            reminder_events += 1;
        }
    }
    assert_eq!(reminder_events, 1, "one event for the whole round");

    // Within the cooldown: 429 with Retry-After; after it, the next round.
    let response = app.send(Method::POST, &path, &admin, json!({})).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    error_body(response, 429, "too_many_requests").await;
    // The SMTP server received one reminder per unacknowledged student.
    for student in &students[1..] {
        let mails = wait_for_files(&maildir, 1, |text| {
            text.contains(&student.email) && unfold_mail(text).contains(&title)
        })
        .await;
        assert_eq!(mails.len(), 1, "{} got the reminder", student.username);
        assert!(unfold_mail(&mails[0]).contains("Subject: Reminder: Permission slip"));
    }
    let none = wait_for_files(&maildir, 1, |text| {
        text.contains(&students[0].email) && unfold_mail(text).contains(&title)
    })
    .await;
    assert!(
        none.is_empty(),
        "the student who acknowledged is left alone"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        json_body(app.send(Method::POST, &path, &admin, json!({})).await).await["reminded"],
        2
    );
    let stats = json_body(
        app.get(&format!("/api/announcements/{id}/stats"), &admin)
            .await,
    )
    .await;
    assert_eq!(stats["reminders_sent"], 4);

    let draft = json_body(
        app.send(
            Method::POST,
            "/api/announcements",
            &admin,
            json!({"title": "D", "body": "B", "audience": {"kind": "all_students"}, "draft": true}),
        )
        .await,
    )
    .await;
    let response = app
        .send(
            Method::POST,
            &format!("/api/announcements/{}/remind_unacked", draft["id"]),
            &admin,
            json!({}),
        )
        .await;
    error_body(response, 409, "not_published").await;
}

/// A fan-out interrupted between chunks (its worker gone, its lease held)
/// is resumed once the lease lapses: exactly one delivery per recipient.
#[actix_web::test]
async fn an_interrupted_fan_out_resumes_without_duplicates_or_gaps() {
    let app = TestApp::spawn_with(|s| {
        s.fanout.chunk = 10;
        s.fanout.poll_ms = 100;
    })
    .await;
    let (admin, _) = app.signed_in(Role::Admin).await;
    app.bulk_students("pupil-r", 35).await;
    // Published straight into the table and claimed by a "node" that dies,
    // in one transaction: this app's supervisor never sees it unclaimed.
    let mut conn = app.db.get().await.unwrap();
    let ghost = Uuid::new_v4();
    let announcement = {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        conn.transaction(async |conn| {
            let announcement =
                announcements::insert(conn, published_to_all(admin.user.id, "Resume")).await?;
            diesel::sql_query(format!(
                "UPDATE announcements SET fanout_owner = '{ghost}', \
                 fanout_lease_until = now() + interval '1 hour' WHERE id = {}",
                announcement.id
            ))
            .execute(conn)
            .await?;
            Ok::<_, classbell::error::AppError>(announcement)
        })
        .await
        .unwrap()
    };
    drop(conn);
    let job = FanoutJob {
        announcement_id: announcement.id,
        audience: Audience::AllStudents,
        owner: ghost,
        settings: FanoutSettings {
            chunk: 10,
            first_chunk: 10,
            workers: 1,
            lease_secs: 3600,
            poll: Duration::from_secs(1),
            chunk_delay: Duration::ZERO,
        },
    };
    assert_eq!(
        job.step(&app.db, &app.state.bus).await.unwrap(),
        Step::Continue
    );
    assert_eq!(
        job.step(&app.db, &app.state.bus).await.unwrap(),
        Step::Continue
    );
    // The node dies here, between chunks: its worker is gone, its lease stays.
    assert_eq!(app.recipients(announcement.id).await.len(), 20);

    // While the lease holds, nobody else touches it.
    app.state.fanout.do_send(Kick);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.recipients(announcement.id).await.len(), 20);

    // The lease lapses; this node's supervisor picks it up and finishes.
    app.sql(&format!(
        "UPDATE announcements SET fanout_lease_until = now() - interval '1 second' WHERE id = {}",
        announcement.id
    ))
    .await;
    let token = app
        .access_token(&admin.user.username, crate::helpers::PASSWORD)
        .await;
    let stats = app.fanned_out(&token, announcement.id).await;
    let recipients = app.recipients(announcement.id).await;
    let mut distinct = recipients.clone();
    distinct.dedup();
    assert_eq!(recipients.len(), 35);
    assert_eq!(distinct.len(), 35);
    assert_eq!(stats["fanout"]["done"], 35);
}

/// A fan-out's chunks start small and double up to the full chunk size, so
/// the first recipients are told after a short statement: 20 students in
/// chunks of at most 8, the first of 2, come in chunks of 2, 4, 8 and 6.
#[actix_web::test]
async fn a_fan_out_starts_with_a_small_chunk_and_doubles() {
    let app = TestApp::spawn_with(|s| {
        s.fanout.chunk = 8;
        s.fanout.first_chunk = 2;
    })
    .await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    app.bulk_students("pupil-d", 20).await;
    let mut events = app.state.bus.subscribe();
    let id = app.announce(&admin, json!({"kind": "all_students"})).await["id"]
        .as_i64()
        .unwrap();
    let stats = app.fanned_out(&admin, id).await;
    assert_eq!(stats["fanout"]["done"], 20);

    let mut chunks = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::DeliveriesCreated {
            announcement_id,
            count,
            ..
        } = event.event
            && announcement_id.0 == id
        {
            chunks.push(count);
        }
    }
    assert_eq!(chunks, [2, 4, 8, 6]);
    assert_eq!(app.recipients(id).await.len(), 20);
}

#[actix_web::test]
async fn nodes_claim_disjoint_fan_outs() {
    let app = TestApp::spawn_with(|s| s.fanout.poll_ms = 3_600_000).await;
    let (admin, _) = app.signed_in(Role::Admin).await;
    let mut conn = app.db.get().await.unwrap();
    for n in 0..10 {
        announcements::insert(&mut conn, published_to_all(admin.user.id, format!("N{n}")))
            .await
            .unwrap();
    }
    drop(conn);
    let claim = |node: Uuid| {
        let db = app.db.clone();
        async move {
            let mut conn = db.get().await.unwrap();
            announcements::claim_fanouts(&mut conn, node, 60, &[], 10)
                .await
                .unwrap()
        }
    };
    let (a, b) = futures_util::join!(claim(Uuid::new_v4()), claim(Uuid::new_v4()));
    let mut all: Vec<AnnouncementId> = a.iter().chain(b.iter()).map(|c| c.id).collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "no announcement claimed twice");
    assert_eq!(all.len(), 10, "every announcement claimed");
}

#[actix_web::test]
async fn a_killed_server_resumes_its_fan_out_on_restart() {
    use std::process::{Command, Stdio};
    // This process's own supervisor stays out of it: only the child fans out.
    let app = TestApp::spawn_with(|s| s.fanout.poll_ms = 3_600_000).await;
    let (admin, _) = app.signed_in(Role::Admin).await;
    app.bulk_students("pupil-k", 400).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let serve = || {
        Command::new(env!("CARGO_BIN_EXE_classbell"))
            .arg("serve")
            .env("CLASSBELL_DATABASE_URL", &app.settings.database.url)
            .env("CLASSBELL_REDIS_URL", &app.settings.redis.url)
            .env("CLASSBELL_REDIS_PREFIX", &app.settings.redis.prefix)
            .env("CLASSBELL_MAIL_OUTBOX", app.outbox.path())
            .env("CLASSBELL_STORAGE_DIR", &app.settings.storage.dir)
            .env("CLASSBELL_BIND", format!("127.0.0.1:{port}"))
            .env("CLASSBELL_FANOUT_CHUNK", "20")
            .env("CLASSBELL_FANOUT_CHUNK_DELAY_MS", "100")
            .env("CLASSBELL_FANOUT_LEASE_SECS", "1")
            .env("CLASSBELL_FANOUT_POLL_MS", "100")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let base = format!("http://127.0.0.1:{port}");
    let wait_up = || async {
        for _ in 0..100 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("classbell serve did not come up");
    };
    let mut child = serve();
    wait_up().await;
    let tokens: Value = app
        .client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": admin.user.username, "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let created: Value = app
        .client
        .post(format!("{base}/api/announcements"))
        .bearer_auth(token)
        .json(&json!({"title": "Kill", "body": "B", "audience": {"kind": "all_students"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let mut partial = 0;
    for _ in 0..200 {
        partial = app.recipients(id).await.len();
        if partial >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let after_kill = app.recipients(id).await.len();
    assert!(
        (40..400).contains(&after_kill),
        "killed mid-way: {after_kill} (saw {partial})"
    );

    let mut child = serve();
    wait_up().await;
    let mut done = 0;
    for _ in 0..300 {
        let mut conn = app.db.get().await.unwrap();
        if announcements::fanout_finished_at(&mut conn, AnnouncementId(id))
            .await
            .unwrap()
            .is_some()
        {
            done = 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(done, 1, "the restarted server finished the fan-out");
    let recipients = app.recipients(id).await;
    let mut distinct = recipients.clone();
    distinct.dedup();
    assert_eq!(
        (recipients.len(), distinct.len()),
        (400, 400),
        "exactly one delivery per recipient"
    );
}

/// Should a delivery already exist for a recipient (written outside the
/// fan-out), the chunk is redone tolerantly: still one delivery each.
#[actix_web::test]
async fn a_fan_out_meeting_an_existing_delivery_still_writes_one_each() {
    let app = TestApp::spawn_with(|s| s.fanout.chunk = 4).await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let mut students = Vec::new();
    for _ in 0..10 {
        students.push(app.user(Role::Student).await.user.id);
    }
    let draft = json_body(
        app.send(
            Method::POST,
            "/api/announcements",
            &admin,
            json!({"title": "T", "body": "B", "audience": {"kind": "all_students"}, "draft": true}),
        )
        .await,
    )
    .await;
    let id = draft["id"].as_i64().unwrap();
    app.sql(&format!(
        "INSERT INTO deliveries (announcement_id, user_id) VALUES ({id}, {})",
        students[5]
    ))
    .await;
    app.send(
        Method::POST,
        &format!("/api/announcements/{id}/publish"),
        &admin,
        json!({}),
    )
    .await;
    let stats = app.fanned_out(&admin, id).await;
    assert_eq!(app.recipients(id).await, students);
    assert_eq!(stats["total"], 10);
    assert_eq!(
        stats["fanout"]["done"], 9,
        "done counts what this fan-out wrote"
    );
}

/// The per-state totals `/metrics` reads stay exact through statements that
/// update thousands of deliveries at once: some moving, some set to the
/// state they had, some only counted again (as a reminder's retry count).
#[actix_web::test]
async fn delivery_totals_stay_exact_through_updates_of_many_rows() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.signed_in(Role::Admin).await;
    app.bulk_students("pupil-t", 3000).await;
    let announcement = {
        let mut conn = app.db.get().await.unwrap();
        announcements::insert(&mut conn, published_to_all(admin.user.id, "Totals"))
            .await
            .unwrap()
    };
    let id = announcement.id;
    for statement in [
        format!(
            "INSERT INTO deliveries (announcement_id, user_id) \
             SELECT {id}, id FROM users WHERE role = 'student'"
        ),
        "UPDATE deliveries SET state = 'delivered', delivered_at = now() WHERE id % 3 <> 0".into(),
        "UPDATE deliveries SET state = CASE WHEN id % 2 = 0 THEN 'acknowledged' ELSE state END, \
         ack_at = CASE WHEN id % 2 = 0 THEN now() END"
            .into(),
        "UPDATE deliveries SET retry_count = retry_count + 1".into(),
    ] {
        app.sql(&statement).await;
    }

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::Text)]
        state: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.db.get().await.unwrap();
    let mut kept: Vec<(String, i64)> = classbell::deliveries::store::counts_by_state(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(state, n)| (state.as_str().to_owned(), n))
        .collect();
    kept.sort();
    let counted: Vec<Count> = {
        use diesel_async::RunQueryDsl;
        diesel::sql_query(
            "SELECT state, count(*) AS n FROM deliveries GROUP BY state ORDER BY state",
        )
        .load(&mut conn)
        .await
        .unwrap()
    };
    let counted: Vec<(String, i64)> = counted.into_iter().map(|c| (c.state, c.n)).collect();
    assert_eq!(counted.len(), 3, "every state is represented: {counted:?}");
    assert_eq!(counted.iter().map(|(_, n)| n).sum::<i64>(), 3000);
    assert_eq!(kept, counted);
}
