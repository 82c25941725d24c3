//! What the websocket benchmarks share: `classbell serve` nodes as child
//! processes, students signed in in bulk, and publishing over HTTP.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{BenchResult, fail};
use classbell::auth::jwt::JwtKeys;
use classbell::config::Settings;
use classbell::ids::UserId;
use classbell::users::model::Role;

/// One auth session and access token per student, made in bulk.
pub async fn sign_in_students(
    conn: &mut AsyncPgConnection,
    keys: &JwtKeys,
) -> BenchResult<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Opened {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = BigInt)]
        user_id: UserId,
    }
    let opened: Vec<Opened> = diesel::sql_query(
        "INSERT INTO auth_sessions (id, user_id)
         SELECT gen_random_uuid(), id FROM users WHERE role = 'student' ORDER BY id
         RETURNING id, user_id",
    )
    .load(conn)
    .await
    .map_err(fail)?;
    opened
        .into_iter()
        .map(|o| keys.issue(o.user_id, Role::Student, o.id).map_err(fail))
        .collect()
}

pub async fn sign_in(
    conn: &mut AsyncPgConnection,
    keys: &JwtKeys,
    user: UserId,
    role: Role,
) -> BenchResult<String> {
    let (session, _) = classbell::auth::store::open_session(conn, user, chrono::Duration::hours(1))
        .await
        .map_err(fail)?;
    keys.issue(user, role, session).map_err(fail)
}

/// A `classbell serve` child process.
pub struct Server {
    child: Child,
    pub port: u16,
    pub base: String,
}

impl Server {
    /// Starts a node on a free port.
    pub fn start(settings: &Settings, database_url: &str, prefix: &str) -> BenchResult<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(fail)?
            .port();
        Self::start_on(settings, database_url, prefix, port)
    }

    /// Starts a node on `port` (again, after a restart).
    pub fn start_on(
        settings: &Settings,
        database_url: &str,
        prefix: &str,
        port: u16,
    ) -> BenchResult<Server> {
        let files = std::env::temp_dir().join(format!("classbell-bench-{port}"));
        let child = Command::new(std::env::current_exe().map_err(fail)?)
            .arg("serve")
            .env("CLASSBELL_DATABASE_URL", database_url)
            .env("CLASSBELL_REDIS_URL", &settings.redis.url)
            .env("CLASSBELL_REDIS_PREFIX", prefix)
            .env("CLASSBELL_JWT_SECRET", &settings.auth.jwt_secret)
            .env("CLASSBELL_BIND", format!("127.0.0.1:{port}"))
            .env("CLASSBELL_MAIL_OUTBOX", &files)
            .env("CLASSBELL_STORAGE", "local")
            .env("CLASSBELL_STORAGE_DIR", &files)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(fail)?;
        Ok(Server {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    pub async fn wait_ready(&self, client: &awc::Client) -> BenchResult<()> {
        for _ in 0..400 {
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("{} did not become ready", self.base))
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> BenchResult<f64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).map_err(fail)?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| "no VmRSS in /proc".to_owned())
    }
}

impl Server {
    /// SIGKILL: every connection drops at once, as in a crash or a hard restart.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes an announcement to `audience` through `server`; its id.
pub async fn announce(
    http: &awc::Client,
    server: &Server,
    admin_token: &str,
    audience: serde_json::Value,
) -> BenchResult<i64> {
    let mut response = http
        .post(format!("{}/api/announcements", server.base))
        .bearer_auth(admin_token)
        .send_json(&serde_json::json!({
            "title": "Assembly at ten",
            "body": "Everyone to the main hall.",
            "audience": audience,
        }))
        .await
        .map_err(fail)?;
    if response.status() != 201 {
        return Err(format!("publishing answered {}", response.status()));
    }
    let created: serde_json::Value = response.json().await.map_err(fail)?;
    created["id"]
        .as_i64()
        .ok_or_else(|| "no announcement id".into())
}

/// The `share` percentile of sorted `values` (0 when there are none).
pub fn percentile(values: &[f64], share: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values[((values.len() - 1) as f64 * share).round() as usize]
}
