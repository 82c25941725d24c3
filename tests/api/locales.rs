//! The school's clock and languages: `GET /api/config`, local times read in
//! the school's zone, and each person's language.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, error_body, field_codes, json_body};
use classbell::users::model::Role;

async fn config(app: &TestApp) -> serde_json::Value {
    json_body(app.client.get(app.url("/api/config")).send().await.unwrap()).await
}

#[actix_web::test]
async fn the_app_learns_the_school_before_sign_in() {
    let app = TestApp::spawn_with(|settings| {
        settings.school.timezone = "Asia/Shanghai".into();
        settings.school.default_locale = "zh-CN".parse().unwrap();
    })
    .await;
    let school = config(&app).await;
    assert_eq!(school["timezone"], "Asia/Shanghai");
    assert_eq!(school["default_locale"], "zh-CN");
    assert_eq!(school["locales"], json!(["en", "zh-CN"]));
    assert_eq!(school["registration"], json!({"mode": "open"}));
}

#[actix_web::test]
async fn a_local_time_is_read_on_the_school_clock() {
    let app =
        TestApp::spawn_with(|settings| settings.school.timezone = "Asia/Shanghai".into()).await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let create = |publish_at: &str| {
        json!({"title": "Sports day", "body": "Bring water.", "audience": {"kind": "all_students"},
               "publish_at": publish_at})
    };
    let response = app
        .send(
            Method::POST,
            "/api/announcements",
            &manager,
            create("2030-12-03T08:00"),
        )
        .await;
    let scheduled = json_body(response).await;
    assert_eq!(scheduled["status"], "scheduled");
    assert_eq!(
        scheduled["publish_at"], "2030-12-03T00:00:00Z",
        "08:00 in Shanghai"
    );
    // An offset wins over the school's zone.
    let response = app
        .send(
            Method::POST,
            "/api/announcements",
            &manager,
            create("2030-12-03T08:00:00+01:00"),
        )
        .await;
    assert_eq!(
        json_body(response).await["publish_at"],
        "2030-12-03T07:00:00Z"
    );
    // Rescheduled with a local time too.
    let path = format!("/api/announcements/{}", scheduled["id"]);
    let moved = app
        .send(
            Method::PATCH,
            &path,
            &manager,
            json!({"publish_at": "2030-12-04T17:30"}),
        )
        .await;
    assert_eq!(json_body(moved).await["publish_at"], "2030-12-04T09:30:00Z");
    for (bad, reason) in [
        ("tomorrow morning", "RFC 3339"),
        ("2001-01-01T08:00", "future"),
    ] {
        let refused = error_body(
            app.send(Method::POST, "/api/announcements", &manager, create(bad))
                .await,
            400,
            "validation_failed",
        )
        .await;
        let said = refused["error"]["fields"]["publish_at"][0]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(said.contains(reason), "{bad}: {said}");
    }
}

#[actix_web::test]
async fn people_choose_their_language_and_staff_can_set_it() {
    let app = TestApp::spawn().await;
    let (student, token) = app.signed_in(Role::Student).await;
    let me = json_body(app.get("/auth/me", &token).await).await;
    assert_eq!(me["locale"], serde_json::Value::Null, "not chosen yet");
    let chosen = app
        .send(
            Method::PATCH,
            "/auth/me",
            &token,
            json!({"locale": "zh-CN"}),
        )
        .await;
    assert_eq!(json_body(chosen).await["locale"], "zh-CN");
    assert_eq!(
        json_body(app.get("/auth/me", &token).await).await["locale"],
        "zh-CN"
    );
    let refused = app
        .send(Method::PATCH, "/auth/me", &token, json!({"locale": "fr"}))
        .await;
    assert_eq!(refused.status(), 400);
    let refused = app
        .send(
            Method::PATCH,
            "/auth/me",
            &token,
            json!({"locale": "en", "role": "admin"}),
        )
        .await;
    assert_eq!(
        refused.status(),
        400,
        "only the language is the user's to set"
    );
    assert_eq!(
        json_body(app.get("/auth/me", &token).await).await["role"],
        "student"
    );

    let (_, registrar) = app.signed_in(Role::Registrar).await;
    let set = app
        .send(
            Method::PATCH,
            &format!("/api/users/{}", student.user.id),
            &registrar,
            json!({"locale": "en"}),
        )
        .await;
    assert_eq!(json_body(set).await["locale"], "en");
}

/// A mail's `To` line, subject and plain text, decoded (RFC 2047 words,
/// base64 or quoted-printable parts).
fn decoded(raw: &str) -> (String, String, String) {
    use base64::Engine;
    let b64 = |text: &str| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.split_whitespace().collect::<String>())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    let qp = |text: &str| {
        let joined = text.replace("=\r\n", "").replace("=\n", "");
        let mut bytes = Vec::new();
        let mut chars = joined.as_bytes().iter().copied();
        while let Some(b) = chars.next() {
            if b == b'=' {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
            } else {
                bytes.push(b);
            }
        }
        String::from_utf8(bytes).unwrap()
    };
    let unfolded = raw.replace("\r\n ", " ").replace("\r\n\t", " ");
    let to = unfolded
        .lines()
        .find_map(|line| line.strip_prefix("To: "))
        .unwrap()
        .to_owned();
    let subject_line = unfolded
        .lines()
        .find_map(|line| line.strip_prefix("Subject: "))
        .unwrap()
        .to_owned();
    let subject = subject_line
        .split(' ')
        .map(|word| {
            match word
                .strip_prefix("=?utf-8?b?")
                .and_then(|w| w.strip_suffix("?="))
            {
                Some(encoded) => b64(encoded),
                None => word.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" =?", "=?");
    let start = raw.find("Content-Type: text/plain").expect("a text part");
    let part = &raw[start..];
    let body_start = part.find("\r\n\r\n").unwrap() + 4;
    let body_end = part[body_start..].find("\r\n--").unwrap() + body_start;
    let headers = &part[..body_start];
    let body = &part[body_start..body_end];
    let text = if headers.contains("Content-Transfer-Encoding: base64") {
        b64(body)
    } else if headers.contains("Content-Transfer-Encoding: quoted-printable") {
        qp(body)
    } else {
        body.to_owned()
    };
    (to, subject, text)
}

#[actix_web::test]
async fn mails_speak_their_reader_s_language_and_clock() {
    let app =
        TestApp::spawn_with(|settings| settings.school.timezone = "Asia/Shanghai".into()).await;
    let (chinese, chinese_token) = app.signed_in(Role::Student).await;
    app.send(
        Method::PATCH,
        "/auth/me",
        &chinese_token,
        json!({"locale": "zh-CN"}),
    )
    .await;
    let (english, _) = app.signed_in(Role::Student).await;
    for student in [&chinese, &english] {
        let response = app
            .post(
                "/auth/forgot-password",
                json!({"email": student.user.email}),
            )
            .await;
        assert_eq!(response.status(), 202);
    }
    // One who never chose, asking from a Chinese browser.
    let (asking, _) = app.signed_in(Role::Student).await;
    let response = app
        .client
        .post(app.url("/auth/forgot-username"))
        .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")
        .json(&json!({"email": asking.user.email}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let (_, manager) = app.signed_in(Role::Manager).await;
    let announcement = app
        .announce(&manager, json!({"kind": "all_students"}))
        .await;
    let id = announcement["id"].as_i64().unwrap();
    app.fanned_out(&manager, id).await;
    let reminded = app
        .send(
            Method::POST,
            &format!("/api/announcements/{id}/remind_unacked"),
            &manager,
            json!({}),
        )
        .await;
    assert_eq!(reminded.status(), 200);
    // Two resets, one username and three reminders.
    let mails: Vec<(String, String, String)> = app
        .outbox_mail(6)
        .await
        .iter()
        .map(|raw| decoded(raw))
        .collect();
    let to = |email: &str, subject_has: &str| {
        mails
            .iter()
            .find(|(to, subject, _)| to.contains(email) && subject.contains(subject_has))
            .map(|(_, _, text)| text.clone())
            .unwrap_or_else(|| panic!("no mail to {email} with {subject_has:?}: {mails:?}"))
    };
    let text = to(&chinese.user.email, "重置您的 classbell 密码");
    assert!(text.contains("您好") && text.contains("分钟内"), "{text}");
    let text = to(&asking.user.email, "您的 classbell 用户名");
    assert!(text.contains(&asking.user.username), "{text}");
    let text = to(&english.user.email, "Reset your classbell password");
    assert!(text.contains("to choose a new password"), "{text}");
    let text = to(&chinese.user.email, "提醒：Field trip");
    let published = announcement["published_at"].as_str().unwrap();
    let local = chrono::DateTime::parse_from_rfc3339(published)
        .unwrap()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y年%-m月%-d日 %H:%M")
        .to_string();
    assert!(
        text.contains(&format!("发布于 {local}（Asia/Shanghai）")),
        "{text}"
    );
    let text = to(&english.user.email, "Reminder: Field trip");
    assert!(text.contains("(Asia/Shanghai)"), "{text}");
}

/// In a zone with daylight saving, a local time is read by the clock in
/// force that day: the hour the clocks skip is refused with its own code,
/// and the hour they repeat is taken at its first occurrence.
#[actix_web::test]
async fn local_times_follow_daylight_saving_changes() {
    let app =
        TestApp::spawn_with(|settings| settings.school.timezone = "America/New_York".into()).await;
    let (_, manager) = app.signed_in(Role::Manager).await;
    let schedule = |publish_at: &'static str| {
        let app = &app;
        let manager = &manager;
        async move {
            app.send(
                Method::POST,
                "/api/announcements",
                manager,
                json!({"title": "Clocks", "body": "Change.", "audience": {"kind": "all_students"},
                       "publish_at": publish_at}),
            )
            .await
        }
    };
    // The clocks go forward at 02:00 on 9 March 2031 and back at 02:00 on 2 November.
    for (local, utc) in [
        ("2031-03-09T01:30", "2031-03-09T06:30:00Z"),
        ("2031-03-09T03:30", "2031-03-09T07:30:00Z"),
        ("2031-03-10T08:00", "2031-03-10T12:00:00Z"),
        ("2031-11-02T01:30", "2031-11-02T05:30:00Z"),
        ("2031-11-03T08:00", "2031-11-03T13:00:00Z"),
    ] {
        let scheduled = json_body(schedule(local).await).await;
        assert_eq!(scheduled["publish_at"], utc, "{local} in New York");
    }
    let refused = error_body(schedule("2031-03-09T02:30").await, 400, "validation_failed").await;
    assert_eq!(
        field_codes(&refused),
        json!({"publish_at": ["skipped_time"]})
    );
    assert_eq!(
        refused["error"]["fields"]["publish_at"][0]["params"],
        json!({"timezone": "America/New_York"})
    );
}
