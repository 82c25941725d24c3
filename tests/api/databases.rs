//! Test databases: a migrated template built once per migration set, and a
//! fresh copy of it for every test. These run blocking diesel on threads of
//! their own, away from the tests' async runtimes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use diesel::{Connection as _, RunQueryDsl as _};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use classbell::db;

fn admin_url() -> String {
    std::env::var("CLASSBELL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced.
pub fn database_url(name: &str) -> String {
    let url = admin_url();
    let (base, _) = url
        .rsplit_once('/')
        .expect("CLASSBELL_TEST_DATABASE_URL has a database");
    format!("{base}/{name}")
}

/// Runs statements on the admin database from a thread of its own (the sync
/// wrapper brings its own runtime and must not run on the test's).
pub fn admin_sql(statements: Vec<String>) {
    std::thread::spawn(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&admin_url())
            .expect("connect to the test PostgreSQL (is ops/test running it?)");
        for statement in statements {
            diesel::sql_query(&statement)
                .execute(&mut conn)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    })
    .join()
    .expect("admin statements");
}

/// The template database with every migration applied, built once per
/// migration set and shared by every test process (an advisory lock keeps
/// concurrent builders apart).
fn template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("classbell_tpl_{}", migrations_fingerprint());
        let building = format!("{name}_building");
        let (name_, building_) = (name.clone(), building.clone());
        std::thread::spawn(move || {
            let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&admin_url())
                .expect("connect");
            diesel::sql_query("SELECT pg_advisory_lock(4242)")
                .execute(&mut conn)
                .expect("lock");
            #[derive(diesel::QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let exists = diesel::sql_query(format!(
                "SELECT count(*) AS n FROM pg_database WHERE datname = '{name_}'"
            ))
            .get_result::<Count>(&mut conn)
            .expect("query")
            .n > 0;
            if !exists {
                for statement in [
                    format!("DROP DATABASE IF EXISTS {building_} WITH (FORCE)"),
                    format!("CREATE DATABASE {building_}"),
                ] {
                    diesel::sql_query(statement)
                        .execute(&mut conn)
                        .expect("create template");
                }
                db::run_migrations(&database_url(&building_)).expect("migrate the template");
                diesel::sql_query(format!("ALTER DATABASE {building_} RENAME TO {name_}"))
                    .execute(&mut conn)
                    .expect("publish the template");
            }
            diesel::sql_query("SELECT pg_advisory_unlock(4242)")
                .execute(&mut conn)
                .expect("unlock");
        })
        .join()
        .expect("template thread");
        name
    })
}

fn migrations_fingerprint() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<PathBuf> = walk(&dir);
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(
            file.strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.update(std::fs::read(&file).unwrap());
    }
    hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// A database of the test's own; dropped with it.
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    /// A fresh copy of the migrated template.
    pub fn migrated() -> Self {
        let template = template();
        let name = format!("classbell_test_{}", Uuid::new_v4().simple());
        admin_sql(vec![format!("CREATE DATABASE {name} TEMPLATE {template}")]);
        TestDatabase { name }
    }

    /// An empty database, for migration tests.
    pub fn empty() -> Self {
        let name = format!("classbell_test_{}", Uuid::new_v4().simple());
        admin_sql(vec![format!("CREATE DATABASE {name}")]);
        TestDatabase { name }
    }

    pub fn url(&self) -> String {
        database_url(&self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin_sql(vec![format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )]);
    }
}
