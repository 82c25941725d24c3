//! What the websocket benchmarks share: `classbell serve` nodes and load
//! clients as child processes, students signed in in bulk, and publishing
//! over HTTP.

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::Rng;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};
use uuid::Uuid;

use super::load::{CLIENT_SOCKETS, Opened, Plan, Report, Status, now_ms};
use super::{BenchResult, fail, seed_students};
use classbell::auth::jwt::JwtKeys;
use classbell::config::Settings;
use classbell::ids::UserId;
use classbell::users::model::Role;

/// Who the websocket benchmarks sign in as.
pub struct SignedIn {
    pub admin: UserId,
    pub admin_token: String,
    /// One access token per student, in id order.
    pub students: Vec<String>,
}

/// Seeds `sessions` students and an admin, and signs them all in.
pub async fn seed_signed_in(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
    sessions: usize,
) -> BenchResult<SignedIn> {
    println!("seeding {sessions} signed-in students …");
    let admin = seed_students(conn, sessions as i64).await?;
    sign_in_first(conn, settings, admin, sessions).await
}

/// Signs in `admin` and the first `students` students (in id order) of a
/// school already seeded.
pub async fn sign_in_first(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
    admin: UserId,
    students: usize,
) -> BenchResult<SignedIn> {
    let keys = JwtKeys::new(&settings.auth.jwt_secret, 3600);
    Ok(SignedIn {
        admin,
        admin_token: sign_in(conn, &keys, admin, Role::Admin).await?,
        students: sign_in_students(conn, &keys, students).await?,
    })
}

/// One auth session and access token for each of the first `n` students,
/// made in bulk.
async fn sign_in_students(
    conn: &mut AsyncPgConnection,
    keys: &JwtKeys,
    n: usize,
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
         SELECT gen_random_uuid(), id FROM users WHERE role = 'student' ORDER BY id LIMIT $1
         RETURNING id, user_id",
    )
    .bind::<BigInt, _>(n as i64)
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
        // Its log, for when a figure needs explaining.
        let log = std::fs::File::create(files.with_extension("log")).map_err(fail)?;
        let child = Command::new(serve_binary()?)
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
            .stdout(log)
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

    /// CPU time the node has used so far (user and system), in ms.
    pub fn cpu_ms(&self) -> BenchResult<f64> {
        cpu_ms(self.child.id())
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> BenchResult<f64> {
        rss_kib(self.child.id())
    }
}

/// CPU time process `pid` has used so far (user and system), in ms, from /proc.
pub fn cpu_ms(pid: u32) -> BenchResult<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(fail)?;
    // The fields after the command's name (which may hold spaces) in
    // parentheses: utime and stime are the 12th and 13th of them.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<f64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse().ok())
        .collect();
    if ticks.len() != 2 {
        return Err("no CPU times in /proc".into());
    }
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    Ok((ticks[0] + ticks[1]) * 1000.0 / per_second)
}

/// Resident memory of process `pid` in KiB, from /proc.
pub fn rss_kib(pid: u32) -> BenchResult<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(fail)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc".to_owned())
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

/// The program a node runs: this one, or the build that
/// `CLASSBELL_BENCH_SERVE_BIN` names, so that two builds' servers can be
/// measured side by side with the same load clients.
fn serve_binary() -> BenchResult<std::path::PathBuf> {
    match std::env::var_os("CLASSBELL_BENCH_SERVE_BIN") {
        Some(path) => Ok(path.into()),
        None => std::env::current_exe().map_err(fail),
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
        let body = response.body().await.unwrap_or_default();
        return Err(format!(
            "publishing answered {}: {}",
            response.status(),
            String::from_utf8_lossy(&body)
        ));
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

/// A helper process of the benchmark (a load client, a broadcast server),
/// driven over its standard input and output, one JSON line per answer.
pub struct Helper {
    child: tokio::process::Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Helper {
    /// Starts `classbell bench <command>`.
    pub fn spawn(command: &str) -> BenchResult<Helper> {
        let mut child = tokio::process::Command::new(std::env::current_exe().map_err(fail)?)
            .args(["bench", command])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(fail)?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        Ok(Helper {
            child,
            stdin,
            stdout,
        })
    }

    /// Starts a load-client process and hands it its plan.
    pub async fn load_client(plan: &Plan) -> BenchResult<Helper> {
        let mut helper = Self::spawn("load-client")?;
        let mut line = serde_json::to_vec(plan).map_err(fail)?;
        line.push(b'\n');
        helper.stdin.write_all(&line).await.map_err(fail)?;
        helper.stdin.flush().await.map_err(fail)?;
        Ok(helper)
    }

    pub fn pid(&self) -> BenchResult<u32> {
        self.child
            .id()
            .ok_or_else(|| "a helper process ended early".into())
    }

    /// Its next line, as `T`.
    pub async fn answer<T: serde::de::DeserializeOwned>(&mut self) -> BenchResult<T> {
        match self.stdout.next_line().await.map_err(fail)? {
            Some(line) => serde_json::from_str(&line).map_err(fail),
            None => Err("a helper process ended early".into()),
        }
    }

    /// Writes `command` as a line, without waiting for the answer.
    pub async fn tell(&mut self, command: &str) -> BenchResult<()> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(fail)?;
        self.stdin.flush().await.map_err(fail)
    }

    pub async fn ask<T: serde::de::DeserializeOwned>(&mut self, command: &str) -> BenchResult<T> {
        self.tell(command).await?;
        self.answer().await
    }

    pub async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.child.wait().await;
    }
}

/// Splits `tokens` over processes of at most `CLIENT_SOCKETS`, each from a
/// source address of its own (127.a.b.2, .3, …), and waits until each has
/// opened its sockets. The clients of process `p` are `tokens[p * size..]`.
pub async fn start_clients(
    bases: &[String],
    tokens: &[String],
    reconnect: bool,
) -> BenchResult<(Vec<Helper>, Opened)> {
    let processes = tokens.len().div_ceil(CLIENT_SOCKETS).max(1);
    let size = tokens.len().div_ceil(processes);
    // Each set of clients takes a loopback block of its own (127.a.b.2, .3,
    // …, a and b at random): an earlier round's sockets stay in TIME_WAIT
    // on their source ports for a minute, and an address has only ~28,000.
    let block: [u8; 2] = [rand::rng().random_range(1..=254), rand::rng().random()];
    let started = Instant::now();
    let mut clients = Vec::new();
    for (p, share) in tokens.chunks(size.max(1)).enumerate() {
        // Each process spreads its clients over all servers, shifted so the
        // processes together split every server's load evenly.
        let mut own = bases.to_vec();
        own.rotate_left((p * size) % bases.len());
        let plan = Plan {
            bases: own,
            source: IpAddr::from([127, block[0], block[1], 2 + p as u8]),
            tokens: share.to_vec(),
            reconnect,
        };
        clients.push(Helper::load_client(&plan).await?);
    }
    let mut total = Opened {
        connected: 0,
        failed: 0,
        seconds: 0.0,
        first_error: None,
    };
    for client in &mut clients {
        let opened: Opened = client.answer().await?;
        total.connected += opened.connected;
        total.failed += opened.failed;
        if total.first_error.is_none() {
            total.first_error = opened.first_error;
        }
    }
    total.seconds = started.elapsed().as_secs_f64();
    Ok((clients, total))
}

/// Waits up to a minute for `expected` clients to hear of `announcement`,
/// sent at `sent` (wall-clock ms): their times from then in ms, sorted, and
/// the repeats heard.
pub async fn receipts(
    clients: &mut [Helper],
    announcement: i64,
    sent: f64,
    expected: usize,
) -> BenchResult<(Vec<f64>, usize)> {
    let deadline = now_ms() + 60_000.0;
    while heard(clients, announcement).await? < expected && now_ms() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let report = report(clients, announcement).await?;
    let mut latencies: Vec<f64> = report
        .first_ms
        .iter()
        .flatten()
        .map(|at| at - sent)
        .collect();
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, report.duplicates + report.replayed))
}

/// Every client's first hearing of `announcement`, in token order, and the
/// repeats, over all processes.
pub async fn report(clients: &mut [Helper], announcement: i64) -> BenchResult<Report> {
    let mut all = Report::default();
    for client in clients {
        let report: Report = client.ask(&format!("report {announcement}")).await?;
        all.first_ms.extend(report.first_ms);
        all.duplicates += report.duplicates;
        all.replayed += report.replayed;
    }
    Ok(all)
}

/// Clients that heard of `announcement`, over all processes.
pub async fn heard(clients: &mut [Helper], announcement: i64) -> BenchResult<usize> {
    let mut heard = 0;
    for client in clients {
        heard += client
            .ask::<usize>(&format!("count {announcement}"))
            .await?;
    }
    Ok(heard)
}

/// Sockets open, clients resumed and how sockets ended, over all processes.
pub async fn status(clients: &mut [Helper]) -> BenchResult<Status> {
    let mut all = Status::default();
    for client in clients {
        let status: Status = client.ask("status").await?;
        all.open += status.open;
        all.resumed += status.resumed;
        all.reconnects += status.reconnects;
        for (how, count) in status.ended {
            *all.ended.entry(how).or_default() += count;
        }
        all.last_resumed_ms = match (all.last_resumed_ms, status.last_resumed_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(all)
}
