//! `classbell bench acks`: acknowledgments over HTTP against the real server.

use std::time::Instant;

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

/// Acknowledgments over HTTP: `clients` concurrent clients, each a student
/// acknowledging `per_client` deliveries one request at a time, against the
/// real server (started in this process on a free port).
pub async fn acks(settings: &Settings, clients: usize, per_client: usize) -> BenchResult<Value> {
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
    Ok(json!({
        "transport": "http",
        "acks": total,
        "per_second": total as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
    }))
}
