//! The `classbell` command: serve, migrate, create-user, demo, bench.
//!
//! The one-shot commands start only what they use: `migrate` a connection,
//! `create-user` and `demo` a database pool; only `serve` builds the actors.

mod tools;

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use classbell::auth::hashing::Hasher;
use classbell::config::Environment;
use classbell::config::Settings;
use classbell::startup::{self, Application};
use classbell::users::model::Role;
use classbell::{db, telemetry, users};

use tools::{bench, demo};

#[derive(Parser)]
#[command(name = "classbell", version, about = "Live announcements for a school")]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve HTTP and websockets.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create an account; the password is read from standard input.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: Role,
        /// How the person is called (any script); the username when absent.
        #[arg(long)]
        display_name: Option<String>,
        /// The school's student or staff number.
        #[arg(long)]
        number: Option<String>,
        /// Read the password from the first line of standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Seed a small demo school and print its logins.
    Demo {
        /// Seed even when CLASSBELL_ENV=production (its accounts share a
        /// published password).
        #[arg(long)]
        force: bool,
    },
    /// Measure throughput on a scratch database beside the configured one.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// After the report, print the figures as one JSON value, the last line
    /// on standard output (an object, or a list of them for several rounds).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    which: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Fan-out to N students: classbell against the bare INSERT … SELECT.
    Fanout {
        #[arg(long, default_value_t = 100_000)]
        students: i64,
        /// Rounds; medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Publish through a node on which this many students hold
        /// websockets and keep hearing other announcements (`--live-load`).
        #[arg(long, default_value_t = 0)]
        live: usize,
        /// What the live sessions hear meanwhile.
        #[arg(long, value_enum, default_value = "sections")]
        live_load: bench::LiveLoad,
    },
    /// Concurrent acknowledgments over HTTP, or with `--ws` over websockets.
    Acks {
        /// Over each client's websocket instead of HTTP.
        #[arg(long)]
        ws: bool,
        /// Concurrent clients [default: 64 over HTTP, 500 with --ws].
        #[arg(long)]
        clients: Option<usize>,
        /// Acknowledgments per client [default: 300 over HTTP, 60 with --ws,
        /// within the burst a websocket client is allowed
        /// (CLASSBELL_WS_MESSAGE_BURST) as a student's browser would be].
        #[arg(long)]
        per_client: Option<usize>,
    },
    /// Publish → `delivery.created` on N websockets, on one node and on two
    /// (or on `--nodes`), the clients in processes of their own.
    Push {
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// Only this many nodes (the sessions split between them).
        #[arg(long)]
        nodes: Option<usize>,
    },
    /// N websockets on one node that is killed and restarted: how soon all
    /// resume from their cursors, and that none misses or repeats anything.
    Storm {
        #[arg(long, default_value_t = 19_000)]
        sessions: usize,
    },
    /// A process of websocket clients the benchmarks drive (see `load.rs`).
    #[command(hide = true)]
    LoadClient,
    /// The push benchmark's baseline: a broadcast-only websocket server
    /// (see `broadcast.rs`).
    #[command(hide = true)]
    BroadcastServer,
    /// A course import of N rows, upload to SUCCESS.
    Import {
        #[arg(long, default_value_t = 50_000)]
        rows: usize,
        /// What the file holds: `courses` or `users` (the roster).
        #[arg(long, value_enum, default_value_t = bench::ImportKind::Courses)]
        kind: bench::ImportKind,
    },
}

/// Each websocket holds a file descriptor, and the usual soft limit (often
/// 1,024) is far below what one node serves: it is raised to the hard limit,
/// which only the system can raise (`ulimit -Hn`, `LimitNOFILE=`).
fn raise_descriptor_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "could not raise the open-file limit");
        }
    }
    let now = getrlimit(Resource::Nofile);
    tracing::info!(
        soft = ?now.current,
        hard = ?now.maximum,
        "open-file limit (one per websocket)"
    );
}

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    telemetry::init_tracing(cli.settings.telemetry.log_format);
    if let Err(error) = cli.settings.validate() {
        eprintln!("classbell: {error}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("classbell: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let settings = cli.settings;
    match cli.command {
        Command::Migrate => migrate(&settings),
        Command::Serve => {
            raise_descriptor_limit();
            migrate(&settings)?;
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(port = app.port(), "classbell is serving");
                app.run_until_signalled().await.map_err(|e| e.to_string())
            })
        }
        Command::CreateUser {
            username,
            email,
            role,
            display_name,
            number,
            password_stdin: _,
        } => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            actix_web::rt::System::new().block_on(async move {
                let db = startup::database(&settings);
                let hasher = Hasher::from_settings(&settings.auth);
                let account = users::accounts::NewAccount {
                    username: &username,
                    email: &email,
                    display_name: display_name.as_deref(),
                    number: number.as_deref(),
                    role,
                };
                let user = users::accounts::create(&db, &hasher, &account, Some(&password))
                    .await
                    .map_err(|e| describe(&e))?;
                println!("created {} #{} ({})", user.username, user.id, user.role);
                Ok(())
            })
        }
        Command::Bench(BenchArgs { json, which }) => {
            let figures = actix_web::rt::System::new().block_on(async move {
                match which {
                    Bench::Fanout {
                        students,
                        rounds,
                        live,
                        live_load,
                    } => bench::fanout(&settings, students, rounds, live, live_load).await,
                    Bench::Acks {
                        ws,
                        clients,
                        per_client,
                    } => {
                        let (transport, default_clients, default_per_client) = if ws {
                            (bench::Transport::Ws, 500, 60)
                        } else {
                            (bench::Transport::Http, 64, 300)
                        };
                        let clients = clients.unwrap_or(default_clients);
                        let per_client = per_client.unwrap_or(default_per_client);
                        bench::acks(&settings, transport, clients, per_client).await
                    }
                    Bench::Push { sessions, nodes } => {
                        bench::push(&settings, sessions, nodes).await
                    }
                    Bench::Storm { sessions } => bench::storm(&settings, sessions).await,
                    Bench::LoadClient => {
                        raise_descriptor_limit();
                        bench::load_client().await.map(|()| serde_json::Value::Null)
                    }
                    Bench::BroadcastServer => {
                        raise_descriptor_limit();
                        bench::broadcast_server()
                            .await
                            .map(|()| serde_json::Value::Null)
                    }
                    Bench::Import { rows, kind } => bench::import(&settings, rows, kind).await,
                }
            })?;
            if json && !figures.is_null() {
                println!("{figures}");
            }
            Ok(())
        }
        Command::Demo { force } => actix_web::rt::System::new().block_on(async move {
            if settings.server.env == Environment::Production && !force {
                return Err("demo creates accounts whose password is published in the README; \
                     in production (CLASSBELL_ENV=production) it runs only with --force"
                    .to_owned());
            }
            let hasher = Hasher::from_settings(&settings.auth);
            let school = demo::seed(&startup::database(&settings), &hasher)
                .await
                .map_err(|e| describe(&e))?;
            let accounts = school.accounts;
            let created = accounts.iter().filter(|a| a.created).count();
            println!(
                "demo school: {created} accounts created, {} already there",
                accounts.len() - created
            );
            println!(
                "demo catalogue: {} courses created ({} in all), each with a published section in {}",
                school.courses_created,
                demo::CATALOGUE_SIZE,
                demo::DEMO_TERM
            );
            println!(
                "demo announcements: {} created (published, fanned out, some acknowledged)",
                school.announcements_created
            );
            println!("every demo account's password: {}", demo::DEMO_PASSWORD);
            println!("{:<12} {:<10} email", "username", "role");
            for account in &accounts {
                println!(
                    "{:<12} {:<10} {}",
                    account.username, account.role, account.email
                );
            }
            Ok(())
        }),
    }
}

fn migrate(settings: &Settings) -> Result<(), String> {
    let applied = db::run_migrations(&settings.database.url).map_err(|e| e.to_string())?;
    if applied.is_empty() {
        tracing::info!("database schema is up to date");
    } else {
        tracing::info!(?applied, "applied migrations");
    }
    Ok(())
}

/// Errors for a person at a terminal: field reasons included.
fn describe(error: &classbell::error::AppError) -> String {
    match error {
        classbell::error::AppError::Validation(fields)
        | classbell::error::AppError::Conflict { fields, .. } => {
            format!(
                "{error}: {}",
                serde_json::to_string(fields).unwrap_or_default()
            )
        }
        other => other.to_string(),
    }
}
