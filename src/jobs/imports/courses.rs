//! `code,title,description,credits`, upserted by code (any case).

use csv::ByteRecord;
use diesel_async::AsyncPgConnection;

use super::rows::{Report, RowError, RowSpec, checked, optional, required_text, write_in_chunks};
use crate::courses::credits::Credits;
use crate::courses::model::{self, NewCourse};
use crate::courses::store;
use crate::error::AppError;
use crate::jobs::context::{JobContext, Stop};
use crate::jobs::sheet::Sheet;

pub struct Courses;

impl RowSpec for Courses {
    const REQUIRED: &'static [&'static str] = &["code", "title"];
    const KEY_COLUMN: &'static str = "code";
    type Read = NewCourse;
    /// The code, lowercased.
    type Key = String;
    type Item = NewCourse;

    fn read(sheet: &Sheet, record: &ByteRecord) -> Result<NewCourse, RowError> {
        let code = required_text(sheet, record, "code", 32)?;
        let title = required_text(sheet, record, "title", 128)?;
        let description = optional(sheet, record, "description")?.unwrap_or_default();
        let description = checked("description", |errors| {
            model::description(errors, &description)
        })?;
        let credits = match optional(sheet, record, "credits")? {
            None => Credits::DEFAULT,
            Some(text) => {
                let number: f64 = text
                    .parse()
                    .map_err(|_| RowError::new("credits", "must be a number, e.g. 3 or 4.5"))?;
                checked("credits", |errors| model::credits(errors, number))?
            }
        };
        Ok(NewCourse {
            code,
            title,
            description,
            credits,
        })
    }

    /// A course names nothing else.
    async fn resolve(
        _: &mut AsyncPgConnection,
        rows: Vec<(usize, NewCourse)>,
        _: &mut Report,
    ) -> Result<Vec<(usize, String, NewCourse)>, AppError> {
        Ok(rows
            .into_iter()
            .map(|(row, course)| (row, course.code.to_lowercase(), course))
            .collect())
    }

    async fn write(
        ctx: &JobContext,
        rows: Vec<(usize, NewCourse)>,
        report: &mut Report,
        total: usize,
    ) -> Result<(), Stop> {
        write_in_chunks(ctx, rows, report, total, store::upsert_many).await
    }
}
