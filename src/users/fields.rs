//! Validated account fields: once parsed, a value is known to be acceptable.

use crate::error::{Code, FieldError, FieldErrors};

/// 3–150 characters of letters, digits and `._-`; no `@`, so a login name is
/// never mistaken for an email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let length = name.chars().count();
        if length < 3 {
            return Err(FieldError::new(Code::TooShort).with("min", 3));
        }
        if length > 150 {
            return Err(FieldError::too_long(150));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(FieldError::new(Code::Characters).with("allowed", ". _ -"));
        }
        Ok(Username(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An RFC 5322 address of at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim();
        if email.len() > 254 {
            return Err(FieldError::too_long(254));
        }
        if !email_address::EmailAddress::is_valid(email) || !email.contains('@') {
            return Err(Code::NotAnEmail.into());
        }
        Ok(Email(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`, which a password may not contain.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

/// How a person is called, in any script (张伟, Zoë O'Brien): 1–100
/// characters once trimmed, none of them control or text-reordering
/// characters (a name must not rearrange the text around it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let length = name.chars().count();
        if length == 0 {
            return Err(Code::Required.into());
        }
        if length > 100 {
            return Err(FieldError::too_long(100));
        }
        if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
            return Err(Code::ControlCharacters.into());
        }
        Ok(DisplayName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that reorder displayed text (U+202A–202E, U+2066–2069, marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A student or staff number: 1–32 letters, digits and `-./_`, unique
/// (whatever its case) when set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolNumber(String);

impl SchoolNumber {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let number = raw.trim();
        if number.is_empty() {
            return Err(Code::Required.into());
        }
        if number.chars().count() > 32 {
            return Err(FieldError::too_long(32));
        }
        if !number
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '/' | '_'))
        {
            return Err(FieldError::new(Code::Characters).with("allowed", "- . / _"));
        }
        Ok(SchoolNumber(number.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses `raw` into `field`, recording the reason on failure.
pub fn parse_field<T>(
    errors: &mut FieldErrors,
    field: &str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, FieldError>,
) -> Option<T> {
    match parse(raw) {
        Ok(value) => Some(value),
        Err(reason) => {
            errors.add(field, reason);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_and_checked() {
        assert_eq!(Username::parse("  ada.l ").unwrap().as_str(), "ada.l");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("ada@school").is_err());
        assert!(Username::parse(&"a".repeat(151)).is_err());
    }

    #[test]
    fn names_take_any_script_but_no_control_characters() {
        assert_eq!(DisplayName::parse(" 张伟 ").unwrap().as_str(), "张伟");
        assert_eq!(
            DisplayName::parse("Zoë O'Brien").unwrap().as_str(),
            "Zoë O'Brien"
        );
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"名".repeat(101)).is_err());
        assert!(DisplayName::parse("Eve\u{202e}nimda").is_err());
        assert!(DisplayName::parse("Eve\nAdmin").is_err());
        assert_eq!(
            SchoolNumber::parse(" S-2026/001 ").unwrap().as_str(),
            "S-2026/001"
        );
        assert!(SchoolNumber::parse("S 001").is_err());
        assert!(SchoolNumber::parse("").is_err());
    }

    #[test]
    fn emails_are_checked() {
        let email = Email::parse("Ada.Lovelace@school.example").unwrap();
        assert_eq!(email.local_part(), "Ada.Lovelace");
        assert!(Email::parse("not-an-email").is_err());
        assert!(Email::parse("a@").is_err());
    }
}
