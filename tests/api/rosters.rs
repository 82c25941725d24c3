//! The school's roster: imported and exported as CSV, with dry runs,
//! invitations mailed from a queue, and the enrollment import by number.

use serde_json::json;

use crate::helpers::{TestApp, json_body};
use crate::jobs::{download_csv, export, finished, start};
use classbell::sections::model::SectionStatus;
use classbell::users::model::Role;

const BOM: &str = "\u{feff}";

async fn import(app: &TestApp, token: &str, path: &str, csv: &str) -> serde_json::Value {
    let task = start(app, path, token, Some(csv.as_bytes())).await;
    let done = finished(app, token, &task).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    done
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    crate::jobs::id_of(app, &format!("SELECT ({sql})::bigint AS id")).await
}

#[actix_web::test]
async fn a_registrar_imports_a_roster_with_a_dry_run_first() {
    let app = TestApp::spawn_with(|settings| settings.mail.invitations_per_sec = 2).await;
    let (_, registrar) = app.signed_in(Role::Registrar).await;
    let (manager, _) = app.signed_in(Role::Manager).await;
    let roster = format!(
        "username,display_name,email,role,number\n\
         zhang.wei,张伟,zhang.wei@school.example,student,S-001\n\
         li.na,李娜,li.na@school.example,student,S-002\n\
         wang.fang,王芳,wang.fang@school.example,teacher,T-001\n\
         chen.jing,陈静,chen.jing@school.example,student,S-001\n\
         boss,Head,boss@school.example,admin,\n\
         {manager},Taken over,mine@evil.example,student,\n\
         odd.one,Odd,not-an-email,student,\n",
        manager = manager.user.username
    );
    let dry = import(&app, &registrar, "/api/imports/users?dry_run=true", &roster).await;
    assert_eq!(dry["result"]["dry_run"], true);
    assert_eq!(dry["result"]["ok"], 3, "{dry}");
    assert_eq!(dry["result"]["failed"], 4, "{dry}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE username = 'zhang.wei'"
        )
        .await,
        0
    );

    let done = import(&app, &registrar, "/api/imports/users", &roster).await;
    assert_eq!(
        (
            done["result"]["ok"].as_i64(),
            done["result"]["failed"].as_i64()
        ),
        (Some(3), Some(4))
    );
    let report = download_csv(
        &app,
        &registrar,
        done["result"]["error_report_url"].as_str().unwrap(),
    )
    .await;
    assert!(
        report.contains("5,number,is already used by another account"),
        "{report}"
    );
    assert!(
        report.contains("6,role,registrars manage students and teachers only"),
        "{report}"
    );
    assert!(
        report.contains("7,role,registrars manage students and teachers only"),
        "{report}"
    );
    assert!(
        report.contains("8,email,is not a valid email address"),
        "{report}"
    );
    let found = json_body(app.get("/api/users?q=S-001", &registrar).await).await;
    assert_eq!(found["items"][0]["display_name"], "张伟");
    assert_eq!(found["items"][0]["invitation_pending"], true);
    // Nothing of the manager changed.
    let stored = classbell::users::store::find(&mut app.db.get().await.unwrap(), manager.user.id)
        .await
        .unwrap();
    assert_eq!(
        (stored.email, stored.role),
        (manager.user.email, Role::Manager)
    );

    // Invitations go out from the queue, at most two a second here.
    let mails = app.outbox_mail(3).await;
    assert_eq!(mails.len(), 3);
    assert!(
        mails
            .iter()
            .all(|mail| mail.contains("/accept-invitation#token="))
    );
    assert_eq!(count(&app, "SELECT count(*) FROM invitations_due").await, 0);

    // The same file again changes nothing and invites nobody twice.
    let again = import(&app, &registrar, "/api/imports/users", &roster).await;
    assert_eq!(again["result"]["ok"], 3);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.outbox_mail(3).await.len(), 3);
}

#[actix_web::test]
async fn the_roster_exports_as_it_imports_and_managers_cannot_import_it() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let roster = "username,display_name,email,role,number\n\
                  ada,=cmd|' /C calc'!A0,ada@school.example,teacher,T-9\n";
    import(&app, &admin, "/api/imports/users", roster).await;
    let (_, csv) = export(&app, &admin, "/api/exports/users").await;
    assert!(csv.starts_with(&format!("{BOM}username,display_name,email,role,number\n")));
    assert!(
        csv.contains("ada,'=cmd|' /C calc'!A0,ada@school.example,teacher,T-9\n"),
        "{csv}"
    );
    assert!(!csv.contains("argon2") && !csv.to_lowercase().contains("password"));
    // Exported, imported back: nothing changes.
    let back = import(
        &app,
        &admin,
        "/api/imports/users",
        csv.trim_start_matches(BOM),
    )
    .await;
    assert_eq!(back["result"]["failed"], 0, "{back}");
    let stored = json_body(app.get("/api/users?q=T-9", &admin).await).await;
    assert_eq!(stored["items"][0]["display_name"], "=cmd|' /C calc'!A0");

    let refused = app
        .client
        .post(app.url("/api/imports/users"))
        .bearer_auth(&manager)
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(roster.as_bytes().to_vec()).file_name("r.csv"),
        ))
        .send()
        .await
        .unwrap();
    crate::helpers::error_body(refused, 403, "forbidden").await;
}

#[actix_web::test]
async fn enrollments_import_by_school_number_and_reach_the_late_joiners() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let (teacher, teacher_token) = app.signed_in(Role::Teacher).await;
    let course = app.course("NUM-1").await;
    let section = app
        .section(course, teacher.user.id, 10, SectionStatus::Published)
        .await;
    let code: String = {
        use classbell::db::schema::sections;
        use diesel::{ExpressionMethods, QueryDsl};
        use diesel_async::RunQueryDsl;
        sections::table
            .filter(sections::id.eq(section))
            .select(sections::section_code)
            .first(&mut app.db.get().await.unwrap())
            .await
            .unwrap()
    };
    let announcement = app
        .announce(
            &teacher_token,
            json!({"kind": "section", "section_id": section}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    import(
        &app,
        &admin,
        "/api/imports/users",
        "username,display_name,email,role,number\nmei,Mei,mei@school.example,student,S-77\n",
    )
    .await;
    let csv = format!(
        "course_code,term,section_code,student_number\nNUM-1,2026-fall,{code},s-77\nNUM-1,2026-fall,{code},S-404\n"
    );
    let done = import(&app, &admin, "/api/imports/enrollments", &csv).await;
    assert_eq!(
        (
            done["result"]["ok"].as_i64(),
            done["result"]["failed"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let mei = crate::jobs::id_of(&app, "SELECT id FROM users WHERE username = 'mei'").await;
    let recipients = app.recipients(announcement).await;
    assert!(
        recipients.iter().any(|user| user.0 == mei),
        "the late joiner has it"
    );
    let stats = json_body(
        app.get(
            &format!("/api/announcements/{announcement}/stats"),
            &teacher_token,
        )
        .await,
    )
    .await;
    assert_eq!(stats["total"], 1);
}

#[actix_web::test]
async fn a_chinese_excel_roster_is_read_as_gb18030_and_round_trips() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.signed_in(Role::Admin).await;
    let text = "username,display_name,email,role,number\n\
                zhang.wei,张伟,zhang.wei@school.example,student,学号-001\n\
                ou.yang,欧阳·娜娜,ou.yang@school.example,teacher,\n";
    let (gb18030, _, _) = encoding_rs::GB18030.encode(text);
    assert!(std::str::from_utf8(&gb18030).is_err(), "really not UTF-8");
    let task = start(&app, "/api/imports/users", &admin, Some(&gb18030)).await;
    let done = finished(&app, &admin, &task).await;
    assert_eq!(done["result"]["encoding"], "GB18030", "{done}");
    assert_eq!(done["result"]["ok"], 2, "{done}");
    let found = json_body(app.get("/api/users?q=欧阳", &admin).await).await;
    assert_eq!(found["items"][0]["display_name"], "欧阳·娜娜");
    // Exported (UTF-8 with a BOM) and imported back: unchanged.
    let (_, csv) = export(&app, &admin, "/api/exports/users").await;
    assert!(
        csv.contains("zhang.wei,张伟,zhang.wei@school.example,student,学号-001\n"),
        "{csv}"
    );
    let back = import(
        &app,
        &admin,
        "/api/imports/users",
        csv.trim_start_matches(BOM),
    )
    .await;
    assert_eq!(back["result"]["encoding"], "UTF-8");
    assert_eq!(back["result"]["failed"], 0);
    let again = json_body(app.get("/api/users?q=zhang.wei", &admin).await).await;
    assert_eq!(again["items"][0]["display_name"], "张伟");
    assert_eq!(again["items"][0]["number"], "学号-001");
}
