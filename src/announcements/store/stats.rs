//! The figures a publisher watches: delivery counts and fan-out progress.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::announcements::model::{Announcement, AnnouncementStats, FanoutProgress};
use crate::db::schema::announcements;
use crate::deliveries::store as deliveries;
use crate::error::AppError;

pub async fn stats(
    conn: &mut AsyncPgConnection,
    announcement: &Announcement,
) -> Result<AnnouncementStats, AppError> {
    // Progress first: once it says finished, the counts below include every delivery.
    let fanout: Fanout = announcements::table
        .find(announcement.id)
        .select(Fanout::as_select())
        .first(conn)
        .await?;
    let row = deliveries::state_counts(conn, announcement.id).await?;
    Ok(AnnouncementStats {
        total: row.total,
        queued: row.queued,
        delivered: row.delivered,
        acknowledged: row.acknowledged,
        ack_rate: if row.total == 0 {
            0.0
        } else {
            row.acknowledged as f64 / row.total as f64
        },
        median_seconds_to_ack: row.median,
        reminders_sent: row.reminders_sent,
        fanout: fanout.into(),
    })
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = announcements, check_for_backend(diesel::pg::Pg))]
struct Fanout {
    fanout_target: Option<i32>,
    fanout_done: i32,
    fanout_finished_at: Option<DateTime<Utc>>,
}

impl From<Fanout> for FanoutProgress {
    fn from(f: Fanout) -> Self {
        FanoutProgress {
            target: f.fanout_target,
            done: f.fanout_done,
            finished: f.fanout_finished_at.is_some(),
            finished_at: f.fanout_finished_at,
        }
    }
}
