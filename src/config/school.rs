//! The school itself: the time zone it lives in and the language it speaks
//! by default.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Args;

use crate::error::{Code, FieldError};
use crate::locale::Locale;

#[derive(Debug, Clone, Args)]
pub struct School {
    /// The IANA time zone the school lives in (e.g. Asia/Shanghai): every
    /// time shown or accepted without an offset is in it.
    #[arg(long, env = "CLASSBELL_TIMEZONE", default_value = "UTC")]
    pub timezone: String,

    /// The language for people who have not chosen one and whose browser
    /// asks for none classbell speaks: `en` or `zh-CN`.
    #[arg(long, env = "CLASSBELL_DEFAULT_LOCALE", default_value = "en")]
    pub default_locale: Locale,

    /// When reminders wait, on the school's clock: `HH:MM-HH:MM` (e.g.
    /// `22:00-07:00`); reminder pushes and mails due inside go out when it
    /// ends. Unset: no quiet hours.
    #[arg(long, env = "CLASSBELL_QUIET_HOURS")]
    pub quiet_hours: Option<String>,
}

impl School {
    /// The school's zone (UTC if the setting does not name one; start-up
    /// refuses such a setting, see `Settings::validate`).
    pub fn zone(&self) -> Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// A time as a request gives it: RFC 3339 with an offset, or a local
    /// date and time (`2026-12-03T08:00`, seconds optional) on the school's
    /// clock. A local time that a DST change skips is refused; one it
    /// repeats is taken at its first occurrence.
    pub fn parse_time(&self, text: &str) -> Result<DateTime<Utc>, FieldError> {
        let text = text.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(at.with_timezone(&Utc));
        }
        let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
            .map_err(|_| FieldError::new(Code::NotATime))?;
        self.zone()
            .from_local_datetime(&local)
            .earliest()
            .map(|at| at.with_timezone(&Utc))
            .ok_or_else(|| {
                FieldError::new(Code::SkippedTime).with("timezone", self.timezone.clone())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn school(zone: &str) -> School {
        School {
            timezone: zone.into(),
            default_locale: Locale::En,
            quiet_hours: None,
        }
    }

    #[test]
    fn local_times_are_on_the_school_clock() {
        let shanghai = school("Asia/Shanghai");
        assert_eq!(
            shanghai
                .parse_time("2026-12-03T08:00")
                .unwrap()
                .to_rfc3339(),
            "2026-12-03T00:00:00+00:00"
        );
        assert_eq!(
            shanghai
                .parse_time("2026-12-03T08:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-12-03T07:00:00+00:00"
        );
        // Across a DST change: New York's 02:30 on 8 March 2026 never happens,
        // its 01:30 on 1 November happens twice (the first is EDT, UTC−4).
        let new_york = school("America/New_York");
        assert!(new_york.parse_time("2026-03-08T02:30").is_err());
        assert_eq!(
            new_york
                .parse_time("2026-11-01T01:30")
                .unwrap()
                .to_rfc3339(),
            "2026-11-01T05:30:00+00:00"
        );
        assert_eq!(
            new_york
                .parse_time("2026-07-01T09:00")
                .unwrap()
                .to_rfc3339(),
            "2026-07-01T13:00:00+00:00"
        );
        assert!(shanghai.parse_time("tomorrow").is_err());
    }
}
