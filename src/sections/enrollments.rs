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
use crate::deliveries::store::{self as deliveries, Reach};
use crate::error::{AppError, Code, FieldError, FieldErrors};
use crate::ids::{SectionId, UserId};
use crate::pagination::Page;
use crate::users::model::Role;

/// A student in a section.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Enrollment {
    pub section_id: SectionId,
    pub student_id: UserId,
    pub username: String,
    pub display_name: String,
    pub number: Option<String>,
    pub email: String,
    pub enrolled_at: DateTime<Utc>,
}

/// A student as a roster shows them.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct Student {
    #[diesel(column_name = id)]
    student_id: UserId,
    username: String,
    display_name: String,
    number: Option<String>,
    email: String,
}

impl Student {
    fn enrolled(self, section_id: SectionId, enrolled_at: DateTime<Utc>) -> Enrollment {
        Enrollment {
            section_id,
            student_id: self.student_id,
            username: self.username,
            display_name: self.display_name,
            number: self.number,
            email: self.email,
            enrolled_at,
        }
    }
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

/// Enrolls `student_id`, and delivers the live announcements the student
/// now belongs to the audience of (returned, for the bus once committed).
/// The section row is locked first, so concurrent enrollments into one
/// section count and insert one at a time and the capacity holds however
/// many arrive at once.
pub async fn enroll(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
    student_id: UserId,
) -> Result<(Enrollment, Vec<Reach>), AppError> {
    conn.transaction(async |conn| {
        let section = sections::lock(conn, section_id).await?;
        let student: Option<(Student, Role, bool)> = users::table
            .find(student_id)
            .select((Student::as_select(), users::role, users::is_active))
            .first(conn)
            .await
            .optional()?;
        let Some((student, Role::Student, true)) = student else {
            return Err(AppError::field(
                "student_id",
                FieldError::new(Code::NotActive).with("role", "student"),
            ));
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
        let reached = deliveries::deliver_due(conn, &[student_id]).await?;
        Ok((student.enrolled(section_id, enrolled_at), reached))
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

/// Removes a student from a section, and retracts what reached them only
/// through it and is still unacknowledged (returned, for the bus once committed).
pub async fn withdraw(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
    student_id: UserId,
) -> Result<Vec<Reach>, AppError> {
    conn.transaction(async |conn| {
        let removed = diesel::delete(enrollments::table.find((section_id, student_id)))
            .execute(conn)
            .await?;
        if removed == 0 {
            return Err(AppError::NotFound("enrollment"));
        }
        deliveries::retract_left(conn, section_id, &[student_id]).await
    })
    .await
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
    page: Page,
) -> Result<(Vec<Enrollment>, i64), AppError> {
    let total = sections::enrolled_count(conn, section_id).await?;
    let rows: Vec<(Student, DateTime<Utc>)> = enrollments::table
        .inner_join(users::table)
        .filter(enrollments::section_id.eq(section_id))
        .select((Student::as_select(), enrollments::created_at))
        .order((users::display_name, users::username))
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    let items = rows
        .into_iter()
        .map(|(student, enrolled_at)| student.enrolled(section_id, enrolled_at))
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
/// ids must be active students' (the caller resolved them). The admitted
/// get the live announcements they now belong to the audience of.
pub async fn enroll_many(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
    students: &[UserId],
) -> Result<(Vec<Admission>, Vec<Reach>), AppError> {
    conn.transaction(async |conn| {
        let section = sections::lock(conn, section_id).await?;
        if section.status == SectionStatus::Archived {
            return Ok((vec![Admission::Archived; students.len()], Vec::new()));
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
        let reached = deliveries::deliver_due(conn, &admitted).await?;
        Ok((outcomes, reached))
    })
    .await
}
