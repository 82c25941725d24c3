//! `course_code,term,section_code,student_username`: enrollments added
//! (ones already there count as done), within each section's capacity.

use std::collections::{BTreeMap, HashMap};

use super::{Report, RowError, advance, required_text};
use crate::ids::{SectionId, UserId};
use crate::jobs::context::{JobContext, Stop};
use crate::jobs::sheet::Sheet;
use crate::sections::enrollments::{self, Admission};
use crate::sections::store;
use crate::users::model::Role;
use crate::users::store as users;

pub const REQUIRED: &[&str] = &["course_code", "term", "section_code", "student_username"];

type SectionKey = (String, String, String);

fn read(sheet: &Sheet, record: &csv::ByteRecord) -> Result<(SectionKey, String), RowError> {
    let course = required_text(sheet, record, "course_code", 32)?;
    let term = required_text(sheet, record, "term", 32)?;
    let section = required_text(sheet, record, "section_code", 32)?;
    let student = required_text(sheet, record, "student_username", 150)?;
    Ok((
        (
            course.to_lowercase(),
            term.to_lowercase(),
            section.to_lowercase(),
        ),
        student.to_lowercase(),
    ))
}

pub async fn apply(ctx: &JobContext, sheet: &Sheet, report: &mut Report) -> Result<(), Stop> {
    let mut read_rows = Vec::new();
    for (row, record) in &sheet.records {
        match read(sheet, record) {
            Ok(pair) => read_rows.push((*row, pair)),
            Err(error) => report.fail(*row, error),
        }
    }
    let mut codes: Vec<String> = read_rows.iter().map(|(_, (k, _))| k.0.clone()).collect();
    codes.sort();
    codes.dedup();
    let names: Vec<String> = read_rows.iter().map(|(_, (_, s))| s.clone()).collect();
    let (sections, students) = {
        let mut conn = ctx.conn().await?;
        let sections: HashMap<SectionKey, SectionId> = store::keyed(&mut conn, &codes)
            .await?
            .into_iter()
            .map(|s| ((s.course_code, s.term, s.section_code), s.id))
            .collect();
        let students: HashMap<String, UserId> =
            users::ids_by_username(&mut conn, &names, Role::Student)
                .await?
                .into_iter()
                .collect();
        (sections, students)
    };
    let mut rows = Vec::new();
    for (row, (key, student)) in read_rows {
        let Some(&section) = sections.get(&key) else {
            report.fail(
                row,
                RowError::new("section_code", "no section has this course, term and code"),
            );
            continue;
        };
        let Some(&student) = students.get(&student) else {
            report.fail(
                row,
                RowError::new("student_username", "no active student has this username"),
            );
            continue;
        };
        rows.push((row, (section, student), ()));
    }
    let rows = super::last_wins(rows, "student_username", report);
    let total = sheet.records.len();
    advance(ctx, report, total).await?;
    // Section by section, in file order within each.
    let mut by_section: BTreeMap<SectionId, Vec<(usize, UserId)>> = BTreeMap::new();
    for (row, (section, student), ()) in rows {
        by_section.entry(section).or_default().push((row, student));
    }
    for (section, entries) in by_section {
        let students: Vec<UserId> = entries.iter().map(|(_, s)| *s).collect();
        let admissions =
            enrollments::enroll_many(&mut *ctx.conn().await?, section, &students).await?;
        for ((row, _), admission) in entries.into_iter().zip(admissions) {
            match admission {
                Admission::Enrolled | Admission::AlreadyEnrolled => report.ok += 1,
                Admission::Full => {
                    report.fail(row, RowError::new("section_code", "the section is full"))
                }
                Admission::Archived => report.fail(
                    row,
                    RowError::new("section_code", "the section is archived"),
                ),
            }
        }
        advance(ctx, report, total).await?;
    }
    Ok(())
}
