//! Writing an announcement: `POST /api/announcements` and editing a draft or
//! scheduled one, with its deadlines — acknowledge by (`ack_due_at`), no
//! longer matters after (`expires_at`) — and the escalation ladder planned
//! back from the due time.

use actix::Addr;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use utoipa::ToSchema;

use super::audience::Audience;
use super::checks::{announce_published, body_text, check_audience, visible};
use super::escalation::Escalation;
use super::fanout::FanoutSupervisor;
use super::ladder::Ladder;
use super::model::{Announcement, AnnouncementStatus, AnnouncementView, NewAnnouncement};
use super::store::{self, AnnouncementChanges, steps};
use crate::auth::AuthUser;
use crate::config;
use crate::db::DbPool;
use crate::error::{AppError, Code, FieldError, FieldErrors};
use crate::ids::AnnouncementId;
use crate::users::model::Role;
use crate::validate::{future_time, short_text};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAnnouncementRequest {
    pub title: String,
    /// Plain text or Markdown.
    pub body: String,
    pub audience: Audience,
    /// In the future: publish then (scheduled). RFC 3339, or a local
    /// `YYYY-MM-DDTHH:MM` on the school's clock (`CLASSBELL_TIMEZONE`).
    pub publish_at: Option<String>,
    /// Acknowledge by then (after publication); the escalation ladder counts
    /// back from it. Written like `publish_at`.
    pub ack_due_at: Option<String>,
    /// After this (after publication, not before the due time) it no longer
    /// matters: it leaves unread counts and reminders stop.
    pub expires_at: Option<String>,
    /// This announcement's ladder, e.g. `in_app@24h,mail@2h,summary@0s`, or
    /// `none`; absent for the school's (`CLASSBELL_ESCALATION`). At most 8
    /// steps, each at most 60 days before the due time.
    #[schema(
        pattern = r"^\s*(none|(in_app|mail|summary)@[0-9]+[smhd](\s*,\s*(in_app|mail|summary)@[0-9]+[smhd])*)\s*$"
    )]
    pub escalation: Option<String>,
    /// Keep as a draft.
    #[serde(default)]
    pub draft: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAnnouncementRequest {
    pub title: Option<String>,
    pub body: Option<String>,
    pub audience: Option<Audience>,
    /// A future time schedules it (as for creation); `null` makes it a
    /// draft again.
    #[serde(default, with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub publish_at: Option<Option<String>>,
    /// `null` clears it (and the ladder's pending steps).
    #[serde(default, with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub ack_due_at: Option<Option<String>>,
    #[serde(default, with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
    /// `null` returns to the school's ladder.
    #[serde(default, with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    #[schema(
        pattern = r"^\s*(none|(in_app|mail|summary)@[0-9]+[smhd](\s*,\s*(in_app|mail|summary)@[0-9]+[smhd])*)\s*$"
    )]
    pub escalation: Option<Option<String>>,
}

/// The deadline fields as a request gives them: each `None` when left as it
/// is, `Some(None)` when cleared.
struct RawDeadlines {
    ack_due_at: Option<Option<String>>,
    expires_at: Option<Option<String>>,
    escalation: Option<Option<String>>,
}

/// Deadlines as asked for: each `None` when left as it is.
struct Deadlines {
    ack_due_at: Option<Option<DateTime<Utc>>>,
    expires_at: Option<Option<DateTime<Utc>>>,
    escalation: Option<Option<Ladder>>,
}

impl Deadlines {
    /// Reads and checks the deadline fields against when the announcement
    /// goes out (`goes_out`) and what it has now (`current`).
    fn read(
        errors: &mut FieldErrors,
        school: &config::School,
        raw: RawDeadlines,
        goes_out: DateTime<Utc>,
        current: Option<&Announcement>,
    ) -> Deadlines {
        let mut time = |field: &str, raw: Option<Option<String>>| {
            raw.map(|value| {
                value.and_then(|text| match school.parse_time(&text) {
                    Ok(at) if at > goes_out => Some(at),
                    Ok(_) => {
                        errors.add(field, Code::BeforePublication);
                        None
                    }
                    Err(reason) => {
                        errors.add(field, reason);
                        None
                    }
                })
            })
        };
        let ack_due_at = time("ack_due_at", raw.ack_due_at);
        let expires_at = time("expires_at", raw.expires_at);
        let escalation = raw.escalation.map(|value| {
            value.and_then(|text| match text.parse::<Ladder>() {
                Ok(ladder) => Some(ladder),
                Err(detail) => {
                    errors.add(
                        "escalation",
                        FieldError::new(Code::Ladder).with("detail", detail),
                    );
                    None
                }
            })
        });
        let due = ack_due_at.unwrap_or_else(|| current.and_then(|a| a.ack_due_at));
        let expiry = expires_at.unwrap_or_else(|| current.and_then(|a| a.expires_at));
        if let (Some(due), Some(expiry)) = (due, expiry)
            && due > expiry
        {
            errors.add("ack_due_at", Code::AfterExpiry);
        }
        Deadlines {
            ack_due_at,
            expires_at,
            escalation,
        }
    }
}

/// Plans the ladder of `announcement` as it now stands.
async fn plan(
    conn: &mut diesel_async::AsyncPgConnection,
    escalation: &Escalation,
    announcement: &Announcement,
) -> Result<(), AppError> {
    let ladder = escalation.ladder_of(announcement);
    steps::plan(conn, announcement.id, announcement.ack_due_at, &ladder).await
}

/// Publishes now (default), at `publish_at`, or keeps a draft.
#[utoipa::path(post, path = "/api/announcements", tag = "announcements", security(("bearer" = [])),
    request_body = CreateAnnouncementRequest,
    responses(
        (status = 201, body = AnnouncementView),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, description = "not allowed to publish to that audience", body = crate::error::ErrorBody),
    ))]
pub async fn create_announcement(
    db: web::Data<DbPool>,
    policy: web::Data<config::Announcements>,
    school: web::Data<config::School>,
    escalation: web::Data<Escalation>,
    fanout: web::Data<Addr<FanoutSupervisor>>,
    auth: AuthUser,
    body: web::Json<CreateAnnouncementRequest>,
) -> Result<HttpResponse, AppError> {
    if auth.role() == Role::Student {
        return Err(AppError::Forbidden("students do not publish announcements"));
    }
    let body = body.into_inner();
    let mut errors = FieldErrors::new();
    let title = short_text(&mut errors, "title", &body.title, 200);
    let text = body_text(&mut errors, &body.body);
    let publish_at = body
        .publish_at
        .as_deref()
        .and_then(|at| future_time(&mut errors, "publish_at", &school, at));
    let goes_out = publish_at.unwrap_or_else(Utc::now);
    let raw = RawDeadlines {
        ack_due_at: Some(body.ack_due_at),
        expires_at: Some(body.expires_at),
        escalation: Some(body.escalation),
    };
    let deadlines = Deadlines::read(&mut errors, &school, raw, goes_out, None);
    errors.into_result()?;
    check_audience(&db, &policy, &auth, body.audience).await?;
    let status = match (body.draft, publish_at) {
        (true, _) => AnnouncementStatus::Draft,
        (false, Some(_)) => AnnouncementStatus::Scheduled,
        (false, None) => AnnouncementStatus::Published,
    };
    let new = NewAnnouncement {
        title,
        body: text,
        audience_kind: body.audience.kind(),
        audience_id: body.audience.id(),
        publisher_id: auth.id(),
        status,
        publish_at,
        published_at: (status == AnnouncementStatus::Published).then(Utc::now),
        ack_due_at: deadlines.ack_due_at.flatten(),
        expires_at: deadlines.expires_at.flatten(),
        escalation: deadlines.escalation.flatten().map(|l| l.to_string()),
    };
    let mut conn = db.get().await?;
    // The announcement and its ladder are stored together.
    let announcement = conn
        .transaction(async |conn| {
            let announcement = store::insert(conn, new).await?;
            plan(conn, &escalation, &announcement).await?;
            Ok::<_, AppError>(announcement)
        })
        .await?;
    announce_published(&fanout, &announcement);
    Ok(HttpResponse::Created().json(store::view(&mut conn, announcement).await?))
}

/// Edits a draft or scheduled announcement (its publisher or staff).
#[utoipa::path(patch, path = "/api/announcements/{id}", tag = "announcements", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = UpdateAnnouncementRequest,
    responses(
        (status = 200, body = AnnouncementView),
        (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "already published or withdrawn", body = crate::error::ErrorBody),
    ))]
pub async fn update_announcement(
    db: web::Data<DbPool>,
    policy: web::Data<config::Announcements>,
    school: web::Data<config::School>,
    escalation: web::Data<Escalation>,
    auth: AuthUser,
    id: web::Path<AnnouncementId>,
    body: web::Json<UpdateAnnouncementRequest>,
) -> Result<web::Json<AnnouncementView>, AppError> {
    let current = visible(&db, &auth, id.into_inner()).await?;
    let body = body.into_inner();
    let mut errors = FieldErrors::new();
    let title = body
        .title
        .map(|t| short_text(&mut errors, "title", &t, 200));
    let text = body.body.map(|b| body_text(&mut errors, &b));
    let publish_at = body
        .publish_at
        .map(|at| at.and_then(|at| future_time(&mut errors, "publish_at", &school, &at)));
    let goes_out = publish_at
        .unwrap_or(current.publish_at)
        .unwrap_or_else(Utc::now);
    let raw = RawDeadlines {
        ack_due_at: body.ack_due_at,
        expires_at: body.expires_at,
        escalation: body.escalation,
    };
    let deadlines = Deadlines::read(&mut errors, &school, raw, goes_out, Some(&current));
    errors.into_result()?;
    if let Some(audience) = body.audience {
        check_audience(&db, &policy, &auth, audience).await?;
    }
    let replan = deadlines.ack_due_at.is_some() || deadlines.escalation.is_some();
    let changes = AnnouncementChanges {
        title,
        body: text,
        audience_kind: body.audience.map(Audience::kind),
        audience_id: body.audience.map(Audience::id),
        status: publish_at.map(|at| match at {
            Some(_) => AnnouncementStatus::Scheduled,
            None => AnnouncementStatus::Draft,
        }),
        publish_at,
        ack_due_at: deadlines.ack_due_at,
        expires_at: deadlines.expires_at,
        escalation: deadlines
            .escalation
            .map(|ladder| ladder.map(|l| l.to_string())),
    };
    let mut conn = db.get().await?;
    let updated = conn
        .transaction(async |conn| {
            let updated = store::update_unpublished(conn, current.id, changes).await?;
            if replan {
                plan(conn, &escalation, &updated).await?;
            }
            Ok::<_, AppError>(updated)
        })
        .await?;
    Ok(web::Json(store::view(&mut conn, updated).await?))
}
