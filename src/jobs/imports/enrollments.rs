//! `course_code,term,section_code,student_username` (or `student_number`
//! in its place): enrollments added (ones already there count as done),
//! within each section's capacity.

use std::collections::{BTreeMap, HashMap};

use csv::ByteRecord;
use diesel_async::AsyncPgConnection;

use super::rows::{Report, RowError, RowSpec, advance, optional, required_text};
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

/// Who a row enrolls: by username or by school number, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StudentRef {
    Username(String),
    Number(String),
}

pub struct Enrollments;

impl RowSpec for Enrollments {
    const REQUIRED: &'static [&'static str] = &[
        "course_code",
        "term",
        "section_code",
        "student_username|student_number",
    ];
    const KEY_COLUMN: &'static str = "student_username";
    /// The section's key and the student.
    type Read = (SectionKey, StudentRef);
    type Key = (SectionId, UserId);
    type Item = (SectionId, UserId);

    fn read(sheet: &Sheet, record: &ByteRecord) -> Result<(SectionKey, StudentRef), RowError> {
        let course = required_text(sheet, record, "course_code", 32)?;
        let term = required_text(sheet, record, "term", 32)?;
        let section = required_text(sheet, record, "section_code", 32)?;
        let student = match optional(sheet, record, "student_username")? {
            Some(username) => StudentRef::Username(username.to_lowercase()),
            None => match optional(sheet, record, "student_number")? {
                Some(number) => StudentRef::Number(number.to_lowercase()),
                None => return Err(RowError::new("student_username", "is required")),
            },
        };
        Ok((
            (
                course.to_lowercase(),
                term.to_lowercase(),
                section.to_lowercase(),
            ),
            student,
        ))
    }

    /// The section and the active student each row names.
    async fn resolve(
        conn: &mut AsyncPgConnection,
        read_rows: Vec<(usize, (SectionKey, StudentRef))>,
        report: &mut Report,
    ) -> Result<Vec<(usize, (SectionId, UserId), (SectionId, UserId))>, AppError> {
        let mut codes: Vec<String> = read_rows.iter().map(|(_, (k, _))| k.0.clone()).collect();
        codes.sort();
        codes.dedup();
        let (mut names, mut numbers) = (Vec::new(), Vec::new());
        for (_, (_, student)) in &read_rows {
            match student {
                StudentRef::Username(name) => names.push(name.clone()),
                StudentRef::Number(number) => numbers.push(number.clone()),
            }
        }
        let sections: HashMap<SectionKey, SectionId> = store::keyed(conn, &codes)
            .await?
            .into_iter()
            .map(|s| ((s.course_code, s.term, s.section_code), s.id))
            .collect();
        let mut students: HashMap<StudentRef, UserId> =
            users::ids_by_username(conn, &names, Role::Student)
                .await?
                .into_iter()
                .map(|(name, id)| (StudentRef::Username(name), id))
                .collect();
        students.extend(
            users::ids_by_number(conn, &numbers, Role::Student)
                .await?
                .into_iter()
                .map(|(number, id)| (StudentRef::Number(number), id)),
        );
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
                let error = match student {
                    StudentRef::Username(_) => {
                        RowError::new("student_username", "no active student has this username")
                    }
                    StudentRef::Number(_) => {
                        RowError::new("student_number", "no active student has this number")
                    }
                };
                report.fail(row, error);
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
