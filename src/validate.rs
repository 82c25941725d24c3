//! Field rules shared by several resources.

use chrono::{DateTime, Utc};

use crate::config::School;
use crate::error::{Code, FieldError, FieldErrors};

/// `raw` trimmed, recording under `field` why it is unacceptable: blank,
/// longer than `max` characters, or holding control characters.
pub fn short_text(errors: &mut FieldErrors, field: &str, raw: &str, max: usize) -> String {
    let value = raw.trim();
    let length = value.chars().count();
    if length == 0 {
        errors.add(field, Code::Blank);
    } else if length > max {
        errors.add(field, FieldError::too_long(max));
    } else if value.chars().any(char::is_control) {
        errors.add(field, Code::ControlCharacters);
    }
    value.to_owned()
}

/// A time in the future, as a request gives it (RFC 3339, or a local time
/// on the school's clock), recording under `field` why it is unacceptable.
pub fn future_time(
    errors: &mut FieldErrors,
    field: &str,
    school: &School,
    raw: &str,
) -> Option<DateTime<Utc>> {
    match school.parse_time(raw) {
        Ok(at) if at > Utc::now() => Some(at),
        Ok(_) => {
            errors.add(field, Code::NotInFuture);
            None
        }
        Err(reason) => {
            errors.add(field, reason);
            None
        }
    }
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`):
/// `#[serde(default, with = "crate::validate::double_option")]`.
pub mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
