//! Background jobs: CSV exports and imports through the task API, their
//! files, who may see them, restarts, and live progress.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, json_body};
use crate::ws_client::WsClient;
use classbell::ids::CourseId;
use classbell::sections::model::SectionStatus;
use classbell::users::model::Role;

const BOM: &str = "\u{feff}";

async fn upload(app: &TestApp, path: &str, token: &str, bytes: Vec<u8>) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name("data.csv")
        .mime_str("text/csv")
        .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Starts a job (an export, or an import of `csv`) and returns its task id.
pub async fn start(app: &TestApp, path: &str, token: &str, csv: Option<&[u8]>) -> String {
    let response = match csv {
        Some(bytes) => upload(app, path, token, bytes.to_vec()).await,
        None => app.request(Method::POST, path, Some(token), None).await,
    };
    assert_eq!(response.status(), 202, "{path}");
    let body = json_body(response).await;
    body["task_id"].as_str().unwrap().to_owned()
}

/// Polls the task until it ends (10 s at most).
pub async fn finished(app: &TestApp, token: &str, task: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = json_body(app.get(&format!("/api/tasks/{task}"), token).await).await;
        if last["state"] == "SUCCESS" || last["state"] == "FAILURE" {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {task} did not end: {last}");
}

pub async fn download_csv(app: &TestApp, token: &str, url: &str) -> String {
    let response = app.get(url, token).await;
    assert_eq!(response.status(), 200, "{url}");
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    response.text().await.unwrap()
}

/// Runs an export as `token` and returns the CSV text.
pub async fn export(app: &TestApp, token: &str, path: &str) -> (Value, String) {
    let task = start(app, path, token, None).await;
    let done = finished(app, token, &task).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(done["result"]["status"], "success");
    let url = done["result"]["download_url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/api/tasks/{task}/download"));
    (done, download_csv(app, token, &url).await)
}

/// A little catalogue: two courses, two sections, three students (one
/// section full), and an announcement with unacknowledged deliveries.
struct Catalogue {
    manager: String,
    teacher: (String, String),
    students: Vec<String>,
    announcement: i64,
}

async fn catalogue(app: &TestApp) -> Catalogue {
    let (_, manager) = app.signed_in(Role::Manager).await;
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    app.sql(
        "INSERT INTO courses (code, title, description, credits) VALUES
         ('MATH101', 'Algebra, part one', 'Numbers and \"letters\"', 4.5),
         ('ART200', 'Drawing', '', 3)",
    )
    .await;
    let math = CourseId(id_of(app, "SELECT id FROM courses WHERE code = 'MATH101'").await);
    let art = CourseId(id_of(app, "SELECT id FROM courses WHERE code = 'ART200'").await);
    let s1 = app
        .section(math, teacher.user.id, 2, SectionStatus::Published)
        .await;
    let s2 = app
        .section(art, teacher.user.id, 30, SectionStatus::Draft)
        .await;
    for (section, code, term) in [(s1, "A", "2026-fall"), (s2, "B", "2027-spring")] {
        app.sql(&format!(
            "UPDATE sections SET section_code = '{code}', term = '{term}' WHERE id = {section}"
        ))
        .await;
    }
    let mut students = Vec::new();
    for name in ["ada", "ben", "cy"] {
        let username = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        app.sql(&format!(
            "INSERT INTO users (username, display_name, email, password_hash, role)
             VALUES ('{username}', '{username}', '{username}@school.example', 'x', 'student')"
        ))
        .await;
        students.push(username);
    }
    for (section, student) in [(s1, 0), (s1, 1), (s2, 2)] {
        app.sql(&format!(
            "INSERT INTO enrollments (section_id, student_id)
             SELECT {section}, id FROM users WHERE username = '{}'",
            students[student]
        ))
        .await;
    }
    let announcement = app
        .announce(&teacher_token, json!({"kind": "section", "section_id": s1}))
        .await["id"]
        .as_i64()
        .unwrap();
    app.fanned_out(&teacher_token, announcement).await;
    Catalogue {
        manager,
        teacher: (teacher.user.username, teacher_token),
        students,
        announcement,
    }
}

pub async fn id_of(app: &TestApp, query: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let row: Id = diesel::sql_query(query)
        .get_result(&mut app.db.get().await.unwrap())
        .await
        .unwrap();
    row.id
}

#[actix_web::test]
async fn each_export_writes_its_header_and_rows() {
    let app = TestApp::spawn().await;
    let c = catalogue(&app).await;
    let (done, courses) = export(&app, &c.manager, "/api/exports/courses").await;
    assert_eq!(done["result"]["count"], 2);
    assert_eq!(done["progress"], json!({"done": 2, "total": 2}));
    assert_eq!(
        courses,
        format!(
            "{BOM}code,title,description,credits\n\
             ART200,Drawing,,3.0\n\
             MATH101,\"Algebra, part one\",\"Numbers and \"\"letters\"\"\",4.5\n"
        )
    );

    let (_, sections) = export(&app, &c.manager, "/api/exports/sections").await;
    let teacher = &c.teacher.0;
    assert_eq!(
        sections,
        format!(
            "{BOM}course_code,term,section_code,teacher_username,capacity,status\n\
             ART200,2027-spring,B,{teacher},30,draft\n\
             MATH101,2026-fall,A,{teacher},2,published\n"
        )
    );
    let (_, filtered) = export(
        &app,
        &c.manager,
        "/api/exports/sections?term=2026-FALL&status=published",
    )
    .await;
    assert_eq!(filtered.lines().count(), 2, "{filtered}");
    assert!(filtered.contains("MATH101,2026-fall,A"));

    let (_, enrollments) = export(&app, &c.manager, "/api/exports/enrollments").await;
    let s = &c.students;
    let mut expected_math = [s[0].clone(), s[1].clone()];
    expected_math.sort();
    assert_eq!(
        enrollments,
        format!(
            "{BOM}course_code,term,section_code,student_username\n\
             ART200,2027-spring,B,{}\n\
             MATH101,2026-fall,A,{}\n\
             MATH101,2026-fall,A,{}\n",
            s[2], expected_math[0], expected_math[1]
        )
    );

    // The publisher exports who has not acknowledged (all but one).
    let path = format!("/api/announcements/{}/exports/unacked", c.announcement);
    app.sql(&format!(
        "UPDATE deliveries SET state = 'acknowledged', ack_at = now(), delivered_at = now()
         WHERE announcement_id = {} AND user_id = (SELECT id FROM users WHERE username = '{}')",
        c.announcement, s[0]
    ))
    .await;
    let (done, unacked) = export(&app, &c.teacher.1, &path).await;
    assert_eq!(done["result"]["count"], 1);
    assert_eq!(
        unacked,
        format!(
            "{BOM}username,display_name,number,email,state,retry_count,last_push_at\n{0},{0},,{0}@school.example,queued,0,\n",
            s[1]
        )
    );
}

#[actix_web::test]
async fn importing_what_was_exported_changes_nothing() {
    let app = TestApp::spawn().await;
    let c = catalogue(&app).await;
    let snapshot = || async {
        let courses: i64 =
            id_of(&app, "SELECT count(*) + coalesce(sum(extract(epoch FROM updated_at))::bigint, 0) AS id FROM courses").await;
        let sections: i64 =
            id_of(&app, "SELECT count(*) + coalesce(sum(extract(epoch FROM updated_at))::bigint, 0) AS id FROM sections").await;
        let enrolled: i64 = id_of(&app, "SELECT count(*) AS id FROM enrollments").await;
        (courses, sections, enrolled)
    };
    let before = snapshot().await;
    for (what, rows) in [("courses", 2), ("sections", 2), ("enrollments", 3)] {
        let (_, csv) = export(&app, &c.manager, &format!("/api/exports/{what}")).await;
        let path = format!("/api/imports/{what}");
        let task = start(&app, &path, &c.manager, Some(csv.as_bytes())).await;
        let done = finished(&app, &c.manager, &task).await;
        assert_eq!(
            done["result"],
            json!({"status": "success", "ok": rows, "failed": 0, "dry_run": false, "encoding": "UTF-8"}),
            "{what}"
        );
        assert_eq!(done["progress"], json!({"done": rows, "total": rows}));
    }
    assert_eq!(
        snapshot().await,
        before,
        "nothing changed, not even updated_at"
    );
}

#[actix_web::test]
async fn good_rows_are_imported_and_bad_ones_reported() {
    let app = TestApp::spawn().await;
    let c = catalogue(&app).await;
    // BOM, CRLF, header in another case and order, quoted commas and newlines,
    // bad credits, a duplicate code (the last wins), bytes that are not UTF-8,
    // a missing title, and an update of an existing course.
    let mut file = b"\xEF\xBB\xBFTitle,CODE,Credits,description\r\n".to_vec();
    file.extend_from_slice(b"\"Physics, with labs\",PHY100,4,\"Line one\r\nline two\"\r\n");
    file.extend_from_slice(b"Chemistry,CHEM100,many,\r\n");
    file.extend_from_slice(b"Biology (old),BIO100,3,\r\n");
    file.extend_from_slice(b"Caf\xe9 culture,CAFE1,2,\r\n");
    file.extend_from_slice(b",NOTITLE,2,\r\n");
    file.extend_from_slice(b"Algebra II,math101,5,New\r\n");
    file.extend_from_slice(b"Biology,BIO100,3.5,\r\n");
    let task = start(&app, "/api/imports/courses", &c.manager, Some(&file)).await;
    let done = finished(&app, &c.manager, &task).await;
    assert_eq!(done["state"], "SUCCESS");
    assert_eq!(done["result"]["status"], "partial");
    assert_eq!(done["result"]["ok"], 3, "{done}");
    assert_eq!(done["result"]["failed"], 4);
    let report_url = done["result"]["error_report_url"].as_str().unwrap();
    let report = download_csv(&app, &c.manager, report_url).await;
    assert_eq!(
        report,
        format!(
            "{BOM}row,column,reason\n\
             3,credits,\"must be a number, e.g. 3 or 4.5\"\n\
             4,code,\"the same key appears again in row 8, which wins\"\n\
             5,title,is not valid UTF-8 text\n\
             6,title,is required\n"
        )
    );
    let (_, courses) = export(&app, &c.manager, "/api/exports/courses").await;
    assert_eq!(
        courses,
        format!(
            "{BOM}code,title,description,credits\n\
             ART200,Drawing,,3.0\n\
             BIO100,Biology,,3.5\n\
             MATH101,Algebra II,New,5.0\n\
             PHY100,\"Physics, with labs\",\"Line one\r\nline two\",4.0\n"
        )
    );

    // Sections: an unknown teacher, an unknown course, a capacity below the
    // enrolled, a bad status; one good new section.
    let teacher = &c.teacher.0;
    let sections = format!(
        "course_code,term,section_code,teacher_username,capacity,status\n\
         ART200,2027-spring,C,{teacher},10,published\n\
         ART200,2027-spring,D,nobody-at-all,10,published\n\
         NOPE1,2027-spring,A,{teacher},10,draft\n\
         MATH101,2026-fall,A,{teacher},1,published\n\
         ART200,2027-spring,E,{teacher},10,closed\n"
    );
    let task = start(
        &app,
        "/api/imports/sections",
        &c.manager,
        Some(sections.as_bytes()),
    )
    .await;
    let done = finished(&app, &c.manager, &task).await;
    assert_eq!(done["result"]["ok"], 1, "{done}");
    assert_eq!(done["result"]["failed"], 4);
    let report = download_csv(
        &app,
        &c.manager,
        done["result"]["error_report_url"].as_str().unwrap(),
    )
    .await;
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[1],
        "3,teacher_username,no active teacher has this username"
    );
    assert_eq!(lines[2], "4,course_code,no course has this code");
    assert_eq!(lines[3], "5,capacity,is below the 2 students enrolled");
    assert_eq!(
        lines[4],
        "6,status,\"must be draft, published or archived\""
    );

    // Enrollments: MATH101 A is full (2 of 2), an unknown student, and a
    // student already enrolled (that counts as done).
    let s = &c.students;
    let enrollments = format!(
        "course_code,term,section_code,student_username\n\
         MATH101,2026-fall,A,{}\n\
         ART200,2027-spring,C,{}\n\
         MATH101,2026-fall,A,{}\n\
         ART200,2027-spring,C,ghost\n",
        s[2], s[2], s[0]
    );
    let task = start(
        &app,
        "/api/imports/enrollments",
        &c.manager,
        Some(enrollments.as_bytes()),
    )
    .await;
    let done = finished(&app, &c.manager, &task).await;
    assert_eq!(done["result"]["ok"], 2, "{done}");
    assert_eq!(done["result"]["failed"], 2);
    let report = download_csv(
        &app,
        &c.manager,
        done["result"]["error_report_url"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        report,
        format!(
            "{BOM}row,column,reason\n\
             2,section_code,the section is full\n\
             5,student_username,no active student has this username\n"
        )
    );
    let full: i64 = id_of(
        &app,
        "SELECT count(*) AS id FROM enrollments e JOIN sections s ON s.id = e.section_id WHERE s.section_code = 'A'",
    )
    .await;
    assert_eq!(full, 2, "the capacity held");
}

#[actix_web::test]
async fn files_that_cannot_be_imported_are_refused_at_once() {
    let app = TestApp::spawn_with(|s| s.jobs.max_import_bytes = 1024).await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let cases: [(&[u8], &str); 4] = [
        (
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
            "not a CSV file: it holds binary data",
        ),
        // Neither UTF-8 nor GB18030 (what a Chinese Excel writes).
        (
            b"c\xffdigo,t\xfftulo\nA,B\n",
            "is neither UTF-8 nor GB18030 text",
        ),
        (b"code,name\nA,B\n", "missing required columns: title"),
        (b"", "the file is empty"),
    ];
    for (bytes, reason) in cases {
        let response = upload(&app, "/api/imports/courses", &manager, bytes.to_vec()).await;
        let body = error_body(response, 400, "validation_failed").await;
        let said = body["error"]["fields"]["file"][0]["message"]
            .as_str()
            .unwrap();
        assert!(said.starts_with(reason), "{said}");
    }
    let big = format!("code,title\n{}", "C1,Title\n".repeat(200));
    let response = upload(&app, "/api/imports/courses", &manager, big.into_bytes()).await;
    error_body(response, 413, "payload_too_large").await;
    let response = app
        .client
        .post(app.url("/api/imports/courses"))
        .bearer_auth(&manager)
        .multipart(reqwest::multipart::Form::new().text("note", "no file"))
        .send()
        .await
        .unwrap();
    let body = error_body(response, 400, "validation_failed").await;
    assert!(body["error"]["fields"]["file"].is_array());
    let jobs: i64 = id_of(&app, "SELECT count(*) AS id FROM jobs").await;
    assert_eq!(jobs, 0, "no job was queued");
}

#[actix_web::test]
async fn only_the_owner_and_admins_see_a_task_and_its_file() {
    let app = TestApp::spawn_with(|s| {
        s.jobs.file_ttl_secs = 1;
        s.jobs.poll_ms = 100;
    })
    .await;
    let c = catalogue(&app).await;
    let (_, registrar) = app.signed_in(Role::Registrar).await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let (_, student) = app.signed_in(Role::Student).await;
    let (_, stranger) = app.signed_in(Role::Teacher).await;

    // Who may start what.
    for path in [
        "/api/exports/courses",
        "/api/exports/sections",
        "/api/exports/enrollments",
    ] {
        for token in [&student, &stranger] {
            let response = app.request(Method::POST, path, Some(token), None).await;
            error_body(response, 403, "forbidden").await;
        }
    }
    let response = upload(
        &app,
        "/api/imports/courses",
        &c.teacher.1,
        b"code,title\n".to_vec(),
    )
    .await;
    error_body(response, 403, "forbidden").await;
    let unacked = format!("/api/announcements/{}/exports/unacked", c.announcement);
    for token in [&student, &stranger] {
        let response = app.request(Method::POST, &unacked, Some(token), None).await;
        error_body(response, 404, "not_found").await;
    }
    start(&app, &unacked, &registrar, None).await;

    // Who may see it.
    let task = start(&app, "/api/exports/courses", &c.manager, None).await;
    let done = finished(&app, &c.manager, &task).await;
    let url = done["result"]["download_url"].as_str().unwrap().to_owned();
    for token in [&registrar, &student, &stranger] {
        error_body(
            app.get(&format!("/api/tasks/{task}"), token).await,
            404,
            "not_found",
        )
        .await;
        error_body(app.get(&url, token).await, 404, "not_found").await;
    }
    let seen = json_body(app.get(&format!("/api/tasks/{task}"), &admin).await).await;
    assert_eq!(seen["task_id"], task.as_str());
    assert_eq!(seen["state"], "SUCCESS");
    download_csv(&app, &admin, &url).await;
    error_body(
        app.get("/api/tasks/not-a-uuid", &admin).await,
        404,
        "not_found",
    )
    .await;
    error_body(
        app.get(&format!("/api/tasks/{}", uuid::Uuid::new_v4()), &admin)
            .await,
        404,
        "not_found",
    )
    .await;

    // A day later (a second, here) the file is gone, from the store too.
    let stored = app
        .settings
        .storage
        .dir
        .join(format!("jobs/{task}/courses.csv"));
    assert!(stored.exists());
    let mut status = 0;
    for _ in 0..60 {
        let response = app.get(&url, &c.manager).await;
        status = response.status().as_u16();
        if status == 410 {
            error_body(response, 410, "gone").await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 410);
    for _ in 0..50 {
        if !stored.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!stored.exists(), "the expired file was deleted");
    let task = json_body(app.get(&format!("/api/tasks/{task}"), &c.manager).await).await;
    assert_eq!(task["state"], "SUCCESS", "the task itself stays");
}

#[actix_web::test]
async fn progress_reaches_the_owners_websocket() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let (_, other) = app.signed_in(Role::Manager).await;
    let mut owner_ws = WsClient::connect(&app.address, "/ws", Some(&manager)).await;
    owner_ws.expect("hello").await;
    let mut other_ws = WsClient::connect(&app.address, "/ws", Some(&other)).await;
    other_ws.expect("hello").await;
    let mut csv = String::from("code,title\n");
    for n in 0..2500 {
        csv.push_str(&format!("P{n},Course {n}\n"));
    }
    let task = start(&app, "/api/imports/courses", &manager, Some(csv.as_bytes())).await;
    let mut seen = Vec::new();
    loop {
        let message = owner_ws.expect("job.progress").await;
        assert_eq!(message["task_id"], task.as_str());
        assert_eq!(message["kind"], "import_courses");
        seen.push((
            message["state"].as_str().unwrap().to_owned(),
            message["progress"]["done"].as_i64().unwrap(),
        ));
        if message["state"] == "SUCCESS" {
            assert_eq!(message["progress"], json!({"done": 2500, "total": 2500}));
            break;
        }
    }
    let dones: Vec<i64> = seen.iter().map(|(_, d)| *d).collect();
    assert!(dones.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(
        seen.iter()
            .any(|(s, d)| s == "PROGRESS" && *d > 0 && *d < 2500),
        "{seen:?}"
    );
    let heard = other_ws.drain(Duration::from_millis(300)).await;
    assert!(
        heard.iter().all(|m| m["type"] != "job.progress"),
        "{heard:?}"
    );
}

#[actix_web::test]
async fn a_job_interrupted_by_a_restart_finishes_exactly_once() {
    // Only the node runs jobs: this process's own runner never looks.
    let app = TestApp::spawn_with(|s| s.jobs.poll_ms = 3_600_000).await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let env = [
        ("CLASSBELL_JOB_CHUNK_DELAY_MS", "300"),
        ("CLASSBELL_JOB_LEASE_SECS", "1"),
        ("CLASSBELL_JOB_POLL_MS", "100"),
    ];
    let mut node = app.node(&env).await;
    let mut csv = String::from("code,title\n");
    for n in 0..6000 {
        csv.push_str(&format!("R{n},Course {n}\n"));
    }
    let part = reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("c.csv");
    let response = app
        .client
        .post(node.url("/api/imports/courses"))
        .bearer_auth(&manager)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let task = json_body(response).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Killed half-way.
    let mut progress = 0;
    for _ in 0..200 {
        let state = json_body(app.get(&format!("/api/tasks/{task}"), &manager).await).await;
        progress = state["progress"]["done"].as_i64().unwrap();
        if progress >= 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!((1000..6000).contains(&progress), "{progress}");
    node.kill();
    let state = json_body(app.get(&format!("/api/tasks/{task}"), &manager).await).await;
    assert_eq!(
        state["state"], "PROGRESS",
        "it was running when the server died"
    );

    // Back up: the job is taken again once its lease lapses, and finishes once.
    let _node = app.node(&env).await;
    let done = finished(&app, &manager, &task).await;
    assert_eq!(
        done["result"],
        json!({"status": "success", "ok": 6000, "failed": 0, "dry_run": false, "encoding": "UTF-8"})
    );
    let courses: i64 = id_of(
        &app,
        "SELECT count(*) AS id FROM courses WHERE code LIKE 'R%'",
    )
    .await;
    assert_eq!(courses, 6000, "every row once");
    let attempts: i64 = id_of(
        &app,
        &format!("SELECT attempts::bigint AS id FROM jobs WHERE id = '{task}'"),
    )
    .await;
    assert_eq!(attempts, 2);
    let finished_once: i64 = id_of(
        &app,
        &format!("SELECT count(*) AS id FROM jobs WHERE id = '{task}' AND finished_at IS NOT NULL AND input_key IS NULL"),
    )
    .await;
    assert_eq!(finished_once, 1);
}

#[actix_web::test]
async fn a_job_that_fails_says_why_and_is_not_retried() {
    let app = TestApp::spawn_with(|s| s.jobs.poll_ms = 100).await;
    let (manager, token) = app.signed_in(Role::Manager).await;
    // An import whose uploaded file went missing, and a job whose server
    // died under it three times already.
    let lost = uuid::Uuid::new_v4();
    let abandoned = uuid::Uuid::new_v4();
    app.sql(&format!(
        "INSERT INTO jobs (id, kind, owner_id, input_key) VALUES
         ('{lost}', 'import_courses', {0}, 'jobs/{lost}/upload.csv')",
        manager.user.id
    ))
    .await;
    app.sql(&format!(
        "INSERT INTO jobs (id, kind, owner_id, state, attempts, lease_until) VALUES
         ('{abandoned}', 'export_courses', {0}, 'running', 3, now() - interval '1 minute')",
        manager.user.id
    ))
    .await;
    let done = finished(&app, &token, &lost.to_string()).await;
    assert_eq!(done["state"], "FAILURE");
    assert_eq!(done["error"], "the uploaded file is gone");
    assert!(done["result"].is_null());
    let done = finished(&app, &token, &abandoned.to_string()).await;
    assert_eq!(done["state"], "FAILURE");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .starts_with("stopped 3 times"),
        "{done}"
    );
    // Several polls later, neither was tried again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let attempts: i64 = id_of(
        &app,
        &format!(
            "SELECT sum(attempts)::bigint AS id FROM jobs WHERE id IN ('{lost}', '{abandoned}')"
        ),
    )
    .await;
    assert_eq!(attempts, 1 + 3);
    let failures = app.metrics().await;
    assert!(
        failures
            .contains("classbell_jobs_finished_total{kind=\"import_courses\",outcome=\"failed\"}")
    );
}
