//! `classbell bench fanout|acks|push|storm|import`: figures measured on a scratch
//! database (created beside the configured one, dropped afterwards), each
//! printed next to the baseline or target it is judged against, and returned
//! as one JSON object (or a list of them) for `--json`.

mod acks;
mod broadcast;
mod cluster;
mod fanout;
mod import;
mod live;
mod load;
mod push;
mod storm;

pub use acks::{Transport, acks};
pub use broadcast::run_server as broadcast_server;
pub use fanout::fanout;
pub use import::{ImportKind, import};
pub use live::LiveLoad;
pub use load::run_client as load_client;
pub use push::push;
pub use storm::storm;

use std::time::Duration;

use chrono::Utc;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use classbell::announcements::audience::Audience;
use classbell::announcements::model::{AnnouncementStatus, NewAnnouncement};
use classbell::announcements::store as announcements;
use classbell::config::Settings;
use classbell::db;
use classbell::ids::{AnnouncementId, UserId};

type BenchResult<T> = Result<T, String>;

fn fail(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A database of the benchmark's own on the configured server.
struct Scratch {
    admin_url: String,
    name: String,
}

impl Scratch {
    async fn create(database_url: &str) -> BenchResult<Self> {
        let base = database_url
            .rsplit_once('/')
            .map(|(base, _)| base.to_owned())
            .ok_or("CLASSBELL_DATABASE_URL has no database name")?;
        let scratch = Scratch {
            admin_url: format!("{base}/postgres"),
            name: format!(
                "classbell_bench_{}",
                &Uuid::new_v4().simple().to_string()[..8]
            ),
        };
        scratch
            .admin(&format!("CREATE DATABASE {}", scratch.name))
            .await?;
        let url = scratch.url();
        tokio::task::spawn_blocking(move || db::run_migrations(&url))
            .await
            .map_err(fail)?
            .map_err(fail)?;
        Ok(scratch)
    }

    fn url(&self) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or_default();
        format!("{base}/{}", self.name)
    }

    /// `settings` for a server of the benchmark's own on this database: a
    /// free port, its own Redis prefix, files in a temporary folder.
    fn app_settings(&self, settings: &Settings) -> Settings {
        let mut app = settings.clone();
        app.database.url = self.url();
        app.server.bind = "127.0.0.1:0".into();
        app.redis.prefix = format!("classbell-bench:{}:", Uuid::new_v4().simple());
        app.mail.outbox = std::env::temp_dir().join(&self.name);
        app.storage.backend = classbell::config::StorageBackend::Local;
        app.storage.dir = std::env::temp_dir().join(&self.name);
        app
    }

    async fn admin(&self, sql: &str) -> BenchResult<()> {
        let mut conn = AsyncPgConnection::establish(&self.admin_url)
            .await
            .map_err(fail)?;
        diesel::sql_query(sql)
            .execute(&mut conn)
            .await
            .map_err(fail)?;
        Ok(())
    }

    async fn drop_database(self) -> BenchResult<()> {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .await
    }
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) -> BenchResult<usize> {
    diesel::sql_query(sql).execute(conn).await.map_err(fail)
}

/// `n` active students and one admin to publish; returns the admin's id.
async fn seed_students(conn: &mut AsyncPgConnection, n: i64) -> BenchResult<UserId> {
    diesel::sql_query(
        "INSERT INTO users (username, display_name, email, password_hash, role)
         SELECT 'bench-' || g, 'Bench ' || g, 'bench-' || g || '@bench.example', 'x', 'student'
         FROM generate_series(1, $1) g",
    )
    .bind::<BigInt, _>(n)
    .execute(conn)
    .await
    .map_err(fail)?;
    exec(
        conn,
        "INSERT INTO users (username, display_name, email, password_hash, role)
         VALUES ('bench-admin', 'Bench admin', 'bench-admin@bench.example', 'x', 'admin')",
    )
    .await?;
    exec(conn, "ANALYZE users").await?;
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: UserId,
    }
    let admin: Id = diesel::sql_query("SELECT id FROM users WHERE username = 'bench-admin'")
        .get_result(conn)
        .await
        .map_err(fail)?;
    Ok(admin.id)
}

async fn publish(
    conn: &mut AsyncPgConnection,
    publisher: UserId,
    title: &str,
) -> BenchResult<AnnouncementId> {
    announcement(conn, publisher, title, AnnouncementStatus::Published).await
}

/// An announcement to every student that no node will fan out: the row
/// the bare SQL baseline writes its deliveries for. A published one would
/// be claimed by a running node's fan-out supervisor on its next poll, which
/// would then scan the same million recipients beside the baseline (and
/// into the next round).
async fn unpublished(
    conn: &mut AsyncPgConnection,
    publisher: UserId,
    title: &str,
) -> BenchResult<AnnouncementId> {
    announcement(conn, publisher, title, AnnouncementStatus::Draft).await
}

async fn announcement(
    conn: &mut AsyncPgConnection,
    publisher: UserId,
    title: &str,
    status: AnnouncementStatus,
) -> BenchResult<AnnouncementId> {
    let published_at = (status == AnnouncementStatus::Published).then(Utc::now);
    let announcement = announcements::insert(
        conn,
        NewAnnouncement {
            title: title.to_owned(),
            body: "Benchmark".to_owned(),
            audience_kind: Audience::AllStudents.kind(),
            audience_id: None,
            publisher_id: publisher,
            status,
            publish_at: None,
            published_at,
            ack_due_at: None,
            expires_at: None,
            escalation: None,
        },
    )
    .await
    .map_err(fail)?;
    Ok(announcement.id)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The resident memory of this process, in KiB (Linux).
fn own_rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0.0)
}
