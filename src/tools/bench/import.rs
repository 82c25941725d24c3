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

/// What the benchmark imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportKind {
    Courses,
    Users,
}

impl ImportKind {
    fn path(self) -> &'static str {
        match self {
            ImportKind::Courses => "courses",
            ImportKind::Users => "users",
        }
    }

    /// The file: `rows` rows of this kind, each unique.
    fn csv(self, rows: usize) -> String {
        let mut csv = match self {
            ImportKind::Courses => String::from("code,title,description,credits\n"),
            ImportKind::Users => String::from("username,display_name,email,role,number\n"),
        };
        const NAMES: [&str; 4] = ["张伟", "李娜", "Zoë O'Brien", "王芳"];
        for n in 0..rows {
            match self {
                ImportKind::Courses => csv.push_str(&format!(
                    "B{n:07},\"Course {n}, part {}\",Imported by the benchmark,{}.{}\n",
                    n % 3 + 1,
                    n % 6 + 1,
                    n % 10
                )),
                ImportKind::Users => csv.push_str(&format!(
                    "bench.p{n:07},{} {n},bench.p{n:07}@bench.example,{},B-{n:07}\n",
                    NAMES[n % NAMES.len()],
                    if n % 20 == 0 { "teacher" } else { "student" }
                )),
            }
        }
        csv
    }

    /// How many of the imported rows PostgreSQL holds.
    fn stored_sql(self) -> &'static str {
        match self {
            ImportKind::Courses => "SELECT count(*) FROM courses WHERE code LIKE 'B%'",
            // Invitations leave the queue as they are mailed: a new account
            // counts when it has no password and is queued or was invited.
            ImportKind::Users => {
                "SELECT count(*) FROM users u WHERE u.username LIKE 'bench.p%' AND u.password_hash IS NULL
                   AND (EXISTS (SELECT 1 FROM invitations_due i WHERE i.user_id = u.id)
                        OR EXISTS (SELECT 1 FROM password_resets r
                                   WHERE r.user_id = u.id AND r.purpose = 'invitation'))"
            }
        }
    }
}

pub async fn import(settings: &Settings, rows: usize, kind: ImportKind) -> BenchResult<Value> {
    let scratch = Scratch::create(&settings.database.url).await?;
    let result = import_on(settings, &scratch, rows.max(1), kind).await;
    scratch.drop_database().await?;
    result
}

async fn import_on(
    settings: &Settings,
    scratch: &Scratch,
    rows: usize,
    kind: ImportKind,
) -> BenchResult<Value> {
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

    let csv = kind.csv(rows);
    let bytes = csv.len();
    println!(
        "importing {rows} {} ({:.1} MiB of CSV) at {base} …",
        kind.path(),
        bytes as f64 / 1048576.0
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("bench.csv"),
    );
    let queued: Value = client
        .post(format!("{base}/api/imports/{}", kind.path()))
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
        stored: i64,
        #[diesel(sql_type = Double)]
        job_seconds: f64,
    }
    let figures: Figures = diesel::sql_query(format!(
        "SELECT ({}) AS stored,
                (SELECT extract(epoch FROM finished_at - started_at)::float8 FROM jobs) AS job_seconds",
        kind.stored_sql()
    ))
    .get_result(&mut conn)
    .await
    .map_err(fail)?;
    if figures.stored != rows as i64 {
        return Err(format!(
            "{} of {rows} rows are in PostgreSQL",
            figures.stored
        ));
    }
    let (what, target) = match kind {
        ImportKind::Courses => ("course import", "at least 20,000 rows/s"),
        ImportKind::Users => ("roster import", "5,000 rows in seconds"),
    };
    println!();
    println!("{what} of {rows} rows (all verified in PostgreSQL):");
    println!(
        "  upload → SUCCESS   {:>8.2} s   {:>9.0} rows/s   (target: {target})",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  the job alone      {:>8.2} s   {:>9.0} rows/s   (claim to end, from the job's row)",
        figures.job_seconds,
        rows as f64 / figures.job_seconds
    );
    if kind == ImportKind::Users {
        println!(
            "  every new account has no password and an invitation queued (mailed at the configured rate)"
        );
    }
    Ok(serde_json::json!({
        "kind": kind.path(),
        "rows": rows,
        "seconds": elapsed.as_secs_f64(),
        "per_second": rows as f64 / elapsed.as_secs_f64(),
    }))
}
