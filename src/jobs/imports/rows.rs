//! What every import shares: reading cells, reporting failed rows, the
//! rule that the last row of a key wins, and `apply`, which runs one kind of
//! import (`RowSpec`) the same way as every other.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use csv::ByteRecord;
use diesel_async::AsyncPgConnection;

use crate::error::{AppError, FieldErrors};
use crate::jobs::context::{JobContext, Stop};
use crate::jobs::sheet::{CsvOut, Sheet};
use crate::users::model::Role;
use crate::users::store as users;

/// One kind of import: what a row holds, what it refers to, and how the
/// winning rows are written.
pub trait RowSpec {
    /// The columns a file must have (checked at upload too).
    const REQUIRED: &'static [&'static str];
    /// The column a row is reported against when a later row has its key.
    const KEY_COLUMN: &'static str;
    /// A row as read from the file, before what it names is looked up.
    type Read;
    /// What makes two rows the same record.
    type Key: Eq + Hash + Clone;
    /// What is written for a row.
    type Item;

    fn read(sheet: &Sheet, record: &ByteRecord) -> Result<Self::Read, RowError>;

    /// Looks up what the rows name, a query per kind of reference for the
    /// whole file; a row naming nothing known fails here.
    async fn resolve(
        conn: &mut AsyncPgConnection,
        rows: Vec<(usize, Self::Read)>,
        report: &mut Report,
    ) -> Result<Vec<(usize, Self::Key, Self::Item)>, AppError>;

    /// Whether the import's owner, with `role`, may write this row; every
    /// row by default (the route admitted the owner).
    fn admit(role: Role, item: &Self::Item) -> Result<(), RowError> {
        let _ = (role, item);
        Ok(())
    }

    /// Writes the winning rows, reporting progress as it goes.
    async fn write(
        ctx: &JobContext,
        rows: Vec<(usize, Self::Item)>,
        report: &mut Report,
        total: usize,
    ) -> Result<(), Stop>;
}

/// Runs an import of kind `S` over the file's rows. A dry run reads,
/// looks up and checks every row as a real one does, reports what would be
/// written as `ok`, and writes nothing (checks made only under a write's
/// locks, such as a section's room, are left to the real run).
pub async fn apply<S: RowSpec>(
    ctx: &JobContext,
    sheet: &Sheet,
    report: &mut Report,
    dry_run: bool,
) -> Result<(), Stop> {
    let mut read = Vec::with_capacity(sheet.records.len());
    for (row, record) in &sheet.records {
        match S::read(sheet, record) {
            Ok(value) => read.push((*row, value)),
            Err(error) => report.fail(*row, error),
        }
    }
    let mut conn = ctx.conn().await?;
    let owner = users::find(&mut conn, ctx.job.owner_id).await?;
    let resolved = S::resolve(&mut conn, read, report).await?;
    drop(conn);
    let rows = last_wins(resolved, S::KEY_COLUMN, report);
    let total = sheet.records.len();
    let mut items = Vec::with_capacity(rows.len());
    for (row, _, item) in rows {
        match S::admit(owner.role, &item) {
            Ok(()) => items.push((row, item)),
            Err(error) => report.fail(row, error),
        }
    }
    if dry_run {
        report.ok += items.len();
        return advance(ctx, report, total).await;
    }
    advance(ctx, report, total).await?;
    S::write(ctx, items, report, total).await
}

/// Writes rows a chunk (one statement) at a time with `upsert`.
pub async fn write_in_chunks<T>(
    ctx: &JobContext,
    rows: Vec<(usize, T)>,
    report: &mut Report,
    total: usize,
    upsert: impl AsyncFn(&mut AsyncPgConnection, &[T]) -> Result<(), AppError>,
) -> Result<(), Stop> {
    let items: Vec<T> = rows.into_iter().map(|(_, item)| item).collect();
    for chunk in items.chunks(CHUNK) {
        upsert(&mut *ctx.conn().await?, chunk).await?;
        report.ok += chunk.len();
        advance(ctx, report, total).await?;
    }
    Ok(())
}

/// Reports progress after a chunk: rows applied or failed so far.
pub async fn advance(ctx: &JobContext, report: &Report, total: usize) -> Result<(), Stop> {
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
        Some(reason) => Err(RowError::new(column, reason.message.clone())),
        None => Ok(value),
    }
}

/// Keeps the last row for each key; earlier ones are reported as superseded.
fn last_wins<K: Eq + Hash + Clone, T>(
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
