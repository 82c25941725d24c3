//! `classbell bench import`: a course import of N rows through the real
//! server, from the upload to the task's SUCCESS, every row checked in
//! PostgreSQL afterwards.

use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Double};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::{BenchResult, Scratch, fail, seed_students};
use classbell::config::Settings;
use classbell::startup::Application;
use classbell::users::model::Role;

pub async fn import(settings: &Settings, rows: usize) -> BenchResult<()> {
    let scratch = Scratch::create(&settings.database.url).await?;
    let result = import_on(settings, &scratch, rows.max(1)).await;
    scratch.drop_database().await?;
    result
}

async fn import_on(settings: &Settings, scratch: &Scratch, rows: usize) -> BenchResult<()> {
    let url = scratch.url();
    let mut conn = AsyncPgConnection::establish(&url).await.map_err(fail)?;
    let admin = seed_students(&mut conn, 1).await?;
    let mut app_settings = scratch.app_settings(settings);
    app_settings.jobs.max_import_bytes = 256 * 1024 * 1024;
    app_settings.jobs.poll_ms = 50;
    let app = Application::build(app_settings).await.map_err(fail)?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.services();
    actix_web::rt::spawn(app.run_until_stopped());
    let (session, _) =
        classbell::auth::store::open_session(&mut conn, admin, chrono::Duration::hours(1))
            .await
            .map_err(fail)?;
    let token = state.jwt.issue(admin, Role::Admin, session).map_err(fail)?;

    let mut csv = String::from("code,title,description,credits\n");
    for n in 0..rows {
        csv.push_str(&format!(
            "B{n:07},\"Course {n}, part {}\",Imported by the benchmark,{}.{}\n",
            n % 3 + 1,
            n % 6 + 1,
            n % 10
        ));
    }
    let bytes = csv.len();
    println!(
        "importing {rows} courses ({:.1} MiB of CSV) at {base} …",
        bytes as f64 / 1048576.0
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("courses.csv"),
    );
    let queued: Value = client
        .post(format!("{base}/api/imports/courses"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .map_err(fail)?
        .json()
        .await
        .map_err(fail)?;
    let task = queued["task_id"]
        .as_str()
        .ok_or(format!("no task: {queued}"))?;
    let task = loop {
        let task: Value = client
            .get(format!("{base}/api/tasks/{task}"))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(fail)?
            .json()
            .await
            .map_err(fail)?;
        if task["state"] == "SUCCESS" || task["state"] == "FAILURE" {
            break task;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err("the import did not finish in 10 minutes".into());
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    };
    let elapsed = started.elapsed();
    if task["result"]["ok"] != rows {
        return Err(format!("the import ended as {task}"));
    }
    #[derive(diesel::QueryableByName)]
    struct Figures {
        #[diesel(sql_type = BigInt)]
        courses: i64,
        #[diesel(sql_type = Double)]
        job_seconds: f64,
    }
    let figures: Figures = diesel::sql_query(
        "SELECT (SELECT count(*) FROM courses WHERE code LIKE 'B%') AS courses,
                (SELECT extract(epoch FROM finished_at - started_at)::float8 FROM jobs) AS job_seconds",
    )
    .get_result(&mut conn)
    .await
    .map_err(fail)?;
    if figures.courses != rows as i64 {
        return Err(format!(
            "{} of {rows} courses are in PostgreSQL",
            figures.courses
        ));
    }
    println!();
    println!("course import of {rows} rows (all verified in PostgreSQL):");
    println!(
        "  upload → SUCCESS   {:>8.2} s   {:>9.0} rows/s   (target: at least 20,000 rows/s)",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  the job alone      {:>8.2} s   {:>9.0} rows/s   (claim to end, from the job's row)",
        figures.job_seconds,
        rows as f64 / figures.job_seconds
    );
    Ok(())
}
