//! A websocket's catch-up as one statement: the cursor, the unread badge and
//! every inbox change since the client's cursor. A reconnect storm brings
//! tens of thousands of these at once; as five round trips (cursor, changes,
//! withdrawals, retractions, badge) they were most of what PostgreSQL did.
//! One statement also reads everything in one snapshot, the one the cursor
//! is taken from.

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Int4, Nullable, SmallInt, Text, Timestamptz, Untyped};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::inbox::{Change, inbox_item};
use super::rules::{live_sql, unread_sql};
use crate::deliveries::model::DeliveryState;
use crate::error::AppError;
use crate::ids::{AnnouncementId, DeliveryId, UserId};

/// What changed in `user`'s inbox since a cursor, read in one snapshot.
pub struct Replay {
    /// The snapshot's xmin: everything below it is in this read.
    pub cursor: i64,
    /// Unread deliveries now, when asked for.
    pub unread: Option<i64>,
    /// Live deliveries changed at or after the cursor, in commit order (at
    /// most `limit` of them).
    pub changes: Vec<Change>,
    /// Announcements that left the inbox at or after the cursor (withdrawn,
    /// or the delivery retracted), with that transaction (at most `limit`
    /// withdrawals and `limit` retractions).
    pub gone: Vec<(AnnouncementId, i64)>,
}

/// One row of the statement: `part` 0 is the cursor and badge, 1 a changed
/// delivery, 2 an announcement gone.
#[derive(diesel::QueryableByName)]
struct ReplayRow {
    #[diesel(sql_type = SmallInt)]
    part: i16,
    #[diesel(sql_type = BigInt)]
    tx: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    created_tx: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    unread: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<DeliveryId>,
    #[diesel(sql_type = Nullable<Text>)]
    state: Option<DeliveryState>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    delivered_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    ack_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Int4>)]
    retry_count: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    announcement_id: Option<AnnouncementId>,
    #[diesel(sql_type = Nullable<Text>)]
    title: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    body: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    publisher: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    publisher_name: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    published_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    ack_due_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
}

/// The statement as a query of its own, so that each pooled connection keeps
/// it prepared (as `TransitionBatch` does).
struct ReplayQuery {
    user: UserId,
    since: i64,
    limit: i64,
    count_unread: bool,
}

impl QueryId for ReplayQuery {
    type QueryId = ReplayQuery;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for ReplayQuery {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for ReplayQuery {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut parts = REPLAY_SQL.split('$');
        out.push_sql(parts.next().unwrap_or_default());
        for part in parts {
            // `$u`, `$s`, `$c` and `$l` stand for the user, `since`, whether
            // to count the unread and the limit.
            let (bind, rest) = part.split_at(1);
            match bind {
                "u" => out.push_bind_param::<BigInt, _>(&self.user)?,
                "s" => out.push_bind_param::<BigInt, _>(&self.since)?,
                "c" => out.push_bind_param::<Bool, _>(&self.count_unread)?,
                _ => out.push_bind_param::<BigInt, _>(&self.limit)?,
            }
            out.push_sql(rest);
        }
        Ok(())
    }
}

/// Each CTE is one of the reads the catch-up used to make, bounded by the
/// limit and served by its index (`deliveries_user_changed_idx`,
/// `announcements_withdrawn_idx`, `deliveries_user_unread_idx`). The unread
/// count reads every unread delivery the student has, so it is made only
/// when asked for (PostgreSQL runs a subquery in a `CASE` branch only when
/// that branch is taken): a checkpoint rarely needs it.
const REPLAY_SQL: &str = concat!(
    "WITH changed AS (
    SELECT deliveries.id, deliveries.state, deliveries.delivered_at, deliveries.ack_at,
           deliveries.retry_count, announcements.id AS announcement_id, announcements.title,
           announcements.body, users.username AS publisher, users.display_name AS publisher_name,
           announcements.published_at, announcements.ack_due_at, announcements.expires_at,
           deliveries.created_tx, deliveries.changed_tx
    FROM deliveries
    JOIN announcements ON announcements.id = deliveries.announcement_id
    JOIN users ON users.id = announcements.publisher_id
    WHERE deliveries.user_id = $u AND deliveries.changed_tx >= $s AND ",
    live_sql!(),
    "
    ORDER BY deliveries.changed_tx, deliveries.id
    LIMIT $l
), withdrawn AS (
    SELECT announcements.id AS announcement_id, announcements.withdrawn_tx AS tx
    FROM announcements
    JOIN deliveries ON deliveries.announcement_id = announcements.id
    WHERE deliveries.user_id = $u AND announcements.status = 'withdrawn'
      AND announcements.withdrawn_tx >= $s
    ORDER BY announcements.withdrawn_tx, announcements.id
    LIMIT $l
), retracted AS (
    SELECT deliveries.announcement_id, deliveries.changed_tx AS tx
    FROM deliveries
    WHERE deliveries.user_id = $u AND deliveries.retracted_at IS NOT NULL
      AND deliveries.changed_tx >= $s
    ORDER BY deliveries.changed_tx, deliveries.id
    LIMIT $l
)
SELECT 0::smallint AS part, pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS tx,
       NULL::bigint AS created_tx,
       CASE WHEN $c THEN (SELECT count(*) FROM deliveries
          JOIN announcements ON announcements.id = deliveries.announcement_id
         WHERE deliveries.user_id = $u AND ",
    unread_sql!(),
    ") END AS unread,
       NULL::bigint AS id, NULL::text AS state, NULL::timestamptz AS delivered_at,
       NULL::timestamptz AS ack_at, NULL::int4 AS retry_count, NULL::bigint AS announcement_id,
       NULL::text AS title, NULL::text AS body, NULL::text AS publisher,
       NULL::text AS publisher_name, NULL::timestamptz AS published_at,
       NULL::timestamptz AS ack_due_at, NULL::timestamptz AS expires_at
UNION ALL
SELECT 1::smallint, changed_tx, created_tx, NULL, id, state, delivered_at, ack_at, retry_count,
       announcement_id, title, body, publisher, publisher_name, published_at, ack_due_at,
       expires_at
FROM changed
UNION ALL
SELECT 2::smallint, tx, NULL, NULL, NULL, NULL, NULL, NULL, NULL, announcement_id,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM (SELECT * FROM withdrawn UNION ALL SELECT * FROM retracted) gone"
);

/// `user`'s inbox changes in transaction `since` or later, at most
/// `limit` of each kind, with the cursor and (with `count_unread`) the
/// badge; `since` of `None` reads only the cursor and badge.
pub async fn replay(
    conn: &mut AsyncPgConnection,
    user: UserId,
    since: Option<i64>,
    limit: i64,
    count_unread: bool,
) -> Result<Replay, AppError> {
    let query = ReplayQuery {
        user,
        // No transaction id is this large: the reads find nothing.
        since: since.unwrap_or(i64::MAX),
        limit,
        count_unread,
    };
    let rows: Vec<ReplayRow> = query.load(conn).await?;
    let mut replay = Replay {
        cursor: 0,
        unread: None,
        changes: Vec::new(),
        gone: Vec::new(),
    };
    for row in rows {
        match row.part {
            0 => {
                replay.cursor = row.tx;
                replay.unread = row.unread;
            }
            1 => {
                if let Some(change) = change(row) {
                    replay.changes.push(change);
                }
            }
            _ => {
                if let Some(announcement) = row.announcement_id {
                    replay.gone.push((announcement, row.tx));
                }
            }
        }
    }
    Ok(replay)
}

/// A changed delivery's row as the item the inbox shows (every column of
/// part 1 is set: they come from NOT NULL columns or stay as stored).
fn change(row: ReplayRow) -> Option<Change> {
    let item = inbox_item((
        (
            row.id?,
            row.state?,
            row.delivered_at,
            row.ack_at,
            row.retry_count?,
        ),
        (
            row.announcement_id?,
            row.title?,
            row.body?,
            row.publisher?,
            row.publisher_name?,
            row.published_at,
            row.ack_due_at,
            row.expires_at,
        ),
    ));
    Some(Change {
        item,
        created_tx: row.created_tx?,
        changed_tx: row.tx,
    })
}
