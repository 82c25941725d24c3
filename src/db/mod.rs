//! PostgreSQL: the pool every request borrows from, the embedded migrations,
//! and the diesel schema that mirrors them.

pub mod schema;
mod text_enum;

use diesel::{Connection as _, RunQueryDsl};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::pool::MeteredPool;

pub type DbPool = MeteredPool<AsyncDieselConnectionManager<AsyncPgConnection>>;
pub type DbConnection =
    bb8::PooledConnection<'static, AsyncDieselConnectionManager<AsyncPgConnection>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Advisory-lock key held while migrating, so nodes starting together take turns.
const MIGRATION_LOCK: i64 = 0x636c_6173_7362_656c; // "classbel"

pub fn pool(database_url: &str, size: u32, timeout: std::time::Duration) -> DbPool {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    let inner = bb8::Pool::builder()
        .max_size(size.max(1))
        .connection_timeout(timeout)
        .build_unchecked(manager);
    MeteredPool::new("postgres", inner)
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("cannot take the migration lock: {0}")]
    Lock(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Run(String),
}

/// Applies pending migrations under a PostgreSQL advisory lock and returns the
/// versions it applied.
///
/// Blocking: diesel's migration harness is synchronous, and the async wrapper
/// it runs on must not sit on the actix runtime's thread, so the work runs on
/// a thread of its own.
pub fn run_migrations(database_url: &str) -> Result<Vec<String>, MigrationError> {
    let url = database_url.to_owned();
    std::thread::spawn(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)?;
        diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .execute(&mut conn)?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| MigrationError::Run(e.to_string()));
        diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            .execute(&mut conn)?;
        applied
    })
    .join()
    .unwrap_or_else(|_| Err(MigrationError::Run("the migration thread panicked".into())))
}

diesel::define_sql_function! {
    /// SQL `lower(text)`: names and codes are unique whatever their case.
    fn lower(text: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// True when `error` is a unique-constraint violation on `constraint`.
pub fn violates(error: &diesel::result::Error, constraint: &str) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            info,
        ) if info.constraint_name() == Some(constraint)
    )
}

/// SQL for the current transaction's id as a bigint: what inbox rows record
/// as the moment they changed (see the `inbox_cursor` migration).
pub fn current_tx<ST: diesel::expression::TypedExpressionType>()
-> diesel::expression::SqlLiteral<ST> {
    diesel::dsl::sql::<ST>("pg_current_xact_id()::text::bigint")
}
