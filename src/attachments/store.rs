//! Queries on `course_attachments`.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::model::{Attachment, NewAttachment};
use crate::db::schema::course_attachments;
use crate::error::AppError;
use crate::ids::{AttachmentId, CourseId, UserId};
use crate::pagination::Page;
use crate::sections::store as sections;
use crate::users::model::Role;

pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &NewAttachment,
) -> Result<Attachment, AppError> {
    Ok(diesel::insert_into(course_attachments::table)
        .values(new)
        .returning(Attachment::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn find(conn: &mut AsyncPgConnection, id: AttachmentId) -> Result<Attachment, AppError> {
    course_attachments::table
        .find(id)
        .select(Attachment::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("attachment"))
}

/// Attachments, optionally of one course; with a `reader`, only those of
/// the courses the reader takes part in.
pub async fn list(
    conn: &mut AsyncPgConnection,
    course: Option<CourseId>,
    reader: Option<(UserId, Role)>,
    page: Page,
) -> Result<(Vec<Attachment>, i64), AppError> {
    let filtered = || {
        let mut query = course_attachments::table.into_boxed();
        if let Some(course) = course {
            query = query.filter(course_attachments::course_id.eq(course));
        }
        if let Some((user, role)) = reader {
            query = query
                .filter(course_attachments::course_id.eq_any(sections::courses_of(user, role)));
        }
        query
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(Attachment::as_select())
        .order((
            course_attachments::created_at.desc(),
            course_attachments::id.desc(),
        ))
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    Ok((items, total))
}

/// Deletes the row; its object is queued for removal by the same statement (trigger).
pub async fn delete(conn: &mut AsyncPgConnection, id: AttachmentId) -> Result<(), AppError> {
    let deleted = diesel::delete(course_attachments::table.find(id))
        .execute(conn)
        .await?;
    if deleted == 0 {
        return Err(AppError::NotFound("attachment"));
    }
    Ok(())
}
