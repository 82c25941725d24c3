//! Course attachments, and the one suite both storage backends must pass:
//! local disk, and S3 against the real S3-compatible server `ops/test` runs.

use std::path::Path;

use futures_util::StreamExt;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, error_body, field_codes, field_messages, json_body};
use classbell::config::{Settings, StorageBackend};
use classbell::ids::CourseId;
use classbell::sections::model::SectionStatus;
use classbell::storage::deletions;
use classbell::users::model::Role;

const MIB: usize = 1024 * 1024;

/// Deterministic bytes that are not all the same, so a swapped chunk shows.
fn payload(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

pub fn form(course: CourseId, title: &str, filename: &str, bytes: Vec<u8>) -> Form {
    Form::new()
        .text("course", course.to_string())
        .text("title", title.to_owned())
        .part(
            "file",
            Part::bytes(bytes)
                .file_name(filename.to_owned())
                .mime_str("application/pdf")
                .unwrap(),
        )
}

pub async fn upload(app: &TestApp, token: &str, form: Form) -> reqwest::Response {
    app.client
        .post(app.url("/api/course_attachments"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload")
}

/// S3 settings for the test server `ops/test` starts, with a bucket of the test's own.
fn s3(settings: &mut Settings) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} names the test S3 server; run the suite with ops/test")
        })
    };
    settings.storage.backend = StorageBackend::S3;
    settings.storage.s3_endpoint = Some(var("CLASSBELL_TEST_S3_ENDPOINT"));
    settings.storage.s3_access_key = var("CLASSBELL_TEST_S3_ACCESS_KEY");
    settings.storage.s3_secret_key = var("CLASSBELL_TEST_S3_SECRET_KEY");
    settings.storage.s3_bucket = format!("cb-test-{}", &Uuid::new_v4().simple().to_string()[..12]);
}

/// Every object the app's store holds, whichever backend it is.
async fn stored_objects(app: &TestApp) -> Vec<String> {
    match app.settings.storage.backend {
        StorageBackend::Local => {
            fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
                for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        walk(root, &path, found);
                    } else {
                        found.push(
                            path.strip_prefix(root)
                                .unwrap()
                                .to_string_lossy()
                                .into_owned(),
                        );
                    }
                }
            }
            let mut found = Vec::new();
            walk(
                &app.settings.storage.dir,
                &app.settings.storage.dir,
                &mut found,
            );
            found
        }
        StorageBackend::S3 => {
            use minio::s3::types::ToStream as _;
            let s = &app.settings;
            let base: minio::s3::http::BaseUrl =
                s.storage.s3_endpoint.as_deref().unwrap().parse().unwrap();
            let client = minio::s3::client::MinioClientBuilder::new(base)
                .provider(Some(minio::s3::creds::StaticProvider::new(
                    &s.storage.s3_access_key,
                    &s.storage.s3_secret_key,
                    None,
                )))
                .skip_region_lookup(true)
                .build()
                .unwrap();
            let mut pages = client
                .list_objects(s.storage.s3_bucket.as_str())
                .unwrap()
                .recursive(true)
                .build()
                .to_stream()
                .await;
            let mut found = Vec::new();
            while let Some(page) = pages.next().await {
                found.extend(
                    page.expect("list objects")
                        .contents
                        .into_iter()
                        .map(|entry| entry.name),
                );
            }
            found
        }
    }
}

/// The suite: round trip, sanitised names, size limit, clean-up on failure
/// and on delete.
async fn storage_suite(app: TestApp) {
    let (_, manager) = app.signed_in(Role::Manager).await;
    let course = app.course("SCI-1").await;
    let other_course = app.course("SCI-2").await;

    // 5 MiB, byte for byte, with a hostile filename.
    let bytes = payload(5 * MIB);
    let response = upload(
        &app,
        &manager,
        form(
            course,
            "Lab manual",
            "../../etc/pass\twd.pdf",
            bytes.clone(),
        ),
    )
    .await;
    let created = json_body(response).await;
    assert_eq!(created["size"], 5 * MIB, "{created}");
    assert_eq!(created["filename"], "passwd.pdf");
    assert_eq!(created["title"], "Lab manual");
    assert_eq!(created["content_type"], "application/pdf");
    assert!(created.get("object_key").is_none());
    let stored = stored_objects(&app).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let key = &stored[0];
    assert!(
        key.starts_with(&format!("attachments/{course}/")),
        "generated key: {key}"
    );
    assert!(!key.contains("passwd") && !key.contains(".."));

    // A student of one of the course's sections downloads it.
    let (pupil, student) = app.signed_in(Role::Student).await;
    let teacher = app.user(Role::Teacher).await;
    let section = app
        .section(course, teacher.user.id, 10, SectionStatus::Published)
        .await;
    app.sql(&format!(
        "INSERT INTO enrollments (section_id, student_id) VALUES ({section}, {})",
        pupil.user.id
    ))
    .await;
    let response = app
        .get(
            &format!("/api/course_attachments/{}/download", created["id"]),
            &student,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment") && disposition.contains("passwd.pdf"),
        "{disposition}"
    );
    let downloaded = response.bytes().await.unwrap();
    assert_eq!(downloaded.len(), bytes.len());
    assert!(downloaded[..] == bytes[..], "the bytes came back changed");

    let listed = json_body(
        app.get(
            &format!("/api/course_attachments?course={course}"),
            &student,
        )
        .await,
    )
    .await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["id"], created["id"]);
    let elsewhere = json_body(
        app.get(
            &format!("/api/course_attachments?course={other_course}"),
            &student,
        )
        .await,
    )
    .await;
    assert_eq!(elsewhere["total"], 0);

    // Over the limit: 413, no row, no object.
    let response = upload(
        &app,
        &manager,
        form(course, "Too big", "big.bin", payload(7 * MIB)),
    )
    .await;
    error_body(response, 413, "payload_too_large").await;
    assert_eq!(stored_objects(&app).await.len(), 1);

    // A refused form leaves nothing behind either.
    let response = upload(
        &app,
        &manager,
        form(course, "   ", "notes.pdf", payload(1024)),
    )
    .await;
    let body = error_body(response, 400, "validation_failed").await;
    assert_eq!(field_codes(&body), json!({"title": ["blank"]}));
    let file_first = Form::new()
        .part("file", Part::bytes(payload(10)).file_name("a.txt"))
        .text("course", course.to_string())
        .text("title", "x");
    let body = error_body(
        upload(&app, &manager, file_first).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_messages(&body),
        json!({"file": ["must come after the course field"]})
    );
    assert_eq!(stored_objects(&app).await.len(), 1);
    let listed = json_body(app.get("/api/course_attachments", &manager).await).await;
    assert_eq!(listed["total"], 1);

    // Deleting the attachment removes its bytes.
    let second = json_body(
        upload(
            &app,
            &manager,
            form(course, "Second", "b.pdf", payload(MIB)),
        )
        .await,
    )
    .await;
    assert_eq!(stored_objects(&app).await.len(), 2);
    assert_eq!(
        app.delete(
            &format!("/api/course_attachments/{}", second["id"]),
            &manager
        )
        .await
        .status(),
        204
    );
    assert_eq!(stored_objects(&app).await.len(), 1);
    error_body(
        app.get(
            &format!("/api/course_attachments/{}/download", second["id"]),
            &student,
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // Deleting the course removes every attachment's bytes.
    upload(
        &app,
        &manager,
        form(course, "Third", "c.pdf", payload(2 * MIB)),
    )
    .await;
    upload(
        &app,
        &manager,
        form(other_course, "Kept", "d.pdf", payload(100)),
    )
    .await;
    assert_eq!(stored_objects(&app).await.len(), 3);
    assert_eq!(
        app.delete(&format!("/api/courses/{course}"), &manager)
            .await
            .status(),
        204
    );
    let left = stored_objects(&app).await;
    assert_eq!(
        left.len(),
        1,
        "only the other course's file is left: {left:?}"
    );
    assert!(left[0].starts_with(&format!("attachments/{other_course}/")));

    left_behind_by_a_crash_is_swept(&app, other_course).await;

    let metrics = app
        .request(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    let backend = match app.settings.storage.backend {
        StorageBackend::Local => "local",
        StorageBackend::S3 => "s3",
    };
    for operation in ["put", "get", "delete"] {
        let series = format!(
            "classbell_storage_operations_total{{backend=\"{backend}\",operation=\"{operation}\",outcome=\"ok\"}}"
        );
        let count: f64 = metrics
            .lines()
            .find(|line| line.starts_with(&series))
            .unwrap_or_else(|| panic!("{series} missing"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(count >= 1.0, "{series} counted");
    }
}

/// A node killed after storing an upload's bytes but before writing its row
/// leaves an object nothing owns: once the upload's grace has passed, the
/// sweeper removes it — and only it. An upload whose row was written but
/// whose release was lost keeps its file.
async fn left_behind_by_a_crash_is_swept(app: &TestApp, course: CourseId) {
    let storage = &app.state.storage;
    let grace = std::time::Duration::from_secs(3600);
    let before = stored_objects(app).await;
    assert_eq!(before.len(), 1, "{before:?}");

    // The crash: reserved and stored, no row.
    let orphan = format!("attachments/{course}/left-behind");
    deletions::reserve(&app.db, &orphan, grace).await.unwrap();
    storage
        .put_bytes(&orphan, "application/pdf", payload(1000))
        .await
        .unwrap();
    // Owned, but its release never happened (a crash just after the row).
    let owned = texts(app, "SELECT object_key AS text FROM course_attachments").await;
    assert_eq!(owned.len(), 1);
    let owned = &owned[0];
    deletions::reserve(&app.db, owned, grace).await.unwrap();

    // Within the grace (an upload may still be under way) nothing goes.
    assert_eq!(deletions::purge(&app.db, storage).await, 0);
    assert_eq!(stored_objects(app).await.len(), 2);
    // Past it, the orphan goes, the owned file stays, and the queue is empty.
    app.sql("UPDATE object_deletions SET due_at = now() - interval '1 second'")
        .await;
    assert_eq!(deletions::purge(&app.db, storage).await, 1);
    let left = stored_objects(app).await;
    assert_eq!(left, before, "only the owned file is left");
    assert_eq!(
        texts(app, "SELECT object_key AS text FROM object_deletions").await,
        Vec::<String>::new()
    );
}

/// The one text column of `query`'s rows.
async fn texts(app: &TestApp, query: &str) -> Vec<String> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        text: String,
    }
    let rows: Vec<Row> = diesel::sql_query(query)
        .load(&mut *app.db.get().await.unwrap())
        .await
        .unwrap();
    rows.into_iter().map(|row| row.text).collect()
}

#[actix_web::test]
async fn local_storage_passes_the_suite() {
    storage_suite(TestApp::spawn_with(|s| s.storage.max_upload_bytes = 6 * MIB as u64).await).await;
}

#[actix_web::test]
async fn s3_storage_passes_the_suite() {
    storage_suite(
        TestApp::spawn_with(|s| {
            s.storage.max_upload_bytes = 6 * MIB as u64;
            s3(s);
        })
        .await,
    )
    .await;
}

#[actix_web::test]
async fn who_may_upload_and_delete_attachments() {
    let app = TestApp::spawn().await;
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    let (_, outsider) = app.signed_in(Role::Teacher).await;
    let (_, student) = app.signed_in(Role::Student).await;
    let course = app.course("ENG-1").await;
    app.section(course, teacher.user.id, 10, SectionStatus::Draft)
        .await;

    for token in [&outsider, &student] {
        let response = upload(&app, token, form(course, "Nope", "x.pdf", payload(10))).await;
        error_body(response, 403, "forbidden").await;
    }
    assert!(
        stored_objects(&app).await.is_empty(),
        "refused uploads store nothing"
    );
    let created = json_body(
        upload(
            &app,
            &teacher_token,
            form(course, "Reading list", "list.pdf", payload(10)),
        )
        .await,
    )
    .await;
    assert_eq!(created["uploaded_by"], teacher.user.id);
    for role in [Role::Manager, Role::Registrar, Role::Admin] {
        let (_, token) = app.signed_in(role).await;
        assert_eq!(
            upload(&app, &token, form(course, "Staff", "s.pdf", payload(10)))
                .await
                .status(),
            201
        );
    }

    let path = format!("/api/course_attachments/{}", created["id"]);
    for token in [&outsider, &student] {
        error_body(app.delete(&path, token).await, 403, "forbidden").await;
    }
    assert_eq!(app.delete(&path, &teacher_token).await.status(), 204);
    error_body(app.delete(&path, &teacher_token).await, 404, "not_found").await;

    let response = upload(
        &app,
        &teacher_token,
        form(CourseId(999_999), "Ghost", "g.pdf", payload(10)),
    )
    .await;
    error_body(response, 404, "not_found").await;
    let twice = form(course, "Twice", "t.pdf", payload(10)).text("course", course.to_string());
    let body = error_body(
        upload(&app, &teacher_token, twice).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(field_codes(&body), json!({"course": ["repeated"]}));
    let not_multipart = app
        .send(
            Method::POST,
            "/api/course_attachments",
            &teacher_token,
            json!({"course": course}),
        )
        .await;
    error_body(not_multipart, 400, "bad_request").await;
}

#[actix_web::test]
async fn a_failing_store_is_a_503_and_leaves_no_row() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let course = app.course("FAIL-1").await;
    // A plain file where the store wants a folder: every write fails.
    std::fs::write(app.settings.storage.dir.join("attachments"), b"in the way").unwrap();
    let response = upload(&app, &admin, form(course, "Doomed", "d.pdf", payload(MIB))).await;
    let body = error_body(response, 503, "unavailable").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("object storage")
    );
    let listed = json_body(app.get("/api/course_attachments", &admin).await).await;
    assert_eq!(listed["total"], 0);
    let incoming = std::fs::read_dir(app.settings.storage.dir.join(".incoming"))
        .unwrap()
        .count();
    assert_eq!(incoming, 0, "no half-written file is left");
}
