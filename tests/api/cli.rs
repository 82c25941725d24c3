//! The `classbell` command: configuration checks, migrate, create-user, demo;
//! and the migrations themselves.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use diesel::{Connection as _, RunQueryDsl as _};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::MigrationHarness;

use crate::helpers::{TestDatabase, redis_url};
use classbell::auth::password;
use classbell::users::model::Role;
use classbell::users::store;

fn classbell(database: &TestDatabase, args: &[&str], stdin: Option<&str>) -> Output {
    let outbox = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_classbell"))
        .args(args)
        .env("CLASSBELL_DATABASE_URL", database.url())
        .env("CLASSBELL_REDIS_URL", redis_url())
        .env("CLASSBELL_MAIL_OUTBOX", outbox.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run classbell");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn production_refuses_the_default_jwt_secret() {
    let output = Command::new(env!("CARGO_BIN_EXE_classbell"))
        .arg("migrate")
        .env("CLASSBELL_ENV", "production")
        .env_remove("CLASSBELL_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("CLASSBELL_JWT_SECRET"),
        "{}",
        text(&output.stderr)
    );

    let output = Command::new(env!("CARGO_BIN_EXE_classbell"))
        .arg("serve")
        .env("CLASSBELL_ENV", "production")
        .env("CLASSBELL_JWT_SECRET", "short")
        .output()
        .unwrap();
    assert!(!output.status.success(), "a short secret is refused too");
}

#[actix_web::test]
async fn create_user_reads_the_password_from_stdin_and_applies_the_rules() {
    let database = TestDatabase::migrated();
    let args = [
        "create-user",
        "--username",
        "principal",
        "--email",
        "principal@school.example",
        "--role",
        "admin",
        "--password-stdin",
    ];
    let weak = classbell(&database, &args, Some("password\n"));
    assert!(!weak.status.success());
    assert!(
        text(&weak.stderr).contains("password"),
        "{}",
        text(&weak.stderr)
    );

    let output = classbell(&database, &args, Some("Head-Of-School-99\n"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("created principal"));

    let pool = classbell::db::pool(&database.url(), 1, std::time::Duration::from_secs(5));
    let user = store::find_by_login(&mut pool.get().await.unwrap(), "principal")
        .await
        .unwrap()
        .expect("the account exists");
    assert_eq!(user.role, Role::Admin);
    assert!(password::verify(
        "Head-Of-School-99",
        user.password_hash.as_deref().unwrap()
    ));

    let again = classbell(&database, &args, Some("Head-Of-School-99\n"));
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already taken"));
}

#[actix_web::test]
async fn demo_seeds_the_school_once() {
    let database = TestDatabase::migrated();
    let first = classbell(&database, &["demo"], None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert!(
        stdout.contains("25 accounts created, 0 already there"),
        "{stdout}"
    );
    // The password the README gives for every demo account.
    assert!(stdout.contains("every demo account's password: Bell-Demo-2026!"));
    assert!(stdout.contains("student20"));

    assert!(
        stdout.contains("demo catalogue: 5 courses created"),
        "{stdout}"
    );

    let second = classbell(&database, &["demo"], None);
    let stdout = text(&second.stdout);
    assert!(
        stdout.contains("0 accounts created, 25 already there"),
        "{stdout}"
    );
    assert!(
        stdout.contains("demo catalogue: 0 courses created (5 in all)"),
        "{stdout}"
    );

    let pool = classbell::db::pool(&database.url(), 1, std::time::Duration::from_secs(5));
    let mut conn = pool.get().await.unwrap();
    for (role, expected) in [
        (Role::Admin, 1),
        (Role::Teacher, 2),
        (Role::Manager, 1),
        (Role::Registrar, 1),
        (Role::Student, 20),
    ] {
        let filter = store::UserFilter {
            q: None,
            role: Some(role),
        };
        let page = classbell::pagination::Page {
            limit: 100,
            offset: 0,
        };
        let (_, total) = store::list(&mut conn, &filter, page).await.unwrap();
        assert_eq!(total, expected, "{role}");
    }

    // The demo announcements reached their students, and some were acknowledged.
    let mut acknowledged = 0;
    for n in 1..=20 {
        let student = store::find_by_login(&mut conn, &format!("student{n:02}"))
            .await
            .unwrap()
            .unwrap();
        let page = classbell::pagination::Page {
            limit: 10,
            offset: 0,
        };
        let (inbox, total) = classbell::deliveries::store::inbox(&mut conn, student.id, None, page)
            .await
            .unwrap();
        assert!(total >= 1, "student{n:02} has announcements");
        acknowledged += inbox
            .iter()
            .filter(|item| item.state == classbell::deliveries::model::DeliveryState::Acknowledged)
            .count();
    }
    assert!(
        (5..40).contains(&acknowledged),
        "some, not all, acknowledged: {acknowledged}"
    );

    // Every demo student is enrolled somewhere, in a published section.
    for n in 1..=20 {
        let student = store::find_by_login(&mut conn, &format!("student{n:02}"))
            .await
            .unwrap()
            .unwrap();
        let filter = classbell::sections::store::SectionFilter {
            student: Some(student.id),
            status: Some(classbell::sections::model::SectionStatus::Published),
            ..Default::default()
        };
        let page = classbell::pagination::Page {
            limit: 10,
            offset: 0,
        };
        let (_, sections) = classbell::sections::store::list(&mut conn, &filter, page)
            .await
            .unwrap();
        assert!(sections >= 2, "student{n:02} is in {sections} sections");
    }
}

#[test]
fn nodes_migrating_at_once_take_turns() {
    let database = TestDatabase::empty();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_classbell"))
                .arg("migrate")
                .env("CLASSBELL_DATABASE_URL", database.url())
                .env("RUST_LOG", "warn")
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let url = database.url();
    let applied = std::thread::spawn(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).unwrap();
        conn.applied_migrations().unwrap().len()
    })
    .join()
    .unwrap();
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(applied, on_disk);
}

#[test]
fn every_migration_reverts_and_reapplies() {
    let database = TestDatabase::empty();
    let url = database.url();
    std::thread::spawn(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).unwrap();
        conn.run_pending_migrations(classbell::db::MIGRATIONS)
            .unwrap();
        conn.revert_all_migrations(classbell::db::MIGRATIONS)
            .unwrap();
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let left = diesel::sql_query(
            "SELECT count(*) AS n FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
        )
        .get_result::<Count>(&mut conn)
        .unwrap();
        assert_eq!(left.n, 0, "down migrations leave no table behind");
        conn.run_pending_migrations(classbell::db::MIGRATIONS)
            .unwrap();
    })
    .join()
    .unwrap();
}

/// The checked-in `schema.rs` matches what the migrations build: same
/// tables, same columns in the same order, same types and nullability.
#[test]
fn schema_rs_matches_the_migrations() {
    let database = TestDatabase::migrated();
    let url = database.url();
    let actual = std::thread::spawn(move || {
        #[derive(diesel::QueryableByName)]
        struct Column {
            #[diesel(sql_type = diesel::sql_types::Text)]
            table_name: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            column_name: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            udt_name: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            is_nullable: String,
        }
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).unwrap();
        let columns: Vec<Column> = diesel::sql_query(
            "SELECT table_name::text, column_name::text, udt_name::text, is_nullable::text \
             FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' \
             AND table_name IN (SELECT table_name FROM information_schema.tables \
                                WHERE table_schema = 'public' AND table_type = 'BASE TABLE') \
             ORDER BY table_name, ordinal_position",
        )
        .load(&mut conn)
        .unwrap();
        let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in columns {
            let base = match c.udt_name.as_str() {
                "int8" => "Int8",
                "int4" => "Int4",
                "int2" => "Int2",
                "text" | "varchar" => "Text",
                "bool" => "Bool",
                "timestamptz" => "Timestamptz",
                "uuid" => "Uuid",
                "bytea" => "Bytea",
                "jsonb" => "Jsonb",
                "numeric" => "Numeric",
                "float8" => "Float8",
                other => panic!("add {other} to the schema check"),
            };
            let ty = if c.is_nullable == "YES" {
                format!("Nullable<{base}>")
            } else {
                base.to_owned()
            };
            tables
                .entry(c.table_name)
                .or_default()
                .push(format!("{} -> {ty}", c.column_name));
        }
        tables
    })
    .join()
    .unwrap();

    let source = include_str!("../../src/db/schema.rs");
    let mut declared: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in source.lines().map(str::trim) {
        if let Some((name, _)) = line.split_once(" (").filter(|_| line.ends_with('{')) {
            current = Some(name.to_owned());
            declared.insert(name.to_owned(), Vec::new());
        } else if line == "}" {
            current = None;
        } else if let (Some(table), Some(column)) = (&current, line.strip_suffix(','))
            && column.contains("->")
        {
            declared.get_mut(table).unwrap().push(column.to_owned());
        }
    }
    assert_eq!(declared, actual);
}

#[test]
fn version_prints_the_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_classbell"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        text(&output.stdout).trim(),
        format!("classbell {}", env!("CARGO_PKG_VERSION"))
    );
}
