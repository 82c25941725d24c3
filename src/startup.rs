//! The composition root: builds the pools, the actors and the app from the
//! settings. `main` and the tests share this path, so what the tests exercise
//! is what production runs. Nothing else in the crate wires parts together;
//! handlers take the parts they use as `web::Data<…>`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::middleware::{Compress, NormalizePath, TrailingSlash, from_fn};
use actix_web::web::Data;
use actix_web::{App, HttpServer, http};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing_actix_web::TracingLogger;

use crate::announcements::escalation::{Escalation, Escalator};
use crate::announcements::fanout::{FANOUT_SUPERVISOR, FanoutSettings, FanoutSupervisor, StopAll};
use crate::announcements::scheduler::Scheduler;
use crate::auth::extract::TrustedProxies;
use crate::auth::hashing::Hasher;
use crate::auth::jwt::JwtKeys;
use crate::config::{self, Settings};
use crate::db::DbPool;
use crate::deliveries::writer::DeliveryWriter;
use crate::events::EventBus;
use crate::jobs::context::JobSettings;
use crate::jobs::runner::JobRunner;
use crate::mail::{Mailer, Postage};
use crate::realtime::bridge::{Bridge, BridgeHealth};
use crate::realtime::hub::{HUB, Hub, ShutDown};
use crate::realtime::sessions::{SessionServices, SessionSettings};
use crate::redis::Redis;
use crate::sections::enrollments;
use crate::storage::{Storage, deletions};
use crate::telemetry::mailbox;
use crate::{
    announcements, attachments, auth, courses, db, deliveries, health, http as routes, jobs,
    openapi, postmaster, realtime, school, sections, telemetry, users, web,
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
    #[error("{0}")]
    Setting(String),
}

/// The running parts, built once. The app receives them one by one as
/// `web::Data<…>`; tests and tools keep this to drive the actors directly.
#[derive(Clone)]
pub struct Services {
    pub db: DbPool,
    pub redis: Redis,
    pub jwt: Data<JwtKeys>,
    pub hasher: Data<Hasher>,
    pub mailer: Addr<Mailer>,
    pub postage: Postage,
    pub escalation: Escalation,
    pub storage: Arc<Storage>,
    pub bus: EventBus,
    pub writer: Addr<DeliveryWriter>,
    pub fanout: Addr<FanoutSupervisor>,
    pub hub: Addr<Hub>,
    pub jobs: Addr<JobRunner>,
    pub bridge: Arc<BridgeHealth>,
    pub sessions: Data<SessionServices>,
    pub metrics: PrometheusHandle,
}

pub struct Application {
    port: u16,
    server: Server,
    services: Services,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and wires the app; the
    /// caller awaits `run_until_stopped`. Migrations are the caller's job.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        settings.validate()?;
        let bind = settings.server.bind.clone();
        let listener = crate::http::listener(&bind, settings.server.listen_backlog)
            .map_err(|e| StartupError::Bind(bind.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Bind(bind.clone(), e))?
            .port();
        let services = build_services(&settings).await?;
        let server = serve(listener, &settings, &services)?;
        Ok(Application {
            port,
            server,
            services,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running parts: for tests and tools that drive the actors directly.
    pub fn services(&self) -> Services {
        self.services.clone()
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
        let (hub, fanout) = (self.services.hub.clone(), self.services.fanout.clone());
        actix_web::rt::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: closing websockets, finishing requests");
            mailbox::tell(&hub, HUB, ShutDown);
            mailbox::tell(&fanout, FANOUT_SUPERVISOR, StopAll);
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

/// The PostgreSQL pool the settings describe: all that the one-shot commands
/// (`create-user`, `demo`) need.
pub fn database(settings: &Settings) -> DbPool {
    db::pool(
        &settings.database.url,
        settings.database.pool_size,
        settings.server.pool_timeout(),
    )
}

/// Pools, keys, storage and actors. Actors start on the calling arbiter (the
/// main one under `serve`), and handlers on worker threads reach them through `Addr`.
pub async fn build_services(settings: &Settings) -> Result<Services, StartupError> {
    // First, so the pools' start-up gauges reach the real recorder.
    let metrics = telemetry::metrics_handle();
    let db = database(settings);
    let redis = Redis::new(
        &settings.redis.url,
        settings.redis.pool_size,
        settings.server.pool_timeout(),
        &settings.redis.prefix,
    )
    .map_err(|e| StartupError::Dependency(e.to_string()))?;
    let mailer = Mailer::from_settings(&settings.mail, db.clone())?.start();
    let storage = Storage::open(&settings.storage)
        .await
        .map_err(|e| StartupError::Dependency(e.to_string()))?;
    deletions::spawn_sweeper(
        db.clone(),
        Arc::clone(&storage),
        Duration::from_secs(settings.storage.sweep_secs.max(1)),
    );
    enrollments::register_metrics();
    auth::store::spawn_pruner(db.clone(), Duration::from_secs(3600));
    let postage = Postage::new(
        mailer.clone(),
        crate::mail::mailer::sender(&settings.mail)?,
        &settings.server,
        &settings.school,
    );
    users::invitations::spawn_sender(
        db.clone(),
        postage.clone(),
        settings.auth.clone(),
        settings.mail.invitations_per_sec,
    );
    let bus = EventBus::new();
    let writer = DeliveryWriter::new(
        db.clone(),
        bus.clone(),
        settings.deliveries.writer_concurrency,
        settings.deliveries.writer_max_batch,
    )
    .start();
    let fanout_settings = FanoutSettings::from(&settings.fanout);
    let poll = fanout_settings.poll;
    let fanout = FanoutSupervisor::new(db.clone(), bus.clone(), fanout_settings).start();
    Scheduler::new(db.clone(), fanout.clone(), poll).start();
    let escalation = Escalation::from_settings(&settings.announcements, &settings.school)
        .map_err(StartupError::Setting)?;
    Escalator::new(
        db.clone(),
        postage.clone(),
        bus.clone(),
        escalation.clone(),
        Duration::from_millis(settings.announcements.escalation_poll_ms.max(10)),
    )
    .start();
    let hub = Hub::new(db.clone(), bus.clone()).start();
    let jobs = JobRunner::new(
        db.clone(),
        Arc::clone(&storage),
        bus.clone(),
        JobSettings::new(&settings.jobs, &settings.storage),
    )
    .start();
    let bridge = Arc::new(BridgeHealth::default());
    Bridge::new(
        &settings.redis.url,
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
    let sessions = Data::new(SessionServices::new(
        db.clone(),
        hub.clone(),
        writer.clone(),
        SessionSettings::from(&settings.realtime),
    ));
    Ok(Services {
        jwt: Data::new(JwtKeys::new(
            &settings.auth.jwt_secret,
            settings.auth.access_token_ttl_secs,
        )),
        hasher: Data::new(Hasher::from_settings(&settings.auth)),
        db,
        redis,
        mailer,
        postage,
        escalation,
        storage,
        bus,
        writer,
        fanout,
        hub,
        jobs,
        bridge,
        sessions,
        metrics,
    })
}

fn cors(server: &config::Server) -> Cors {
    server
        .allowed_origins()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "POST", "PATCH", "PUT", "DELETE"])
        .allowed_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE])
        .expose_headers([http::header::RETRY_AFTER, telemetry::REQUEST_ID.clone()])
        .max_age(3600)
}

/// What handlers may ask for as `web::Data<…>`: each part, and each
/// settings group a handler reads. Built once; every worker clones the handles.
#[derive(Clone)]
struct Parts {
    db: Data<DbPool>,
    redis: Data<Redis>,
    jwt: Data<JwtKeys>,
    hasher: Data<Hasher>,
    proxies: Data<TrustedProxies>,
    postage: Data<Postage>,
    escalation: Data<Escalation>,
    storage: Data<Storage>,
    bus: Data<EventBus>,
    writer: Data<Addr<DeliveryWriter>>,
    fanout: Data<Addr<FanoutSupervisor>>,
    jobs: Data<Addr<JobRunner>>,
    bridge: Data<BridgeHealth>,
    sessions: Data<SessionServices>,
    metrics: Data<PrometheusHandle>,
    server: Data<config::Server>,
    auth: Data<config::Auth>,
    registration: Data<config::Registration>,
    school: Data<config::School>,
    storage_settings: Data<config::Storage>,
    announcements: Data<config::Announcements>,
    jobs_settings: Data<config::Jobs>,
}

impl Parts {
    fn new(settings: &Settings, services: &Services) -> Self {
        Parts {
            db: Data::new(services.db.clone()),
            redis: Data::new(services.redis.clone()),
            jwt: services.jwt.clone(),
            hasher: services.hasher.clone(),
            // Checked by `Settings::validate` before the app is built.
            proxies: Data::new(TrustedProxies::new(
                settings.auth.trusted_proxies().unwrap_or_default(),
            )),
            postage: Data::new(services.postage.clone()),
            escalation: Data::new(services.escalation.clone()),
            storage: Data::from(Arc::clone(&services.storage)),
            bus: Data::new(services.bus.clone()),
            writer: Data::new(services.writer.clone()),
            fanout: Data::new(services.fanout.clone()),
            jobs: Data::new(services.jobs.clone()),
            bridge: Data::from(Arc::clone(&services.bridge)),
            sessions: services.sessions.clone(),
            metrics: Data::new(services.metrics.clone()),
            server: Data::new(settings.server.clone()),
            auth: Data::new(settings.auth.clone()),
            registration: Data::new(settings.registration()),
            school: Data::new(settings.school.clone()),
            storage_settings: Data::new(settings.storage.clone()),
            announcements: Data::new(settings.announcements.clone()),
            jobs_settings: Data::new(settings.jobs.clone()),
        }
    }

    fn register<T>(self, app: App<T>) -> App<T>
    where
        T: actix_web::dev::ServiceFactory<
                actix_web::dev::ServiceRequest,
                Config = (),
                Error = actix_web::Error,
                InitError = (),
            >,
    {
        app.app_data(self.db)
            .app_data(self.redis)
            .app_data(self.jwt)
            .app_data(self.hasher)
            .app_data(self.proxies)
            .app_data(self.postage)
            .app_data(self.escalation)
            .app_data(self.storage)
            .app_data(self.bus)
            .app_data(self.writer)
            .app_data(self.fanout)
            .app_data(self.jobs)
            .app_data(self.bridge)
            .app_data(self.sessions)
            .app_data(self.metrics)
            .app_data(self.server)
            .app_data(self.auth)
            .app_data(self.registration)
            .app_data(self.school)
            .app_data(self.storage_settings)
            .app_data(self.announcements)
            .app_data(self.jobs_settings)
    }
}

fn serve(
    listener: TcpListener,
    settings: &Settings,
    services: &Services,
) -> Result<Server, StartupError> {
    let parts = Parts::new(settings, services);
    // Process-wide in actix-http (see vendor/README.md): connections
    // accepted from here on use it.
    actix_http::h1::set_buffer_size(settings.server.connection_buffer_bytes as usize);
    let server_settings = settings.server.clone();
    let max_json_bytes = settings.server.max_json_bytes;
    let mut server = HttpServer::new(move || {
        let app = App::new()
            .wrap(from_fn(move |req, next| {
                routes::refuse_unstorable(req, next, max_json_bytes)
            }))
            .wrap(from_fn(telemetry::record_http))
            .wrap(cors(&server_settings))
            .wrap(Compress::default())
            .wrap(from_fn(telemetry::request_id))
            .wrap(TracingLogger::<telemetry::RequestSpan>::new())
            // Outermost: clients of the Django API end paths with a slash.
            .wrap(NormalizePath::new(TrailingSlash::Trim));
        parts
            .clone()
            .register(app)
            .app_data(routes::json_config(max_json_bytes))
            .app_data(routes::query_config())
            .app_data(routes::path_config())
            .configure(health::configure)
            .configure(openapi::configure)
            .configure(school::configure)
            .configure(auth::routes::configure)
            .configure(auth::recovery::configure)
            .configure(users::routes::configure)
            .configure(courses::routes::configure)
            .configure(sections::routes::configure)
            .configure(attachments::routes::configure)
            .configure(announcements::routes::configure)
            .configure(deliveries::routes::configure)
            .configure(realtime::routes::configure)
            .configure(jobs::routes::configure)
            .configure(postmaster::configure)
            .configure(web::configure)
            .default_service(actix_web::web::to(routes::no_route))
    })
    .on_connect(realtime::socket::on_connect)
    // A websocket writes small frames in quick succession (an update, then
    // the badge it moved). With Nagle's algorithm the second waits for the
    // client's acknowledgment of the first, which a client holds back for
    // its delayed-ACK timer (40 ms on Linux, 200 ms on Windows) when it has
    // nothing to send.
    .tcp_nodelay(true)
    // Signals are `run_until_signalled`'s: websockets and fan-outs get to
    // wind down before the server stops.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_DEADLINE_SECS);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok(server
        .listen(listener)
        .map_err(|e| StartupError::Bind(settings.server.bind.clone(), e))?
        .run())
}
