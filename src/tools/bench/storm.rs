//! `classbell bench storm`: N websockets on one node, dropped at once when it
//! is killed and restarted, come back with their cursors. A second node
//! (holding no sessions) publishes one announcement before the drop and one
//! while the first is away; every client must end with each exactly once.
//! The figure is how long after the node's return every client had resumed
//! and heard the second, with clients backing off with jitter as the web app
//! does.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::cluster::{self, Helper, Server, SignedIn, announce, seed_signed_in};
use super::load::now_ms;
use super::{BenchResult, Scratch, fail};
use classbell::config::Settings;

/// How long the node stays away.
const AWAY: Duration = Duration::from_secs(3);
/// How long the clients have to resume.
const LIMIT: Duration = Duration::from_secs(120);

#[derive(serde::Serialize)]
struct Figures {
    sessions: usize,
    /// Clients that said hello again after the drop, each counted once.
    resumed: usize,
    /// Hellos after the drop: more than `resumed` when a resumed socket was
    /// closed again and came back once more.
    reconnects: usize,
    /// From the node's return to the last client resumed and caught up.
    seconds: f64,
    /// Announcements a client never heard of (over both and all clients).
    missing: usize,
    /// A second delivery of one announcement to one client.
    duplicates: usize,
    /// Creations heard again by clients that had them (replayed from a
    /// cursor the checkpoint had not yet moved past them; merged by id).
    replayed: usize,
}

pub async fn storm(settings: &Settings, sessions: usize) -> BenchResult<serde_json::Value> {
    let scratch = Scratch::create(&settings.database.url).await?;
    let result = storm_on(settings, &scratch, sessions.max(1)).await;
    scratch.drop_database().await?;
    result
}

async fn storm_on(
    settings: &Settings,
    scratch: &Scratch,
    sessions: usize,
) -> BenchResult<serde_json::Value> {
    let url = scratch.url();
    let mut conn = AsyncPgConnection::establish(&url).await.map_err(fail)?;
    let SignedIn {
        admin_token,
        students,
        ..
    } = seed_signed_in(&mut conn, settings, sessions).await?;
    drop(conn);

    let prefix = format!("classbell-bench:{}:", Uuid::new_v4().simple());
    let node = Server::start(settings, &url, &prefix)?;
    let desk = Server::start(settings, &url, &prefix)?;
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    node.wait_ready(&http).await?;
    desk.wait_ready(&http).await?;
    println!("opening {sessions} websockets to one node …");
    let (mut clients, opened) =
        cluster::start_clients(std::slice::from_ref(&node.base), &students, true).await?;
    println!(
        "  {} open in {:.1} s ({} failed)",
        opened.connected, opened.seconds, opened.failed
    );
    let everyone = json!({"kind": "all_students"});
    let before = announce(&http, &desk, &admin_token, everyone.clone()).await?;
    wait_heard(&mut clients, before, sessions, Duration::from_secs(60)).await?;

    println!("killing the node; publishing while it is away …");
    let port = node.port;
    node.kill();
    let during = announce(&http, &desk, &admin_token, everyone).await?;
    actix_web::rt::time::sleep(AWAY).await;
    let node = Server::start_on(settings, &url, &prefix, port)?;
    node.wait_ready(&http).await?;
    let back = now_ms();
    println!("the node is back; waiting for every client …");
    let deadline = back + LIMIT.as_secs_f64() * 1000.0;
    let mut status = cluster::status(&mut clients).await?;
    while (status.resumed < opened.connected
        || cluster::heard(&mut clients, during).await? < opened.connected)
        && now_ms() < deadline
    {
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
        status = cluster::status(&mut clients).await?;
    }
    let mut missing = 0;
    let mut duplicates = 0;
    let mut replayed = 0;
    let mut last_heard = back;
    for announcement in [before, during] {
        let report = cluster::report(&mut clients, announcement).await?;
        missing += report.first_ms.iter().filter(|t| t.is_none()).count();
        duplicates += report.duplicates;
        replayed += report.replayed;
        if announcement == during {
            last_heard = report
                .first_ms
                .iter()
                .flatten()
                .fold(back, |a, &b| a.max(b));
        }
    }
    let resumed_at = status.last_resumed_ms.unwrap_or(back);
    let figures = Figures {
        sessions,
        resumed: status.resumed,
        reconnects: status.reconnects,
        seconds: (resumed_at.max(last_heard) - back).max(0.0) / 1000.0,
        missing,
        duplicates,
        replayed,
    };
    for client in clients {
        client.quit().await;
    }
    drop(node);
    drop(desk);
    println!();
    println!("reconnect storm: {sessions} websockets on one node, killed and restarted");
    println!(
        "  resumed {} of {}, caught up {:.1} s after the node's return (target: all within 30 s)",
        figures.resumed, sessions, figures.seconds
    );
    println!("  reconnections {}; sockets ended:", figures.reconnects);
    for (how, count) in &status.ended {
        println!("    {count:>6}  {how}");
    }
    println!(
        "  missing {}, duplicates {} (target: 0 and 0; the announcement before the drop and the one \
         published while the node was away, on every client)",
        figures.missing, figures.duplicates
    );
    println!(
        "  replayed {} (items a client already held, sent again from a cursor not yet past them)",
        figures.replayed
    );
    serde_json::to_value(figures).map_err(fail)
}

async fn wait_heard(
    clients: &mut [Helper],
    announcement: i64,
    expected: usize,
    limit: Duration,
) -> BenchResult<()> {
    let deadline = now_ms() + limit.as_secs_f64() * 1000.0;
    while cluster::heard(clients, announcement).await? < expected {
        if now_ms() > deadline {
            return Err(format!(
                "announcement {announcement} did not reach every client"
            ));
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
