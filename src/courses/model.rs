//! Course rows and what the API shows of them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::credits::Credits;
use crate::db::schema::courses;
use crate::error::{FieldError, FieldErrors};
use crate::ids::CourseId;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize, ToSchema)]
#[diesel(table_name = courses, check_for_backend(diesel::pg::Pg))]
pub struct Course {
    pub id: CourseId,
    pub code: String,
    pub title: String,
    pub description: String,
    #[schema(value_type = f64, example = 3.0)]
    pub credits: Credits,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = courses)]
pub struct NewCourse {
    pub code: String,
    pub title: String,
    pub description: String,
    pub credits: Credits,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = courses)]
pub struct CourseChanges {
    pub code: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub credits: Option<Credits>,
}

const MAX_DESCRIPTION: usize = 20_000;

/// A course description, trimmed; too long is recorded in `errors`.
pub fn description(errors: &mut FieldErrors, raw: &str) -> String {
    if raw.chars().count() > MAX_DESCRIPTION {
        errors.add("description", FieldError::too_long(MAX_DESCRIPTION));
    }
    raw.trim().to_owned()
}

/// Credits from a number; out of range is recorded in `errors`.
pub fn credits(errors: &mut FieldErrors, raw: f64) -> Credits {
    Credits::parse(raw).unwrap_or_else(|reason| {
        errors.add("credits", reason);
        Credits::DEFAULT
    })
}
