//! Everything a request handler may reach, built once at start-up.

use std::sync::Arc;

use actix::Addr;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::announcements::fanout::FanoutSupervisor;
use crate::auth::jwt::JwtKeys;
use crate::config::Settings;
use crate::db::{DbConnection, DbPool};
use crate::deliveries::writer::DeliveryWriter;
use crate::error::AppError;
use crate::events::EventBus;
use crate::jobs::runner::JobRunner;
use crate::mail::Mailer;
use crate::realtime::bridge::BridgeHealth;
use crate::realtime::hub::Hub;
use crate::realtime::session::SessionSettings;
use crate::redis::Redis;
use crate::storage::Storage;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DbPool,
    pub redis: Redis,
    pub jwt: JwtKeys,
    pub mailer: Addr<Mailer>,
    pub storage: Arc<Storage>,
    pub bus: EventBus,
    pub writer: Addr<DeliveryWriter>,
    pub fanout: Addr<FanoutSupervisor>,
    pub hub: Addr<Hub>,
    pub jobs: Addr<JobRunner>,
    pub bridge: Arc<BridgeHealth>,
    pub session_settings: SessionSettings,
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// A pooled PostgreSQL connection, or 503 when none comes in time.
    pub async fn conn(&self) -> Result<DbConnection, AppError> {
        self.db.get().await
    }
}
