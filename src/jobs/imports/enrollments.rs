//! `course_code,term,section_code,student_username`: enrollments added
//! (ones already there count as done), within each section's capacity.

use std::collections::{BTreeMap, HashMap};

use csv::ByteRecord;
use diesel_async::AsyncPgConnection;

use super::rows::{Report, RowError, RowSpec, advance, required_text};
use crate::deliveries::reach;
use crate::error::AppError;
use crate::ids::{SectionId, UserId};
use crate::jobs::context::{JobContext, Stop};
use crate::jobs::sheet::Sheet;
use crate::sections::bulk as store;
use crate::sections::enrollments::{self, Admission};
use crate::users::model::Role;
use crate::users::store as users;

/// Course code, term and section code, lowercased.
type SectionKey = (String, String, String);

pub struct Enrollments;

impl RowSpec for Enrollments {
    const REQUIRED: &'static [&'static str] =
        &["course_code", "term", "section_code", "student_username"];
    const KEY_COLUMN: &'static str = "student_username";
    /// The section's key and the student's username, lowercased.
    type Read = (SectionKey, String);
    type Key = (SectionId, UserId);
    type Item = (SectionId, UserId);

    fn read(sheet: &Sheet, record: &ByteRecord) -> Result<(SectionKey, String), RowError> {
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

    /// The section and the active student each row names.
    async fn resolve(
        conn: &mut AsyncPgConnection,
        read_rows: Vec<(usize, (SectionKey, String))>,
        report: &mut Report,
    ) -> Result<Vec<(usize, (SectionId, UserId), (SectionId, UserId))>, AppError> {
        let mut codes: Vec<String> = read_rows.iter().map(|(_, (k, _))| k.0.clone()).collect();
        codes.sort();
        codes.dedup();
        let names: Vec<String> = read_rows.iter().map(|(_, (_, s))| s.clone()).collect();
        let sections: HashMap<SectionKey, SectionId> = store::keyed(conn, &codes)
            .await?
            .into_iter()
            .map(|s| ((s.course_code, s.term, s.section_code), s.id))
            .collect();
        let students: HashMap<String, UserId> = users::ids_by_username(conn, &names, Role::Student)
            .await?
            .into_iter()
            .collect();
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
            rows.push((row, (section, student), (section, student)));
        }
        Ok(rows)
    }

    /// Section by section (each under its row lock, so its capacity holds),
    /// in file order within each.
    async fn write(
        ctx: &JobContext,
        rows: Vec<(usize, (SectionId, UserId))>,
        report: &mut Report,
        total: usize,
    ) -> Result<(), Stop> {
        let mut by_section: BTreeMap<SectionId, Vec<(usize, UserId)>> = BTreeMap::new();
        for (row, (section, student)) in rows {
            by_section.entry(section).or_default().push((row, student));
        }
        for (section, entries) in by_section {
            let students: Vec<UserId> = entries.iter().map(|(_, s)| *s).collect();
            let (admissions, reached) =
                enrollments::enroll_many(&mut *ctx.conn().await?, section, &students).await?;
            reach::reached(&ctx.bus, &reached);
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
}
