//! Queries on `announcements`: this file the rows themselves (create, read,
//! edit, publish, withdraw); `stats` the publisher's figures, `reminders`
//! the cooldown-guarded reminder, `fanouts` the lease queue fan-out claims
//! from, `steps` the escalation ladder's schedule. What touches deliveries
//! goes through the delivery store.

mod fanouts;
mod reminders;
mod stats;
pub mod steps;

pub use fanouts::{
    Claimed, claim_fanouts, fanout_attempts, fanout_backlog, fanout_failed, fanout_finished_at,
    release_fanout, set_fanout_target,
};
pub use reminders::{RemindRefused, remind_unacked, reminded_now};
pub use stats::stats;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::model::{
    Announcement, AnnouncementStatus, AnnouncementView, AudienceName, NewAnnouncement,
};
use crate::db::schema::announcements;
use crate::error::{AppError, FieldErrors};
use crate::ids::{AnnouncementId, UserId};
use crate::pagination::Page;
use crate::users::model::Role;

pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: NewAnnouncement,
) -> Result<Announcement, AppError> {
    Ok(diesel::insert_into(announcements::table)
        .values(&new)
        .returning(Announcement::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    id: AnnouncementId,
) -> Result<Announcement, AppError> {
    announcements::table
        .find(id)
        .select(Announcement::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("announcement"))
}

/// The announcement, for those who may follow it: its figures, who has not
/// acknowledged it (with their e-mails) and reminding them. That is staff,
/// and its publisher while they are a teacher; a publisher who is a student
/// now gets what everyone else gets, a 404, so nobody learns what others
/// publish. `role` is the caller's role now, not when they published.
pub async fn find_visible(
    conn: &mut AsyncPgConnection,
    id: AnnouncementId,
    user: UserId,
    role: Role,
) -> Result<Announcement, AppError> {
    let announcement = find(conn, id).await?;
    let follows = role.is_staff() || (role == Role::Teacher && announcement.publisher_id == user);
    if follows {
        Ok(announcement)
    } else {
        Err(AppError::NotFound("announcement"))
    }
}

/// Announcements, newest first; only `publisher`'s when given.
pub async fn list(
    conn: &mut AsyncPgConnection,
    publisher: Option<UserId>,
    status: Option<AnnouncementStatus>,
    page: Page,
) -> Result<(Vec<Announcement>, i64), AppError> {
    let filtered = || {
        let mut query = announcements::table.into_boxed();
        if let Some(publisher) = publisher {
            query = query.filter(announcements::publisher_id.eq(publisher));
        }
        if let Some(status) = status {
            query = query.filter(announcements::status.eq(status));
        }
        query
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(Announcement::as_select())
        .order(announcements::id.desc())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    Ok((items, total))
}

/// What an edit may change while the announcement is a draft or scheduled.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = announcements)]
pub struct AnnouncementChanges {
    pub title: Option<String>,
    pub body: Option<String>,
    pub audience_kind: Option<&'static str>,
    pub audience_id: Option<Option<i64>>,
    pub status: Option<AnnouncementStatus>,
    pub publish_at: Option<Option<DateTime<Utc>>>,
    pub ack_due_at: Option<Option<DateTime<Utc>>>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub escalation: Option<Option<String>>,
}

fn not_editable() -> AppError {
    AppError::conflict(
        "not_editable",
        "only draft and scheduled announcements can be edited or published",
        FieldErrors::new(),
    )
}

/// Applies `changes` if the announcement is still a draft or scheduled.
pub async fn update_unpublished(
    conn: &mut AsyncPgConnection,
    id: AnnouncementId,
    changes: AnnouncementChanges,
) -> Result<Announcement, AppError> {
    diesel::update(announcements::table.find(id))
        .filter(
            announcements::status
                .eq_any([AnnouncementStatus::Draft, AnnouncementStatus::Scheduled]),
        )
        .set((&changes, announcements::updated_at.eq(Utc::now())))
        .returning(Announcement::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(not_editable)
}

/// Publishes a draft or scheduled announcement now; publishing a published
/// one again changes nothing.
pub async fn publish(
    conn: &mut AsyncPgConnection,
    id: AnnouncementId,
) -> Result<Announcement, AppError> {
    let now = Utc::now();
    let published = diesel::update(announcements::table.find(id))
        .filter(
            announcements::status
                .eq_any([AnnouncementStatus::Draft, AnnouncementStatus::Scheduled]),
        )
        .set((
            announcements::status.eq(AnnouncementStatus::Published),
            announcements::published_at.eq(now),
            announcements::updated_at.eq(now),
        ))
        .returning(Announcement::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match published {
        Some(announcement) => Ok(announcement),
        None => {
            let current = find(conn, id).await?;
            if current.status == AnnouncementStatus::Published {
                Ok(current)
            } else {
                Err(not_editable())
            }
        }
    }
}

/// Withdraws the announcement (idempotent); `true` when this call did it.
/// A running fan-out sees the status at its next chunk and stops.
pub async fn withdraw(
    conn: &mut AsyncPgConnection,
    id: AnnouncementId,
) -> Result<(Announcement, bool), AppError> {
    let now = Utc::now();
    let withdrawn = diesel::update(announcements::table.find(id))
        .filter(announcements::status.ne(AnnouncementStatus::Withdrawn))
        .set((
            announcements::status.eq(AnnouncementStatus::Withdrawn),
            announcements::withdrawn_at.eq(now),
            announcements::withdrawn_tx.eq(crate::db::current_tx::<Nullable<BigInt>>()),
            announcements::updated_at.eq(now),
        ))
        .returning(Announcement::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match withdrawn {
        Some(announcement) => {
            steps::cancel_pending(conn, id).await?;
            Ok((announcement, true))
        }
        None => Ok((find(conn, id).await?, false)),
    }
}

/// Scheduled announcements whose time has come become published, each by
/// exactly one node (the UPDATE takes the row).
pub async fn publish_due(conn: &mut AsyncPgConnection) -> Result<Vec<AnnouncementId>, AppError> {
    let now = Utc::now();
    Ok(diesel::update(announcements::table)
        .filter(announcements::status.eq(AnnouncementStatus::Scheduled))
        .filter(announcements::publish_at.le(now))
        .set((
            announcements::status.eq(AnnouncementStatus::Published),
            announcements::published_at.eq(now),
            announcements::updated_at.eq(now),
        ))
        .returning(announcements::id)
        .get_results(conn)
        .await?)
}

/// The announcements as the API shows them, each with its audience's name
/// (one query for all of them).
pub async fn views(
    conn: &mut AsyncPgConnection,
    items: Vec<Announcement>,
) -> Result<Vec<AnnouncementView>, AppError> {
    let ids: Vec<AnnouncementId> = items.iter().map(|a| a.id).collect();
    let names: Vec<AudienceName> = diesel::sql_query(
        "SELECT a.id AS announcement_id, c.code AS course_code, c.title AS course_title,
                s.section_code, s.term
         FROM announcements a
         LEFT JOIN sections s ON a.audience_kind = 'section' AND s.id = a.audience_id
         JOIN courses c ON c.id = CASE a.audience_kind WHEN 'section' THEN s.course_id ELSE a.audience_id END
         WHERE a.id = ANY($1) AND a.audience_kind IN ('course', 'section')",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(&ids)
    .load(conn)
    .await?;
    Ok(items
        .into_iter()
        .map(|announcement| {
            let id = announcement.id;
            let mut view = AnnouncementView::from(announcement);
            view.audience_name = names.iter().find(|n| n.announcement_id == id).cloned();
            view
        })
        .collect())
}

/// One announcement as the API shows it (see [`views`]).
pub async fn view(
    conn: &mut AsyncPgConnection,
    announcement: Announcement,
) -> Result<AnnouncementView, AppError> {
    let mut views = views(conn, vec![announcement]).await?;
    views.pop().ok_or(AppError::NotFound("announcement"))
}
