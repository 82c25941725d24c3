//! Section rows and their list view.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::sections;
use crate::ids::{CourseId, SectionId, UserId};

crate::text_enum! {
    /// Students see published sections only; archived ones take no enrollments.
    pub enum SectionStatus {
        Draft => "draft",
        Published => "published",
        Archived => "archived",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize, ToSchema)]
#[diesel(table_name = sections, check_for_backend(diesel::pg::Pg))]
pub struct Section {
    pub id: SectionId,
    pub course_id: CourseId,
    pub section_code: String,
    pub term: String,
    pub teacher_id: UserId,
    pub capacity: i32,
    pub status: SectionStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A section as lists show it: with its course, its teacher and how full it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SectionView {
    #[serde(flatten)]
    pub section: Section,
    pub course_code: String,
    pub course_title: String,
    pub teacher_username: String,
    /// The teacher's name, as people see it.
    pub teacher_name: String,
    pub enrolled: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sections)]
pub struct NewSection {
    pub course_id: CourseId,
    pub section_code: String,
    pub term: String,
    pub teacher_id: UserId,
    pub capacity: i32,
    pub status: SectionStatus,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = sections)]
pub struct SectionChanges {
    pub course_id: Option<CourseId>,
    pub section_code: Option<String>,
    pub term: Option<String>,
    pub teacher_id: Option<UserId>,
    pub capacity: Option<i32>,
    pub status: Option<SectionStatus>,
}
