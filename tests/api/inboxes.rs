//! A full inbox: a student with a year of announcements is read at the cost
//! of what a page, a badge or a reconnect returns, not of everything they
//! ever received. (A 10-minute soak slowed as inboxes filled: each of these
//! reads walked every delivery the student had.) Likewise a batch of
//! acknowledgments reads its own rows, however full the tables.

use classbell::deliveries::store;
use classbell::ids::UserId;
use classbell::pagination::Page;
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::helpers::TestApp;

/// Deliveries the target student has: all but three acknowledged, one of
/// an announcement since withdrawn.
const INBOX: i64 = 4_000;

#[derive(QueryableByName)]
struct Fetched {
    #[diesel(sql_type = BigInt)]
    rows: i64,
}

/// Delivery rows this transaction has read from the table's heap so far
/// (sequential reads and index fetches; an index-only read costs none).
async fn rows_read(conn: &mut AsyncPgConnection) -> i64 {
    rows_read_of(conn, "deliveries").await
}

#[actix_web::test]
async fn a_full_inbox_is_read_at_the_cost_of_what_is_shown() {
    let app = TestApp::spawn().await;
    app.bulk_students("reader", 1).await;
    app.bulk_students("classmate", 1_000).await;
    // A year of announcements for one student; the school's others share
    // fifty, so the table is mostly other people's deliveries. Written
    // directly, as fanned out already.
    app.sql(&format!(
        "INSERT INTO announcements \
             (title, body, audience_kind, publisher_id, status, published_at, fanout_finished_at) \
         SELECT 'Notice ' || g, 'Read me.', 'all_students', \
                (SELECT id FROM users WHERE username = 'reader1'), 'published', now(), now() \
         FROM generate_series(1, {INBOX}) g"
    ))
    .await;
    for whose in [
        "u.username LIKE 'classmate%' AND a.id % 80 = 0",
        "u.username = 'reader1'",
    ] {
        app.sql(&format!(
            "INSERT INTO deliveries (announcement_id, user_id, state, delivered_at, ack_at) \
             SELECT a.id, u.id, 'acknowledged', now(), now() FROM announcements a, users u \
             WHERE {whose} ORDER BY a.id, u.id"
        ))
        .await;
    }
    app.sql(
        "UPDATE deliveries SET state = 'delivered', ack_at = NULL, \
             changed_tx = pg_current_xact_id()::text::bigint \
         WHERE user_id = (SELECT id FROM users WHERE username = 'reader1') \
           AND announcement_id IN (SELECT max(id) - g FROM announcements, generate_series(0, 2) g GROUP BY g)",
    )
    .await;
    app.sql(
        "UPDATE announcements SET status = 'withdrawn', withdrawn_at = now(), \
         withdrawn_tx = pg_current_xact_id()::text::bigint WHERE id = (SELECT min(id) FROM announcements)",
    )
    .await;
    // As autovacuum leaves a table between bursts of writes.
    app.sql("VACUUM ANALYZE deliveries").await;
    app.sql("VACUUM ANALYZE announcements").await;

    let mut conn = AsyncPgConnection::establish(&app.settings.database.url)
        .await
        .unwrap();
    let reader: UserId =
        diesel::sql_query("SELECT id AS rows FROM users WHERE username = 'reader1'")
            .get_result::<Fetched>(&mut conn)
            .await
            .unwrap()
            .rows
            .into();
    diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
    let cursor: i64 = diesel::sql_query("SELECT max(changed_tx) AS rows FROM deliveries")
        .get_result::<Fetched>(&mut conn)
        .await
        .unwrap()
        .rows;

    let before = rows_read(&mut conn).await;
    let page = Page {
        limit: 20,
        offset: 0,
    };
    let (items, total) = store::inbox(&mut conn, reader, None, page).await.unwrap();
    let page_cost = rows_read(&mut conn).await - before;
    assert_eq!(total, INBOX - 1, "everything but the withdrawn one");
    assert_eq!(items.len(), 20);
    assert!(items.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let before = rows_read(&mut conn).await;
    let unread = store::unread_count(&mut conn, reader).await.unwrap();
    let badge_cost = rows_read(&mut conn).await - before;
    assert_eq!(unread, 3);

    let before = rows_read(&mut conn).await;
    let replay = store::replay(&mut conn, reader, Some(cursor), 201, true)
        .await
        .unwrap();
    let replay_cost = rows_read(&mut conn).await - before;
    assert_eq!(
        replay.changes.len(),
        3,
        "only what its last transaction changed (cursor {cursor})"
    );
    assert_eq!(
        replay.gone.len(),
        1,
        "the withdrawal, committed after the cursor"
    );
    assert_eq!(replay.unread, Some(3), "the badge comes with the replay");
    // A checkpoint's read: the same changes, without counting the badge.
    let before = rows_read(&mut conn).await;
    let checkpoint = store::replay(&mut conn, reader, Some(cursor), 201, false)
        .await
        .unwrap();
    let checkpoint_cost = rows_read(&mut conn).await - before;
    assert_eq!(checkpoint.changes.len(), 3);
    assert_eq!(checkpoint.gone.len(), 1);
    // The cursor is the snapshot's horizon, which any transaction on the
    // server (another test's, in another database) may move between the reads.
    assert!(
        checkpoint.cursor >= replay.cursor,
        "a later read's cursor is never behind: {} against {}",
        checkpoint.cursor,
        replay.cursor
    );
    assert_eq!(
        checkpoint.unread, None,
        "a checkpoint goes without the badge"
    );
    assert!(
        checkpoint_cost + 3 <= replay_cost,
        "without the badge the read skips its 3 unread deliveries: \
         {checkpoint_cost} rows against {replay_cost}"
    );
    // A first hello: only the cursor and the badge.
    let hello = store::replay(&mut conn, reader, None, 201, true)
        .await
        .unwrap();
    assert!(hello.changes.is_empty() && hello.gone.is_empty());
    assert_eq!(hello.unread, Some(3));

    // Generous bounds: a handful of rows beyond what each returns, where
    // walking the inbox costs its 4,000.
    assert!(
        page_cost <= 100,
        "an inbox page read {page_cost} deliveries"
    );
    assert!(
        badge_cost <= 50,
        "the unread badge read {badge_cost} deliveries"
    );
    assert!(replay_cost <= 50, "a replay read {replay_cost} deliveries");
}

/// Rows of `table` this transaction has read from its heap so far.
async fn rows_read_of(conn: &mut AsyncPgConnection, table: &str) -> i64 {
    diesel::sql_query(format!(
        "SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::bigint AS rows \
         FROM pg_stat_xact_user_tables WHERE relname = '{table}'"
    ))
    .get_result::<Fetched>(conn)
    .await
    .unwrap()
    .rows
}

/// A batch of acknowledgments reads its own deliveries, sessions and users,
/// not the tables. (Written as joins, the batch statement hashed every
/// delivery there was to answer 500 requests: acknowledgments slowed as the
/// school's tables grew.)
#[actix_web::test]
async fn a_batch_of_acknowledgments_reads_only_its_own_rows() {
    let app = TestApp::spawn().await;
    app.bulk_students("pupil", 2_000).await;
    app.sql(
        "INSERT INTO announcements \
             (title, body, audience_kind, publisher_id, status, published_at, fanout_finished_at) \
         SELECT 'Notice ' || g, 'Read me.', 'all_students', \
                (SELECT min(id) FROM users), 'published', now(), now() \
         FROM generate_series(1, 25) g",
    )
    .await;
    app.sql(
        "INSERT INTO deliveries (announcement_id, user_id) \
         SELECT a.id, u.id FROM announcements a, users u ORDER BY a.id, u.id",
    )
    .await;
    app.sql("INSERT INTO auth_sessions (id, user_id) SELECT gen_random_uuid(), id FROM users")
        .await;
    for table in ["deliveries", "auth_sessions", "users", "announcements"] {
        app.sql(&format!("VACUUM ANALYZE {table}")).await;
    }

    #[derive(QueryableByName)]
    struct Request {
        #[diesel(sql_type = BigInt)]
        delivery: i64,
        #[diesel(sql_type = BigInt)]
        user: i64,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        session: uuid::Uuid,
    }
    let mut conn = AsyncPgConnection::establish(&app.settings.database.url)
        .await
        .unwrap();
    // 500 pupils acknowledge one notice each.
    let requests: Vec<Request> = diesel::sql_query(
        "SELECT d.id AS delivery, d.user_id AS user, s.id AS session \
         FROM deliveries d JOIN auth_sessions s ON s.user_id = d.user_id \
         WHERE d.announcement_id = (SELECT max(id) FROM announcements) \
         ORDER BY d.user_id LIMIT 500",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let ids: Vec<_> = requests.iter().map(|r| r.delivery.into()).collect();
    let users: Vec<_> = requests.iter().map(|r| r.user.into()).collect();
    let sessions: Vec<_> = requests.iter().map(|r| r.session).collect();
    let targets = vec!["acknowledged"; requests.len()];

    diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
    let tables = ["deliveries", "auth_sessions", "users"];
    let mut before = Vec::new();
    for table in tables {
        before.push(rows_read_of(&mut conn, table).await);
    }
    let rows = store::transition_batch(&mut conn, &ids, &users, &sessions, &targets)
        .await
        .unwrap();
    assert_eq!(rows.len(), 500);
    assert!(
        rows.iter().all(|row| row.session_live
            && row.found
            && row.changed
            && row.state.as_deref() == Some("acknowledged")
            && row.ack_at.is_some()),
        "every request moved its delivery"
    );
    for (table, before) in tables.into_iter().zip(before) {
        let read = rows_read_of(&mut conn, table).await - before;
        // Each request reads its own rows, a few times over at most: the
        // tables hold 52,000 deliveries and 2,000 users and sessions.
        assert!(
            read <= 4 * 500,
            "a batch of 500 read {read} rows of {table}"
        );
    }
    diesel::sql_query("COMMIT")
        .execute(&mut conn)
        .await
        .unwrap();
}
