//! Job rows, and the task as the API shows it (the seed's Celery shape).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::jobs;
use crate::ids::{AnnouncementId, CourseId, JobId, UserId};

crate::text_enum! {
    /// What a job does.
    pub enum JobKind {
        ExportCourses => "export_courses",
        ExportSections => "export_sections",
        ExportEnrollments => "export_enrollments",
        ExportUnacked => "export_unacked",
        ExportUsers => "export_users",
        ImportCourses => "import_courses",
        ImportSections => "import_sections",
        ImportEnrollments => "import_enrollments",
        ImportUsers => "import_users",
    }
}

impl JobKind {
    pub fn is_import(self) -> bool {
        matches!(
            self,
            JobKind::ImportCourses
                | JobKind::ImportSections
                | JobKind::ImportEnrollments
                | JobKind::ImportUsers
        )
    }
}

crate::text_enum! {
    pub enum JobState {
        Pending => "pending",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

impl JobState {
    /// The Celery-style name clients of the seed's task API know.
    pub fn task_state(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Running => "PROGRESS",
            JobState::Succeeded => "SUCCESS",
            JobState::Failed => "FAILURE",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub state: JobState,
    pub owner_id: UserId,
    pub params: serde_json::Value,
    pub input_key: Option<String>,
    pub output_key: Option<String>,
    pub progress_done: i32,
    pub progress_total: Option<i32>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    pub id: JobId,
    pub kind: JobKind,
    pub owner_id: UserId,
    pub params: serde_json::Value,
    pub input_key: Option<String>,
}

/// What an export job reads: filters for sections, the announcement for unacked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::sections::model::SectionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course: Option<CourseId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcement: Option<AnnouncementId>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Progress {
    pub done: i32,
    pub total: Option<i32>,
}

/// `GET /api/tasks/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskView {
    pub task_id: JobId,
    pub kind: JobKind,
    /// `PENDING`, `PROGRESS`, `SUCCESS` or `FAILURE`.
    pub state: &'static str,
    pub progress: Progress,
    /// An export: `{status, download_url, count}`; an import:
    /// `{status, ok, failed, error_report_url?}`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the job's file stops being downloadable.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<Job> for TaskView {
    fn from(job: Job) -> Self {
        TaskView {
            task_id: job.id,
            kind: job.kind,
            state: job.state.task_state(),
            progress: Progress {
                done: job.progress_done,
                total: job.progress_total,
            },
            result: job.result,
            error: job.error,
            created_at: job.created_at,
            finished_at: job.finished_at,
            expires_at: job.expires_at,
        }
    }
}

/// `202 {task_id}`: the job is queued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Queued {
    pub task_id: JobId,
}
