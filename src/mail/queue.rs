//! The mail queue in PostgreSQL: a mail is a row written in the transaction
//! that caused it, taken by one node's mailer at a time (a lease, so a node
//! that dies mid-send leaves it to another), and marked sent, retried later
//! or failed for good.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::mail_queue;
use crate::error::AppError;

/// A mail ready to go: its whole text and what the queue shows of it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_queue)]
pub struct NewMail {
    pub message_id: String,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub message: Vec<u8>,
}

/// A mail a mailer has taken to send.
#[derive(Debug, Clone, QueryableByName)]
#[diesel(table_name = mail_queue)]
pub struct Taken {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub message: Vec<u8>,
    pub attempts: i32,
}

/// What an admin sees of a mail: never its text, which may hold a one-time link.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = mail_queue)]
pub struct QueuedMail {
    pub id: i64,
    pub message_id: String,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    /// `queued`, `sending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The queue's states, as the metrics and the admin's list name them.
pub const STATES: &[&str] = &["queued", "sending", "sent", "failed"];

pub async fn enqueue(conn: &mut AsyncPgConnection, mails: &[NewMail]) -> Result<(), AppError> {
    if mails.is_empty() {
        return Ok(());
    }
    diesel::insert_into(mail_queue::table)
        .values(mails)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes up to `limit` mails that are due (or whose sender's lease ran out)
/// for `lease_secs`, counting the attempt; other nodes skip what is taken.
pub async fn take(
    conn: &mut AsyncPgConnection,
    limit: i64,
    lease_secs: i64,
) -> Result<Vec<Taken>, AppError> {
    // One statement: the rows are locked, skipped by other takers, and leased.
    Ok(diesel::sql_query(
        "UPDATE mail_queue SET state = 'sending', attempts = attempts + 1, \
             lease_until = now() + make_interval(secs => $2) \
         WHERE id IN (SELECT id FROM mail_queue \
             WHERE (state = 'queued' AND next_attempt_at <= now()) \
                OR (state = 'sending' AND lease_until < now()) \
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, kind, recipient, message, attempts",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .bind::<diesel::sql_types::Double, _>(lease_secs as f64)
    .load(conn)
    .await?)
}

/// The relay has it: the text goes (it may hold a one-time link), the record stays.
pub async fn sent(conn: &mut AsyncPgConnection, id: i64) -> Result<(), AppError> {
    diesel::update(mail_queue::table.find(id))
        .set((
            mail_queue::state.eq("sent"),
            mail_queue::sent_at.eq(Utc::now()),
            mail_queue::lease_until.eq(None::<DateTime<Utc>>),
            mail_queue::message.eq(Vec::<u8>::new()),
            mail_queue::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Not sent this time: tried again at `retry_at`, or, with `None`, failed for good.
pub async fn not_sent(
    conn: &mut AsyncPgConnection,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), AppError> {
    let error: String = error.chars().take(500).collect();
    let state = if retry_at.is_some() {
        "queued"
    } else {
        "failed"
    };
    diesel::update(mail_queue::table.find(id))
        .set((
            mail_queue::state.eq(state),
            mail_queue::next_attempt_at.eq(retry_at.unwrap_or_else(Utc::now)),
            mail_queue::lease_until.eq(None::<DateTime<Utc>>),
            mail_queue::last_error.eq(error),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The mails in `state`, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    state: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<QueuedMail>, i64), AppError> {
    let items = mail_queue::table
        .filter(mail_queue::state.eq(state))
        .order(mail_queue::id.desc())
        .limit(limit)
        .offset(offset)
        .select(QueuedMail::as_select())
        .load(conn)
        .await?;
    let total = mail_queue::table
        .filter(mail_queue::state.eq(state))
        .count()
        .get_result(conn)
        .await?;
    Ok((items, total))
}

/// A failed mail queued again from its first attempt; `None` when there is
/// no failed mail `id` (sent mails no longer hold their text).
pub async fn resend(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<QueuedMail>, AppError> {
    Ok(diesel::update(mail_queue::table.find(id))
        .filter(mail_queue::state.eq("failed"))
        .set((
            mail_queue::state.eq("queued"),
            mail_queue::attempts.eq(0),
            mail_queue::next_attempt_at.eq(Utc::now()),
            mail_queue::last_error.eq(None::<String>),
        ))
        .returning(QueuedMail::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// The queue's shape for the metrics: mails per state (sent ones left out,
/// they only pile up) and the age of the oldest mail waiting.
pub async fn census(conn: &mut AsyncPgConnection) -> Result<(Vec<(String, i64)>, f64), AppError> {
    let counts = mail_queue::table
        .filter(mail_queue::state.ne("sent"))
        .group_by(mail_queue::state)
        .select((mail_queue::state, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    let oldest: Option<DateTime<Utc>> = mail_queue::table
        .filter(mail_queue::state.eq_any(["queued", "sending"]))
        .select(diesel::dsl::min(mail_queue::created_at))
        .first(conn)
        .await?;
    let age = oldest.map_or(0.0, |at| {
        (Utc::now() - at).num_milliseconds() as f64 / 1000.0
    });
    Ok((counts, age.max(0.0)))
}

/// Forgets sent mails older than `days`.
pub async fn forget_sent(conn: &mut AsyncPgConnection, days: i64) -> Result<usize, AppError> {
    let before = Utc::now() - chrono::Duration::days(days);
    Ok(diesel::delete(
        mail_queue::table
            .filter(mail_queue::state.eq("sent"))
            .filter(mail_queue::sent_at.lt(before)),
    )
    .execute(conn)
    .await?)
}
