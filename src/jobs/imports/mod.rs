//! Imports: a CSV file's rows upserted by their natural key. A row's error
//! never stops the good rows; it goes into the error report (`row,column,
//! reason`). Rows with the same key in one file: the last one wins, the
//! earlier ones are reported. Importing what was exported changes nothing.
//! Any import can be a dry run: checked and reported, nothing written.

mod courses;
mod enrollments;
mod rows;
mod sections;
mod users;

use serde_json::json;

use super::context::{JobContext, Outcome, Stop};
use super::model::JobKind;
use super::sheet::Sheet;
use crate::error::AppError;
use courses::Courses;
use enrollments::Enrollments;
use rows::{Report, RowSpec, apply};
use sections::Sections;
use users::Users;

/// How an import runs: `dry_run` checks and reports, and writes nothing;
/// `encoding` is what the upload was read as (it is stored as UTF-8).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ImportParams {
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default = "utf8")]
    pub encoding: String,
}

fn utf8() -> String {
    "UTF-8".to_owned()
}

/// The columns an import of `kind` cannot do without (checked at upload too).
pub fn required_columns(kind: JobKind) -> &'static [&'static str] {
    match kind {
        JobKind::ImportCourses => Courses::REQUIRED,
        JobKind::ImportSections => Sections::REQUIRED,
        JobKind::ImportEnrollments => Enrollments::REQUIRED,
        JobKind::ImportUsers => Users::REQUIRED,
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
    let params: ImportParams = serde_json::from_value(ctx.job.params.clone())
        .map_err(|e| Stop::Failed(format!("unreadable import parameters: {e}")))?;
    let dry_run = params.dry_run;
    match kind {
        JobKind::ImportCourses => apply::<Courses>(ctx, &sheet, &mut report, dry_run).await?,
        JobKind::ImportSections => apply::<Sections>(ctx, &sheet, &mut report, dry_run).await?,
        JobKind::ImportEnrollments => {
            apply::<Enrollments>(ctx, &sheet, &mut report, dry_run).await?
        }
        JobKind::ImportUsers => apply::<Users>(ctx, &sheet, &mut report, dry_run).await?,
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
        "dry_run": dry_run,
        "encoding": params.encoding,
    });
    let output_key = if report.failed() > 0 {
        result["error_report_url"] = json!(ctx.download_path());
        Some(ctx.store_file("errors.csv", report.error_csv()?).await?)
    } else {
        None
    };
    Ok(Outcome { result, output_key })
}
