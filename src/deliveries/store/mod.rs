//! Every query of the service's on the `deliveries` table: a recipient's
//! inbox, the live inbox's catch-up (`replay`), the writer's transitions, fan-out
//! chunks, audiences that follow enrollment and what publishers see. Nothing outside this module names the
//! table, so the rules in `rules` (what is live, what is unread) hold
//! everywhere.

mod audiences;
mod fanout;
mod inbox;
mod publisher;
mod replay;
mod rules;
mod transitions;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

pub use audiences::{Reach, deliver_due, retract_left};
pub use fanout::{Chunk, NextChunk, fanout_chunk};
pub use inbox::{
    Among, Change, INBOX_COLUMNS, InboxRow, Unacknowledged, created_for, inbox, inbox_item,
    recipients_among, unacked_among, unread_count, unread_counts,
};
pub use publisher::{
    Reminded, StateCounts, ack_timeline, mark_reminded, not_acknowledged, section_figures,
    state_counts, unacked,
};
pub use replay::{Replay, replay};
pub use rules::{Live, Unread};
pub use transitions::{TransitionRow, reread, transition_batch};

use super::model::DeliveryState;
use crate::db::schema::deliveries;
use crate::error::AppError;
use crate::ids::{AnnouncementId, UserId};

/// Acknowledges `users`' deliveries of `announcement` in one statement, for
/// seeding; live transitions go through the delivery writer.
pub async fn acknowledge_now(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    users: &[UserId],
) -> Result<usize, AppError> {
    let now = Utc::now();
    Ok(diesel::update(deliveries::table)
        .filter(deliveries::announcement_id.eq(announcement))
        .filter(deliveries::user_id.eq_any(users))
        .set((
            deliveries::state.eq(DeliveryState::Acknowledged),
            deliveries::delivered_at.eq(now),
            deliveries::ack_at.eq(now),
        ))
        .execute(conn)
        .await?)
}

/// Deliveries by state, from the totals the table's triggers keep
/// (`delivery_counts`): a few rows, whatever the number of deliveries.
pub async fn counts_by_state(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(DeliveryState, i64)>, AppError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::Text)]
        state: DeliveryState,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rows: Vec<Count> =
        diesel::sql_query("SELECT state, sum(n)::bigint AS n FROM delivery_counts GROUP BY state")
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|row| (row.state, row.n)).collect())
}
