//! Queries on `enrollments`: students in sections, with the capacity rule.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use metrics::counter;
use serde::Serialize;
use utoipa::ToSchema;

use super::model::SectionStatus;
use super::store as sections;
use crate::db::schema::{enrollments, users};
use crate::error::{AppError, FieldErrors};
use crate::ids::{SectionId, UserId};
use crate::pagination::Page;
use crate::users::model::Role;

/// A student in a section.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Enrollment {
    pub section_id: SectionId,
    pub student_id: UserId,
    pub username: String,
    pub email: String,
    pub enrolled_at: DateTime<Utc>,
}

fn conflict(reason: &'static str, message: &str) -> AppError {
    counter!("classbell_enrollment_conflicts_total", "reason" => reason).increment(1);
    AppError::conflict(reason, message, FieldErrors::new())
}

/// Registers the conflict counters at zero so they exist before the first one.
pub fn register_metrics() {
    for reason in ["already_enrolled", "section_full", "section_archived"] {
        counter!("classbell_enrollment_conflicts_total", "reason" => reason).absolute(0);
    }
}

/// Enrolls `student_id`. The section row is locked first, so concurrent
/// enrollments into one section count and insert one at a time and the
/// capacity holds however many arrive at once.
pub async fn enroll(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
    student_id: UserId,
) -> Result<Enrollment, AppError> {
    conn.transaction(async |conn| {
        let section = sections::lock(conn, section_id).await?;
        let student: Option<(String, String, Role, bool)> = users::table
            .find(student_id)
            .select((users::username, users::email, users::role, users::is_active))
            .first(conn)
            .await
            .optional()?;
        let Some((username, email, Role::Student, true)) = student else {
            return Err(AppError::field("student_id", "must be an active student"));
        };
        if section.status == SectionStatus::Archived {
            return Err(conflict(
                "section_archived",
                "archived sections take no new enrollments",
            ));
        }
        if is_enrolled(conn, section_id, student_id).await? {
            return Err(conflict(
                "already_enrolled",
                "the student is already enrolled in this section",
            ));
        }
        if sections::enrolled_count(conn, section_id).await? >= i64::from(section.capacity) {
            return Err(conflict("section_full", "the section is full"));
        }
        let enrolled_at = diesel::insert_into(enrollments::table)
            .values((
                enrollments::section_id.eq(section_id),
                enrollments::student_id.eq(student_id),
            ))
            .returning(enrollments::created_at)
            .get_result(conn)
            .await?;
        Ok(Enrollment {
            section_id,
            student_id,
            username,
            email,
            enrolled_at,
        })
    })
    .await
}

/// Whether `student_id` is enrolled in the section.
pub async fn is_enrolled(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
    student_id: UserId,
) -> Result<bool, AppError> {
    Ok(diesel::select(diesel::dsl::exists(
        enrollments::table.find((section_id, student_id)),
    ))
    .get_result(conn)
    .await?)
}

pub async fn withdraw(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
    student_id: UserId,
) -> Result<(), AppError> {
    let removed = diesel::delete(enrollments::table.find((section_id, student_id)))
        .execute(conn)
        .await?;
    if removed == 0 {
        return Err(AppError::NotFound("enrollment"));
    }
    Ok(())
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
    page: Page,
) -> Result<(Vec<Enrollment>, i64), AppError> {
    let total = sections::enrolled_count(conn, section_id).await?;
    let rows: Vec<(UserId, String, String, DateTime<Utc>)> = enrollments::table
        .inner_join(users::table)
        .filter(enrollments::section_id.eq(section_id))
        .select((
            users::id,
            users::username,
            users::email,
            enrollments::created_at,
        ))
        .order(users::username)
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    let items = rows
        .into_iter()
        .map(|(student_id, username, email, enrolled_at)| Enrollment {
            section_id,
            student_id,
            username,
            email,
            enrolled_at,
        })
        .collect();
    Ok((items, total))
}

/// Every enrollment by course code, term, section code and student username:
/// what an export writes.
pub async fn records(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(String, String, String, String)>, AppError> {
    use crate::db::schema::{courses, sections};
    Ok(enrollments::table
        .inner_join(sections::table.on(sections::id.eq(enrollments::section_id)))
        .inner_join(courses::table.on(courses::id.eq(sections::course_id)))
        .inner_join(users::table.on(users::id.eq(enrollments::student_id)))
        .select((
            courses::code,
            sections::term,
            sections::section_code,
            users::username,
        ))
        .order((
            courses::code,
            sections::term,
            sections::section_code,
            users::username,
        ))
        .load(conn)
        .await?)
}

/// What enrolling one student of a batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Enrolled,
    AlreadyEnrolled,
    Full,
    Archived,
}

/// Enrolls active students into one section under its row lock, in order,
/// while there is room: the capacity holds as for single enrollments. The
/// ids must be active students' (the caller resolved them).
pub async fn enroll_many(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
    students: &[UserId],
) -> Result<Vec<Admission>, AppError> {
    conn.transaction(async |conn| {
        let section = sections::lock(conn, section_id).await?;
        if section.status == SectionStatus::Archived {
            return Ok(vec![Admission::Archived; students.len()]);
        }
        let already: std::collections::HashSet<UserId> = enrollments::table
            .filter(enrollments::section_id.eq(section_id))
            .filter(enrollments::student_id.eq_any(students))
            .select(enrollments::student_id)
            .load::<UserId>(conn)
            .await?
            .into_iter()
            .collect();
        let mut room =
            i64::from(section.capacity) - sections::enrolled_count(conn, section_id).await?;
        let mut admitted = Vec::new();
        let outcomes = students
            .iter()
            .map(|student| {
                if already.contains(student) {
                    Admission::AlreadyEnrolled
                } else if room > 0 {
                    room -= 1;
                    admitted.push(*student);
                    Admission::Enrolled
                } else {
                    Admission::Full
                }
            })
            .collect();
        let rows: Vec<_> = admitted
            .iter()
            .map(|student| {
                (
                    enrollments::section_id.eq(section_id),
                    enrollments::student_id.eq(*student),
                )
            })
            .collect();
        diesel::insert_into(enrollments::table)
            .values(&rows)
            .execute(conn)
            .await?;
        Ok(outcomes)
    })
    .await
}
