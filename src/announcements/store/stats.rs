//! The figures a publisher watches: delivery counts and fan-out progress.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::announcements::model::{
    AckTimeline, Announcement, AnnouncementStats, DeadlineFigures, FanoutProgress,
};
use crate::db::schema::announcements;
use crate::deliveries::store as deliveries;
use crate::error::AppError;

/// Points a timeline is cut into, about.
const TIMELINE_POINTS: i64 = 50;

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
    let by_section = deliveries::section_figures(conn, announcement.id).await?;
    let elapsed_seconds = announcement
        .published_at
        .map_or(0, |at| (Utc::now() - at).num_seconds().max(0));
    // About fifty points whatever the age, never finer than ten seconds.
    let bucket_seconds = (elapsed_seconds / TIMELINE_POINTS).max(10);
    let points = deliveries::ack_timeline(conn, announcement.id, bucket_seconds).await?;
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
        by_section,
        timeline: AckTimeline {
            elapsed_seconds,
            bucket_seconds,
            points,
        },
        deadline: announcement.ack_due_at.map(|ack_due_at| DeadlineFigures {
            ack_due_at,
            on_time: row.on_time,
            late: row.late,
            missing: row.missing,
        }),
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
