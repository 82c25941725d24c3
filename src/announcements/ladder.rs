//! The escalation ladder's grammar and the school's quiet hours.
//!
//! A ladder is `channel@offset` steps before the due time, comma-separated:
//! `in_app@24h,mail@2h,summary@0s` (the default). Offsets are a whole number
//! of `s`, `m`, `h` or `d`. `none` is a ladder without steps. Quiet hours are
//! `HH:MM-HH:MM` on the school's clock (`22:00-07:00` spans midnight).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// An in-app reminder to those who have not acknowledged.
    InApp,
    /// A reminder mail to those who have not acknowledged.
    Mail,
    /// The count of who is missing, to the publisher (in the app and by mail).
    Summary,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::InApp => "in_app",
            Channel::Mail => "mail",
            Channel::Summary => "summary",
        }
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "in_app" => Ok(Channel::InApp),
            "mail" => Ok(Channel::Mail),
            "summary" => Ok(Channel::Summary),
            other => Err(format!(
                "unknown channel `{other}` (in_app, mail or summary)"
            )),
        }
    }
}

/// One rung: a channel, so long before the due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub channel: Channel,
    pub before: Duration,
}

/// The most steps a ladder may have: each is work for every recipient.
pub const MAX_STEPS: usize = 8;
/// The furthest before the due time a step may be.
const MAX_OFFSET_DAYS: i64 = 60;

/// The steps, earliest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder(Vec<Step>);

impl Ladder {
    pub fn steps(&self) -> &[Step] {
        &self.0
    }
}

impl FromStr for Ladder {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "none" || text.is_empty() {
            return Ok(Ladder(Vec::new()));
        }
        let mut steps = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (channel, offset) = part
                .split_once('@')
                .ok_or_else(|| format!("`{part}` is not channel@offset"))?;
            let step = Step {
                channel: channel.trim().parse()?,
                before: offset_of(offset.trim())?,
            };
            if steps.contains(&step) {
                return Err(format!("`{part}` is given twice"));
            }
            steps.push(step);
        }
        if steps.len() > MAX_STEPS {
            return Err(format!("at most {MAX_STEPS} steps"));
        }
        // Earliest first: the longest before the due time.
        steps.sort_by_key(|step| std::cmp::Reverse(step.before));
        Ok(Ladder(steps))
    }
}

impl fmt::Display for Ladder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|step| format!("{}@{}", step.channel.as_str(), written(step.before)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn offset_of(text: &str) -> Result<Duration, String> {
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a number of s, m, h or d"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{text}` needs a unit: s, m, h or d")),
    };
    if !(0..=MAX_OFFSET_DAYS * 86_400).contains(&seconds) {
        return Err(format!("`{text}` is not between 0s and {MAX_OFFSET_DAYS}d"));
    }
    Ok(Duration::seconds(seconds))
}

/// The shortest way to write `offset`.
fn written(offset: Duration) -> String {
    let s = offset.num_seconds();
    match s {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// When reminders wait: from `start` to `end` on the school's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
}

impl FromStr for QuietHours {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (start, end) = text
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("`{text}` is not HH:MM-HH:MM"))?;
        let time = |t: &str| {
            NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| format!("`{t}` is not HH:MM"))
        };
        let hours = QuietHours {
            start: time(start)?,
            end: time(end)?,
        };
        if hours.start == hours.end {
            return Err("quiet hours must not start and end at the same time".into());
        }
        Ok(hours)
    }
}

impl QuietHours {
    /// The end of the quiet window `at` falls in, on `zone`'s clock; `None`
    /// when `at` is not quiet.
    pub fn end_of_quiet(&self, at: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&zone);
        let time = local.time();
        let date = local.date_naive();
        let end_date = if self.start < self.end {
            if !(self.start <= time && time < self.end) {
                return None;
            }
            date
        } else if time >= self.start {
            date.succ_opt()?
        } else if time < self.end {
            date
        } else {
            return None;
        };
        let end = end_date.and_time(self.end);
        // A window ending in a skipped hour ends when the clocks resume.
        let resolved = zone.from_local_datetime(&end).earliest().or_else(|| {
            zone.from_local_datetime(&(end + Duration::hours(1)))
                .earliest()
        })?;
        Some(resolved.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_are_read_written_and_refused() {
        let ladder: Ladder = "mail@2h, in_app@24h,summary@0s".parse().unwrap();
        assert_eq!(ladder.to_string(), "in_app@1d,mail@2h,summary@0s");
        assert_eq!(ladder.steps()[0].before, Duration::hours(24));
        assert_eq!("none".parse::<Ladder>().unwrap().steps(), &[]);
        assert_eq!(
            "in_app@90s".parse::<Ladder>().unwrap().steps()[0].before,
            Duration::seconds(90)
        );
        for bad in [
            "sms@2h",
            "mail",
            "mail@2",
            "mail@-1h",
            "mail@61d",
            "mail@2h,mail@2h",
            "mail@1s,mail@2s,mail@3s,mail@4s,mail@5s,mail@6s,mail@7s,mail@8s,mail@9s",
        ] {
            assert!(bad.parse::<Ladder>().is_err(), "{bad}");
        }
    }

    #[test]
    fn quiet_hours_defer_to_their_end_on_the_school_clock() {
        let quiet: QuietHours = "22:00-07:00".parse().unwrap();
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        // 23:30 in Shanghai waits until 07:00 the next morning there.
        assert_eq!(
            quiet.end_of_quiet(at("2026-12-02T15:30:00Z"), shanghai),
            Some(at("2026-12-02T23:00:00Z"))
        );
        // 05:00 waits until 07:00 the same morning.
        assert_eq!(
            quiet.end_of_quiet(at("2026-12-02T21:00:00Z"), shanghai),
            Some(at("2026-12-02T23:00:00Z"))
        );
        assert_eq!(
            quiet.end_of_quiet(at("2026-12-02T04:00:00Z"), shanghai),
            None
        );
        let lunch: QuietHours = "12:00-13:30".parse().unwrap();
        assert_eq!(
            lunch.end_of_quiet(at("2026-12-02T04:15:00Z"), shanghai),
            Some(at("2026-12-02T05:30:00Z"))
        );
        assert!("22:00".parse::<QuietHours>().is_err());
        assert!("07:00-07:00".parse::<QuietHours>().is_err());
        assert!("25:00-07:00".parse::<QuietHours>().is_err());
    }
}
