//! Courses, sections and enrollments: rules, conflicts and who may do what.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, field_codes, field_messages, json_body};
use classbell::ids::UserId;
use classbell::sections::model::SectionStatus;
use classbell::users::model::Role;

#[actix_web::test]
async fn courses_are_created_listed_and_searched() {
    let app = TestApp::spawn().await;
    let (_, registrar) = app.signed_in(Role::Registrar).await;
    let response = app
        .send(
            Method::POST,
            "/api/courses",
            &registrar,
            json!({"code": "  BIO-101 ", "title": "Biology", "description": "Cells", "credits": 4.5}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let course = json_body(response).await;
    assert_eq!(course["code"], "BIO-101", "codes are trimmed");
    assert_eq!(course["credits"], 4.5);
    let defaulted = json_body(
        app.send(
            Method::POST,
            "/api/courses",
            &registrar,
            json!({"code": "ART-1", "title": "Drawing"}),
        )
        .await,
    )
    .await;
    assert_eq!(defaulted["credits"], 3.0);
    assert_eq!(defaulted["description"], "");
    app.send(
        Method::POST,
        "/api/courses",
        &registrar,
        json!({"code": "CHEM-2", "title": "Organic chemistry", "credits": 0.5}),
    )
    .await;

    let (_, student) = app.signed_in(Role::Student).await;
    let all = json_body(app.get("/api/courses", &student).await).await;
    assert_eq!(all["total"], 3);
    let codes: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["ART-1", "BIO-101", "CHEM-2"]);
    let found = json_body(app.get("/api/courses?q=organic", &student).await).await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["credits"], 0.5);
    let found = json_body(app.get("/api/courses?q=bio&limit=1", &student).await).await;
    assert_eq!(found["items"][0]["id"], course["id"]);
    let one = json_body(
        app.get(&format!("/api/courses/{}", course["id"]), &student)
            .await,
    )
    .await;
    assert_eq!(one["description"], "Cells");
    error_body(
        app.get("/api/courses/999999", &student).await,
        404,
        "not_found",
    )
    .await;
}

#[actix_web::test]
async fn course_fields_are_validated() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let cases = [
        (
            json!({"code": "", "title": "T"}),
            "code",
            "must not be blank",
        ),
        (
            json!({"code": "X".repeat(33), "title": "T"}),
            "code",
            "must be at most 32 characters",
        ),
        (
            json!({"code": "C1", "title": "T".repeat(129)}),
            "title",
            "must be at most 128 characters",
        ),
        (
            json!({"code": "C1", "title": "T", "credits": 3.25}),
            "credits",
            "must be a multiple of 0.1",
        ),
        (
            json!({"code": "C1", "title": "T", "credits": 100}),
            "credits",
            "must be between 0 and 99.9",
        ),
        (
            json!({"code": "C1", "title": "T", "credits": -1}),
            "credits",
            "must be between 0 and 99.9",
        ),
    ];
    for (body, field, reason) in cases {
        let response = app
            .send(Method::POST, "/api/courses", &admin, body.clone())
            .await;
        let error = error_body(response, 400, "validation_failed").await;
        assert_eq!(field_messages(&error)[field], json!([reason]), "{body}");
    }
    let response = app
        .send(
            Method::POST,
            "/api/courses",
            &admin,
            json!({"code": "C1", "title": "T", "colour": "red"}),
        )
        .await;
    error_body(response, 400, "bad_request").await;
    let (_, total) = classbell::courses::store::list(
        &mut app.db.get().await.unwrap(),
        None,
        classbell::pagination::Page {
            limit: 10,
            offset: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(total, 0);
}

#[actix_web::test]
async fn course_codes_are_unique_whatever_their_case() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let first = json_body(
        app.send(
            Method::POST,
            "/api/courses",
            &manager,
            json!({"code": "MATH-1", "title": "Algebra"}),
        )
        .await,
    )
    .await;
    let response = app
        .send(
            Method::POST,
            "/api/courses",
            &manager,
            json!({"code": "math-1", "title": "Other"}),
        )
        .await;
    let body = error_body(response, 409, "already_exists").await;
    assert_eq!(field_codes(&body), json!({"code": ["taken"]}));

    let other = json_body(
        app.send(
            Method::POST,
            "/api/courses",
            &manager,
            json!({"code": "MATH-2", "title": "Geometry"}),
        )
        .await,
    )
    .await;
    let response = app
        .send(
            Method::PATCH,
            &format!("/api/courses/{}", other["id"]),
            &manager,
            json!({"code": "Math-1"}),
        )
        .await;
    error_body(response, 409, "already_exists").await;
    let response = app
        .send(
            Method::PATCH,
            &format!("/api/courses/{}", first["id"]),
            &manager,
            json!({"title": "Linear algebra", "credits": 5}),
        )
        .await;
    let updated = json_body(response).await;
    assert_eq!(updated["title"], "Linear algebra");
    assert_eq!(updated["credits"], 5.0);
    assert_eq!(updated["code"], "MATH-1");
}

/// Who may call each write endpoint: (role, expected status) for every role.
#[actix_web::test]
async fn the_permission_matrix_for_school_data() {
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for role in [
        Role::Student,
        Role::Teacher,
        Role::Manager,
        Role::Registrar,
        Role::Admin,
    ] {
        tokens.push((role, app.signed_in(role).await));
    }
    let teacher_id = tokens[1].1.0.user.id;
    let other_teacher = app.user(Role::Teacher).await;

    for (role, (_, token)) in &tokens {
        let staff = role.is_staff();
        let expect = |ok: u16| if staff { ok } else { 403 };
        let code = format!("P-{role}");

        // Courses.
        let response = app
            .send(
                Method::POST,
                "/api/courses",
                token,
                json!({"code": code, "title": "T"}),
            )
            .await;
        assert_eq!(response.status(), expect(201), "{role} POST /api/courses");
        let course = app.course(&format!("{code}-x")).await;
        let response = app
            .send(
                Method::PATCH,
                &format!("/api/courses/{course}"),
                token,
                json!({"title": "New"}),
            )
            .await;
        assert_eq!(response.status(), expect(200), "{role} PATCH course");

        // Sections: the teacher teaches `own`, not `foreign`.
        let own = app
            .section(course, teacher_id, 5, SectionStatus::Published)
            .await;
        let foreign = app
            .section(course, other_teacher.user.id, 5, SectionStatus::Published)
            .await;
        let response = app
            .send(
                Method::POST,
                "/api/sections",
                token,
                json!({"course_id": course, "section_code": "A", "term": "t", "teacher_id": teacher_id}),
            )
            .await;
        assert_eq!(response.status(), expect(201), "{role} POST /api/sections");
        let response = app
            .send(
                Method::PATCH,
                &format!("/api/sections/{own}"),
                token,
                json!({"capacity": 7}),
            )
            .await;
        let own_edit = if staff || *role == Role::Teacher {
            200
        } else {
            403
        };
        assert_eq!(response.status(), own_edit, "{role} PATCH own section");
        let response = app
            .send(
                Method::PATCH,
                &format!("/api/sections/{foreign}"),
                token,
                json!({"capacity": 7}),
            )
            .await;
        assert_eq!(
            response.status(),
            expect(200),
            "{role} PATCH someone else's section"
        );

        // Enrollments.
        let student = app.user(Role::Student).await;
        let path = format!("/api/sections/{own}/enrollments");
        let response = app
            .send(
                Method::POST,
                &path,
                token,
                json!({"student_id": student.user.id}),
            )
            .await;
        assert_eq!(response.status(), expect(201), "{role} enroll");
        if !staff {
            app.send(
                Method::POST,
                &path,
                &tokens[4].1.1,
                json!({"student_id": student.user.id}),
            )
            .await;
        }
        let response = app
            .delete(&format!("{path}/{}", student.user.id), token)
            .await;
        assert_eq!(response.status(), expect(204), "{role} withdraw");
        let response = app.get(&path, token).await;
        let sees_students = if staff || *role == Role::Teacher {
            200
        } else {
            403
        };
        assert_eq!(
            response.status(),
            sees_students,
            "{role} list own section's students"
        );
        let response = app
            .get(&format!("/api/sections/{foreign}/enrollments"), token)
            .await;
        assert_eq!(
            response.status(),
            expect(200),
            "{role} list another section's students"
        );

        // Deletes last.
        let response = app.delete(&format!("/api/sections/{own}"), token).await;
        assert_eq!(
            response.status(),
            expect(204),
            "{role} DELETE section (teachers may not)"
        );
        let response = app.delete(&format!("/api/courses/{course}"), token).await;
        assert_eq!(response.status(), expect(204), "{role} DELETE course");
    }
}

#[actix_web::test]
async fn section_fields_and_references_are_validated() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let teacher = app.user(Role::Teacher).await;
    let student = app.user(Role::Student).await;
    let course = app.course("HIST-1").await;
    let base = json!({"course_id": course, "section_code": "01", "term": "2026-fall", "teacher_id": teacher.user.id});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    let cases = [
        (
            with("capacity", json!(0)),
            "capacity",
            "must be between 1 and 1000",
        ),
        (
            with("capacity", json!(1001)),
            "capacity",
            "must be between 1 and 1000",
        ),
        (
            with("teacher_id", json!(student.user.id)),
            "teacher_id",
            "must be an active teacher",
        ),
        (
            with("course_id", json!(999999)),
            "course_id",
            "no such course",
        ),
        (
            with("section_code", json!(" ")),
            "section_code",
            "must not be blank",
        ),
        (
            with("term", json!("x".repeat(33))),
            "term",
            "must be at most 32 characters",
        ),
    ];
    for (body, field, reason) in cases {
        let response = app
            .send(Method::POST, "/api/sections", &admin, body.clone())
            .await;
        let error = error_body(response, 400, "validation_failed").await;
        assert_eq!(field_messages(&error)[field], json!([reason]), "{body}");
    }
    let response = app
        .send(
            Method::POST,
            "/api/sections",
            &admin,
            with("status", json!("closed")),
        )
        .await;
    error_body(response, 400, "bad_request").await;

    let created = json_body(
        app.send(Method::POST, "/api/sections", &admin, base.clone())
            .await,
    )
    .await;
    assert_eq!(created["capacity"], 50);
    assert_eq!(created["status"], "draft");
    let response = app
        .send(
            Method::POST,
            "/api/sections",
            &admin,
            with("term", json!("2026-FALL")),
        )
        .await;
    error_body(response, 409, "already_exists").await;
    let other_term = app
        .send(
            Method::POST,
            "/api/sections",
            &admin,
            with("term", json!("2027-spring")),
        )
        .await;
    assert_eq!(other_term.status(), 201);

    // An inactive teacher cannot be assigned.
    app.sql(&format!(
        "UPDATE users SET is_active = false WHERE id = {}",
        teacher.user.id
    ))
    .await;
    let response = app
        .send(
            Method::PATCH,
            &format!("/api/sections/{}", created["id"]),
            &admin,
            json!({"teacher_id": teacher.user.id}),
        )
        .await;
    error_body(response, 400, "validation_failed").await;
}

#[actix_web::test]
async fn teachers_edit_their_own_sections_without_reassigning_them() {
    let app = TestApp::spawn().await;
    let (teacher, token) = app.signed_in(Role::Teacher).await;
    let colleague = app.user(Role::Teacher).await;
    let course = app.course("GEO-1").await;
    let other_course = app.course("GEO-2").await;
    let own = app
        .section(course, teacher.user.id, 20, SectionStatus::Draft)
        .await;
    let path = format!("/api/sections/{own}");

    let updated = json_body(
        app.send(
            Method::PATCH,
            &path,
            &token,
            json!({"capacity": 25, "status": "published"}),
        )
        .await,
    )
    .await;
    assert_eq!(updated["capacity"], 25);
    assert_eq!(updated["status"], "published");
    for change in [
        json!({"teacher_id": colleague.user.id}),
        json!({"course_id": other_course}),
    ] {
        let response = app.send(Method::PATCH, &path, &token, change).await;
        error_body(response, 403, "forbidden").await;
    }
    // Naming the current teacher or course is not a reassignment.
    let response = app
        .send(
            Method::PATCH,
            &path,
            &token,
            json!({"teacher_id": teacher.user.id, "course_id": course}),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[actix_web::test]
async fn students_see_their_own_published_sections_only() {
    let app = TestApp::spawn().await;
    let teacher = app.user(Role::Teacher).await;
    let course = app.course("LIT-1").await;
    let published = app
        .section(course, teacher.user.id, 10, SectionStatus::Published)
        .await;
    let draft = app
        .section(course, teacher.user.id, 10, SectionStatus::Draft)
        .await;
    app.section(course, teacher.user.id, 10, SectionStatus::Archived)
        .await;
    // Another published section, of which the student is not a member.
    app.section(course, teacher.user.id, 10, SectionStatus::Published)
        .await;

    let (pupil, student) = app.signed_in(Role::Student).await;
    app.sql(&format!(
        "INSERT INTO enrollments (section_id, student_id) VALUES ({published}, {0}), ({draft}, {0})",
        pupil.user.id
    ))
    .await;
    let list = json_body(app.get("/api/sections", &student).await).await;
    assert_eq!(list["total"], 1);
    let item = &list["items"][0];
    assert_eq!(item["id"], published);
    assert_eq!(item["course_code"], "LIT-1");
    assert_eq!(item["course_title"], "LIT-1 title");
    assert_eq!(item["teacher_username"], teacher.user.username);
    assert_eq!(item["enrolled"], 1);
    let none = json_body(app.get("/api/sections?status=draft", &student).await).await;
    assert_eq!(none["total"], 0);
    error_body(
        app.get(&format!("/api/sections/{draft}"), &student).await,
        404,
        "not_found",
    )
    .await;

    let (_, manager) = app.signed_in(Role::Manager).await;
    let all = json_body(
        app.get(&format!("/api/sections?course={course}"), &manager)
            .await,
    )
    .await;
    assert_eq!(all["total"], 4);
    let drafts = json_body(app.get("/api/sections?status=draft", &manager).await).await;
    assert_eq!(drafts["total"], 1);
    let by_teacher = json_body(
        app.get(
            &format!("/api/sections?teacher={}&term=2026-fall", teacher.user.id),
            &manager,
        )
        .await,
    )
    .await;
    assert_eq!(by_teacher["total"], 4);
}

#[actix_web::test]
async fn enrollment_rules_and_conflicts() {
    let app = TestApp::spawn().await;
    let (_, registrar) = app.signed_in(Role::Registrar).await;
    let teacher = app.user(Role::Teacher).await;
    let course = app.course("PHY-1").await;
    let section = app
        .section(course, teacher.user.id, 2, SectionStatus::Published)
        .await;
    let path = format!("/api/sections/{section}/enrollments");
    let enroll = |student: UserId| {
        app.send(
            Method::POST,
            &path,
            &registrar,
            json!({"student_id": student}),
        )
    };

    let ada = app.user(Role::Student).await;
    let created = json_body(enroll(ada.user.id).await).await;
    assert_eq!(created["student_id"], ada.user.id);
    assert_eq!(created["username"], ada.user.username);
    error_body(enroll(ada.user.id).await, 409, "already_enrolled").await;

    let body = error_body(enroll(teacher.user.id).await, 400, "validation_failed").await;
    assert_eq!(
        field_messages(&body),
        json!({"student_id": ["must be an active student"]})
    );
    let inactive = app.user(Role::Student).await;
    app.sql(&format!(
        "UPDATE users SET is_active = false WHERE id = {}",
        inactive.user.id
    ))
    .await;
    error_body(enroll(inactive.user.id).await, 400, "validation_failed").await;
    error_body(enroll(UserId(999999)).await, 400, "validation_failed").await;

    let grace = app.user(Role::Student).await;
    assert_eq!(enroll(grace.user.id).await.status(), 201);
    let late = app.user(Role::Student).await;
    error_body(enroll(late.user.id).await, 409, "section_full").await;

    // Capacity cannot drop below who is enrolled.
    let response = app
        .send(
            Method::PATCH,
            &format!("/api/sections/{section}"),
            &registrar,
            json!({"capacity": 1}),
        )
        .await;
    let body = error_body(response, 409, "capacity_below_enrollment").await;
    assert_eq!(field_codes(&body), json!({"capacity": ["too_small"]}));
    assert_eq!(
        body["error"]["fields"]["capacity"][0]["params"],
        json!({"min": 2})
    );

    let listed = json_body(app.get(&path, &registrar).await).await;
    assert_eq!(listed["total"], 2);
    assert_eq!(
        app.delete(&format!("{path}/{}", grace.user.id), &registrar)
            .await
            .status(),
        204
    );
    error_body(
        app.delete(&format!("{path}/{}", grace.user.id), &registrar)
            .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(enroll(late.user.id).await.status(), 201);

    app.send(
        Method::PATCH,
        &format!("/api/sections/{section}"),
        &registrar,
        json!({"status": "archived", "capacity": 10}),
    )
    .await;
    error_body(enroll(grace.user.id).await, 409, "section_archived").await;
    error_body(
        app.send(
            Method::POST,
            "/api/sections/999999/enrollments",
            &registrar,
            json!({"student_id": ada.user.id}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    let metrics = app
        .request(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    for reason in ["already_enrolled", "section_full", "section_archived"] {
        assert!(
            metrics.contains(&format!(
                "classbell_enrollment_conflicts_total{{reason=\"{reason}\"}}"
            )),
            "{reason} conflicts are counted"
        );
    }
}

#[actix_web::test]
async fn capacity_holds_under_concurrent_enrollment() {
    let app = TestApp::spawn_with(|s| s.database.pool_size = 8).await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let teacher = app.user(Role::Teacher).await;
    let course = app.course("RUSH-1").await;
    let section = app
        .section(course, teacher.user.id, 10, SectionStatus::Published)
        .await;
    app.bulk_students("rush", 200).await;
    let students: Vec<i64> = json_body(app.get("/api/users?role=student&limit=200", &admin).await)
        .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(students.len(), 200);

    let path = format!("/api/sections/{section}/enrollments");
    let responses = join_all(
        students
            .iter()
            .map(|student| app.send(Method::POST, &path, &admin, json!({"student_id": student}))),
    )
    .await;
    let mut created = 0;
    let mut full = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => created += 1,
            409 => {
                assert_eq!(json_body(response).await["error"]["code"], "section_full");
                full += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, full), (10, 190));
    let listed = json_body(app.get(&path, &admin).await).await;
    assert_eq!(listed["total"], 10);
}

#[actix_web::test]
async fn my_sections_for_students_and_teachers() {
    let app = TestApp::spawn().await;
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    let (student, student_token) = app.signed_in(Role::Student).await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let course = app.course("MUS-1").await;
    let taught = app
        .section(course, teacher.user.id, 10, SectionStatus::Published)
        .await;
    app.section(course, teacher.user.id, 10, SectionStatus::Draft)
        .await;
    app.send(
        Method::POST,
        &format!("/api/sections/{taught}/enrollments"),
        &admin,
        json!({"student_id": student.user.id}),
    )
    .await;

    let mine = json_body(app.get("/api/me/sections", &student_token).await).await;
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["items"][0]["id"], taught);
    assert_eq!(mine["items"][0]["enrolled"], 1);
    let teaching = json_body(app.get("/api/me/sections", &teacher_token).await).await;
    assert_eq!(teaching["total"], 2);
}

#[actix_web::test]
async fn deleting_a_course_removes_its_sections_and_enrollments() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let teacher = app.user(Role::Teacher).await;
    let student = app.user(Role::Student).await;
    let course = app.course("GONE-1").await;
    let section = app
        .section(course, teacher.user.id, 10, SectionStatus::Published)
        .await;
    app.send(
        Method::POST,
        &format!("/api/sections/{section}/enrollments"),
        &admin,
        json!({"student_id": student.user.id}),
    )
    .await;
    assert_eq!(
        app.delete(&format!("/api/courses/{course}"), &admin)
            .await
            .status(),
        204
    );
    error_body(
        app.get(&format!("/api/sections/{section}"), &admin).await,
        404,
        "not_found",
    )
    .await;
    error_body(
        app.delete(&format!("/api/courses/{course}"), &admin).await,
        404,
        "not_found",
    )
    .await;
    let count: Value = json_body(app.get("/api/sections", &admin).await).await;
    assert_eq!(count["total"], 0);
}
