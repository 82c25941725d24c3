//! Why a field was refused, in a form both people and programs read: a stable
//! `code` the app translates, the figures the reason names (`params`), and an
//! English `message` for anyone reading the raw answer.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Every reason a field can be refused for. The app keeps a translation of
/// each (`error.field.<code>` in its catalogs), filled in from `params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = FieldErrorCode)]
pub enum Code {
    /// Absent, or empty where a value is needed.
    Required,
    /// Only white space.
    Blank,
    /// `params.min`: the fewest characters allowed.
    TooShort,
    /// `params.max`: the most characters allowed.
    TooLong,
    ControlCharacters,
    /// `params.allowed`: the symbols allowed beside letters and digits.
    Characters,
    NotAnEmail,
    /// `params.domains`: the e-mail domains registration is open to.
    Domain,
    /// Another record already has this value.
    Taken,
    Incorrect,
    /// A one-time token that is unknown, used or expired.
    InvalidToken,
    NotInFuture,
    /// A deadline at or before the announcement goes out.
    BeforePublication,
    /// An acknowledgment due after the announcement expires.
    AfterExpiry,
    /// `params.detail`: why the escalation ladder does not read.
    Ladder,
    NotATime,
    /// A local time the clocks skip (a daylight-saving gap); `params.timezone`.
    SkippedTime,
    /// `params.min` and `params.max`, inclusive.
    OutOfRange,
    /// `params.min`: the least value allowed.
    TooSmall,
    /// `params.step`: the value must be a multiple of it.
    Precision,
    /// `params.what`: the kind of record (course, section) the id names.
    NoSuch,
    /// `params.role`: the role the person must have, and be active in.
    NotActive,
    /// Given more than once where once is allowed.
    Repeated,
    /// `params.after`: the field that must come first.
    OutOfOrder,
    NotAnId,
    NotUtf8,
    /// A file in neither of the encodings imports read.
    TextEncoding,
    NotACursor,
    EmptyFile,
    BinaryFile,
    /// `params.detail`: what the CSV reader could not read.
    NotCsv,
    /// `params.columns`: the columns the first row must name.
    MissingColumns,
    /// `params.encoding`: the charset the upload declared.
    WrongEncoding,
    /// `params.min`: how many kinds of character a password must mix.
    CharacterClasses,
    /// A password holding the owner's username or e-mail name.
    Personal,
    /// A password on the list of commonly used ones.
    Common,
    /// A password of digits only.
    Numeric,
    /// A dependency (`/readyz`) that does not answer.
    Down,
}

impl Code {
    /// Every code, for checks that each has a translation.
    pub const ALL: &[Code] = &[
        Code::Required,
        Code::Blank,
        Code::TooShort,
        Code::TooLong,
        Code::ControlCharacters,
        Code::Characters,
        Code::NotAnEmail,
        Code::Domain,
        Code::Taken,
        Code::Incorrect,
        Code::InvalidToken,
        Code::NotInFuture,
        Code::BeforePublication,
        Code::AfterExpiry,
        Code::Ladder,
        Code::NotATime,
        Code::SkippedTime,
        Code::OutOfRange,
        Code::TooSmall,
        Code::Precision,
        Code::NoSuch,
        Code::NotActive,
        Code::Repeated,
        Code::OutOfOrder,
        Code::NotAnId,
        Code::NotUtf8,
        Code::TextEncoding,
        Code::NotACursor,
        Code::EmptyFile,
        Code::BinaryFile,
        Code::NotCsv,
        Code::MissingColumns,
        Code::WrongEncoding,
        Code::CharacterClasses,
        Code::Personal,
        Code::Common,
        Code::Numeric,
        Code::Down,
    ];

    /// The code as it is written on the wire.
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The English reason, with `{param}` placeholders.
    fn template(self) -> &'static str {
        match self {
            Code::Required => "is required",
            Code::Blank => "must not be blank",
            Code::TooShort => "must be at least {min} characters",
            Code::TooLong => "must be at most {max} characters",
            Code::ControlCharacters => "must not contain control characters",
            Code::Characters => "may contain only letters, digits and {allowed}",
            Code::NotAnEmail => "is not a valid email address",
            Code::Domain => "must be an address at {domains}",
            Code::Taken => "is already taken",
            Code::Incorrect => "is incorrect",
            Code::InvalidToken => "is invalid, already used or expired",
            Code::NotInFuture => "must be in the future",
            Code::BeforePublication => "must be after the announcement is published",
            Code::AfterExpiry => "must not be after the announcement expires",
            Code::Ladder => "is not an escalation ladder: {detail}",
            Code::NotATime => {
                "must be an RFC 3339 time, or a local YYYY-MM-DDTHH:MM in the school's time zone"
            }
            Code::SkippedTime => "does not exist in {timezone} (the clocks skip it)",
            Code::OutOfRange => "must be between {min} and {max}",
            Code::TooSmall => "must be at least {min}",
            Code::Precision => "must be a multiple of {step}",
            Code::NoSuch => "no such {what}",
            Code::NotActive => "must be an active {role}",
            Code::Repeated => "given more than once",
            Code::OutOfOrder => "must come after the {after} field",
            Code::NotAnId => "must be an id",
            Code::NotUtf8 => "must be UTF-8 text",
            Code::TextEncoding => "is neither UTF-8 nor GB18030 text: save it as \"CSV UTF-8\"",
            Code::NotACursor => "must be a cursor from an earlier message",
            Code::EmptyFile => "the file is empty",
            Code::BinaryFile => "not a CSV file: it holds binary data",
            Code::NotCsv => "not a CSV file: {detail}",
            Code::MissingColumns => {
                "missing required columns: {columns} (the first row must name the columns)"
            }
            Code::WrongEncoding => {
                "is not the {encoding} text its charset says: save it as \"CSV UTF-8\""
            }
            Code::CharacterClasses => {
                "must mix at least {min} of: lowercase, uppercase, digit, symbol"
            }
            Code::Personal => "must not contain your username or the first part of your email",
            Code::Common => "is a commonly used password",
            Code::Numeric => "must not be entirely numeric",
            Code::Down => "down",
        }
    }
}

/// One reason a field was refused.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldError {
    pub code: Code,
    /// The reason in English, for people reading the raw answer; the app
    /// shows its own translation of `code`.
    pub message: String,
    /// The figures and names `message` mentions, by placeholder name.
    #[schema(value_type = Object)]
    pub params: BTreeMap<&'static str, Value>,
}

impl FieldError {
    pub fn new(code: Code) -> Self {
        Self {
            code,
            message: code.template().to_owned(),
            params: BTreeMap::new(),
        }
    }

    /// Adds a figure the reason names, e.g. `.with("max", 200)`.
    pub fn with(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.params.insert(name, value.into());
        let mut message = self.code.template().to_owned();
        for (name, value) in &self.params {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            message = message.replace(&format!("{{{name}}}"), &text);
        }
        self.message = message;
        self
    }

    pub fn too_long(max: usize) -> Self {
        Self::new(Code::TooLong).with("max", max)
    }
}

impl From<Code> for FieldError {
    fn from(code: Code) -> Self {
        Self::new(code)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The reasons per input field, e.g. `{"password": [{"code": "too_short", …}]}`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<FieldError>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, reason: impl Into<FieldError>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(reason.into());
    }

    pub fn with(mut self, field: &str, reason: impl Into<FieldError>) -> Self {
        self.add(field, reason);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields with a reason, in name order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The first reason recorded for `field`.
    pub fn first(&self, field: &str) -> Option<&FieldError> {
        self.0.get(field)?.first()
    }

    pub fn merge(&mut self, other: FieldErrors) {
        for (field, reasons) in other.0 {
            self.0.entry(field).or_default().extend(reasons);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_names_its_figures_in_its_message() {
        let reason = FieldError::new(Code::OutOfRange)
            .with("min", 1)
            .with("max", 1000);
        assert_eq!(reason.message, "must be between 1 and 1000");
        let json = serde_json::to_value(&reason).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "out_of_range", "message": "must be between 1 and 1000",
                               "params": {"min": 1, "max": 1000}})
        );
    }

    #[test]
    fn every_code_is_listed_once_and_all_are_listed() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code), "{code:?} listed twice");
        }
        // A code left out of ALL would go untranslated: count the variants
        // by their wire names through the schema utoipa writes.
        let schema = serde_json::to_value(<Code as utoipa::PartialSchema>::schema()).unwrap();
        let listed = schema["enum"].as_array().map_or(0, Vec::len);
        assert_eq!(listed, Code::ALL.len(), "{schema}");
    }
}
