//! `classbell bench fanout|acks|push|import`: figures measured on a scratch
//! database (created beside the configured one, dropped afterwards), each
//! printed next to the baseline or target it is judged against.

mod import;
mod push;

pub use import::{ImportKind, import};
pub use push::push;

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use classbell::announcements::audience::Audience;
use classbell::announcements::fanout::{self, FanoutSettings, Step};
use classbell::announcements::model::{AnnouncementStatus, NewAnnouncement};
use classbell::announcements::store as announcements;
use classbell::auth::store as sessions;
use classbell::config::Settings;
use classbell::db::{self, DbPool};
use classbell::events::EventBus;
use classbell::ids::{AnnouncementId, UserId};
use classbell::startup::Application;
use classbell::users::model::Role;

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
    let announcement = announcements::insert(
        conn,
        NewAnnouncement {
            title: title.to_owned(),
            body: "Benchmark".to_owned(),
            audience_kind: Audience::AllStudents.kind(),
            audience_id: None,
            publisher_id: publisher,
            status: AnnouncementStatus::Published,
            publish_at: None,
            published_at: Some(Utc::now()),
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

/// classbell's fan-out (the worker's own code: claim, count, chunked
/// statements) against the bare `INSERT … SELECT`, on the same data, each
/// into an emptied deliveries table; medians of `rounds`.
pub async fn fanout(settings: &Settings, students: i64, rounds: usize) -> BenchResult<()> {
    let scratch = Scratch::create(&settings.database.url).await?;
    let result = fanout_on(settings, &scratch, students, rounds.max(1)).await;
    scratch.drop_database().await?;
    result
}

async fn fanout_on(
    settings: &Settings,
    scratch: &Scratch,
    students: i64,
    rounds: usize,
) -> BenchResult<()> {
    let url = scratch.url();
    let mut conn = AsyncPgConnection::establish(&url).await.map_err(fail)?;
    println!("seeding {students} students in {} …", scratch.name);
    let publisher = seed_students(&mut conn, students).await?;
    let pool: DbPool = db::pool(&url, 4, Duration::from_secs(10));
    let bus = EventBus::new();
    let fanout_settings = FanoutSettings {
        chunk: settings.fanout.chunk.max(1),
        workers: 1,
        lease_secs: 60,
        poll: Duration::from_secs(1),
        chunk_delay: Duration::ZERO,
    };
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        exec(&mut conn, "TRUNCATE deliveries").await?;
        exec(&mut conn, "CHECKPOINT").await?;
        let id = publish(&mut conn, publisher, "classbell fan-out").await?;
        let started = Instant::now();
        let step = fanout::run_now(&pool, &bus, id, fanout_settings.clone())
            .await
            .map_err(fail)?;
        let took = started.elapsed();
        if step != Step::Finished {
            return Err(format!("the fan-out ended as {step:?}"));
        }
        let written = count(&mut conn, id).await?;
        if written != students {
            return Err(format!(
                "classbell wrote {written} deliveries for {students} students"
            ));
        }
        ours.push(took);

        exec(&mut conn, "TRUNCATE deliveries").await?;
        exec(&mut conn, "CHECKPOINT").await?;
        let bare_id = publish(&mut conn, publisher, "bare SQL").await?;
        let started = Instant::now();
        diesel::sql_query(format!(
            "INSERT INTO deliveries (announcement_id, user_id) SELECT $1, r.id FROM ({}) r",
            Audience::AllStudents.recipients_sql()
        ))
        .bind::<BigInt, _>(bare_id)
        .execute(&mut conn)
        .await
        .map_err(fail)?;
        bare.push(started.elapsed());
        println!(
            "round {round}: classbell {:.3} s, bare INSERT … SELECT {:.3} s",
            ours[round - 1].as_secs_f64(),
            bare[round - 1].as_secs_f64()
        );
    }
    let (ours, bare) = (median(ours), median(bare));
    let rate = |d: Duration| students as f64 / d.as_secs_f64();
    println!();
    println!(
        "fan-out of {students} deliveries (median of {rounds}; chunk {}):",
        fanout_settings.chunk
    );
    println!(
        "  classbell fan-out      {:>8.3} s  {:>10.0} deliveries/s",
        ours.as_secs_f64(),
        rate(ours)
    );
    println!(
        "  bare INSERT … SELECT   {:>8.3} s  {:>10.0} rows/s   (baseline)",
        bare.as_secs_f64(),
        rate(bare)
    );
    println!(
        "  ratio                  {:>8.2}×   (target: under 1.5 s and within 1.5× of the baseline)",
        ours.as_secs_f64() / bare.as_secs_f64()
    );
    Ok(())
}

async fn count(conn: &mut AsyncPgConnection, announcement: AnnouncementId) -> BenchResult<i64> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count =
        diesel::sql_query("SELECT count(*) AS n FROM deliveries WHERE announcement_id = $1")
            .bind::<BigInt, _>(announcement)
            .get_result(conn)
            .await
            .map_err(fail)?;
    Ok(row.n)
}

/// Acknowledgments over HTTP: `clients` concurrent clients, each a student
/// acknowledging `per_client` deliveries one request at a time, against the
/// real server (started in this process on a free port).
pub async fn acks(settings: &Settings, clients: usize, per_client: usize) -> BenchResult<()> {
    let scratch = Scratch::create(&settings.database.url).await?;
    let result = acks_on(settings, &scratch, clients.max(1), per_client.max(1)).await;
    scratch.drop_database().await?;
    result
}

async fn acks_on(
    settings: &Settings,
    scratch: &Scratch,
    clients: usize,
    per_client: usize,
) -> BenchResult<()> {
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
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .map_err(fail)?;
    let base_url = base.clone();

    println!("{clients} clients acknowledging {total} deliveries over HTTP at {base_url} …");
    // The clients get threads of their own, as real browsers would be: on the
    // server's main thread they would compete with the actors they measure.
    let started = Instant::now();
    let clients_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(fail)?;
        runtime.block_on(async move {
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
            let mut latencies = Vec::with_capacity(total);
            for task in tasks {
                latencies.extend(task.await.map_err(fail)??);
            }
            Ok::<_, String>(latencies)
        })
    });
    let mut latencies = tokio::task::spawn_blocking(move || clients_thread.join())
        .await
        .map_err(fail)?
        .map_err(|_| "the client thread panicked".to_owned())??;
    let elapsed = started.elapsed();

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
        "acknowledgments over HTTP ({clients} concurrent clients, {total} acks, all verified in PostgreSQL):"
    );
    println!(
        "  throughput   {:>8.0} acks/s   (target: at least 10,000)",
        total as f64 / elapsed.as_secs_f64()
    );
    println!("  latency p50  {:>8.2} ms", percentile(0.50));
    println!("  latency p99  {:>8.2} ms", percentile(0.99));
    println!(
        "  baseline     one-row UPDATE per transaction measured with pgbench here: ~5,900/s at 64 clients"
    );
    Ok(())
}
