//! `GET /api/config`: what the app needs to know of the school before
//! anyone signs in — its time zone, its default language, the languages
//! spoken, who may register, and how deadlines are chased.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use crate::config;
use crate::http::resource;
use crate::locale::Locale;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/config").route(web::get().to(school_config)));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchoolConfig {
    /// The IANA zone every local time is in, e.g. `Asia/Shanghai`.
    pub timezone: String,
    pub default_locale: Locale,
    /// Every language the app and the mails come in.
    pub locales: Vec<Locale>,
    /// `{"mode": "open" | "closed"}` or `{"mode": "domains", "domains": [...]}`.
    pub registration: config::Registration,
    /// The school's escalation ladder for announcements with a due time
    /// (`in_app@24h,mail@2h,summary@0s`), which compose forms show.
    pub escalation: String,
    /// When ladder reminders wait (`22:00-07:00`, school time), if ever.
    pub quiet_hours: Option<String>,
}

/// The school's settings the app reads before sign-in (anyone).
#[utoipa::path(get, path = "/api/config", tag = "school",
    responses((status = 200, body = SchoolConfig)))]
pub async fn school_config(
    school: web::Data<config::School>,
    registration: web::Data<config::Registration>,
    announcements: web::Data<config::Announcements>,
) -> web::Json<SchoolConfig> {
    web::Json(SchoolConfig {
        timezone: school.zone().name().to_owned(),
        default_locale: school.default_locale,
        locales: Locale::ALL.to_vec(),
        registration: registration.get_ref().clone(),
        escalation: announcements.escalation.trim().to_owned(),
        quiet_hours: school
            .quiet_hours
            .as_deref()
            .map(str::trim)
            .filter(|hours| !hours.is_empty())
            .map(str::to_owned),
    })
}
