//! `course_code,term,section_code,teacher_username,capacity,status`,
//! upserted by course, term and section code (any case).

use std::collections::HashMap;

use csv::ByteRecord;
use diesel_async::AsyncPgConnection;

use super::rows::{CHUNK, Report, RowError, RowSpec, advance, optional, required_text};
use crate::error::AppError;
use crate::ids::{CourseId, UserId};
use crate::jobs::context::{JobContext, Stop};
use crate::jobs::sheet::Sheet;
use crate::sections::bulk as store;
use crate::sections::model::{NewSection, SectionStatus};
use crate::users::model::Role;
use crate::users::store as users;

/// A row as read, before its course and teacher are looked up.
pub struct Row {
    course_code: String,
    term: String,
    section_code: String,
    teacher: String,
    capacity: i32,
    status: SectionStatus,
}

fn read_row(sheet: &Sheet, record: &ByteRecord) -> Result<Row, RowError> {
    let course_code = required_text(sheet, record, "course_code", 32)?;
    let term = required_text(sheet, record, "term", 32)?;
    let section_code = required_text(sheet, record, "section_code", 32)?;
    let teacher = required_text(sheet, record, "teacher_username", 150)?;
    let capacity = match optional(sheet, record, "capacity")? {
        None => 50,
        Some(text) => text
            .parse::<i32>()
            .ok()
            .filter(|c| (1..=1000).contains(c))
            .ok_or_else(|| RowError::new("capacity", "must be a whole number from 1 to 1000"))?,
    };
    let status = match optional(sheet, record, "status")? {
        None => SectionStatus::Draft,
        Some(text) => text
            .to_lowercase()
            .parse()
            .map_err(|_| RowError::new("status", "must be draft, published or archived"))?,
    };
    Ok(Row {
        course_code,
        term,
        section_code,
        teacher,
        capacity,
        status,
    })
}

/// Course code, term and section code, lowercased.
type SectionKey = (String, String, String);

pub struct Sections;

impl RowSpec for Sections {
    const REQUIRED: &'static [&'static str] =
        &["course_code", "term", "section_code", "teacher_username"];
    const KEY_COLUMN: &'static str = "section_code";
    type Read = Row;
    type Key = SectionKey;
    type Item = NewSection;

    fn read(sheet: &Sheet, record: &ByteRecord) -> Result<Row, RowError> {
        read_row(sheet, record)
    }

    /// The course and teacher each row names. Whether a capacity is below a
    /// section's enrollment is settled when it is written, under the
    /// section's lock.
    async fn resolve(
        conn: &mut AsyncPgConnection,
        read_rows: Vec<(usize, Row)>,
        report: &mut Report,
    ) -> Result<Vec<(usize, SectionKey, NewSection)>, AppError> {
        let mut codes: Vec<String> = read_rows
            .iter()
            .map(|(_, r)| r.course_code.to_lowercase())
            .collect();
        codes.sort();
        codes.dedup();
        let teachers: Vec<String> = read_rows
            .iter()
            .map(|(_, r)| r.teacher.to_lowercase())
            .collect();
        let courses: HashMap<String, CourseId> = crate::courses::store::ids_by_code(conn, &codes)
            .await?
            .into_iter()
            .collect();
        let teachers: HashMap<String, UserId> =
            users::ids_by_username(conn, &teachers, Role::Teacher)
                .await?
                .into_iter()
                .collect();
        let mut rows = Vec::new();
        for (row, r) in read_rows {
            let key = (
                r.course_code.to_lowercase(),
                r.term.to_lowercase(),
                r.section_code.to_lowercase(),
            );
            let Some(&course_id) = courses.get(&key.0) else {
                report.fail(row, RowError::new("course_code", "no course has this code"));
                continue;
            };
            let Some(&teacher_id) = teachers.get(&r.teacher.to_lowercase()) else {
                report.fail(
                    row,
                    RowError::new("teacher_username", "no active teacher has this username"),
                );
                continue;
            };
            let section = NewSection {
                course_id,
                section_code: r.section_code,
                term: r.term,
                teacher_id,
                capacity: r.capacity,
                status: r.status,
            };
            rows.push((row, key, section));
        }
        Ok(rows)
    }

    async fn write(
        ctx: &JobContext,
        rows: Vec<(usize, NewSection)>,
        report: &mut Report,
        total: usize,
    ) -> Result<(), Stop> {
        for chunk in rows.chunks(CHUNK) {
            let sections: Vec<NewSection> = chunk.iter().map(|(_, s)| s.clone()).collect();
            let outcomes = store::upsert_many(&mut *ctx.conn().await?, &sections).await?;
            for ((row, _), outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    Ok(()) => report.ok += 1,
                    Err(enrolled) => report.fail(
                        *row,
                        RowError::new(
                            "capacity",
                            format!("is below the {enrolled} students enrolled"),
                        ),
                    ),
                }
            }
            advance(ctx, report, total).await?;
        }
        Ok(())
    }
}
