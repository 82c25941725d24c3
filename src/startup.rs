//! Building and running the server. `main` and the tests share this path, so
//! what the tests exercise is what production runs.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::middleware::{Compress, NormalizePath, TrailingSlash, from_fn};
use actix_web::web::Data;
use actix_web::{App, HttpServer, http};
use tracing_actix_web::TracingLogger;

use crate::announcements::fanout::{FANOUT_SUPERVISOR, FanoutSettings, FanoutSupervisor, StopAll};
use crate::announcements::scheduler::Scheduler;
use crate::auth::jwt::JwtKeys;
use crate::config::Settings;
use crate::deliveries::writer::DeliveryWriter;
use crate::events::EventBus;
use crate::jobs::runner::JobRunner;
use crate::mail::Mailer;
use crate::realtime::bridge::{Bridge, BridgeHealth};
use crate::realtime::hub::{HUB, Hub, ShutDown};
use crate::redis::Redis;
use crate::sections::enrollments;
use crate::state::AppState;
use crate::storage::{Storage, deletions};
use crate::telemetry::mailbox;
use crate::{
    announcements, attachments, auth, courses, db, deliveries, health, http as routes, jobs,
    openapi, realtime, sections, telemetry, users, web,
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Mailer(#[from] crate::mail::mailer::MailerError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("{0}")]
    Dependency(String),
}

pub struct Application {
    port: u16,
    server: Server,
    state: Data<AppState>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and wires the app; the
    /// caller awaits `run_until_stopped`. Migrations are the caller's job.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        settings.validate()?;
        let listener = TcpListener::bind(&settings.bind)
            .map_err(|e| StartupError::Bind(settings.bind.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Bind(settings.bind.clone(), e))?
            .port();
        let state = Data::new(build_state(settings).await?);
        let server = serve(listener, state.clone())?;
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the handlers share: for tests and tools that drive the actors directly.
    pub fn state(&self) -> Data<AppState> {
        self.state.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully: stops
    /// accepting, closes every websocket with 1001 (clients reconnect to
    /// another node with their cursor), lets fan-outs stop after their
    /// current chunk and release their claims, and gives in-flight requests
    /// up to `SHUTDOWN_DEADLINE_SECS` to finish.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let state = self.state.clone();
        actix_web::rt::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: closing websockets, finishing requests");
            mailbox::tell(&state.hub, HUB, ShutDown);
            mailbox::tell(&state.fanout, FANOUT_SUPERVISOR, StopAll);
            handle.stop(true).await;
        });
        self.server.await
    }
}

/// Seconds in-flight requests get to finish once shutdown begins.
const SHUTDOWN_DEADLINE_SECS: u64 = 10;

/// SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Pools, keys, storage and actors. Actors start on the calling arbiter (the
/// main one under `serve`), and handlers on worker threads reach them through `Addr`.
pub async fn build_state(settings: Settings) -> Result<AppState, StartupError> {
    // First, so the pools' start-up gauges reach the real recorder.
    let metrics = telemetry::metrics_handle();
    let timeout = settings.pool_timeout();
    let db = db::pool(&settings.database_url, settings.database_pool_size, timeout);
    let redis = Redis::new(
        &settings.redis_url,
        settings.redis_pool_size,
        timeout,
        &settings.redis_prefix,
    )
    .map_err(|e| StartupError::Dependency(e.to_string()))?;
    let mailer = Mailer::from_settings(&settings)?.start();
    let storage = Storage::open(&settings)
        .await
        .map_err(|e| StartupError::Dependency(e.to_string()))?;
    deletions::spawn_sweeper(db.clone(), Arc::clone(&storage), Duration::from_secs(60));
    enrollments::register_metrics();
    auth::store::spawn_pruner(db.clone(), Duration::from_secs(3600));
    let bus = EventBus::new();
    let writer = DeliveryWriter::new(
        db.clone(),
        bus.clone(),
        settings.writer_concurrency,
        settings.writer_max_batch,
    )
    .start();
    let poll = Duration::from_millis(settings.fanout_poll_ms.max(10));
    let fanout = FanoutSupervisor::new(
        db.clone(),
        bus.clone(),
        FanoutSettings {
            chunk: settings.fanout_chunk.max(1),
            workers: settings.fanout_workers.max(1),
            lease_secs: settings.fanout_lease_secs.max(1),
            poll,
            chunk_delay: Duration::from_millis(settings.fanout_chunk_delay_ms),
        },
    )
    .start();
    Scheduler::new(db.clone(), fanout.clone(), poll).start();
    let hub = Hub::new(db.clone(), bus.clone()).start();
    let jobs = JobRunner::new(
        db.clone(),
        Arc::clone(&storage),
        bus.clone(),
        settings.job_settings(),
    )
    .start();
    let bridge = Arc::new(BridgeHealth::default());
    Bridge::new(
        &settings.redis_url,
        redis.clone(),
        bus.clone(),
        hub.clone(),
        Arc::clone(&bridge),
    )
    .start();
    let upkeep = metrics.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(AppState {
        jwt: JwtKeys::new(&settings.jwt_secret, settings.access_token_ttl_secs),
        session_settings: settings.session_settings(),
        settings: Arc::new(settings),
        db,
        redis,
        mailer,
        storage,
        bus,
        writer,
        fanout,
        hub,
        jobs,
        bridge,
        metrics,
    })
}

fn cors(settings: &Settings) -> Cors {
    settings
        .allowed_origins()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "POST", "PATCH", "PUT", "DELETE"])
        .allowed_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE])
        .expose_headers([http::header::RETRY_AFTER, telemetry::REQUEST_ID.clone()])
        .max_age(3600)
}

fn serve(listener: TcpListener, state: Data<AppState>) -> Result<Server, StartupError> {
    let settings = Arc::clone(&state.settings);
    let workers = settings.workers;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(telemetry::record_http))
            .wrap(cors(&state.settings))
            .wrap(Compress::default())
            .wrap(from_fn(telemetry::request_id))
            .wrap(TracingLogger::default())
            // Outermost: clients of the Django API end paths with a slash.
            .wrap(NormalizePath::new(TrailingSlash::Trim))
            .app_data(state.clone())
            .app_data(routes::json_config(state.settings.max_json_bytes))
            .app_data(routes::query_config())
            .app_data(routes::path_config())
            .configure(health::configure)
            .configure(openapi::configure)
            .configure(auth::routes::configure)
            .configure(users::routes::configure)
            .configure(courses::routes::configure)
            .configure(sections::routes::configure)
            .configure(attachments::routes::configure)
            .configure(announcements::routes::configure)
            .configure(deliveries::routes::configure)
            .configure(realtime::routes::configure)
            .configure(jobs::routes::configure)
            .configure(web::configure)
            .default_service(actix_web::web::to(routes::no_route))
    })
    .on_connect(realtime::socket::on_connect)
    // Signals are `run_until_signalled`'s: websockets and fan-outs get to
    // wind down before the server stops.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_DEADLINE_SECS);
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server
        .listen(listener)
        .map_err(|e| StartupError::Bind(settings.bind.clone(), e))?
        .run())
}
