//! `code,title,description,credits`, upserted by code (any case).

use super::{CHUNK, Report, RowError, advance, checked, last_wins, optional, required_text};
use crate::courses::model::{self, NewCourse};
use crate::courses::store;
use crate::jobs::context::{JobContext, Stop};
use crate::jobs::sheet::Sheet;

pub const REQUIRED: &[&str] = &["code", "title"];

fn course(sheet: &Sheet, record: &csv::ByteRecord) -> Result<NewCourse, RowError> {
    let code = required_text(sheet, record, "code", 32)?;
    let title = required_text(sheet, record, "title", 128)?;
    let description = optional(sheet, record, "description")?.unwrap_or_default();
    let description = checked("description", |errors| {
        model::description(errors, &description)
    })?;
    let credits = match optional(sheet, record, "credits")? {
        None => crate::courses::credits::Credits::DEFAULT,
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

pub async fn apply(ctx: &JobContext, sheet: &Sheet, report: &mut Report) -> Result<(), Stop> {
    let mut rows = Vec::with_capacity(sheet.records.len());
    for (row, record) in &sheet.records {
        match course(sheet, record) {
            Ok(course) => rows.push((*row, course.code.to_lowercase(), course)),
            Err(error) => report.fail(*row, error),
        }
    }
    let rows = last_wins(rows, "code", report);
    let total = sheet.records.len();
    advance(ctx, report, total).await?;
    let courses: Vec<NewCourse> = rows.into_iter().map(|(_, _, course)| course).collect();
    for chunk in courses.chunks(CHUNK) {
        store::upsert_many(&mut *ctx.conn().await?, chunk).await?;
        report.ok += chunk.len();
        advance(ctx, report, total).await?;
    }
    Ok(())
}
