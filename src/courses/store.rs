//! Queries on `courses`.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::model::{Course, CourseChanges, NewCourse};
use crate::db::schema::courses;
use crate::db::{lower, violates};
use crate::error::{AppError, Code, FieldErrors};
use crate::ids::CourseId;
use crate::pagination::Page;
use crate::users::store::escape_like;

fn code_taken() -> AppError {
    AppError::conflict(
        "already_exists",
        "a course with that code already exists",
        FieldErrors::new().with("code", Code::Taken),
    )
}

fn map_conflict(error: diesel::result::Error) -> AppError {
    if violates(&error, "courses_code_lower_key") {
        code_taken()
    } else {
        error.into()
    }
}

pub async fn insert(conn: &mut AsyncPgConnection, new: NewCourse) -> Result<Course, AppError> {
    diesel::insert_into(courses::table)
        .values(&new)
        .returning(Course::as_returning())
        .get_result(conn)
        .await
        .map_err(map_conflict)
}

pub async fn find(conn: &mut AsyncPgConnection, id: CourseId) -> Result<Course, AppError> {
    courses::table
        .find(id)
        .select(Course::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("course"))
}

pub async fn find_by_code(
    conn: &mut AsyncPgConnection,
    code: &str,
) -> Result<Option<Course>, AppError> {
    Ok(courses::table
        .filter(lower(courses::code).eq(code.to_lowercase()))
        .select(Course::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Courses whose code or title contains `q` (any case), by code.
pub async fn list(
    conn: &mut AsyncPgConnection,
    q: Option<&str>,
    page: Page,
) -> Result<(Vec<Course>, i64), AppError> {
    let filtered = || {
        let mut query = courses::table.into_boxed();
        if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = format!("%{}%", escape_like(q));
            query = query.filter(
                courses::code
                    .ilike(pattern.clone())
                    .or(courses::title.ilike(pattern)),
            );
        }
        query
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(Course::as_select())
        .order((lower(courses::code), courses::id))
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    Ok((items, total))
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    id: CourseId,
    changes: CourseChanges,
) -> Result<Course, AppError> {
    diesel::update(courses::table.find(id))
        .set((&changes, courses::updated_at.eq(Utc::now())))
        .returning(Course::as_returning())
        .get_result(conn)
        .await
        .optional()
        .map_err(map_conflict)?
        .ok_or(AppError::NotFound("course"))
}

/// Deletes the course with its sections, enrollments and attachments; the
/// attachments' objects are queued for removal by the same statement (trigger).
pub async fn delete(conn: &mut AsyncPgConnection, id: CourseId) -> Result<(), AppError> {
    let deleted = diesel::delete(courses::table.find(id))
        .execute(conn)
        .await?;
    if deleted == 0 {
        return Err(AppError::NotFound("course"));
    }
    Ok(())
}

/// Every course, by code: what an export writes.
pub async fn all(conn: &mut AsyncPgConnection) -> Result<Vec<Course>, AppError> {
    Ok(courses::table
        .select(Course::as_select())
        .order(courses::code)
        .load(conn)
        .await?)
}

/// Inserts the courses, or updates those whose code exists (in any case),
/// in one statement. A row that matches what is stored changes nothing, not
/// even `updated_at`. The codes must differ from each other.
pub async fn upsert_many(conn: &mut AsyncPgConnection, rows: &[NewCourse]) -> Result<(), AppError> {
    use diesel::sql_types::{Array, Numeric, Text};
    let codes: Vec<&str> = rows.iter().map(|r| r.code.as_str()).collect();
    let titles: Vec<&str> = rows.iter().map(|r| r.title.as_str()).collect();
    let descriptions: Vec<&str> = rows.iter().map(|r| r.description.as_str()).collect();
    let credits: Vec<super::credits::Credits> = rows.iter().map(|r| r.credits).collect();
    diesel::sql_query(
        "INSERT INTO courses (code, title, description, credits)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[])
         ON CONFLICT ((lower(code))) DO UPDATE
             SET title = EXCLUDED.title, description = EXCLUDED.description,
                 credits = EXCLUDED.credits, updated_at = now()
             WHERE (courses.title, courses.description, courses.credits)
                   IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.description, EXCLUDED.credits)",
    )
    .bind::<Array<Text>, _>(codes)
    .bind::<Array<Text>, _>(titles)
    .bind::<Array<Text>, _>(descriptions)
    .bind::<Array<Numeric>, _>(credits)
    .execute(conn)
    .await?;
    Ok(())
}

/// Course ids by (lowercased) code: (lowercased code, id).
pub async fn ids_by_code(
    conn: &mut AsyncPgConnection,
    codes: &[String],
) -> Result<Vec<(String, CourseId)>, AppError> {
    Ok(courses::table
        .filter(lower(courses::code).eq_any(codes))
        .select((lower(courses::code), courses::id))
        .load(conn)
        .await?)
}
