//! The delivery writer's statements: one batch of transitions, checked
//! against each caller's session and moved forward only (see `writer.rs`).

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{
    Array, BigInt, Bool, Nullable, Text, Timestamptz, Untyped, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::rules::{live_sql, unexpired_sql};
use crate::error::AppError;
use crate::ids::{AnnouncementId, DeliveryId, UserId};

/// How one request of a batch came out, in request order (`n` from 1).
#[derive(diesel::QueryableByName)]
pub struct TransitionRow {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
    #[diesel(sql_type = Bool)]
    pub session_live: bool,
    #[diesel(sql_type = Bool)]
    pub found: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub announcement_id: Option<AnnouncementId>,
    #[diesel(sql_type = Nullable<Text>)]
    pub state: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub delivered_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub ack_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    pub changed: bool,
    /// The change took the delivery off its recipient's unread count (it
    /// was acknowledged while unread: see `rules::unread_sql`).
    #[diesel(sql_type = Bool)]
    pub left_unread: bool,
}

/// The batch statement as a query of its own: `sql_query` text is planned
/// afresh on every call (diesel will not cache it), and planning this
/// statement costs as much as running it. A static query id lets
/// diesel-async keep it prepared on each pooled connection.
struct TransitionBatch<'a> {
    ids: &'a [DeliveryId],
    users: &'a [UserId],
    sessions: &'a [Uuid],
    targets: &'a [&'static str],
}

impl QueryId for TransitionBatch<'_> {
    type QueryId = TransitionBatch<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for TransitionBatch<'_> {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for TransitionBatch<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH r AS (SELECT * FROM unnest(");
        out.push_bind_param::<Array<BigInt>, _>(&self.ids)?;
        out.push_sql("::bigint[], ");
        out.push_bind_param::<Array<BigInt>, _>(&self.users)?;
        out.push_sql("::bigint[], ");
        out.push_bind_param::<Array<SqlUuid>, _>(&self.sessions)?;
        out.push_sql("::uuid[], ");
        out.push_bind_param::<Array<Text>, _>(&self.targets)?;
        out.push_sql("::text[])");
        out.push_sql(BATCH_SQL_AFTER_BINDS);
        Ok(())
    }
}

/// One statement for the whole batch. `v` says per request whether its
/// session is live; `ok` keeps the requests of live sessions for their own
/// live deliveries, with each delivery as it stood; `want` merges them per
/// delivery; `upd` moves each delivery forward once. The final SELECT
/// answers every request in order (PostgreSQL evaluates the snapshot before
/// `upd`, hence the COALESCEs), and says whether an acknowledgment took the
/// delivery off its recipient's badge, so the hub need not count it again.
///
/// Every lookup is a `LATERAL … LIMIT 1`, which PostgreSQL runs as one
/// index probe per request, and the update finds its rows by `id = ANY` of
/// the wanted ids, an index scan. Written as joins, the planner (which
/// cannot see how many requests an array holds) hashed whole tables
/// instead: each batch read every delivery, session and user there is, so
/// acknowledgments slowed as the school's tables grew (the update's join
/// alone read all 30,000 deliveries of the ack benchmark, 7 ms a batch).
const BATCH_SQL_AFTER_BINDS: &str = concat!(
    "
        WITH ORDINALITY AS r(id, user_id, session_id, target, n)
), v AS (
    SELECT r.*, (l.live IS NOT NULL) AS session_live FROM r
    LEFT JOIN LATERAL (
        SELECT true AS live FROM auth_sessions s JOIN users u ON u.id = s.user_id
        WHERE s.id = r.session_id AND s.user_id = r.user_id AND s.revoked_at IS NULL
          AND u.is_active
        LIMIT 1
    ) l ON true
), ok AS (
    SELECT v.n, v.id, v.target, d.announcement_id, d.state, d.delivered_at, d.ack_at, d.unexpired
    FROM v CROSS JOIN LATERAL (
        SELECT deliveries.announcement_id, deliveries.state, deliveries.delivered_at,
               deliveries.ack_at, ",
    unexpired_sql!(),
    " AS unexpired
        FROM deliveries
        JOIN announcements ON announcements.id = deliveries.announcement_id
        WHERE deliveries.id = v.id AND deliveries.user_id = v.user_id AND ",
    live_sql!(),
    "
        LIMIT 1
    ) d
    WHERE v.session_live
), want AS (
    SELECT id, max(CASE target WHEN 'acknowledged' THEN 2 ELSE 1 END) AS rank FROM ok GROUP BY id
), upd AS (
    UPDATE deliveries d SET
        state = CASE WHEN w.rank = 2 THEN 'acknowledged' ELSE 'delivered' END,
        delivered_at = COALESCE(d.delivered_at, now()),
        ack_at = CASE WHEN w.rank = 2 THEN now() ELSE d.ack_at END,
        changed_tx = pg_current_xact_id()::text::bigint
    FROM want w
    WHERE d.id = w.id AND d.id = ANY(ARRAY(SELECT id FROM want))
      AND (CASE d.state WHEN 'queued' THEN 0 WHEN 'delivered' THEN 1 ELSE 2 END) < w.rank
    RETURNING d.id, d.state, d.delivered_at, d.ack_at
)
SELECT v.n,
       v.session_live,
       (ok.n IS NOT NULL) AS found,
       ok.announcement_id,
       COALESCE(upd.state, ok.state) AS state,
       COALESCE(upd.delivered_at, ok.delivered_at) AS delivered_at,
       CASE WHEN upd.id IS NOT NULL THEN upd.ack_at ELSE ok.ack_at END AS ack_at,
       (upd.id IS NOT NULL) AS changed,
       COALESCE(upd.state = 'acknowledged' AND ok.state <> 'acknowledged' AND ok.unexpired, false)
           AS left_unread
FROM v
LEFT JOIN ok ON ok.n = v.n
LEFT JOIN upd ON upd.id = v.id
ORDER BY v.n"
);

/// Re-reads rows another node moved while this batch ran.
const REREAD_SQL: &str = "
SELECT 0::bigint AS n, true AS session_live, true AS found, announcement_id, state, delivered_at, ack_at,
       false AS changed, false AS left_unread
FROM deliveries WHERE id = $1";

/// Runs one batch: the requests are the parallel slices, answered in order.
pub async fn transition_batch(
    conn: &mut AsyncPgConnection,
    ids: &[DeliveryId],
    users: &[UserId],
    sessions: &[Uuid],
    targets: &[&'static str],
) -> Result<Vec<TransitionRow>, AppError> {
    let batch = TransitionBatch {
        ids,
        users,
        sessions,
        targets,
    };
    Ok(batch.load(conn).await?)
}

/// The delivery as it stands now (another node moved it while a batch ran).
pub async fn reread(
    conn: &mut AsyncPgConnection,
    id: DeliveryId,
) -> Result<TransitionRow, AppError> {
    Ok(diesel::sql_query(REREAD_SQL)
        .bind::<BigInt, _>(id)
        .get_result(conn)
        .await?)
}
