//! Audiences that follow enrollment: late joiners get what their new
//! audiences were told, leavers lose what they had not acknowledged, and
//! the publisher's figures follow.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, json_body};
use crate::realtime::open;
use crate::ws_client::WsClient;
use classbell::ids::{SectionId, UserId};
use classbell::sections::model::SectionStatus;
use classbell::users::model::Role;

/// A course with two current sections taught by one teacher, and staff.
struct School {
    registrar: String,
    teacher: String,
    course: classbell::ids::CourseId,
    first: SectionId,
    second: SectionId,
}

async fn school(app: &TestApp) -> School {
    let (_, registrar) = app.signed_in(Role::Registrar).await;
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    let course = app.course("LATE-1").await;
    let first = app
        .section(course, teacher.user.id, 30, SectionStatus::Published)
        .await;
    let second = app
        .section(course, teacher.user.id, 30, SectionStatus::Published)
        .await;
    School {
        registrar,
        teacher: teacher_token,
        course,
        first,
        second,
    }
}

async fn enroll(
    app: &TestApp,
    token: &str,
    section: SectionId,
    student: UserId,
) -> reqwest::Response {
    app.send(
        Method::POST,
        &format!("/api/sections/{section}/enrollments"),
        token,
        json!({"student_id": student}),
    )
    .await
}

async fn announce(app: &TestApp, token: &str, audience: Value) -> i64 {
    let id = app.announce(token, audience).await["id"].as_i64().unwrap();
    app.fanned_out(token, id).await;
    id
}

/// The deliveries rows (retracted or not) of `student` for `announcement`.
async fn rows(app: &TestApp, announcement: i64, student: UserId) -> usize {
    app.recipients(announcement)
        .await
        .into_iter()
        .filter(|user| *user == student)
        .count()
}

async fn inbox_ids(app: &TestApp, token: &str) -> Vec<i64> {
    let inbox = json_body(app.get("/api/deliveries?limit=200", token).await).await;
    let mut ids: Vec<i64> = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["announcement"]["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

async fn stats(app: &TestApp, token: &str, announcement: i64) -> Value {
    json_body(
        app.get(&format!("/api/announcements/{announcement}/stats"), token)
            .await,
    )
    .await
}

#[actix_web::test]
async fn a_student_enrolled_after_publication_gets_it_live_and_once() {
    let app = TestApp::spawn().await;
    let s = school(&app).await;
    let (early, _) = app.signed_in(Role::Student).await;
    enroll(&app, &s.registrar, s.first, early.user.id).await;
    let to_section = announce(
        &app,
        &s.teacher,
        json!({"kind": "section", "section_id": s.first}),
    )
    .await;
    let to_course = announce(
        &app,
        &s.teacher,
        json!({"kind": "course", "course_id": s.course}),
    )
    .await;
    let to_other = announce(
        &app,
        &s.teacher,
        json!({"kind": "section", "section_id": s.second}),
    )
    .await;
    assert_eq!(stats(&app, &s.teacher, to_section).await["total"], 1);

    let (late, token) = app.signed_in(Role::Student).await;
    let (mut socket, hello) = open(&app, &token).await;
    assert_eq!(hello["unread_count"], 0);
    assert_eq!(
        enroll(&app, &s.registrar, s.first, late.user.id)
            .await
            .status(),
        201
    );
    let mut pushed = vec![];
    for _ in 0..2 {
        let created = socket.expect("delivery.created").await;
        pushed.push(created["delivery"]["announcement"]["id"].as_i64().unwrap());
    }
    pushed.sort_unstable();
    assert_eq!(pushed, vec![to_section, to_course]);
    assert_eq!(socket.expect("unread_count").await["unread"], 2);
    assert_eq!(inbox_ids(&app, &token).await, vec![to_section, to_course]);
    assert_eq!(rows(&app, to_other, late.user.id).await, 0);
    assert_eq!(stats(&app, &s.teacher, to_section).await["total"], 2);

    // Joining a second section of the course brings the other section's
    // announcement, and nothing twice.
    assert_eq!(
        enroll(&app, &s.registrar, s.second, late.user.id)
            .await
            .status(),
        201
    );
    assert_eq!(
        inbox_ids(&app, &token).await,
        vec![to_section, to_course, to_other]
    );
    for announcement in [to_section, to_course, to_other] {
        assert_eq!(rows(&app, announcement, late.user.id).await, 1);
    }
    error_body(
        enroll(&app, &s.registrar, s.first, late.user.id).await,
        409,
        "already_enrolled",
    )
    .await;
    assert_eq!(rows(&app, to_course, late.user.id).await, 1);
}

#[actix_web::test]
async fn concurrent_enrollments_deliver_exactly_once() {
    let app = TestApp::spawn_with(|settings| settings.database.pool_size = 8).await;
    let s = school(&app).await;
    let to_course = announce(
        &app,
        &s.teacher,
        json!({"kind": "course", "course_id": s.course}),
    )
    .await;
    for _ in 0..5 {
        let (student, _) = app.signed_in(Role::Student).await;
        // Twice into one section, and into the course's other section, at once.
        let (a, b, c) = futures_util::join!(
            enroll(&app, &s.registrar, s.first, student.user.id),
            enroll(&app, &s.registrar, s.first, student.user.id),
            enroll(&app, &s.registrar, s.second, student.user.id),
        );
        let mut statuses = vec![
            a.status().as_u16(),
            b.status().as_u16(),
            c.status().as_u16(),
        ];
        statuses.sort_unstable();
        assert_eq!(statuses, vec![201, 201, 409]);
        assert_eq!(rows(&app, to_course, student.user.id).await, 1);
    }
    assert_eq!(stats(&app, &s.teacher, to_course).await["total"], 5);
}

#[actix_web::test]
async fn leaving_retracts_only_the_unacknowledged_that_came_through_the_section() {
    let app = TestApp::spawn().await;
    let s = school(&app).await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let (student, token) = app.signed_in(Role::Student).await;
    enroll(&app, &s.registrar, s.first, student.user.id).await;
    let unread = announce(
        &app,
        &s.teacher,
        json!({"kind": "section", "section_id": s.first}),
    )
    .await;
    let read = announce(
        &app,
        &s.teacher,
        json!({"kind": "section", "section_id": s.first}),
    )
    .await;
    let course = announce(
        &app,
        &s.teacher,
        json!({"kind": "course", "course_id": s.course}),
    )
    .await;
    let everyone = announce(&app, &manager, json!({"kind": "all_students"})).await;
    // The student acknowledges one.
    let inbox = json_body(app.get("/api/deliveries?limit=200", &token).await).await;
    let delivery = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["announcement"]["id"] == read)
        .unwrap()["id"]
        .clone();
    let acked = app
        .send(
            Method::POST,
            &format!("/api/deliveries/{delivery}/ack"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(acked.status(), 200);
    assert_eq!(stats(&app, &s.teacher, unread).await["total"], 1);
    let (mut socket, hello) = open(&app, &token).await;
    assert_eq!(hello["unread_count"], 3);
    let cursor = hello["cursor"].as_str().unwrap().to_owned();

    let left = app
        .delete(
            &format!("/api/sections/{}/enrollments/{}", s.first, student.user.id),
            &s.registrar,
        )
        .await;
    assert_eq!(left.status(), 204);
    // Gone from the inbox: the section's unread one and the course's (no
    // other section of the course holds the student); what was acknowledged
    // and what went to everyone stay.
    let withdrawn = socket.expect("announcement.withdrawn").await;
    let mut gone = vec![withdrawn["announcement_id"].as_i64().unwrap()];
    gone.push(
        socket.expect("announcement.withdrawn").await["announcement_id"]
            .as_i64()
            .unwrap(),
    );
    gone.sort_unstable();
    assert_eq!(gone, vec![unread, course]);
    assert_eq!(socket.expect("unread_count").await["unread"], 1);
    assert_eq!(inbox_ids(&app, &token).await, vec![read, everyone]);
    assert_eq!(stats(&app, &s.teacher, unread).await["total"], 0);
    assert_eq!(stats(&app, &s.teacher, read).await["acknowledged"], 1);
    let unacked = json_body(
        app.get(&format!("/api/announcements/{course}/unacked"), &s.teacher)
            .await,
    )
    .await;
    assert_eq!(unacked["total"], 0);
    // The row stays, for the record.
    assert_eq!(rows(&app, unread, student.user.id).await, 1);
    // A reconnect from before hears the retraction too.
    let mut again =
        WsClient::connect(&app.address, &format!("/ws?since={cursor}"), Some(&token)).await;
    again.expect("hello").await;
    let replayed = again.drain(Duration::from_millis(500)).await;
    let withdrawn: Vec<&Value> = replayed
        .iter()
        .filter(|m| m["type"] == "announcement.withdrawn")
        .collect();
    assert_eq!(withdrawn.len(), 2, "{replayed:?}");

    // Enrolled again, the student has them back, once each.
    enroll(&app, &s.registrar, s.first, student.user.id).await;
    assert_eq!(
        inbox_ids(&app, &token).await,
        vec![unread, read, course, everyone]
    );
    assert_eq!(rows(&app, unread, student.user.id).await, 1);
    assert_eq!(stats(&app, &s.teacher, unread).await["total"], 1);
}

#[actix_web::test]
async fn staying_in_another_section_of_the_course_keeps_the_course_announcement() {
    let app = TestApp::spawn().await;
    let s = school(&app).await;
    let (student, token) = app.signed_in(Role::Student).await;
    enroll(&app, &s.registrar, s.first, student.user.id).await;
    enroll(&app, &s.registrar, s.second, student.user.id).await;
    let course = announce(
        &app,
        &s.teacher,
        json!({"kind": "course", "course_id": s.course}),
    )
    .await;
    app.delete(
        &format!("/api/sections/{}/enrollments/{}", s.first, student.user.id),
        &s.registrar,
    )
    .await;
    assert_eq!(inbox_ids(&app, &token).await, vec![course]);
}

#[actix_web::test]
async fn everyone_announcements_reach_later_accounts_and_inactive_ones_drop_out_of_pending() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let (present, _) = app.signed_in(Role::Student).await;
    let everyone = announce(&app, &manager, json!({"kind": "all_students"})).await;
    let before = stats(&app, &manager, everyone).await["total"]
        .as_i64()
        .unwrap();
    // A student registered afterwards has it.
    let (_, newcomer) = app.signed_in(Role::Student).await;
    assert_eq!(inbox_ids(&app, &newcomer).await, vec![everyone]);
    assert_eq!(stats(&app, &manager, everyone).await["total"], before + 1);
    // A deactivated student leaves the pending figures and the reminders…
    let path = format!("/api/users/{}", present.user.id);
    app.send(Method::PATCH, &path, &admin, json!({"is_active": false}))
        .await;
    let figures = stats(&app, &manager, everyone).await;
    assert_eq!(figures["total"], before);
    let unacked = json_body(
        app.get(&format!("/api/announcements/{everyone}/unacked"), &manager)
            .await,
    )
    .await;
    assert!(
        unacked["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["user_id"] != present.user.id.0)
    );
    // …and comes back when reactivated.
    app.send(Method::PATCH, &path, &admin, json!({"is_active": true}))
        .await;
    assert_eq!(stats(&app, &manager, everyone).await["total"], before + 1);
}

#[actix_web::test]
async fn figures_say_which_section_is_behind() {
    let app = TestApp::spawn().await;
    let s = school(&app).await;
    let mut tokens = vec![];
    for (section, n) in [(s.first, 2), (s.second, 3)] {
        for _ in 0..n {
            let (student, token) = app.signed_in(Role::Student).await;
            enroll(&app, &s.registrar, section, student.user.id).await;
            tokens.push((section, token));
        }
    }
    let course = announce(
        &app,
        &s.teacher,
        json!({"kind": "course", "course_id": s.course}),
    )
    .await;
    // Both students of the first section acknowledge; nobody of the second.
    for (_, token) in tokens.iter().filter(|(section, _)| *section == s.first) {
        let inbox = json_body(app.get("/api/deliveries", token).await).await;
        let id = inbox["items"][0]["id"].clone();
        let acked = app
            .send(
                Method::POST,
                &format!("/api/deliveries/{id}/ack"),
                token,
                json!({}),
            )
            .await;
        assert_eq!(acked.status(), 200);
    }
    let figures = stats(&app, &s.teacher, course).await;
    let by_section = figures["by_section"].as_array().unwrap();
    assert_eq!(by_section.len(), 2, "{figures}");
    let of = |id: SectionId| {
        by_section
            .iter()
            .find(|f| f["section_id"] == id.0)
            .unwrap()
            .clone()
    };
    let first = of(s.first);
    assert_eq!(
        (first["total"].as_i64(), first["acknowledged"].as_i64()),
        (Some(2), Some(2))
    );
    let second = of(s.second);
    assert_eq!(
        (second["total"].as_i64(), second["queued"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(first["course_code"], "LATE-1");
    // The timeline counts the two acknowledgments up.
    let points = figures["timeline"]["points"].as_array().unwrap();
    assert_eq!(points.last().unwrap()["acknowledged"], 2, "{figures}");
    assert!(figures["timeline"]["bucket_seconds"].as_i64().unwrap() >= 10);
    // The unacknowledged list names each student's section.
    let unacked = json_body(
        app.get(&format!("/api/announcements/{course}/unacked"), &s.teacher)
            .await,
    )
    .await;
    assert_eq!(unacked["total"], 3);
    for item in unacked["items"].as_array().unwrap() {
        let sections = item["sections"].as_array().unwrap();
        assert_eq!(sections.len(), 1, "{item}");
        assert!(sections[0].as_str().unwrap().starts_with("LATE-1 "));
    }
}
