//! Imports: a CSV file's rows upserted by their natural key. A row's error
//! never stops the good rows; it goes into the error report (`row,column,
//! reason`). Rows with the same key in one file: the last one wins, the
//! earlier ones are reported. Importing what was exported changes nothing.

pub mod courses;
pub mod enrollments;
pub mod sections;

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use csv::ByteRecord;
use serde_json::json;

use super::context::{JobContext, Outcome, Stop};
use super::model::JobKind;
use super::sheet::{CsvOut, Sheet};
use crate::error::{AppError, FieldErrors};

/// The columns an import of `kind` cannot do without (checked at upload too).
pub fn required_columns(kind: JobKind) -> &'static [&'static str] {
    match kind {
        JobKind::ImportCourses => courses::REQUIRED,
        JobKind::ImportSections => sections::REQUIRED,
        JobKind::ImportEnrollments => enrollments::REQUIRED,
        _ => &[],
    }
}

/// Reads the uploaded file, applies its rows, and stores the error report
/// when some rows failed.
pub async fn run(ctx: &JobContext) -> Result<Outcome, Stop> {
    let bytes = ctx.input().await?;
    let kind = ctx.job.kind;
    let sheet =
        actix_web::rt::task::spawn_blocking(move || Sheet::parse(&bytes, required_columns(kind)))
            .await
            .map_err(|e| AppError::internal(e.to_string()))?
            .map_err(Stop::Failed)?;
    let total = sheet.records.len();
    ctx.progress(0, Some(total)).await?;
    let mut report = Report::default();
    match kind {
        JobKind::ImportCourses => courses::apply(ctx, &sheet, &mut report).await?,
        JobKind::ImportSections => sections::apply(ctx, &sheet, &mut report).await?,
        JobKind::ImportEnrollments => enrollments::apply(ctx, &sheet, &mut report).await?,
        other => return Err(Stop::Failed(format!("{other} is not an import"))),
    }
    for (kind, count) in [("ok", report.ok), ("failed", report.failed())] {
        metrics::counter!("classbell_job_rows_total", "kind" => ctx.job.kind.as_str(), "outcome" => kind)
            .increment(count as u64);
    }
    let mut result = json!({
        "status": if report.failed() == 0 { "success" } else { "partial" },
        "ok": report.ok,
        "failed": report.failed(),
    });
    let output_key = if report.failed() > 0 {
        result["error_report_url"] = json!(ctx.download_path());
        Some(ctx.store_file("errors.csv", report.error_csv()?).await?)
    } else {
        None
    };
    Ok(Outcome { result, output_key })
}

/// Reports progress after a chunk: rows applied or failed so far.
async fn advance(ctx: &JobContext, report: &Report, total: usize) -> Result<(), Stop> {
    ctx.progress(report.ok + report.failed(), Some(total)).await
}

/// Rows written per statement (and per progress report).
pub const CHUNK: usize = 1000;

/// What went wrong with one cell (or row) of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub column: String,
    pub reason: String,
}

impl RowError {
    pub fn new(column: &str, reason: impl Into<String>) -> Self {
        RowError {
            column: column.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What an import did: rows applied (changed or already so), and each failed
/// row's errors.
#[derive(Debug, Default)]
pub struct Report {
    pub ok: usize,
    failures: BTreeMap<usize, Vec<RowError>>,
}

impl Report {
    pub fn fail(&mut self, row: usize, error: RowError) {
        self.failures.entry(row).or_default().push(error);
    }

    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// The error report: `row,column,reason`, in row order.
    pub fn error_csv(&self) -> Result<Vec<u8>, AppError> {
        let mut out = CsvOut::new(&["row", "column", "reason"])?;
        for (row, errors) in &self.failures {
            for error in errors {
                out.row([row.to_string().as_str(), &error.column, &error.reason])?;
            }
        }
        out.finish()
    }
}

/// A required cell, trimmed and checked as short text of at most `max` characters.
pub fn required_text(
    sheet: &Sheet,
    record: &ByteRecord,
    column: &str,
    max: usize,
) -> Result<String, RowError> {
    let value = sheet
        .field(record, column)
        .map_err(|reason| RowError::new(column, reason))?
        .ok_or_else(|| RowError::new(column, "is required"))?;
    checked(column, |errors| {
        crate::validate::short_text(errors, column, value, max)
    })
}

/// An optional cell; `None` when empty.
pub fn optional(
    sheet: &Sheet,
    record: &ByteRecord,
    column: &str,
) -> Result<Option<String>, RowError> {
    sheet
        .field(record, column)
        .map(|value| value.map(str::to_owned))
        .map_err(|reason| RowError::new(column, reason))
}

/// Runs a field rule that records into `FieldErrors`, turning its first
/// complaint into the row's error.
pub fn checked<T>(column: &str, rule: impl FnOnce(&mut FieldErrors) -> T) -> Result<T, RowError> {
    let mut errors = FieldErrors::new();
    let value = rule(&mut errors);
    match errors.first(column) {
        Some(reason) => Err(RowError::new(column, reason)),
        None => Ok(value),
    }
}

/// Keeps the last row for each key; earlier ones are reported as superseded.
pub fn last_wins<K: Eq + Hash + Clone, T>(
    rows: Vec<(usize, K, T)>,
    column: &str,
    report: &mut Report,
) -> Vec<(usize, K, T)> {
    let mut last: HashMap<K, usize> = HashMap::new();
    for (row, key, _) in &rows {
        last.insert(key.clone(), *row);
    }
    rows.into_iter()
        .filter(|(row, key, _)| {
            let winner = last[key];
            if winner != *row {
                let reason = format!("the same key appears again in row {winner}, which wins");
                report.fail(*row, RowError::new(column, reason));
            }
            winner == *row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_row_of_a_key_wins_and_the_others_are_reported() {
        let mut report = Report::default();
        let rows = vec![(2, "a", 1), (3, "b", 2), (4, "a", 3), (5, "a", 4)];
        let kept = last_wins(rows, "code", &mut report);
        assert_eq!(kept, vec![(3, "b", 2), (5, "a", 4)]);
        assert_eq!(report.failed(), 2);
        let csv = String::from_utf8(report.error_csv().unwrap()).unwrap();
        assert_eq!(
            csv,
            "\u{feff}row,column,reason\n\
             2,code,\"the same key appears again in row 5, which wins\"\n\
             4,code,\"the same key appears again in row 5, which wins\"\n"
        );
    }
}
