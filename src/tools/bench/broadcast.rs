//! `classbell bench broadcast-server`: the push benchmark's baseline, a
//! broadcast-only websocket server measured on the same machine with the
//! same load clients in the same run.
//!
//! It keeps nothing and checks nothing: no database, no sign-in, no state
//! per recipient, no fan-out. One thread accepts the upgrades, and on
//! `broadcast <announcement>` (a line on its standard input) writes one
//! `delivery.created` frame, encoded once, to every socket in turn, as a
//! socket.io broadcast does. The frame is classbell's own, built from the
//! same types, so the clients read the same bytes. What classbell spends
//! beyond this (durable fan-out, the hub's lookups, one actor per session)
//! is then the difference between the two figures, whatever the machine.
//!
//! It answers each command with one JSON line: `{"port":…}` once listening,
//! `{"sockets":…,"failed":…}` after a broadcast; `quit` ends it.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::ws::{OpCode, Parser, hash_key};
use bytes::BytesMut;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::cluster::{self, Helper, percentile};
use super::load::{now_ms, say};
use super::{BenchResult, fail};
use classbell::deliveries::model::{DeliveryState, InboxAnnouncement, InboxItem};
use classbell::ids::{AnnouncementId, DeliveryId, UserId};
use classbell::realtime::protocol::{Cursor, Frame, HelloUser, ServerMessage};
use classbell::users::model::Role;

/// Largest upgrade request read (the load client's are a few hundred bytes).
const MAX_REQUEST: usize = 8 * 1024;

/// Pending connections the listener holds (classbell's default).
const BACKLOG: u32 = 4096;

/// The announcement id the baseline's frame carries.
const ANNOUNCEMENT: i64 = 1;

/// The baseline's figures, for the same clients as classbell's round.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// Broadcast-only server processes (as many as classbell's nodes).
    pub servers: usize,
    pub connected: usize,
    pub connect_seconds: f64,
    pub received: usize,
    /// Broadcast → receipt.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The servers' CPU from the broadcast until every client heard it.
    pub cpu_ms: f64,
    pub kib_per_session: f64,
}

/// Opens a websocket for each of `tokens` on `servers` broadcast-only
/// servers (the clients as in classbell's rounds) and broadcasts once.
pub async fn baseline(tokens: &[String], servers: usize) -> BenchResult<Baseline> {
    println!(
        "baseline: opening {} websockets on {servers} broadcast-only server(s) …",
        tokens.len()
    );
    let mut broadcasters = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..servers.max(1) {
        let mut helper = Helper::spawn("broadcast-server")?;
        let listening: Listening = helper.answer().await?;
        bases.push(format!("http://127.0.0.1:{}", listening.port));
        broadcasters.push(helper);
    }
    let pids: Vec<u32> = broadcasters
        .iter()
        .map(Helper::pid)
        .collect::<BenchResult<_>>()?;
    let rss = |pids: &[u32]| {
        pids.iter()
            .map(|&pid| cluster::rss_kib(pid))
            .sum::<BenchResult<f64>>()
    };
    let cpu = |pids: &[u32]| {
        pids.iter()
            .map(|&pid| cluster::cpu_ms(pid))
            .sum::<BenchResult<f64>>()
    };
    let before = rss(&pids)?;
    let (mut clients, opened) = cluster::start_clients(&bases, tokens, false).await?;
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let kib_per_session = (rss(&pids)? - before) / tokens.len().max(1) as f64;

    println!("baseline: broadcasting to all …");
    let cpu_before = cpu(&pids)?;
    let sent = now_ms();
    // Every server is told before any answer is awaited: they write at once.
    for broadcaster in &mut broadcasters {
        broadcaster
            .tell(&format!("broadcast {ANNOUNCEMENT}"))
            .await?;
    }
    let mut failed = 0;
    for broadcaster in &mut broadcasters {
        failed += broadcaster.answer::<Broadcast>().await?.failed;
    }
    let (latencies, _) = cluster::receipts(&mut clients, ANNOUNCEMENT, sent, tokens.len()).await?;
    let cpu_ms = cpu(&pids)? - cpu_before;
    if failed > 0 {
        println!("  {failed} sockets could not take the frame at once");
    }
    for client in clients {
        client.quit().await;
    }
    for broadcaster in broadcasters {
        broadcaster.quit().await;
    }
    Ok(Baseline {
        servers: servers.max(1),
        connected: opened.connected,
        connect_seconds: opened.seconds,
        received: latencies.len(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: percentile(&latencies, 1.0),
        cpu_ms,
        kib_per_session,
    })
}

/// A broadcast server's first line.
#[derive(Deserialize)]
struct Listening {
    port: u16,
}

/// What a broadcast reached.
#[derive(Debug, Serialize, Deserialize)]
pub struct Broadcast {
    pub sockets: usize,
    /// Sockets whose write failed or would have blocked.
    pub failed: usize,
}

/// The process itself: listens on a free port of 127.0.0.1, says which, and
/// broadcasts when told.
pub async fn run_server() -> BenchResult<()> {
    // The backlog classbell's nodes listen with, so neither drops handshakes
    // the other takes.
    let listener = classbell::http::listener("127.0.0.1:0", BACKLOG).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    let listener = TcpListener::from_std(listener).map_err(fail)?;
    let port = listener.local_addr().map_err(fail)?.port();
    say(&serde_json::json!({ "port": port }))?;
    let sockets: Rc<RefCell<Vec<std::net::TcpStream>>> = Rc::default();
    let hello = encode(&ServerMessage::Hello {
        user: HelloUser {
            id: UserId(0),
            username: "student".to_owned(),
            role: Role::Student,
        },
        unread_count: 0,
    })?;
    let accepting = {
        let sockets = Rc::clone(&sockets);
        actix_web::rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sockets = Rc::clone(&sockets);
                let hello = hello.clone();
                actix_web::rt::spawn(async move {
                    if let Ok(stream) = upgrade(stream, &hello).await {
                        sockets.borrow_mut().push(stream);
                    }
                });
            }
        })
    };
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = input.next_line().await.map_err(fail)? {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("broadcast"), Some(id)) => {
                let id: i64 = id.parse().map_err(fail)?;
                let frame = encode(&delivery_created(AnnouncementId(id)))?;
                say(&broadcast(&sockets.borrow(), &frame))?;
            }
            (Some("quit"), _) | (None, _) => break,
            _ => return Err(format!("unknown command {line:?}")),
        }
    }
    accepting.abort();
    Ok(())
}

/// Writes `frame` to every socket, one after another.
fn broadcast(sockets: &[std::net::TcpStream], frame: &[u8]) -> Broadcast {
    let failed = sockets
        .iter()
        .filter(|socket| {
            let mut socket: &std::net::TcpStream = socket;
            !matches!(socket.write(frame), Ok(n) if n == frame.len())
        })
        .count();
    Broadcast {
        sockets: sockets.len(),
        failed,
    }
}

/// Answers a websocket upgrade request and says hello; the socket, made a
/// plain non-blocking one, for broadcasts (nothing reads it again).
async fn upgrade(mut stream: TcpStream, hello: &[u8]) -> std::io::Result<std::net::TcpStream> {
    let mut request = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await?;
        if read == 0 || request.len() + read > MAX_REQUEST {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&request);
    let key = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim().to_owned())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let accept = hash_key(key.as_bytes());
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-accept: {}\r\n\r\n",
        String::from_utf8_lossy(&accept)
    )
    .into_bytes();
    response.extend_from_slice(hello);
    stream.write_all(&response).await?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// The frame a client gets for a new item, as classbell writes it (a
/// recipient's delivery id and cursor aside, which a broadcast cannot vary).
fn delivery_created(announcement: AnnouncementId) -> ServerMessage {
    ServerMessage::DeliveryCreated {
        delivery: InboxItem {
            id: DeliveryId(1),
            state: DeliveryState::Queued,
            delivered_at: None,
            ack_at: None,
            retry_count: 0,
            announcement: Arc::new(InboxAnnouncement {
                id: announcement,
                title: "Assembly at ten".to_owned(),
                body: "Everyone to the main hall.".to_owned(),
                publisher: "admin".to_owned(),
                publisher_name: "Bench Admin".to_owned(),
                published_at: Some(Utc::now()),
                ack_due_at: None,
                expires_at: None,
            }),
        },
    }
}

/// A server's text frame of `message` with a cursor, as sessions write it.
fn encode(message: &ServerMessage) -> BenchResult<bytes::Bytes> {
    let frame = Frame {
        message,
        cursor: Some(Cursor(1_000_000)),
    };
    let text = serde_json::to_vec(&frame).map_err(fail)?;
    let mut encoded = BytesMut::with_capacity(text.len() + 10);
    Parser::write_message(&mut encoded, text, OpCode::Text, true, false);
    Ok(encoded.freeze())
}
