//! Sections in bulk: as exports write them and imports read and write them.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::model::{NewSection, SectionStatus};
use crate::db::schema::{courses, enrollments, sections, users};
use crate::error::AppError;
use crate::ids::{CourseId, SectionId, UserId};

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
