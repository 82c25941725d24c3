//! Queries on `sections`.

use chrono::Utc;
use diesel::dsl::sql;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::model::{NewSection, Section, SectionChanges, SectionStatus, SectionView};
use crate::db::schema::{courses, enrollments, sections, users};
use crate::db::violates;
use crate::error::{AppError, Code, FieldError, FieldErrors};
use crate::ids::{CourseId, SectionId, UserId};
use crate::pagination::Page;
use crate::users::model::Role;

fn map_conflict(error: diesel::result::Error) -> AppError {
    if violates(&error, "sections_course_term_code_key") {
        AppError::conflict(
            "already_exists",
            "the course already has a section with that code this term",
            FieldErrors::new().with("section_code", Code::Taken),
        )
    } else {
        error.into()
    }
}

pub async fn insert(conn: &mut AsyncPgConnection, new: NewSection) -> Result<Section, AppError> {
    diesel::insert_into(sections::table)
        .values(&new)
        .returning(Section::as_returning())
        .get_result(conn)
        .await
        .map_err(map_conflict)
}

pub async fn find(conn: &mut AsyncPgConnection, id: SectionId) -> Result<Section, AppError> {
    sections::table
        .find(id)
        .select(Section::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("section"))
}

/// The section row, locked until the transaction ends: enrollments and
/// capacity changes on one section take turns.
pub async fn lock(conn: &mut AsyncPgConnection, id: SectionId) -> Result<Section, AppError> {
    sections::table
        .find(id)
        .select(Section::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("section"))
}

pub async fn enrolled_count(
    conn: &mut AsyncPgConnection,
    section_id: SectionId,
) -> Result<i64, AppError> {
    Ok(enrollments::table
        .filter(enrollments::section_id.eq(section_id))
        .count()
        .get_result(conn)
        .await?)
}

#[derive(Debug, Default, Clone)]
pub struct SectionFilter {
    pub course: Option<CourseId>,
    pub term: Option<String>,
    pub teacher: Option<UserId>,
    pub status: Option<SectionStatus>,
    /// Only sections this student is enrolled in.
    pub student: Option<UserId>,
}

type ViewRow = (Section, String, String, String, String, i64);

/// How many students a section has, for the list view.
fn enrolled_column() -> diesel::expression::SqlLiteral<BigInt> {
    sql("(SELECT count(*) FROM enrollments e WHERE e.section_id = sections.id)")
}

/// What a section's view selects: the section, its course, its teacher
/// and its enrollment.
type ViewColumns = (
    diesel::dsl::AsSelect<Section, diesel::pg::Pg>,
    courses::code,
    courses::title,
    users::username,
    users::display_name,
    diesel::expression::SqlLiteral<BigInt>,
);

fn view_columns() -> ViewColumns {
    (
        Section::as_select(),
        courses::code,
        courses::title,
        users::username,
        users::display_name,
        enrolled_column(),
    )
}

fn view(row: ViewRow) -> SectionView {
    let (section, course_code, course_title, teacher_username, teacher_name, enrolled) = row;
    SectionView {
        section,
        course_code,
        course_title,
        teacher_username,
        teacher_name,
        enrolled,
    }
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &SectionFilter,
    page: Page,
) -> Result<(Vec<SectionView>, i64), AppError> {
    let filtered = || {
        let mut query = sections::table
            .inner_join(courses::table)
            .inner_join(users::table)
            .into_boxed();
        if let Some(course) = filter.course {
            query = query.filter(sections::course_id.eq(course));
        }
        if let Some(term) = filter.term.as_deref() {
            query = query.filter(sections::term.eq(term.to_owned()));
        }
        if let Some(teacher) = filter.teacher {
            query = query.filter(sections::teacher_id.eq(teacher));
        }
        if let Some(status) = filter.status {
            query = query.filter(sections::status.eq(status));
        }
        if let Some(student) = filter.student {
            query = query.filter(
                sections::id.eq_any(
                    enrollments::table
                        .filter(enrollments::student_id.eq(student))
                        .select(enrollments::section_id),
                ),
            );
        }
        query
    };
    let total = filtered().count().get_result(conn).await?;
    let rows: Vec<ViewRow> = filtered()
        .select(view_columns())
        .order((
            sections::term.desc(),
            courses::code,
            sections::section_code,
            sections::id,
        ))
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    Ok((rows.into_iter().map(view).collect(), total))
}

pub async fn find_view(
    conn: &mut AsyncPgConnection,
    id: SectionId,
) -> Result<SectionView, AppError> {
    let row: Option<ViewRow> = sections::table
        .inner_join(courses::table)
        .inner_join(users::table)
        .filter(sections::id.eq(id))
        .select(view_columns())
        .first(conn)
        .await
        .optional()?;
    row.map(view).ok_or(AppError::NotFound("section"))
}

/// Applies `changes`, refusing a capacity below the current enrollment.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: SectionId,
    changes: SectionChanges,
) -> Result<Section, AppError> {
    conn.transaction(async |conn| {
        lock(conn, id).await?;
        if let Some(capacity) = changes.capacity {
            let enrolled = enrolled_count(conn, id).await?;
            if i64::from(capacity) < enrolled {
                return Err(AppError::conflict(
                    "capacity_below_enrollment",
                    format!("{enrolled} students are enrolled; capacity cannot go below that"),
                    FieldErrors::new().with(
                        "capacity",
                        FieldError::new(Code::TooSmall).with("min", enrolled),
                    ),
                ));
            }
        }
        diesel::update(sections::table.find(id))
            .set((&changes, sections::updated_at.eq(Utc::now())))
            .returning(Section::as_returning())
            .get_result(conn)
            .await
            .map_err(map_conflict)
    })
    .await
}

pub async fn delete(conn: &mut AsyncPgConnection, id: SectionId) -> Result<(), AppError> {
    let deleted = diesel::delete(sections::table.find(id))
        .execute(conn)
        .await?;
    if deleted == 0 {
        return Err(AppError::NotFound("section"));
    }
    Ok(())
}

/// The current sections: those not archived. Who teaches a course, who
/// takes it and who hears its announcements are counted over these only,
/// so last year's sections grant nothing this year.
pub fn current() -> diesel::dsl::NotEq<sections::status, SectionStatus> {
    sections::status.ne(SectionStatus::Archived)
}

/// The courses `user` takes part in through a current section: as its
/// teacher when a teacher, as an enrolled student when a student. Staff
/// take part in none (they see every course by their role).
pub fn courses_of(user: UserId, role: Role) -> sections::BoxedQuery<'static, Pg, BigInt> {
    let current = sections::table
        .filter(current())
        .select(sections::course_id);
    match role {
        Role::Teacher => current.filter(sections::teacher_id.eq(user)).into_boxed(),
        Role::Student => current
            .filter(
                sections::id.eq_any(
                    enrollments::table
                        .filter(enrollments::student_id.eq(user))
                        .select(enrollments::section_id),
                ),
            )
            .into_boxed(),
        _ => current
            .filter(false.into_sql::<diesel::sql_types::Bool>())
            .into_boxed(),
    }
}

/// Whether `user`, with `role`, takes part in `course` through a current
/// section (see [`courses_of`]).
pub async fn takes_part_in(
    conn: &mut AsyncPgConnection,
    user: UserId,
    role: Role,
    course: CourseId,
) -> Result<bool, AppError> {
    Ok(diesel::select(diesel::dsl::exists(
        courses_of(user, role).filter(sections::course_id.eq(course)),
    ))
    .get_result(conn)
    .await?)
}

/// Whether `teacher` teaches a current section of `course`.
pub async fn teaches_course(
    conn: &mut AsyncPgConnection,
    teacher: UserId,
    course: CourseId,
) -> Result<bool, AppError> {
    takes_part_in(conn, teacher, Role::Teacher, course).await
}
