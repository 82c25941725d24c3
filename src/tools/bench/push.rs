//! `classbell bench push`: N real websocket clients, each a distinct signed-in
//! student, against `classbell serve` processes (one node, then two sharing
//! PostgreSQL and Redis). One announcement to all students; the figure is the
//! time from the publish request to each client's `delivery.created`, fan-out
//! included, and the servers' resident memory per idle session.

use std::cell::RefCell;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::{SinkExt, StreamExt};
use uuid::Uuid;

use super::{BenchResult, Scratch, exec, fail, seed_students};
use classbell::auth::jwt::JwtKeys;
use classbell::config::Settings;
use classbell::ids::UserId;
use classbell::users::model::Role;

/// Clients that open their websockets at once.
const CONNECT_CONCURRENCY: usize = 200;

pub async fn push(settings: &Settings, sessions: usize) -> BenchResult<serde_json::Value> {
    let scratch = Scratch::create(&settings.database.url).await?;
    let result = push_on(settings, &scratch, sessions.max(1)).await;
    scratch.drop_database().await?;
    result
}

async fn push_on(
    settings: &Settings,
    scratch: &Scratch,
    sessions: usize,
) -> BenchResult<serde_json::Value> {
    let url = scratch.url();
    let mut conn = AsyncPgConnection::establish(&url).await.map_err(fail)?;
    println!(
        "seeding {sessions} signed-in students in {} …",
        scratch.name
    );
    let admin = seed_students(&mut conn, sessions as i64).await?;
    let keys = JwtKeys::new(&settings.auth.jwt_secret, 3600);
    let students = sign_in_students(&mut conn, &keys).await?;
    let admin_token = sign_in(&mut conn, &keys, admin, Role::Admin).await?;
    let mut rounds = Vec::new();
    for nodes in [1, 2] {
        let figures = round(settings, &url, &students, &admin_token, nodes).await?;
        exec(&mut conn, "TRUNCATE deliveries").await?;
        exec(&mut conn, "DELETE FROM announcements").await?;
        rounds.push((nodes, figures));
    }
    println!();
    println!("publish → delivery.created on {sessions} websockets (fan-out included):");
    println!(
        "  nodes   received      p50 ms      p99 ms      max ms   server memory per idle session"
    );
    for (nodes, f) in &rounds {
        println!(
            "  {nodes:>5}   {:>8}   {:>9.0}   {:>9.0}   {:>9.0}   {:>8.1} KiB",
            f.received, f.p50_ms, f.p99_ms, f.max_ms, f.kib_per_session
        );
    }
    println!(
        "  targets: p99 under 1,000 ms; under 32 KiB per idle session (resident memory of the"
    );
    println!("  server processes after the sessions opened, minus before, over the sessions)");
    let figures: Vec<&Figures> = rounds.iter().map(|(_, figures)| figures).collect();
    serde_json::to_value(figures).map_err(fail)
}

/// One auth session and access token per student, made in bulk.
async fn sign_in_students(
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

async fn sign_in(
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

/// One round's figures (the keys of `--json`).
#[derive(serde::Serialize)]
struct Figures {
    nodes: usize,
    sessions: usize,
    connected: usize,
    connect_seconds: f64,
    /// Clients that heard the announcement (at least once).
    received: usize,
    missing: usize,
    /// `delivery.created` heard more than once, over all clients.
    duplicates: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    kib_per_session: f64,
}

/// A `classbell serve` child process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(settings: &Settings, database_url: &str, prefix: &str) -> BenchResult<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(fail)?
            .port();
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
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn wait_ready(&self, client: &awc::Client) -> BenchResult<()> {
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
    fn rss_kib(&self) -> BenchResult<f64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).map_err(fail)?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| "no VmRSS in /proc".to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn round(
    settings: &Settings,
    database_url: &str,
    students: &[String],
    admin_token: &str,
    nodes: usize,
) -> BenchResult<Figures> {
    let prefix = format!("classbell-bench:{}:", Uuid::new_v4().simple());
    let servers: Vec<Server> = (0..nodes)
        .map(|_| Server::start(settings, database_url, &prefix))
        .collect::<BenchResult<_>>()?;
    let http = awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(30))
        .finish();
    for server in &servers {
        server.wait_ready(&http).await?;
    }
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let before: f64 = servers
        .iter()
        .map(Server::rss_kib)
        .sum::<BenchResult<f64>>()?;

    println!("{nodes} node(s): opening {} websockets …", students.len());
    let received: Rc<RefCell<Vec<(usize, Instant)>>> = Rc::default();
    let mut opening = Vec::new();
    let mut readers = Vec::new();
    let connecting = Instant::now();
    for (n, token) in students.iter().enumerate() {
        let base = &servers[n % nodes].base;
        opening.push(open(&http, base, n, token.clone(), Rc::clone(&received)));
        if opening.len() == CONNECT_CONCURRENCY || n + 1 == students.len() {
            for reader in futures_util::future::join_all(opening.drain(..)).await {
                readers.push(reader?);
            }
        }
    }
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let connected = readers.len();
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let after: f64 = servers
        .iter()
        .map(Server::rss_kib)
        .sum::<BenchResult<f64>>()?;
    let kib_per_session = (after - before) / students.len() as f64;

    println!("{nodes} node(s): publishing to all students …");
    let published = Instant::now();
    let response = http
        .post(format!("{}/api/announcements", servers[0].base))
        .bearer_auth(admin_token)
        .send_json(&serde_json::json!({
            "title": "Assembly at ten",
            "body": "Everyone to the main hall.",
            "audience": {"kind": "all_students"}
        }))
        .await
        .map_err(fail)?;
    if response.status() != 201 {
        return Err(format!("publishing answered {}", response.status()));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.borrow().len() < students.len() && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    for reader in readers {
        reader.abort();
    }
    let heard = received.borrow();
    let mut first: Vec<Option<Instant>> = vec![None; students.len()];
    let mut duplicates = 0;
    for &(client, at) in heard.iter() {
        match first[client] {
            Some(_) => duplicates += 1,
            None => first[client] = Some(at),
        }
    }
    let mut latencies: Vec<f64> = first
        .iter()
        .flatten()
        .map(|at| at.duration_since(published).as_secs_f64() * 1000.0)
        .collect();
    if latencies.is_empty() {
        return Err("no client received the announcement".into());
    }
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Ok(Figures {
        nodes,
        sessions: students.len(),
        connected,
        connect_seconds,
        received: latencies.len(),
        missing: students.len() - latencies.len(),
        duplicates,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
        kib_per_session,
    })
}

/// Opens one websocket, waits for `hello`, and leaves a task reading it that
/// notes when `delivery.created` arrives (answering pings meanwhile).
async fn open(
    http: &awc::Client,
    base: &str,
    client: usize,
    token: String,
    received: Rc<RefCell<Vec<(usize, Instant)>>>,
) -> BenchResult<actix_web::rt::task::JoinHandle<()>> {
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let (_, mut socket) = http
        .ws(url)
        .bearer_auth(token)
        .connect()
        .await
        .map_err(fail)?;
    match socket.next().await {
        Some(Ok(Frame::Text(text))) if text.starts_with(br#"{"type":"hello""#) => {}
        other => return Err(format!("expected hello, got {other:?}")),
    }
    Ok(actix_web::rt::spawn(async move {
        while let Some(Ok(frame)) = socket.next().await {
            match frame {
                Frame::Text(text) if text.starts_with(br#"{"type":"delivery.created""#) => {
                    received.borrow_mut().push((client, Instant::now()));
                }
                Frame::Ping(bytes) => {
                    let _ = socket.send(Message::Pong(bytes)).await;
                }
                _ => {}
            }
        }
    }))
}
