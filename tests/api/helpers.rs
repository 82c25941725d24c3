//! The test harness: every test gets its own PostgreSQL database (cloned from
//! a migrated template, dropped afterwards), its own Redis key prefix and its
//! own mail outbox, and talks HTTP to the real app on a free port.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

pub use crate::databases::{TestDatabase, database_url};

use classbell::config::Settings;
use classbell::db::{self, DbPool};
use classbell::ids::{AnnouncementId, CourseId, SectionId, UserId};
use classbell::sections::model::SectionStatus;
use classbell::startup::Application;
use classbell::users::accounts;
use classbell::users::model::{Role, User};

/// Held (shared) by every test's open transaction; held alone by a test
/// whose cursors must move while it runs.
static CURSOR_HOLDERS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// No test holds a transaction open (so cursors move) until this is dropped.
pub async fn cursors_free() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    CURSOR_HOLDERS.write().await
}

/// A transaction held open; rolled back when dropped.
pub struct OpenTransaction {
    conn: AsyncPgConnection,
    _holding: tokio::sync::RwLockReadGuard<'static, ()>,
}

impl std::ops::Deref for OpenTransaction {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for OpenTransaction {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

/// A password that passes every rule.
pub const PASSWORD: &str = "Correct-Horse-42";

#[derive(Parser)]
struct DefaultSettings {
    #[command(flatten)]
    settings: Settings,
}

/// The settings a fresh app starts from, before a test adjusts them.
pub fn base_settings() -> Settings {
    let mut settings = DefaultSettings::parse_from(["classbell"]).settings;
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = 1;
    settings.database.pool_size = 4;
    settings.redis.pool_size = 2;
    settings.server.pool_timeout_secs = 2;
    settings.mail.smtp_url = None;
    settings.mail.poll_ms = 50;
    settings.mail.retry_secs = 1;
    settings.mail.lease_secs = 5;
    settings.server.cors_origins = vec!["https://app.school.example".into()];
    settings.fanout.poll_ms = 50;
    settings
}

pub fn redis_url() -> String {
    std::env::var("CLASSBELL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: DbPool,
    pub settings: Settings,
    pub outbox: tempfile::TempDir,
    /// The running app's parts: its event bus and actors.
    pub state: classbell::startup::Services,
    /// Held so the database lives exactly as long as the app.
    _database: TestDatabase,
}

/// An account made for a test, with the password it signs in with.
pub struct TestUser {
    pub user: User,
    pub password: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the app after `adjust` has had its say on the settings.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let database = TestDatabase::migrated();
        let outbox = tempfile::tempdir().unwrap();
        let mut settings = base_settings();
        settings.database.url = database.url();
        settings.redis.url = redis_url();
        settings.redis.prefix = format!("classbell-test:{}:", Uuid::new_v4().simple());
        settings.mail.outbox = outbox.path().to_path_buf();
        settings.storage.dir = outbox.path().join("storage");
        adjust(&mut settings);

        let app = Application::build(settings.clone())
            .await
            .expect("build the app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.services();
        actix_web::rt::spawn(app.run_until_stopped());
        let db = db::pool(&settings.database.url, 2, Duration::from_secs(5));
        TestApp {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db,
            settings,
            outbox,
            state,
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// What `/metrics` shows now.
    pub async fn metrics_text(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("send the request")
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, None, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Response {
        self.post(
            "/auth/register",
            json!({"username": username, "email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post(
            "/auth/login",
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Signs in and returns the whole token answer.
    pub async fn tokens(&self, username: &str, password: &str) -> Value {
        let response = self.login(username, password).await;
        assert_eq!(response.status(), 200, "login of {username} failed");
        response.json().await.unwrap()
    }

    pub async fn access_token(&self, username: &str, password: &str) -> String {
        self.tokens(username, password).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates an account straight through the store, with a unique name.
    pub async fn user(&self, role: Role) -> TestUser {
        let username = format!("{}-{}", role, &Uuid::new_v4().simple().to_string()[..8]);
        let email = format!("{username}@school.example");
        let account = accounts::NewAccount::named(&username, &email, role);
        let user = accounts::create(&self.db, &self.state.hasher, &account, Some(PASSWORD))
            .await
            .expect("create a test user");
        TestUser {
            user,
            password: PASSWORD.to_owned(),
        }
    }

    /// A new account of `role` and an access token for it.
    pub async fn signed_in(&self, role: Role) -> (TestUser, String) {
        let user = self.user(role).await;
        let token = self.access_token(&user.user.username, &user.password).await;
        (user, token)
    }

    pub async fn send(&self, method: Method, path: &str, token: &str, body: Value) -> Response {
        self.request(method, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// A course, straight through the store.
    pub async fn course(&self, code: &str) -> CourseId {
        let new = classbell::courses::model::NewCourse {
            code: code.to_owned(),
            title: format!("{code} title"),
            description: String::new(),
            credits: classbell::courses::credits::Credits::DEFAULT,
        };
        classbell::courses::store::insert(&mut self.db.get().await.unwrap(), new)
            .await
            .unwrap()
            .id
    }

    /// A section of `course` taught by `teacher`, straight through the store.
    pub async fn section(
        &self,
        course: CourseId,
        teacher: UserId,
        capacity: i32,
        status: SectionStatus,
    ) -> SectionId {
        let new = classbell::sections::model::NewSection {
            course_id: course,
            section_code: format!("S{}", &Uuid::new_v4().simple().to_string()[..6]),
            term: "2026-fall".to_owned(),
            teacher_id: teacher,
            capacity,
            status,
        };
        classbell::sections::store::insert(&mut self.db.get().await.unwrap(), new)
            .await
            .unwrap()
            .id
    }

    /// Publishes (or drafts) an announcement over HTTP and returns its body.
    pub async fn announce(&self, token: &str, audience: Value) -> Value {
        let response = self
            .send(
                Method::POST,
                "/api/announcements",
                token,
                json!({"title": "Field trip", "body": "Bring a packed lunch.", "audience": audience}),
            )
            .await;
        assert_eq!(response.status(), 201, "announce");
        response.json().await.unwrap()
    }

    /// Waits up to 10 s for the announcement's fan-out to finish; returns its stats.
    pub async fn fanned_out(&self, token: &str, announcement: impl Into<AnnouncementId>) -> Value {
        let announcement = announcement.into();
        for _ in 0..200 {
            let stats = json_body(
                self.get(&format!("/api/announcements/{announcement}/stats"), token)
                    .await,
            )
            .await;
            if stats["fanout"]["finished"] == true {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the fan-out of {announcement} did not finish");
    }

    /// The recipients' user ids of an announcement, ascending.
    pub async fn recipients(&self, announcement: impl Into<AnnouncementId>) -> Vec<UserId> {
        let announcement = announcement.into();
        use classbell::db::schema::deliveries;
        use diesel::{ExpressionMethods, QueryDsl};
        deliveries::table
            .filter(deliveries::announcement_id.eq(announcement))
            .select(deliveries::user_id)
            .order(deliveries::user_id)
            .load(&mut self.db.get().await.unwrap())
            .await
            .unwrap()
    }

    /// `n` active students named `{prefix}1…`, inserted in one statement
    /// (no password hashing: they never sign in).
    pub async fn bulk_students(&self, prefix: &str, n: u32) {
        self.sql(&format!(
            "INSERT INTO users (username, display_name, email, password_hash, role) \
             SELECT '{prefix}' || g, '{prefix}' || g, '{prefix}' || g || '@school.example', 'x', 'student' \
             FROM generate_series(1, {n}) g"
        ))
        .await;
    }

    /// Runs SQL on this test's database (to age a token, break a table, …).
    pub async fn sql(&self, statement: &str) {
        let mut conn = AsyncPgConnection::establish(&self.settings.database.url)
            .await
            .unwrap();
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// A connection holding a transaction open (with a transaction id), as
    /// a long import does: it keeps every cursor at or below it until
    /// dropped, in every test's database (a cursor is the cluster's xmin),
    /// so tests that need cursors to move wait until none is open
    /// (`cursors_free`).
    pub async fn open_transaction(&self) -> OpenTransaction {
        let holding = CURSOR_HOLDERS.read().await;
        let mut conn = AsyncPgConnection::establish(&self.settings.database.url)
            .await
            .unwrap();
        for statement in ["BEGIN", "SELECT pg_current_xact_id()"] {
            diesel::sql_query(statement)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        OpenTransaction {
            conn,
            _holding: holding,
        }
    }

    /// The Prometheus text `/metrics` serves now.
    pub async fn metrics(&self) -> String {
        let response = self.request(Method::GET, "/metrics", None, None).await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// The `.eml` files in this app's outbox, waiting up to 5 s for `count`.
    pub async fn outbox_mail(&self, count: usize) -> Vec<String> {
        wait_for_files(self.outbox.path(), count, |_| true).await
    }
}

/// Waits up to 5 s for `count` files in `dir` whose text passes `keep`.
pub async fn wait_for_files(dir: &Path, count: usize, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for _ in 0..50 {
        found = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|entry| {
                        let path = entry.ok()?.path();
                        path.is_file().then(|| std::fs::read_to_string(path).ok())?
                    })
                    .filter(|text| keep(text))
                    .collect()
            })
            .unwrap_or_default();
        if found.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    found
}

/// The SMTP server that ops/test starts and the Maildir it writes to.
pub fn smtp_server() -> (String, PathBuf) {
    let url = std::env::var("CLASSBELL_TEST_SMTP_URL")
        .expect("CLASSBELL_TEST_SMTP_URL names the test SMTP server; run the suite with ops/test");
    let maildir = std::env::var("CLASSBELL_TEST_MAILDIR").expect(
        "CLASSBELL_TEST_MAILDIR names the SMTP server's Maildir; run the suite with ops/test",
    );
    (url, PathBuf::from(maildir).join("new"))
}

/// Decodes quoted-printable soft line breaks so links and names can be found.
pub fn unfold_mail(raw: &str) -> String {
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

pub async fn json_body(response: Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"))
}

/// Asserts the JSON error shape and returns it.
pub async fn error_body(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let body = json_body(response).await;
    assert_eq!(body["error"]["code"], code, "unexpected error: {body}");
    assert!(body["error"]["message"].is_string(), "no message: {body}");
    assert!(body["error"]["fields"].is_object(), "no fields: {body}");
    for reasons in body["error"]["fields"].as_object().unwrap().values() {
        for reason in reasons.as_array().expect("a list of reasons") {
            assert!(
                reason["code"].is_string(),
                "a reason without a code: {body}"
            );
            assert!(
                reason["message"].is_string(),
                "a reason without a message: {body}"
            );
            assert!(
                reason["params"].is_object(),
                "a reason without params: {body}"
            );
        }
    }
    body
}

/// An error body's reasons as `{field: [code, …]}`.
pub fn field_codes(body: &Value) -> Value {
    field_reasons(body, "code")
}

/// An error body's reasons as `{field: [English message, …]}`.
pub fn field_messages(body: &Value) -> Value {
    field_reasons(body, "message")
}

fn field_reasons(body: &Value, part: &str) -> Value {
    let fields = body["error"]["fields"].as_object().expect("fields");
    fields
        .iter()
        .map(|(field, reasons)| {
            let said: Vec<Value> = reasons
                .as_array()
                .unwrap()
                .iter()
                .map(|reason| reason[part].clone())
                .collect();
            (field.clone(), Value::Array(said))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A `classbell serve` process on a free port, sharing this app's database,
/// Redis prefix, outbox and storage: another node of the same deployment.
/// Killed when dropped.
pub struct Node {
    pub address: String,
    child: std::process::Child,
}

impl TestApp {
    /// Starts another node; `env` adds or overrides settings.
    pub async fn node(&self, env: &[(&str, &str)]) -> Node {
        self.node_logging(env, None).await
    }

    /// Starts another node whose log (its standard output and error) goes to `log`.
    pub async fn node_logging(&self, env: &[(&str, &str)], log: Option<&Path>) -> Node {
        let output = || match log {
            Some(path) => std::process::Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap(),
            ),
            None => std::process::Stdio::null(),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_classbell"));
        command
            .arg("serve")
            .env("CLASSBELL_DATABASE_URL", &self.settings.database.url)
            .env("CLASSBELL_REDIS_URL", &self.settings.redis.url)
            .env("CLASSBELL_REDIS_PREFIX", &self.settings.redis.prefix)
            .env("CLASSBELL_MAIL_OUTBOX", self.outbox.path())
            .env("CLASSBELL_STORAGE_DIR", &self.settings.storage.dir)
            .env("CLASSBELL_BIND", format!("127.0.0.1:{port}"))
            .env("CLASSBELL_WORKERS", "1")
            .env("CLASSBELL_DATABASE_POOL_SIZE", "4")
            .env("CLASSBELL_FANOUT_POLL_MS", "100")
            .env("RUST_LOG", "warn")
            .stdout(output())
            .stderr(output());
        for (name, value) in env {
            command.env(name, value);
        }
        let node = Node {
            address: format!("http://127.0.0.1:{port}"),
            child: command.spawn().expect("run classbell serve"),
        };
        node.wait_up().await;
        node
    }
}

impl Node {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    async fn wait_up(&self) {
        for _ in 0..200 {
            if reqwest::get(self.url("/healthz")).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("classbell serve did not come up at {}", self.address);
    }

    /// Sends SIGTERM (as an orchestrator would) and waits up to `wait` for
    /// the process to exit; its exit status, if it did.
    pub async fn terminate(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Ends the process at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` of a test's own on a free port, for tests that stop it
/// (never the shared one). Stopped when dropped.
pub struct OwnRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub async fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = OwnRedis {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run redis-server (ops/test installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on {}", self.port);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
