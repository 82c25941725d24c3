//! `classbell bench load-client`: a process of websocket clients for the
//! push and storm benchmarks, so that no process holds more sockets than one
//! may open (`CLIENT_SOCKETS`) and no source address runs out of ports.
//!
//! The benchmark writes one JSON `Plan` line to its standard input; the
//! process opens every socket from its own source address, says how that
//! went, and then answers commands, one line each: `report <announcement>`
//! (when each client first heard of it, and how many heard it again),
//! `count <announcement>` (how many heard of it),
//! `status` (sockets open, clients resumed after a drop, reconnections, and
//! how sockets ended) and `quit`. Times are wall
//! clock milliseconds, comparable between processes on one machine.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{BenchResult, fail};

/// Sockets one load-client process opens, at most: this machine caps a
/// process at 20,000 descriptors, and one source address has ~28,000 ports.
pub const CLIENT_SOCKETS: usize = 17_000;

/// Sockets a process opens at once.
const CONNECT_CONCURRENCY: usize = 100;

/// What one load-client process is to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Servers; client `i` connects to `bases[i % bases.len()]`.
    pub bases: Vec<String>,
    /// The local address its sockets connect from.
    pub source: IpAddr,
    /// One access token per client.
    pub tokens: Vec<String>,
    /// Reconnect after a drop, from the last cursor, with jittered backoff.
    pub reconnect: bool,
}

/// How the connecting went.
#[derive(Debug, Serialize, Deserialize)]
pub struct Opened {
    pub connected: usize,
    pub failed: usize,
    pub seconds: f64,
    pub first_error: Option<String>,
}

/// When each client first heard of an announcement (`None`: never).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub first_ms: Vec<Option<f64>>,
    /// A second delivery of it to one client (another id), over all clients.
    pub duplicates: usize,
    /// The same delivery's creation heard again (a replay from a cursor
    /// that had not yet passed it; a client merges it by id), over all clients.
    pub replayed: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Status {
    pub open: usize,
    /// Clients that said hello again after a drop (each counted once).
    pub resumed: usize,
    /// Every hello after a drop: more than `resumed` when a resumed socket
    /// was closed again and came back once more.
    pub reconnects: usize,
    /// When the last reconnection said hello.
    pub last_resumed_ms: Option<f64>,
    /// How sockets ended, by close code and reason (or the read error).
    pub ended: BTreeMap<String, usize>,
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// What the clients of this process heard.
#[derive(Default)]
struct Board {
    cursors: Vec<Option<String>>,
    heard: HashMap<i64, Heard>,
    open: usize,
    /// Which clients have said hello again after a drop.
    resumed: Vec<bool>,
    reconnects: usize,
    last_resumed_ms: Option<f64>,
    ended: BTreeMap<String, usize>,
}

/// What the clients heard of one announcement.
struct Heard {
    /// When each client first heard of it, and of which delivery.
    first: Vec<Option<(f64, i64)>>,
    duplicates: usize,
    replayed: usize,
}

impl Board {
    fn heard(&mut self, client: usize, announcement: i64, delivery: i64, at: f64) {
        let clients = self.cursors.len();
        let heard = self.heard.entry(announcement).or_insert_with(|| Heard {
            first: vec![None; clients],
            duplicates: 0,
            replayed: 0,
        });
        match heard.first[client] {
            None => heard.first[client] = Some((at, delivery)),
            Some((_, known)) if known == delivery => heard.replayed += 1,
            Some(_) => heard.duplicates += 1,
        }
    }

    fn count(&self, announcement: i64) -> usize {
        self.heard
            .get(&announcement)
            .map_or(0, |heard| heard.first.iter().flatten().count())
    }

    fn report(&self, announcement: i64) -> Report {
        match self.heard.get(&announcement) {
            None => Report {
                first_ms: vec![None; self.cursors.len()],
                ..Report::default()
            },
            Some(heard) => Report {
                first_ms: heard.first.iter().map(|f| f.map(|(at, _)| at)).collect(),
                duplicates: heard.duplicates,
                replayed: heard.replayed,
            },
        }
    }
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    cursor: Option<String>,
    delivery: Option<IncomingDelivery>,
}

#[derive(Deserialize)]
struct IncomingDelivery {
    id: i64,
    announcement: IncomingAnnouncement,
}

#[derive(Deserialize)]
struct IncomingAnnouncement {
    id: i64,
}

type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// The load-client process itself (`classbell bench load-client`).
pub async fn run_client() -> BenchResult<()> {
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    let plan: Plan = match input.next_line().await.map_err(fail)? {
        Some(line) => serde_json::from_str(&line).map_err(fail)?,
        None => return Err("no plan on standard input".into()),
    };
    let http = awc::Client::builder()
        .connector(
            awc::Connector::new()
                .local_address(plan.source)
                .limit(0)
                .timeout(Duration::from_secs(30)),
        )
        .timeout(Duration::from_secs(60))
        .finish();
    let plan = Rc::new(plan);
    let board: Rc<RefCell<Board>> = Rc::new(RefCell::new(Board {
        cursors: vec![None; plan.tokens.len()],
        resumed: vec![false; plan.tokens.len()],
        ..Board::default()
    }));
    let started = Instant::now();
    let mut opened = Opened {
        connected: 0,
        failed: 0,
        seconds: 0.0,
        first_error: None,
    };
    let mut readers = Vec::new();
    let mut batch = Vec::new();
    for client in 0..plan.tokens.len() {
        batch.push(connect(&http, &plan, &board, client));
        if batch.len() == CONNECT_CONCURRENCY || client + 1 == plan.tokens.len() {
            for (client, result) in futures_util::future::join_all(batch.drain(..)).await {
                match result {
                    Ok(socket) => {
                        opened.connected += 1;
                        let reader = read(
                            http.clone(),
                            Rc::clone(&plan),
                            Rc::clone(&board),
                            client,
                            socket,
                        );
                        readers.push(actix_web::rt::spawn(reader));
                    }
                    Err(error) => {
                        opened.failed += 1;
                        opened.first_error.get_or_insert(error);
                    }
                }
            }
        }
    }
    opened.seconds = started.elapsed().as_secs_f64();
    say(&opened)?;
    while let Some(line) = input.next_line().await.map_err(fail)? {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("report"), Some(id)) => {
                let id: i64 = id.parse().map_err(fail)?;
                say(&board.borrow().report(id))?;
            }
            (Some("count"), Some(id)) => {
                let id: i64 = id.parse().map_err(fail)?;
                say(&board.borrow().count(id))?;
            }
            (Some("status"), _) => {
                let board = board.borrow();
                say(&Status {
                    open: board.open,
                    resumed: board.resumed.iter().filter(|&&r| r).count(),
                    reconnects: board.reconnects,
                    last_resumed_ms: board.last_resumed_ms,
                    ended: board.ended.clone(),
                })?;
            }
            (Some("quit"), _) | (None, _) => break,
            _ => return Err(format!("unknown command {line:?}")),
        }
    }
    for reader in readers {
        reader.abort();
    }
    Ok(())
}

pub(super) fn say(value: &impl Serialize) -> BenchResult<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(fail)?;
    out.write_all(b"\n").map_err(fail)?;
    out.flush().map_err(fail)
}

/// Opens client `client`'s websocket (from its cursor, if it has one) and
/// waits for `hello`.
async fn connect(
    http: &awc::Client,
    plan: &Plan,
    board: &RefCell<Board>,
    client: usize,
) -> (usize, Result<Socket, String>) {
    let base = &plan.bases[client % plan.bases.len()];
    let mut url = format!("{}/ws", base.replacen("http", "ws", 1));
    if let Some(cursor) = &board.borrow().cursors[client] {
        url = format!("{url}?since={cursor}");
    }
    let result = async {
        let (_, mut socket) = http
            .ws(url)
            .bearer_auth(&plan.tokens[client])
            .connect()
            .await
            .map_err(fail)?;
        match socket.next().await {
            Some(Ok(Frame::Text(text))) if text.starts_with(br#"{"type":"hello""#) => {
                note(board, client, &text);
                board.borrow_mut().open += 1;
                Ok(socket)
            }
            other => Err(format!("expected hello, got {other:?}")),
        }
    };
    (client, result.await)
}

/// Notes what a text frame says: its cursor, and a new item's announcement.
fn note(board: &RefCell<Board>, client: usize, text: &[u8]) {
    let at = now_ms();
    let Ok(message) = serde_json::from_slice::<Incoming>(text) else {
        return;
    };
    let mut board = board.borrow_mut();
    if let Some(cursor) = message.cursor {
        board.cursors[client] = Some(cursor);
    }
    if message.kind == "delivery.created"
        && let Some(delivery) = message.delivery
    {
        board.heard(client, delivery.announcement.id, delivery.id, at);
    }
}

/// A reader for one client: notes every frame, answers pings and, when the
/// plan says so, reconnects after a drop (jittered exponential backoff, so
/// that clients dropped together do not return together).
async fn read(
    http: awc::Client,
    plan: Rc<Plan>,
    board: Rc<RefCell<Board>>,
    client: usize,
    mut socket: Socket,
) {
    loop {
        let ended = loop {
            match socket.next().await {
                Some(Ok(Frame::Text(text))) => note(&board, client, &text),
                Some(Ok(Frame::Ping(bytes))) => {
                    let _ = socket.send(Message::Pong(bytes)).await;
                }
                Some(Ok(Frame::Close(reason))) => {
                    break reason.map_or("close without a code".to_owned(), |reason| {
                        let code: u16 = reason.code.into();
                        format!("{code} {}", reason.description.unwrap_or_default())
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break format!("read error: {error}"),
                None => break "connection ended without a close".to_owned(),
            }
        };
        {
            let mut board = board.borrow_mut();
            board.open -= 1;
            *board.ended.entry(ended).or_default() += 1;
        }
        if !plan.reconnect {
            return;
        }
        let mut attempt = 0;
        socket = loop {
            let ceiling = (250.0 * 2f64.powi(attempt)).min(5_000.0);
            let wait = rand::rng().random_range(ceiling * 0.5..ceiling * 1.5);
            actix_web::rt::time::sleep(Duration::from_millis(wait as u64)).await;
            attempt = (attempt + 1).min(5);
            if let (_, Ok(socket)) = connect(&http, &plan, &board, client).await {
                let mut board = board.borrow_mut();
                board.resumed[client] = true;
                board.reconnects += 1;
                board.last_resumed_ms = Some(now_ms());
                break socket;
            }
        };
    }
}
