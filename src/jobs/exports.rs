//! Exports: the school's data as CSV files, stored in object storage for the
//! job's owner to download.

use serde_json::json;

use super::context::{JobContext, Outcome, Stop};
use super::model::{ExportParams, JobKind};
use super::sheet::CsvOut;
use crate::courses::store as courses;
use crate::deliveries::store as deliveries;
use crate::pagination::Page;
use crate::sections::{bulk as sections, enrollments};
use crate::users::roster;

pub async fn run(ctx: &JobContext) -> Result<Outcome, Stop> {
    let params: ExportParams = serde_json::from_value(ctx.job.params.clone())
        .map_err(|e| Stop::Failed(format!("unreadable export parameters: {e}")))?;
    let mut conn = ctx.conn().await?;
    let (name, out) = match ctx.job.kind {
        JobKind::ExportCourses => {
            let mut out = CsvOut::new(&["code", "title", "description", "credits"])?;
            for course in courses::all(&mut conn).await? {
                let credits = format!("{:.1}", course.credits.as_f64());
                out.row([&course.code, &course.title, &course.description, &credits])?;
            }
            ("courses.csv", out)
        }
        JobKind::ExportSections => {
            let header = [
                "course_code",
                "term",
                "section_code",
                "teacher_username",
                "capacity",
                "status",
            ];
            let mut out = CsvOut::new(&header)?;
            let term = params.term.as_deref();
            for s in sections::records(&mut conn, params.course, term, params.status).await? {
                let capacity = s.capacity.to_string();
                out.row([
                    s.course_code.as_str(),
                    &s.term,
                    &s.section_code,
                    &s.teacher_username,
                    &capacity,
                    s.status.as_str(),
                ])?;
            }
            ("sections.csv", out)
        }
        JobKind::ExportEnrollments => {
            let header = ["course_code", "term", "section_code", "student_username"];
            let mut out = CsvOut::new(&header)?;
            for (course, term, section, student) in enrollments::records(&mut conn).await? {
                out.row([course, term, section, student])?;
            }
            ("enrollments.csv", out)
        }
        JobKind::ExportUnacked => {
            let id = params
                .announcement
                .ok_or_else(|| Stop::Failed("no announcement to export".into()))?;
            let header = [
                "username",
                "display_name",
                "number",
                "email",
                "state",
                "retry_count",
                "last_push_at",
            ];
            let mut out = CsvOut::new(&header)?;
            let everyone = Page {
                limit: i64::MAX,
                offset: 0,
            };
            let (unacked, _) = deliveries::unacked(&mut conn, id, everyone).await?;
            for u in unacked {
                let retries = u.retry_count.to_string();
                let pushed = u.last_push_at.map(|at| at.to_rfc3339()).unwrap_or_default();
                out.row([
                    u.username.as_str(),
                    &u.display_name,
                    u.number.as_deref().unwrap_or_default(),
                    &u.email,
                    u.state.as_str(),
                    &retries,
                    &pushed,
                ])?;
            }
            ("unacked.csv", out)
        }
        JobKind::ExportUsers => {
            let header = ["username", "display_name", "email", "role", "number"];
            let mut out = CsvOut::new(&header)?;
            for person in roster::records(&mut conn).await? {
                out.row([
                    person.username.as_str(),
                    &person.display_name,
                    &person.email,
                    person.role.as_str(),
                    person.number.as_deref().unwrap_or_default(),
                ])?;
            }
            ("users.csv", out)
        }
        other => return Err(Stop::Failed(format!("{other} is not an export"))),
    };
    drop(conn);
    let count = out.rows();
    metrics::counter!("classbell_job_rows_total", "kind" => ctx.job.kind.as_str(), "outcome" => "ok")
        .increment(count as u64);
    ctx.progress(count, Some(count)).await?;
    let key = ctx.store_file(name, out.finish()?).await?;
    Ok(Outcome {
        result: json!({
            "status": "success",
            "download_url": ctx.download_path(),
            "count": count,
        }),
        output_key: Some(key),
    })
}
