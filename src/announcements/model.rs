//! Announcement rows and what the API shows of them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::audience::Audience;
use crate::db::schema::announcements;
use crate::ids::{AnnouncementId, DeliveryId, UserId};

crate::text_enum! {
    pub enum AnnouncementStatus {
        Draft => "draft",
        Scheduled => "scheduled",
        Published => "published",
        Withdrawn => "withdrawn",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = announcements, check_for_backend(diesel::pg::Pg))]
pub struct Announcement {
    pub id: AnnouncementId,
    pub title: String,
    pub body: String,
    pub audience_kind: String,
    pub audience_id: Option<i64>,
    pub publisher_id: UserId,
    pub status: AnnouncementStatus,
    pub publish_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub fanout_target: Option<i32>,
    pub fanout_done: i32,
    pub fanout_finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ack_due_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The announcement's own ladder; `None` for the school's.
    pub escalation: Option<String>,
}

impl Announcement {
    pub fn audience(&self) -> Audience {
        Audience::from_columns(&self.audience_kind, self.audience_id)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = announcements)]
pub struct NewAnnouncement {
    pub title: String,
    pub body: String,
    pub audience_kind: &'static str,
    pub audience_id: Option<i64>,
    pub publisher_id: UserId,
    pub status: AnnouncementStatus,
    pub publish_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    pub ack_due_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub escalation: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FanoutProgress {
    /// Recipients when the fan-out started.
    pub target: Option<i32>,
    /// Deliveries written so far.
    pub done: i32,
    pub finished: bool,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A course or section audience by name.
#[derive(Debug, Clone, Serialize, ToSchema, QueryableByName)]
pub struct AudienceName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub course_code: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub course_title: String,
    /// For a section audience.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub section_code: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub term: Option<String>,
    /// The announcement it names (not serialised).
    #[serde(skip)]
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub announcement_id: AnnouncementId,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnnouncementView {
    pub id: AnnouncementId,
    pub title: String,
    pub body: String,
    pub audience: Audience,
    /// What the audience is called: its course (and section), so a page
    /// shows names, not ids; `null` for all students.
    pub audience_name: Option<AudienceName>,
    pub publisher_id: UserId,
    pub status: AnnouncementStatus,
    pub publish_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// Acknowledge by then; the escalation ladder counts back from it.
    pub ack_due_at: Option<DateTime<Utc>>,
    /// After this it no longer matters: it leaves the unread count and
    /// pending reminders are dropped.
    pub expires_at: Option<DateTime<Utc>>,
    /// The announcement's own ladder (`in_app@24h,mail@2h,summary@0s`);
    /// `null` when it follows the school's (`CLASSBELL_ESCALATION`).
    pub escalation: Option<String>,
    pub fanout: FanoutProgress,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Announcement> for AnnouncementView {
    fn from(a: Announcement) -> Self {
        AnnouncementView {
            audience: a.audience(),
            audience_name: None,
            id: a.id,
            title: a.title,
            body: a.body,
            publisher_id: a.publisher_id,
            status: a.status,
            publish_at: a.publish_at,
            published_at: a.published_at,
            withdrawn_at: a.withdrawn_at,
            ack_due_at: a.ack_due_at,
            expires_at: a.expires_at,
            escalation: a.escalation,
            fanout: FanoutProgress {
                target: a.fanout_target,
                done: a.fanout_done,
                finished: a.fanout_finished_at.is_some(),
                finished_at: a.fanout_finished_at,
            },
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// Acknowledgments against the due time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadlineFigures {
    pub ack_due_at: DateTime<Utc>,
    /// Acknowledged by the due time.
    pub on_time: i64,
    /// Acknowledged after it.
    pub late: i64,
    /// Not acknowledged, once the due time has passed (0 before).
    pub missing: i64,
}

/// The figures a publisher watches.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnnouncementStats {
    pub total: i64,
    pub queued: i64,
    pub delivered: i64,
    pub acknowledged: i64,
    /// acknowledged / total (0 when there are no deliveries).
    pub ack_rate: f64,
    /// Median seconds from a delivery's creation to its acknowledgment.
    pub median_seconds_to_ack: Option<f64>,
    /// Reminders sent, over all deliveries.
    pub reminders_sent: i64,
    pub fanout: FanoutProgress,
    /// The same figures per current section of the audience (a student in
    /// two of them counts in both), so a teacher sees which class is behind.
    pub by_section: Vec<SectionFigures>,
    /// Acknowledgments as time went by since publication.
    pub timeline: AckTimeline,
    /// Against the due time, when there is one.
    pub deadline: Option<DeadlineFigures>,
}

/// An announcement's figures among one section's students.
#[derive(Debug, Clone, Serialize, ToSchema, QueryableByName)]
pub struct SectionFigures {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub section_id: crate::ids::SectionId,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub course_code: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub section_code: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub term: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub total: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub queued: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub delivered: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub acknowledged: i64,
}

/// Acknowledgments since publication, counted up bucket by bucket: each
/// point is how many had acknowledged `after_seconds` after publication.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct AckTimeline {
    /// Seconds since publication (0 while unpublished).
    pub elapsed_seconds: i64,
    pub bucket_seconds: i64,
    pub points: Vec<AckPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct AckPoint {
    pub after_seconds: i64,
    pub acknowledged: i64,
}

/// A recipient who has not acknowledged.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Unacked {
    pub delivery_id: DeliveryId,
    pub user_id: UserId,
    pub username: String,
    /// How the student is called.
    pub display_name: String,
    /// The student's school number, when it has one.
    pub number: Option<String>,
    pub email: String,
    /// The current sections through which the audience holds the student
    /// (e.g. `MATH101 A`).
    pub sections: Vec<String>,
    pub state: crate::deliveries::model::DeliveryState,
    pub retry_count: i32,
    pub last_push_at: Option<DateTime<Utc>>,
}
