//! Field rules shared by several resources.

use crate::error::FieldErrors;

/// `raw` trimmed, recording under `field` why it is unacceptable: blank,
/// longer than `max` characters, or holding control characters.
pub fn short_text(errors: &mut FieldErrors, field: &str, raw: &str, max: usize) -> String {
    let value = raw.trim();
    let length = value.chars().count();
    if length == 0 {
        errors.add(field, "must not be blank");
    } else if length > max {
        errors.add(field, format!("must be at most {max} characters"));
    } else if value.chars().any(char::is_control) {
        errors.add(field, "must not contain control characters");
    }
    value.to_owned()
}
