//! `course_code,term,section_code,teacher_username,capacity,status`,
//! upserted by course, term and section code (any case).

use std::collections::HashMap;

use super::{CHUNK, Report, RowError, advance, optional, required_text};
use crate::ids::{CourseId, UserId};
use crate::jobs::context::{JobContext, Stop};
use crate::jobs::sheet::Sheet;
use crate::sections::model::{NewSection, SectionStatus};
use crate::sections::store;
use crate::users::model::Role;
use crate::users::store as users;

pub const REQUIRED: &[&str] = &["course_code", "term", "section_code", "teacher_username"];

/// A row as read, before its course and teacher are looked up.
struct Row {
    course_code: String,
    term: String,
    section_code: String,
    teacher: String,
    capacity: i32,
    status: SectionStatus,
}

fn read(sheet: &Sheet, record: &csv::ByteRecord) -> Result<Row, RowError> {
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

pub async fn apply(ctx: &JobContext, sheet: &Sheet, report: &mut Report) -> Result<(), Stop> {
    let mut read_rows = Vec::new();
    for (row, record) in &sheet.records {
        match read(sheet, record) {
            Ok(section) => read_rows.push((*row, section)),
            Err(error) => report.fail(*row, error),
        }
    }
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
    let (courses, teachers, existing) = {
        let mut conn = ctx.conn().await?;
        let courses: HashMap<String, CourseId> =
            crate::courses::store::ids_by_code(&mut conn, &codes)
                .await?
                .into_iter()
                .collect();
        let teachers: HashMap<String, UserId> =
            users::ids_by_username(&mut conn, &teachers, Role::Teacher)
                .await?
                .into_iter()
                .collect();
        let existing: HashMap<(String, String, String), i64> = store::keyed(&mut conn, &codes)
            .await?
            .into_iter()
            .map(|s| ((s.course_code, s.term, s.section_code), s.enrolled))
            .collect();
        (courses, teachers, existing)
    };
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
        if let Some(&enrolled) = existing.get(&key)
            && i64::from(r.capacity) < enrolled
        {
            let reason = format!("is below the {enrolled} students enrolled");
            report.fail(row, RowError::new("capacity", reason));
            continue;
        }
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
    let rows = super::last_wins(rows, "section_code", report);
    let total = sheet.records.len();
    advance(ctx, report, total).await?;
    let sections: Vec<NewSection> = rows.into_iter().map(|(_, _, s)| s).collect();
    for chunk in sections.chunks(CHUNK) {
        store::upsert_many(&mut *ctx.conn().await?, chunk).await?;
        report.ok += chunk.len();
        advance(ctx, report, total).await?;
    }
    Ok(())
}
