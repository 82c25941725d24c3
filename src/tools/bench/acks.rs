//! `classbell bench acks`: acknowledgments over HTTP against the real server.

use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use super::{BenchResult, Scratch, exec, fail, publish, seed_students};
use classbell::announcements::audience::Audience;
use classbell::auth::store as sessions;
use classbell::config::Settings;
use classbell::ids::UserId;
use classbell::startup::Application;
use classbell::users::model::Role;

/// How the clients acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `POST /api/deliveries/{id}/ack`, one request at a time.
    Http,
    /// `{"type":"ack"}` on the client's websocket, the next one sent when
    /// the server confirms the last (`delivery.updated`, acknowledged).
    Ws,
}

impl Transport {
    fn key(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Ws => "ws",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Transport::Http => "HTTP",
            Transport::Ws => "websockets",
        }
    }

    fn target_per_second(self) -> &'static str {
        match self {
            Transport::Http => "12,000",
            Transport::Ws => "25,000",
        }
    }

    fn target_p99(self) -> &'static str {
        match self {
            Transport::Http => "",
            Transport::Ws => "(target: at most 25 ms)",
        }
    }
}

/// Acknowledgments: `clients` concurrent clients, each a student
/// acknowledging `per_client` deliveries one at a time (each durable before
/// it is confirmed), against the real server (started in this process on a
/// free port).
pub async fn acks(
    settings: &Settings,
    transport: Transport,
    clients: usize,
    per_client: usize,
) -> BenchResult<Value> {
    let scratch = Scratch::create(&settings.database.url).await?;
    let result = acks_on(
        settings,
        &scratch,
        transport,
        clients.max(1),
        per_client.max(1),
    )
    .await;
    scratch.drop_database().await?;
    result
}

async fn acks_on(
    settings: &Settings,
    scratch: &Scratch,
    transport: Transport,
    clients: usize,
    per_client: usize,
) -> BenchResult<Value> {
    let url = scratch.url();
    let mut conn = AsyncPgConnection::establish(&url).await.map_err(fail)?;
    let publisher = seed_students(&mut conn, clients as i64).await?;
    for n in 0..per_client {
        let id = publish(&mut conn, publisher, &format!("bench {n}")).await?;
        diesel::sql_query(format!(
            "INSERT INTO deliveries (announcement_id, user_id) SELECT $1, r.id FROM ({}) r",
            Audience::AllStudents.recipients_sql()
        ))
        .bind::<BigInt, _>(id)
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    }
    exec(
        &mut conn,
        "UPDATE announcements SET fanout_finished_at = now()",
    )
    .await?;
    exec(&mut conn, "ANALYZE").await?;

    let app = Application::build(scratch.app_settings(settings))
        .await
        .map_err(fail)?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.services();
    actix_web::rt::spawn(app.run_until_stopped());

    // One signed-in student per client, with the ids of their deliveries.
    #[derive(diesel::QueryableByName)]
    struct Owned {
        #[diesel(sql_type = BigInt)]
        user_id: UserId,
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let owned: Vec<Owned> =
        diesel::sql_query("SELECT user_id, id FROM deliveries ORDER BY user_id, id")
            .load(&mut conn)
            .await
            .map_err(fail)?;
    let mut work: Vec<(String, Vec<i64>)> = Vec::new();
    for chunk in owned.chunk_by(|a, b| a.user_id == b.user_id) {
        let user = chunk[0].user_id;
        let (session, _) = sessions::open_session(&mut conn, user, chrono::Duration::hours(1))
            .await
            .map_err(fail)?;
        let token = state
            .jwt
            .issue(user, Role::Student, session)
            .map_err(fail)?;
        work.push((token, chunk.iter().map(|d| d.id).collect()));
    }
    let total: usize = work.iter().map(|(_, ids)| ids.len()).sum();
    println!(
        "{clients} clients acknowledging {total} deliveries over {} at {base} …",
        transport.name()
    );
    // The clients get a thread of their own, as real browsers would be: on
    // the server's threads they would compete with the actors they measure.
    let clients_thread = std::thread::spawn(move || match transport {
        Transport::Http => over_http(base, work),
        Transport::Ws => over_websockets(base, work),
    });
    let (mut latencies, elapsed) = tokio::task::spawn_blocking(move || clients_thread.join())
        .await
        .map_err(fail)?
        .map_err(|_| "the client thread panicked".to_owned())??;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let acked: Count =
        diesel::sql_query("SELECT count(*) AS n FROM deliveries WHERE state = 'acknowledged'")
            .get_result(&mut conn)
            .await
            .map_err(fail)?;
    if acked.n as usize != total {
        return Err(format!(
            "{} of {total} deliveries ended acknowledged",
            acked.n
        ));
    }
    latencies.sort();
    let percentile =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!();
    println!(
        "acknowledgments over {} ({clients} concurrent clients, {total} acks, all verified in PostgreSQL):",
        transport.name()
    );
    println!(
        "  throughput   {:>8.0} acks/s   (target: at least {})",
        total as f64 / elapsed.as_secs_f64(),
        transport.target_per_second()
    );
    println!("  latency p50  {:>8.2} ms", percentile(0.50));
    println!(
        "  latency p99  {:>8.2} ms   {}",
        percentile(0.99),
        transport.target_p99()
    );
    println!(
        "  baseline     one-row UPDATE per transaction measured with pgbench here: ~5,900/s at 64 clients"
    );
    Ok(json!({
        "transport": transport.key(),
        "acks": total,
        "per_second": total as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
    }))
}

/// Every acknowledgment's latency, and how long they all took.
type Timed = (Vec<Duration>, Duration);

/// Each client's acknowledgments over HTTP, one request at a time.
fn over_http(base: String, work: Vec<(String, Vec<i64>)>) -> BenchResult<Timed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(fail)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(work.len())
        .build()
        .map_err(fail)?;
    runtime.block_on(async move {
        let started = Instant::now();
        let tasks: Vec<_> = work
            .into_iter()
            .map(|(token, ids)| {
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(ids.len());
                    for id in ids {
                        let sent = Instant::now();
                        let response = client
                            .post(format!("{base}/api/deliveries/{id}/ack"))
                            .bearer_auth(&token)
                            .send()
                            .await
                            .map_err(fail)?;
                        if !response.status().is_success() {
                            return Err(format!("ack {id}: {}", response.status()));
                        }
                        latencies.push(sent.elapsed());
                    }
                    Ok::<_, String>(latencies)
                })
            })
            .collect();
        gather(tasks, started).await
    })
}

/// What the ack benchmark reads of a server message.
#[derive(serde::Deserialize)]
struct Confirmed {
    #[serde(rename = "type")]
    kind: String,
    delivery_id: Option<i64>,
    state: Option<String>,
}

/// Each client's acknowledgments on its own websocket (all open before the
/// clock starts): the next ack is sent when the server has confirmed the
/// last, which it does once the row is committed.
fn over_websockets(base: String, work: Vec<(String, Vec<i64>)>) -> BenchResult<Timed> {
    actix_web::rt::System::new().block_on(async move {
        let http = awc::Client::builder()
            .connector(awc::Connector::new().limit(0))
            .timeout(Duration::from_secs(30))
            .finish();
        let url = format!("{}/ws", base.replacen("http", "ws", 1));
        let mut sockets = Vec::with_capacity(work.len());
        for (token, ids) in work {
            let (_, mut socket) = http
                .ws(url.as_str())
                .bearer_auth(&token)
                .connect()
                .await
                .map_err(fail)?;
            match socket.next().await {
                Some(Ok(Frame::Text(text))) if text.starts_with(br#"{"type":"hello""#) => {}
                other => return Err(format!("expected hello, got {other:?}")),
            }
            sockets.push((socket, ids));
        }
        let started = Instant::now();
        let tasks: Vec<_> = sockets
            .into_iter()
            .map(|(mut socket, ids)| {
                actix_web::rt::spawn(async move {
                    let mut latencies = Vec::with_capacity(ids.len());
                    for id in ids {
                        let sent = Instant::now();
                        let ack = json!({"type": "ack", "delivery_id": id}).to_string();
                        socket.send(Message::Text(ack.into())).await.map_err(fail)?;
                        loop {
                            match socket.next().await {
                                Some(Ok(Frame::Text(text))) => {
                                    let message: Confirmed =
                                        serde_json::from_slice(&text).map_err(fail)?;
                                    if message.kind == "error" {
                                        return Err(format!(
                                            "ack {id}: {}",
                                            String::from_utf8_lossy(&text)
                                        ));
                                    }
                                    if message.delivery_id == Some(id)
                                        && message.state.as_deref() == Some("acknowledged")
                                    {
                                        break;
                                    }
                                }
                                Some(Ok(Frame::Ping(bytes))) => {
                                    socket.send(Message::Pong(bytes)).await.map_err(fail)?;
                                }
                                Some(Ok(Frame::Close(reason))) => {
                                    return Err(format!(
                                        "ack {id}: the server closed the socket: {reason:?}"
                                    ));
                                }
                                Some(Ok(_)) => {}
                                Some(Err(error)) => return Err(fail(error)),
                                None => return Err(format!("ack {id}: the socket closed")),
                            }
                        }
                        latencies.push(sent.elapsed());
                    }
                    Ok::<_, String>(latencies)
                })
            })
            .collect();
        gather(tasks, started).await
    })
}

/// Every client's latencies, once all have finished.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<BenchResult<Vec<Duration>>>>,
    started: Instant,
) -> BenchResult<Timed> {
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(fail)??);
    }
    Ok((latencies, started.elapsed()))
}
