//! The escalation ladder's steps: planned when a due time is set, taken one
//! at a time under a row lock by whichever node looks first, and finished in
//! the same transaction as their work, so each runs once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use utoipa::ToSchema;

use crate::announcements::ladder::Ladder;
use crate::db::schema::escalation_steps;
use crate::error::AppError;
use crate::ids::AnnouncementId;

/// A step as stored.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = escalation_steps, check_for_backend(diesel::pg::Pg))]
pub struct StepRow {
    pub id: i64,
    #[schema(value_type = i64)]
    pub announcement_id: AnnouncementId,
    /// `in_app`, `mail`, `summary`, or `manual` (a publisher's "remind").
    pub channel: String,
    /// Seconds before the due time; `null` for manual reminders.
    pub offset_secs: Option<i64>,
    /// When the ladder puts it.
    pub planned_at: DateTime<Utc>,
    /// When it runs (later than planned when quiet hours deferred it).
    pub run_at: DateTime<Utc>,
    /// `pending`, `done`, `skipped` (its time was before publication) or
    /// `cancelled` (withdrawn or expired first).
    pub state: String,
    pub ran_at: Option<DateTime<Utc>>,
    /// Recipients reminded, or, for a summary, those still missing.
    pub reached: Option<i32>,
}

#[derive(Insertable)]
#[diesel(table_name = escalation_steps)]
struct NewStep {
    announcement_id: AnnouncementId,
    channel: &'static str,
    offset_secs: Option<i64>,
    planned_at: DateTime<Utc>,
    run_at: DateTime<Utc>,
    state: &'static str,
    ran_at: Option<DateTime<Utc>>,
    reached: Option<i32>,
}

/// Plans `ladder` against `due` afresh: pending steps go, and each rung not
/// already done is (re)planned. No due time, no steps.
pub async fn plan(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    due: Option<DateTime<Utc>>,
    ladder: &Ladder,
) -> Result<(), AppError> {
    diesel::delete(
        escalation_steps::table
            .filter(escalation_steps::announcement_id.eq(announcement))
            .filter(escalation_steps::state.eq("pending")),
    )
    .execute(conn)
    .await?;
    let Some(due) = due else {
        return Ok(());
    };
    let steps: Vec<NewStep> = ladder
        .steps()
        .iter()
        .map(|step| NewStep {
            announcement_id: announcement,
            channel: step.channel.as_str(),
            offset_secs: Some(step.before.num_seconds()),
            planned_at: due - step.before,
            run_at: due - step.before,
            state: "pending",
            ran_at: None,
            reached: None,
        })
        .collect();
    diesel::insert_into(escalation_steps::table)
        .values(&steps)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Withdrawal: what has not run never will.
pub async fn cancel_pending(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
) -> Result<(), AppError> {
    diesel::update(
        escalation_steps::table
            .filter(escalation_steps::announcement_id.eq(announcement))
            .filter(escalation_steps::state.eq("pending")),
    )
    .set(escalation_steps::state.eq("cancelled"))
    .execute(conn)
    .await?;
    Ok(())
}

/// The next step whose time has come, locked for this transaction; other
/// nodes skip it.
pub async fn take_due(conn: &mut AsyncPgConnection) -> Result<Option<StepRow>, AppError> {
    Ok(escalation_steps::table
        .filter(escalation_steps::state.eq("pending"))
        .filter(escalation_steps::run_at.le(Utc::now()))
        .order(escalation_steps::run_at)
        .select(StepRow::as_select())
        .for_update()
        .skip_locked()
        .first(conn)
        .await
        .optional()?)
}

/// Records how a step ended.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    id: i64,
    state: &str,
    reached: Option<i32>,
) -> Result<(), AppError> {
    diesel::update(escalation_steps::table.find(id))
        .set((
            escalation_steps::state.eq(state),
            escalation_steps::ran_at.eq(Utc::now()),
            escalation_steps::reached.eq(reached),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Quiet hours: the step waits until `until`.
pub async fn defer(
    conn: &mut AsyncPgConnection,
    id: i64,
    until: DateTime<Utc>,
) -> Result<(), AppError> {
    diesel::update(escalation_steps::table.find(id))
        .set(escalation_steps::run_at.eq(until))
        .execute(conn)
        .await?;
    Ok(())
}

/// A publisher's "remind", in the same history as the ladder's steps.
pub async fn record_manual(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    reached: usize,
) -> Result<(), AppError> {
    let now = Utc::now();
    diesel::insert_into(escalation_steps::table)
        .values(NewStep {
            announcement_id: announcement,
            channel: "manual",
            offset_secs: None,
            planned_at: now,
            run_at: now,
            state: "done",
            ran_at: Some(now),
            reached: Some(i32::try_from(reached).unwrap_or(i32::MAX)),
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// The announcement's ladder and reminders, in the order they were planned.
pub async fn history(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
) -> Result<Vec<StepRow>, AppError> {
    Ok(escalation_steps::table
        .filter(escalation_steps::announcement_id.eq(announcement))
        .order((escalation_steps::planned_at, escalation_steps::id))
        .select(StepRow::as_select())
        .load(conn)
        .await?)
}
