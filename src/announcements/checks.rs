//! What writing and following an announcement share: who may address an
//! audience, who may follow an announcement, the body's rule, and waking the
//! fan-out when one is published.

use actix::Addr;

use super::audience::Audience;
use super::fanout::{FANOUT_SUPERVISOR, FanoutSupervisor, Kick};
use super::model::{Announcement, AnnouncementStatus};
use super::store;
use crate::auth::AuthUser;
use crate::config;
use crate::courses::store as courses;
use crate::db::DbPool;
use crate::error::{AppError, Code, FieldError, FieldErrors};
use crate::ids::AnnouncementId;
use crate::sections::store as sections;
use crate::telemetry::mailbox;
use crate::users::model::Role;

const MAX_BODY: usize = 20_000;

/// Whether the caller may address `audience`: staff anyone; a teacher their
/// sections and the courses they teach in (and all students if the school
/// allows it); students no one. An audience that does not exist is a 400.
pub async fn check_audience(
    db: &DbPool,
    policy: &config::Announcements,
    auth: &AuthUser,
    audience: Audience,
) -> Result<(), AppError> {
    let mut conn = db.get().await?;
    let teacher_of_section = match audience {
        Audience::AllStudents => None,
        Audience::Course { course_id } => {
            courses::find(&mut conn, course_id).await.map_err(|_| {
                AppError::field(
                    "audience",
                    FieldError::new(Code::NoSuch).with("what", "course"),
                )
            })?;
            None
        }
        Audience::Section { section_id } => Some(
            sections::find(&mut conn, section_id)
                .await
                .map_err(|_| {
                    AppError::field(
                        "audience",
                        FieldError::new(Code::NoSuch).with("what", "section"),
                    )
                })?
                .teacher_id,
        ),
    };
    let allowed = match auth.role() {
        role if role.is_staff() => true,
        Role::Teacher => match audience {
            Audience::AllStudents => policy.teachers_may_announce_to_all,
            Audience::Course { course_id } => {
                sections::teaches_course(&mut conn, auth.id(), course_id).await?
            }
            Audience::Section { .. } => teacher_of_section == Some(auth.id()),
        },
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(AppError::Forbidden("you may not publish to this audience"))
    }
}

/// The announcement, if the caller may follow it (`store::find_visible`).
pub async fn visible(
    db: &DbPool,
    auth: &AuthUser,
    id: AnnouncementId,
) -> Result<Announcement, AppError> {
    store::find_visible(&mut *db.get().await?, id, auth.id(), auth.role()).await
}

pub fn body_text(errors: &mut FieldErrors, raw: &str) -> String {
    if raw.trim().is_empty() {
        errors.add("body", Code::Blank);
    } else if raw.chars().count() > MAX_BODY {
        errors.add("body", FieldError::too_long(MAX_BODY));
    }
    raw.to_owned()
}

/// Tells the fan-out supervisor about a freshly published announcement.
pub fn announce_published(fanout: &Addr<FanoutSupervisor>, announcement: &Announcement) {
    if announcement.status == AnnouncementStatus::Published {
        mailbox::tell(fanout, FANOUT_SUPERVISOR, Kick);
    }
}
