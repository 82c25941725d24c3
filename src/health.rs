//! Liveness, readiness and the Prometheus scrape endpoint.

use actix_web::{HttpResponse, web};
use diesel_async::RunQueryDsl;
use metrics::gauge;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbPool;
use crate::deliveries::{self, model::DeliveryState};
use crate::error::{AppError, Code, FieldErrors};
use crate::http::resource;
use crate::realtime::bridge::BridgeHealth;
use crate::redis::Redis;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(resource("/readyz").route(web::get().to(readyz)))
        .service(resource("/metrics").route(web::get().to(metrics)));
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: &'static str,
}

/// Ready, or serving with a part down that clients recover from.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `degraded` while the bridge to other nodes is down.
    pub status: &'static str,
    /// What is degraded and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<&'static str>,
}

/// Why the bridge counts as degraded.
const BRIDGE_DOWN: &str = "not connected to the other nodes through Redis; reconnecting with backoff, \
                           live pushes from other nodes resume then and clients catch up from their cursors";

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Status)))]
pub async fn healthz() -> web::Json<Status> {
    web::Json(Status { status: "ok" })
}

/// PostgreSQL and Redis answer (otherwise 503 naming what is down); a bridge
/// that is reconnecting makes it `degraded` but still 200: the node serves.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = crate::error::ErrorBody)))]
pub async fn readyz(
    db: web::Data<DbPool>,
    redis: web::Data<Redis>,
    bridge: web::Data<BridgeHealth>,
) -> Result<web::Json<Readiness>, AppError> {
    let (database, redis) = tokio::join!(database_ready(&db), redis.ping());
    let bridge = (!bridge.connected()).then_some(BRIDGE_DOWN);
    let what = match (database.is_err(), redis.is_err()) {
        (false, false) => {
            return Ok(web::Json(Readiness {
                status: if bridge.is_some() {
                    "degraded"
                } else {
                    "ready"
                },
                bridge,
            }));
        }
        (true, true) => "postgres and redis",
        (true, false) => "postgres",
        (false, true) => "redis",
    };
    // What failed, and why, is for the log; the answer only names it.
    let mut down = FieldErrors::new();
    if let Err(error) = database {
        tracing::warn!(%error, "readiness: PostgreSQL is down");
        down.add("postgres", Code::Down);
    }
    if let Err(error) = redis {
        tracing::warn!(%error, "readiness: Redis is down");
        down.add("redis", Code::Down);
    }
    if bridge.is_some() {
        down.add("bridge", Code::Down);
    }
    Err(AppError::Unavailable { what, fields: down })
}

async fn database_ready(db: &DbPool) -> Result<(), AppError> {
    let mut conn = db.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut *conn).await?;
    Ok(())
}

/// Prometheus text exposition of every classbell metric.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(
    db: web::Data<DbPool>,
    redis: web::Data<Redis>,
    handle: web::Data<PrometheusHandle>,
) -> HttpResponse {
    db.report();
    redis.pool().report();
    report_deliveries(&db).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

/// `classbell_deliveries{state}`, read from the kept totals (a scrape while
/// PostgreSQL is away keeps the last figures).
async fn report_deliveries(db: &DbPool) {
    let counts = match db.get().await {
        Ok(mut conn) => deliveries::store::counts_by_state(&mut conn).await,
        Err(error) => Err(error),
    };
    match counts {
        Ok(counts) => {
            for delivery_state in DeliveryState::ALL {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == delivery_state)
                    .map_or(0, |(_, n)| *n);
                gauge!("classbell_deliveries", "state" => delivery_state.as_str()).set(n as f64);
            }
        }
        Err(error) => tracing::debug!(%error, "could not read the delivery counts"),
    }
}
