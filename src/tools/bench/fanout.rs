//! `classbell bench fanout`: classbell's fan-out against the bare SQL that
//! writes the same rows.

use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use super::cluster::percentile;
use super::live::{Live, LiveLoad};
use super::{
    BenchResult, Scratch, exec, fail, median, own_rss_kib, publish, seed_students, unpublished,
};
use classbell::announcements::audience::Audience;
use classbell::announcements::fanout::{self, FanoutSettings, Step};
use classbell::config::Settings;
use classbell::db::{self, DbPool};
use classbell::events::EventBus;
use classbell::ids::AnnouncementId;

/// classbell's fan-out (the worker's own code: claim, count, chunked
/// statements) against the bare `INSERT … SELECT`, on the same data, each
/// into an emptied deliveries table; medians of `rounds`.
/// With `live` above 0, classbell's rounds are published through a
/// `classbell serve` node while `live` students hold websockets on it and
/// hear other announcements as `load` says (see `live.rs`).
pub async fn fanout(
    settings: &Settings,
    students: i64,
    rounds: usize,
    live: usize,
    load: LiveLoad,
) -> BenchResult<Value> {
    let scratch = Scratch::create(&settings.database.url).await?;
    let result = fanout_on(settings, &scratch, students, rounds.max(1), live, load).await;
    scratch.drop_database().await?;
    result
}

async fn fanout_on(
    settings: &Settings,
    scratch: &Scratch,
    students: i64,
    rounds: usize,
    live: usize,
    load: LiveLoad,
) -> BenchResult<Value> {
    let url = scratch.url();
    let mut conn = AsyncPgConnection::establish(&url).await.map_err(fail)?;
    println!("seeding {students} students in {} …", scratch.name);
    let publisher = seed_students(&mut conn, students).await?;
    let pool: DbPool = db::pool(&url, 4, Duration::from_secs(10));
    let bus = EventBus::new();
    // The configured chunk sizes; one worker, no pauses.
    let fanout_settings = FanoutSettings {
        workers: 1,
        lease_secs: 60,
        poll: Duration::from_secs(1),
        chunk_delay: Duration::ZERO,
        ..FanoutSettings::from(&settings.fanout)
    };
    let mut node = match live {
        0 => None,
        live => Some(Live::start(&mut conn, settings, &url, publisher, live, load).await?),
    };
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let (mut live_ms, mut live_missing) = (Vec::new(), 0);
    let rss_before = own_rss_kib();
    let mut rss_growth_mib: f64 = 0.0;
    for round in 1..=rounds {
        exec(&mut conn, "TRUNCATE deliveries").await?;
        exec(&mut conn, "CHECKPOINT").await?;
        let took = match &mut node {
            None => {
                let id = publish(&mut conn, publisher, "classbell fan-out").await?;
                let started = Instant::now();
                let step = fanout::run_now(&pool, &bus, id, fanout_settings.clone())
                    .await
                    .map_err(fail)?;
                if step != Step::Finished {
                    return Err(format!("the fan-out ended as {step:?}"));
                }
                let took = started.elapsed();
                let written = count(&mut conn, id).await?;
                if written != students {
                    return Err(format!(
                        "classbell wrote {written} deliveries for {students} students"
                    ));
                }
                rss_growth_mib = rss_growth_mib.max((own_rss_kib() - rss_before) / 1024.0);
                took
            }
            Some(node) => {
                let measured = node.round(&mut conn).await?;
                let written = count(&mut conn, AnnouncementId(measured.announcement)).await?;
                if written != students {
                    return Err(format!(
                        "the node wrote {written} deliveries for {students} students"
                    ));
                }
                println!(
                    "round {round}: {} live sessions heard their {} at p99 {:.0} ms, {} missed",
                    live,
                    load.heard(),
                    measured.live_p99_ms(),
                    measured.live_missing
                );
                rss_growth_mib = rss_growth_mib.max(measured.rss_growth_mib);
                live_missing += measured.live_missing;
                live_ms.extend(measured.live_ms);
                Duration::from_secs_f64(measured.seconds)
            }
        };
        ours.push(took);

        exec(&mut conn, "TRUNCATE deliveries").await?;
        exec(&mut conn, "CHECKPOINT").await?;
        let bare_id = unpublished(&mut conn, publisher, "bare SQL").await?;
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
        "  ratio                  {:>8.2}×   (targets: 100,000 in 1.5 s within 1.5×; 1,000,000 in 8 s within 1.2×)",
        ours.as_secs_f64() / bare.as_secs_f64()
    );
    let live_p99_ms = (live > 0).then(|| {
        live_ms.sort_by(f64::total_cmp);
        percentile(&live_ms, 0.99)
    });
    if let Some(node) = node {
        node.stop().await;
    }
    let (runs, memory_target) = match live {
        0 => ("this process", ""),
        _ => ("the node", "   (target: at most 200 MiB)"),
    };
    println!(
        "  memory growth          {rss_growth_mib:>8.1} MiB ({runs}, where the fan-out runs){memory_target}"
    );
    if let Some(p99) = live_p99_ms {
        println!(
            "  live sessions          {p99:>8.0} ms p99 publish → receipt over {} receipts, {live_missing} missed   \
             (target: at most 250 ms, {live} sessions hearing their {})",
            live_ms.len(),
            load.heard()
        );
    }
    Ok(json!({
        "students": students,
        "seconds": ours.as_secs_f64(),
        "per_second": rate(ours),
        "baseline_seconds": bare.as_secs_f64(),
        "ratio": ours.as_secs_f64() / bare.as_secs_f64(),
        "rss_growth_mib": rss_growth_mib,
        // Null when no sessions were connected (`--live 0`).
        "live_p99_ms": live_p99_ms,
        "live_missing": live_missing,
        "live_load": (live > 0).then(|| load.heard()),
    }))
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
