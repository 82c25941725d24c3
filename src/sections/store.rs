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
use crate::error::{AppError, FieldErrors};
use crate::ids::{CourseId, SectionId, UserId};
use crate::pagination::Page;
use crate::users::model::Role;

fn map_conflict(error: diesel::result::Error) -> AppError {
    if violates(&error, "sections_course_term_code_key") {
        AppError::conflict(
            "already_exists",
            "the course already has a section with that code this term",
            FieldErrors::new().with("section_code", "is already used for this course and term"),
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

type ViewRow = (Section, String, String, String, i64);

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
    diesel::expression::SqlLiteral<BigInt>,
);

fn view_columns() -> ViewColumns {
    (
        Section::as_select(),
        courses::code,
        courses::title,
        users::username,
        enrolled_column(),
    )
}

fn view((section, course_code, course_title, teacher_username, enrolled): ViewRow) -> SectionView {
    SectionView {
        section,
        course_code,
        course_title,
        teacher_username,
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
                    FieldErrors::new().with("capacity", format!("must be at least {enrolled}")),
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

/// A section as exports write it and imports read it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct SectionRecord {
    pub course_code: String,
    pub term: String,
    pub section_code: String,
    pub teacher_username: String,
    pub capacity: i32,
    pub status: SectionStatus,
}

/// Sections by course code, term and section code, optionally filtered.
pub async fn records(
    conn: &mut AsyncPgConnection,
    course: Option<CourseId>,
    term: Option<&str>,
    status: Option<SectionStatus>,
) -> Result<Vec<SectionRecord>, AppError> {
    let mut query = sections::table
        .inner_join(courses::table.on(courses::id.eq(sections::course_id)))
        .inner_join(users::table.on(users::id.eq(sections::teacher_id)))
        .into_boxed();
    if let Some(course) = course {
        query = query.filter(sections::course_id.eq(course));
    }
    if let Some(term) = term {
        query = query.filter(crate::db::lower(sections::term).eq(term.to_lowercase()));
    }
    if let Some(status) = status {
        query = query.filter(sections::status.eq(status));
    }
    Ok(query
        .select((
            courses::code,
            sections::term,
            sections::section_code,
            users::username,
            sections::capacity,
            sections::status,
        ))
        .order((courses::code, sections::term, sections::section_code))
        .load(conn)
        .await?)
}

/// A section found by its natural key, with how many are enrolled.
#[derive(Debug, Clone, QueryableByName)]
pub struct KeyedSection {
    #[diesel(sql_type = BigInt)]
    pub id: SectionId,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub course_code: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub term: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub section_code: String,
    #[diesel(sql_type = BigInt)]
    pub enrolled: i64,
}

/// The sections of the courses with these (lowercased) codes; their codes
/// and term come back lowercased, to match keys with.
pub async fn keyed(
    conn: &mut AsyncPgConnection,
    course_codes: &[String],
) -> Result<Vec<KeyedSection>, AppError> {
    Ok(diesel::sql_query(
        "SELECT s.id, lower(c.code) AS course_code, lower(s.term) AS term,
                lower(s.section_code) AS section_code,
                (SELECT count(*) FROM enrollments e WHERE e.section_id = s.id) AS enrolled
         FROM sections s JOIN courses c ON c.id = s.course_id
         WHERE lower(c.code) = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(course_codes)
    .load(conn)
    .await?)
}

/// Sections of a batch that exist, found by natural key and locked until
/// the transaction ends: `(index into the batch, id)`.
#[derive(QueryableByName)]
struct LockedSection {
    #[diesel(sql_type = BigInt)]
    position: i64,
    #[diesel(sql_type = BigInt)]
    id: SectionId,
}

/// Inserts the sections, or updates those whose course, term and code
/// (in any case) exist; a row that matches what is stored changes nothing.
/// The keys must differ from each other.
///
/// A section is not given a capacity below its enrollment: the existing
/// sections are locked first (as enrollments lock them), then counted, so
/// an enrollment import running at the same time cannot slip students in
/// between the count and the write. Returns, row by row, `Err(enrolled)`
/// for a row refused for that reason.
pub async fn upsert_many(
    conn: &mut AsyncPgConnection,
    rows: &[NewSection],
) -> Result<Vec<Result<(), i64>>, AppError> {
    use diesel::sql_types::{Array, Integer, Text};
    conn.transaction(async |conn| {
        let courses: Vec<CourseId> = rows.iter().map(|r| r.course_id).collect();
        let codes: Vec<&str> = rows.iter().map(|r| r.section_code.as_str()).collect();
        let terms: Vec<&str> = rows.iter().map(|r| r.term.as_str()).collect();
        let locked: Vec<LockedSection> = diesel::sql_query(
            "SELECT k.position - 1 AS position, s.id
             FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY
                  AS k(course_id, section_code, term, position)
             JOIN sections s ON s.course_id = k.course_id AND lower(s.term) = lower(k.term)
                  AND lower(s.section_code) = lower(k.section_code)
             ORDER BY s.id FOR UPDATE OF s",
        )
        .bind::<Array<BigInt>, _>(&courses)
        .bind::<Array<Text>, _>(&codes)
        .bind::<Array<Text>, _>(&terms)
        .load(conn)
        .await?;
        // A new statement: it sees every enrollment committed before the locks.
        let ids: Vec<SectionId> = locked.iter().map(|l| l.id).collect();
        let enrolled: std::collections::HashMap<SectionId, i64> = enrollments::table
            .filter(enrollments::section_id.eq_any(&ids))
            .group_by(enrollments::section_id)
            .select((enrollments::section_id, diesel::dsl::count_star()))
            .load(conn)
            .await?
            .into_iter()
            .collect();
        let mut outcomes = vec![Ok(()); rows.len()];
        for section in &locked {
            let count = enrolled.get(&section.id).copied().unwrap_or(0);
            let position = usize::try_from(section.position).unwrap_or(usize::MAX);
            if let (Some(row), Some(outcome)) = (rows.get(position), outcomes.get_mut(position))
                && i64::from(row.capacity) < count
            {
                *outcome = Err(count);
            }
        }
        let kept: Vec<&NewSection> = rows
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| outcome.is_ok())
            .map(|(row, _)| row)
            .collect();
        let courses: Vec<CourseId> = kept.iter().map(|r| r.course_id).collect();
        let codes: Vec<&str> = kept.iter().map(|r| r.section_code.as_str()).collect();
        let terms: Vec<&str> = kept.iter().map(|r| r.term.as_str()).collect();
        let teachers: Vec<UserId> = kept.iter().map(|r| r.teacher_id).collect();
        let capacities: Vec<i32> = kept.iter().map(|r| r.capacity).collect();
        let statuses: Vec<&str> = kept.iter().map(|r| r.status.as_str()).collect();
        diesel::sql_query(
            "INSERT INTO sections (course_id, section_code, term, teacher_id, capacity, status)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[])
             ON CONFLICT (course_id, lower(term), lower(section_code)) DO UPDATE
                 SET teacher_id = EXCLUDED.teacher_id, capacity = EXCLUDED.capacity,
                     status = EXCLUDED.status, updated_at = now()
                 WHERE (sections.teacher_id, sections.capacity, sections.status)
                       IS DISTINCT FROM (EXCLUDED.teacher_id, EXCLUDED.capacity, EXCLUDED.status)",
        )
        .bind::<Array<BigInt>, _>(courses)
        .bind::<Array<Text>, _>(codes)
        .bind::<Array<Text>, _>(terms)
        .bind::<Array<BigInt>, _>(teachers)
        .bind::<Array<Integer>, _>(capacities)
        .bind::<Array<Text>, _>(statuses)
        .execute(conn)
        .await?;
        Ok(outcomes)
    })
    .await
}
