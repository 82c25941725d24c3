//! A publisher's reminder: at most one per cooldown, across nodes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::announcements::model::AnnouncementStatus;
use crate::db::schema::announcements;
use crate::deliveries::store::{self as deliveries, Reminded};
use crate::error::AppError;
use crate::ids::AnnouncementId;

/// Why a reminder was refused.
pub enum RemindRefused {
    NotPublished,
    CoolingDown { retry_after_secs: u64 },
}

/// Takes the reminder slot (one per cooldown, across nodes) and bumps every
/// unacknowledged delivery, in one transaction.
pub async fn remind_unacked(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
    cooldown_secs: u64,
) -> Result<Result<Vec<Reminded>, RemindRefused>, AppError> {
    let cooldown = i64::try_from(cooldown_secs).unwrap_or(i64::MAX / 2);
    conn.transaction(async |conn| {
        let now = Utc::now();
        let slot =
            diesel::update(announcements::table.find(announcement))
                .filter(announcements::status.eq(AnnouncementStatus::Published))
                .filter(announcements::last_reminded_at.is_null().or(
                    announcements::last_reminded_at.le(now - chrono::Duration::seconds(cooldown)),
                ))
                .set(announcements::last_reminded_at.eq(now))
                .execute(conn)
                .await?;
        if slot == 0 {
            let current: (AnnouncementStatus, Option<DateTime<Utc>>) = announcements::table
                .find(announcement)
                .select((announcements::status, announcements::last_reminded_at))
                .first(conn)
                .await?;
            return Ok(match current {
                (AnnouncementStatus::Published, Some(last)) => {
                    let waited = (now - last).num_seconds().max(0);
                    Err(RemindRefused::CoolingDown {
                        retry_after_secs: u64::try_from(cooldown - waited).unwrap_or(1).max(1),
                    })
                }
                _ => Err(RemindRefused::NotPublished),
            });
        }
        Ok(Ok(deliveries::mark_reminded(conn, announcement).await?))
    })
    .await
}

/// A ladder step reminded: the manual cooldown counts from it too.
pub async fn reminded_now(
    conn: &mut AsyncPgConnection,
    announcement: AnnouncementId,
) -> Result<(), AppError> {
    diesel::update(announcements::table.find(announcement))
        .set(announcements::last_reminded_at.eq(Utc::now()))
        .execute(conn)
        .await?;
    Ok(())
}
