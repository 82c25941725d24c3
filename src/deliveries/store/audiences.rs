//! Audiences that follow enrollment: deliveries for students who joined an
//! audience after its announcements went out, and retraction for those who
//! left it before acknowledging. Each is one statement for any number of
//! students and announcements, and safe to repeat or to race: the
//! (announcement, user) key lets a delivery exist once, and a retracted one
//! is brought back rather than duplicated.

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::announcements::audience::Audience;
use crate::error::AppError;
use crate::ids::{AnnouncementId, SectionId, UserId};

/// An announcement that reached (or left) a student.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, QueryableByName)]
pub struct Reach {
    #[diesel(sql_type = BigInt)]
    pub announcement_id: AnnouncementId,
    #[diesel(sql_type = BigInt)]
    pub user_id: UserId,
}

/// Gives each of `students` (active students only) a delivery of every
/// published announcement whose audience includes them now and that they
/// lack, or whose delivery was retracted (brought back as new to the inbox).
/// Returns what is new to them.
///
/// A fan-out still under way may meet these deliveries; it then redoes its
/// chunk tolerantly, so a student is never delivered to twice.
pub async fn deliver_due(
    conn: &mut AsyncPgConnection,
    students: &[UserId],
) -> Result<Vec<Reach>, AppError> {
    if students.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "INSERT INTO deliveries (announcement_id, user_id)
         SELECT a.id, u.id FROM users u JOIN announcements a ON a.status = 'published'
         WHERE u.id = ANY($1) AND u.role = 'student' AND u.is_active AND {includes}
         ORDER BY a.id, u.id
         ON CONFLICT (announcement_id, user_id) DO UPDATE
             SET retracted_at = NULL, created_tx = pg_current_xact_id()::text::bigint,
                 changed_tx = pg_current_xact_id()::text::bigint
             WHERE deliveries.retracted_at IS NOT NULL
         RETURNING announcement_id, user_id",
        includes = Audience::INCLUDES_SQL
    );
    Ok(diesel::sql_query(sql)
        .bind::<Array<BigInt>, _>(students)
        .load(conn)
        .await?)
}

/// Retracts what `students` received only through `section`, now that they
/// have left it: their unacknowledged deliveries of announcements addressed
/// to the section, or to its course when no other current section of the
/// course holds them. Call after the enrollments are gone, in the same
/// transaction. What they acknowledged stays.
pub async fn retract_left(
    conn: &mut AsyncPgConnection,
    section: SectionId,
    students: &[UserId],
) -> Result<Vec<Reach>, AppError> {
    if students.is_empty() {
        return Ok(Vec::new());
    }
    Ok(diesel::sql_query(
        "UPDATE deliveries d SET retracted_at = now(), changed_tx = pg_current_xact_id()::text::bigint
         FROM announcements a, sections s
         WHERE s.id = $1 AND d.user_id = ANY($2) AND a.id = d.announcement_id
           AND d.state <> 'acknowledged' AND d.retracted_at IS NULL
           AND ((a.audience_kind = 'section' AND a.audience_id = s.id)
             OR (a.audience_kind = 'course' AND a.audience_id = s.course_id
                 AND NOT EXISTS (SELECT 1 FROM enrollments e JOIN sections o ON o.id = e.section_id
                     WHERE e.student_id = d.user_id AND o.course_id = s.course_id
                       AND o.status <> 'archived')))
         RETURNING d.announcement_id, d.user_id",
    )
    .bind::<BigInt, _>(section)
    .bind::<Array<BigInt>, _>(students)
    .load(conn)
    .await?)
}
