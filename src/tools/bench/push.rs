//! `classbell bench push`: N real websocket clients, each a distinct signed-in
//! student, against `classbell serve` processes sharing PostgreSQL and Redis
//! (one node, then two; or as many as `--nodes` says). The clients run in
//! processes of their own (`load`), at most `CLIENT_SOCKETS` each, from
//! source addresses of their own. Figures: how long the sockets took to
//! open, the servers' resident memory per idle session, five section-sized
//! publishes (500 recipients spread over every node) and one to all students,
//! each from the publish request to every client's `delivery.created`,
//! fan-out included.

use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::broadcast::{self, Baseline};
use super::cluster::{self, Helper, Server, SignedIn, announce, percentile, seed_signed_in};
use super::load::{self, now_ms};
use super::{BenchResult, Scratch, exec, fail};
use classbell::config::Settings;
use classbell::ids::UserId;

/// Students in the section-sized publish.
const SECTION: usize = 500;
/// Section publishes measured, a teacher's pace apart: one publish's p99 is
/// nearly its slowest receipt, so a single one measures mostly noise.
const SECTION_PUBLISHES: usize = 5;
const SECTION_PAUSE: Duration = Duration::from_secs(1);
/// How long the idle sessions' CPU is measured (a heartbeat interval).
const IDLE_WINDOW: Duration = Duration::from_secs(10);

pub async fn push(
    settings: &Settings,
    sessions: usize,
    nodes: Option<usize>,
) -> BenchResult<serde_json::Value> {
    let scratch = Scratch::create(&settings.database.url).await?;
    let result = push_on(settings, &scratch, sessions.max(1), nodes).await;
    scratch.drop_database().await?;
    result
}

async fn push_on(
    settings: &Settings,
    scratch: &Scratch,
    sessions: usize,
    nodes: Option<usize>,
) -> BenchResult<serde_json::Value> {
    let url = scratch.url();
    let mut conn = AsyncPgConnection::establish(&url).await.map_err(fail)?;
    let SignedIn {
        admin,
        admin_token,
        students,
    } = seed_signed_in(&mut conn, settings, sessions).await?;
    let section = seed_section(&mut conn, admin, sessions).await?;
    let mut rounds: Vec<Figures> = Vec::new();
    for nodes in nodes.map_or(vec![1, 2], |n| vec![n.max(1)]) {
        let figures = round(settings, &url, &students, &admin_token, nodes, section).await?;
        exec(&mut conn, "TRUNCATE deliveries").await?;
        exec(&mut conn, "DELETE FROM announcements").await?;
        rounds.push(figures);
    }
    // As many broadcast servers as the fewest nodes, so that no process
    // holds more sockets than classbell's did.
    let servers = rounds.iter().map(|f| f.nodes).min().unwrap_or(1);
    let baseline = broadcast::baseline(&students, servers).await?;
    for figures in &mut rounds {
        figures.broadcast = Some(baseline.clone());
    }
    print_figures(&rounds, &baseline);
    serde_json::to_value(&rounds).map_err(fail)
}

fn print_figures(rounds: &[Figures], baseline: &Baseline) {
    let single = rounds.iter().find(|f| f.nodes == 1);
    println!();
    println!(
        "publish → delivery.created on {} websockets (fan-out included):",
        rounds[0].sessions
    );
    println!(
        "  nodes  connected  connect s  received  missing  dup   p50 ms   p99 ms   max ms  \
         section p99 ms  server CPU ms  idle CPU ms/s  KiB/session (per node)"
    );
    for f in rounds {
        let per_node: Vec<String> = f
            .kib_per_session_by_node
            .iter()
            .map(|k| format!("{k:.1}"))
            .collect();
        println!(
            "  {:>5}  {:>9}  {:>9.1}  {:>8}  {:>7}  {:>3}  {:>7.0}  {:>7.0}  {:>7.0}  {:>14.0}  {:>13.0}  {:>13.0}  {:>5.1} ({})",
            f.nodes,
            f.connected,
            f.connect_seconds,
            f.received,
            f.missing,
            f.duplicates,
            f.p50_ms,
            f.p99_ms,
            f.max_ms,
            f.section_p99_ms,
            f.server_cpu_ms,
            f.idle_cpu_ms_per_s,
            f.kib_per_session,
            per_node.join(", ")
        );
    }
    let all_target = if rounds[0].sessions > 10_000 {
        "1,500"
    } else {
        "150"
    };
    println!(
        "  targets: all connected within 60 s; 0 missing, 0 duplicates; p99 ≤ {all_target} ms to all; \
         section p99 ≤ 50 ms; ≤ 10 KiB per idle session"
    );
    if let Some(single) = single
        && rounds.len() > 1
    {
        println!(
            "  baseline for more nodes: the single node's p99 {:.0} ms, section p99 {:.0} ms, {:.1} KiB per session",
            single.p99_ms, single.section_p99_ms, single.kib_per_session
        );
    }
    println!(
        "  baseline, a broadcast-only server on this machine in this run ({} process(es); no \
         database, no sign-in, one frame encoded once and written to every socket by one \
         thread; the same clients): {} of {} connected in {:.1} s, {} received, p50 {:.0} ms, \
         p99 {:.0} ms, max {:.0} ms, its CPU {:.0} ms, {:.1} KiB per idle session",
        baseline.servers,
        baseline.connected,
        rounds[0].sessions,
        baseline.connect_seconds,
        baseline.received,
        baseline.p50_ms,
        baseline.p99_ms,
        baseline.max_ms,
        baseline.cpu_ms,
        baseline.kib_per_session
    );
    println!(
        "  (memory: the server processes' resident memory after the sessions opened, minus \
         before, over their sessions; idle CPU: the nodes' CPU over {} s with every session \
         open and nothing published, per second)",
        IDLE_WINDOW.as_secs()
    );
}

/// A published section of `SECTION` students, spread evenly over all the
/// students (and so over every node and load client).
async fn seed_section(
    conn: &mut AsyncPgConnection,
    teacher: UserId,
    students: usize,
) -> BenchResult<i64> {
    exec(
        conn,
        "INSERT INTO courses (code, title) VALUES ('BENCH-101', 'Benchmarking')",
    )
    .await?;
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let section: Id = diesel::sql_query(
        "INSERT INTO sections (course_id, section_code, term, teacher_id, capacity, status)
         SELECT id, 'A', 'bench', $1, 1000, 'published' FROM courses WHERE code = 'BENCH-101'
         RETURNING id",
    )
    .bind::<BigInt, _>(teacher)
    .get_result(conn)
    .await
    .map_err(fail)?;
    let step = (students / SECTION).max(1) as i64;
    diesel::sql_query(
        "INSERT INTO enrollments (section_id, student_id)
         SELECT $1, id FROM (
             SELECT id, row_number() OVER (ORDER BY id) AS n FROM users WHERE role = 'student'
         ) s WHERE (n - 1) % $2 = 0 LIMIT $3",
    )
    .bind::<BigInt, _>(section.id)
    .bind::<BigInt, _>(step)
    .bind::<BigInt, _>(SECTION as i64)
    .execute(conn)
    .await
    .map_err(fail)?;
    Ok(section.id)
}

/// One round's figures (the keys of `--json`).
#[derive(serde::Serialize)]
struct Figures {
    nodes: usize,
    sessions: usize,
    connected: usize,
    connect_seconds: f64,
    /// Clients that heard the announcement to all (at least once).
    received: usize,
    missing: usize,
    /// `delivery.created` heard more than once (another delivery, or the same
    /// one again: without a reconnect, either is a fault), over all clients.
    duplicates: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Publish → receipt p99 over the section-sized publishes' receipts.
    section_p99_ms: f64,
    kib_per_session: f64,
    kib_per_session_by_node: Vec<f64>,
    /// CPU the nodes spent from the publish to all until every client heard
    /// it (or the wait ended), summed over the nodes.
    server_cpu_ms: f64,
    /// CPU the nodes spent per second with every session open and idle,
    /// summed over the nodes (ms per s: a thousandth of a core).
    idle_cpu_ms_per_s: f64,
    /// The same clients against a broadcast-only server, in the same run.
    broadcast: Option<Baseline>,
}

async fn round(
    settings: &Settings,
    database_url: &str,
    students: &[String],
    admin_token: &str,
    nodes: usize,
    section: i64,
) -> BenchResult<Figures> {
    let prefix = format!("classbell-bench:{}:", Uuid::new_v4().simple());
    let servers: Vec<Server> = (0..nodes)
        .map(|_| Server::start(settings, database_url, &prefix))
        .collect::<BenchResult<_>>()?;
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    for server in &servers {
        server.wait_ready(&http).await?;
    }
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<f64> = servers
        .iter()
        .map(Server::rss_kib)
        .collect::<BenchResult<_>>()?;

    println!(
        "{nodes} node(s): opening {} websockets from {} load-client process(es) …",
        students.len(),
        students.len().div_ceil(load::CLIENT_SOCKETS)
    );
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let (mut clients, opened) = cluster::start_clients(&bases, students, false).await?;
    if let Some(error) = &opened.first_error {
        println!(
            "  {} failed to open, the first with: {error}",
            opened.failed
        );
    }
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<f64> = servers
        .iter()
        .map(Server::rss_kib)
        .collect::<BenchResult<_>>()?;
    let kib_per_session_by_node: Vec<f64> = before
        .iter()
        .zip(&after)
        .enumerate()
        .map(|(n, (b, a))| {
            let held = students.len() / nodes + usize::from(n < students.len() % nodes);
            (a - b) / held.max(1) as f64
        })
        .collect();
    let kib_per_session =
        (after.iter().sum::<f64>() - before.iter().sum::<f64>()) / students.len() as f64;
    // What open sessions cost while nothing happens (heartbeats, timers).
    let idle_before = cpu_ms(&servers)?;
    actix_web::rt::time::sleep(IDLE_WINDOW).await;
    let idle_cpu_ms_per_s = (cpu_ms(&servers)? - idle_before) / IDLE_WINDOW.as_secs_f64();

    println!(
        "{nodes} node(s): publishing to one section of {SECTION}, {SECTION_PUBLISHES} times …"
    );
    let mut section_times = Vec::new();
    for time in 0..SECTION_PUBLISHES {
        if time > 0 {
            actix_web::rt::time::sleep(SECTION_PAUSE).await;
        }
        let audience = serde_json::json!({"kind": "section", "section_id": section});
        let (times, _) = publish(
            &http,
            &servers,
            admin_token,
            audience,
            &mut clients,
            SECTION,
        )
        .await?;
        section_times.extend(times);
    }
    section_times.sort_by(f64::total_cmp);
    let section_p99_ms = percentile(&section_times, 0.99);

    println!("{nodes} node(s): publishing to all students …");
    let cpu_before = cpu_ms(&servers)?;
    let audience = serde_json::json!({"kind": "all_students"});
    let (latencies, duplicates) = publish(
        &http,
        &servers,
        admin_token,
        audience,
        &mut clients,
        students.len(),
    )
    .await?;
    let server_cpu_ms = cpu_ms(&servers)? - cpu_before;
    // A missing recipient is most often a socket that closed during the
    // round (these clients do not reconnect): say how.
    let status = cluster::status(&mut clients).await?;
    for (how, count) in &status.ended {
        println!("  {count} socket(s) closed during the round: {how}");
    }
    for client in clients {
        client.quit().await;
    }
    if latencies.is_empty() {
        return Err("no client received the announcement".into());
    }
    Ok(Figures {
        nodes,
        sessions: students.len(),
        connected: opened.connected,
        connect_seconds: opened.seconds,
        received: latencies.len(),
        missing: students.len() - latencies.len(),
        duplicates,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: percentile(&latencies, 1.0),
        section_p99_ms,
        kib_per_session,
        kib_per_session_by_node,
        server_cpu_ms,
        idle_cpu_ms_per_s,
        broadcast: None,
    })
}

/// CPU time every node has used so far, summed, in ms.
fn cpu_ms(servers: &[Server]) -> BenchResult<f64> {
    servers.iter().map(Server::cpu_ms).sum()
}

/// Publishes to `audience` (through the first node) and waits up to a minute
/// for its `expected` recipients: their publish → receipt times in ms, sorted,
/// and the repeats heard.
async fn publish(
    http: &awc::Client,
    servers: &[Server],
    admin_token: &str,
    audience: serde_json::Value,
    clients: &mut [Helper],
    expected: usize,
) -> BenchResult<(Vec<f64>, usize)> {
    let published = now_ms();
    let id = announce(http, &servers[0], admin_token, audience).await?;
    cluster::receipts(clients, id, published, expected).await
}
