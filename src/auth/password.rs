//! The password rules (one set for register, change and reset) and argon2id hashing.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, Code, FieldError, FieldErrors};

pub const MIN_LENGTH: usize = 10;
/// Bounds the work one login can cost the server.
pub const MAX_LENGTH: usize = 128;

/// Common passwords (Django's list of 20,000, lower-cased), matched case-insensitively.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common_passwords.txt").lines().collect());

/// One rule and whether the candidate passes it, for forms that tick rules live.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleOutcome {
    pub id: &'static str,
    pub ok: bool,
    pub message: &'static str,
}

/// Who the password is for: a password may not contain their names.
#[derive(Debug, Default, Clone, Copy)]
pub struct Owner<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
}

pub fn evaluate(password: &str, owner: Owner<'_>) -> Vec<RuleOutcome> {
    let length = password.chars().count();
    let lower = password.to_lowercase();
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .into_iter()
    .filter(|&present| present)
    .count();
    let local_part = owner.email.and_then(|email| email.split('@').next());
    let personal = [owner.username, local_part]
        .into_iter()
        .flatten()
        .map(|name| name.trim().to_lowercase())
        .any(|name| name.chars().count() >= 3 && lower.contains(&name));

    vec![
        RuleOutcome {
            id: "min_length",
            ok: length >= MIN_LENGTH,
            message: "At least 10 characters",
        },
        RuleOutcome {
            id: "max_length",
            ok: length <= MAX_LENGTH,
            message: "At most 128 characters",
        },
        RuleOutcome {
            id: "character_classes",
            ok: classes >= 3,
            message: "At least 3 of: lowercase, uppercase, digit, symbol",
        },
        RuleOutcome {
            id: "not_personal",
            ok: !personal,
            message: "Does not contain your username or the first part of your email",
        },
        RuleOutcome {
            id: "not_common",
            ok: !COMMON.contains(lower.trim()),
            message: "Is not a commonly used password",
        },
        RuleOutcome {
            id: "not_numeric",
            ok: password.is_empty() || !password.chars().all(|c| c.is_ascii_digit()),
            message: "Is not entirely numeric",
        },
    ]
}

/// The reasons `password` is refused (one per rule it fails), empty when it
/// is acceptable.
pub fn failures(password: &str, owner: Owner<'_>) -> Vec<FieldError> {
    evaluate(password, owner)
        .into_iter()
        .filter(|rule| !rule.ok)
        .map(|rule| match rule.id {
            "min_length" => FieldError::new(Code::TooShort).with("min", MIN_LENGTH),
            "max_length" => FieldError::too_long(MAX_LENGTH),
            "character_classes" => FieldError::new(Code::CharacterClasses).with("min", 3),
            "not_personal" => Code::Personal.into(),
            "not_common" => Code::Common.into(),
            _ => Code::Numeric.into(),
        })
        .collect()
}

/// Rejects `password` with every failed rule listed under `field`.
pub fn enforce(password: &str, owner: Owner<'_>, field: &str) -> Result<(), AppError> {
    let failed = failures(password, owner);
    if failed.is_empty() {
        return Ok(());
    }
    let mut errors = FieldErrors::new();
    for reason in failed {
        errors.add(field, reason);
    }
    Err(AppError::Validation(errors))
}

/// Hashes with argon2id and a fresh salt. CPU-heavy: call it off the async
/// threads (`web::block`).
pub fn hash(password: &str) -> Result<String, AppError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| AppError::internal(format!("argon2: {e}")))
}

/// Constant-time check of `password` against a stored PHC string.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of nothing anyone knows, verified when a login names no user so that
/// unknown and known usernames take the same time to refuse.
pub static DECOY_HASH: LazyLock<String> =
    LazyLock::new(|| hash("decoy password for unknown users").unwrap_or_default());

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_ids(password: &str, owner: Owner<'_>) -> Vec<&'static str> {
        evaluate(password, owner)
            .into_iter()
            .filter(|r| !r.ok)
            .map(|r| r.id)
            .collect()
    }

    #[test]
    fn a_strong_password_passes_every_rule() {
        assert!(failed_ids("Correct-Horse-42", Owner::default()).is_empty());
    }

    #[test]
    fn each_rule_fails_on_its_own() {
        assert_eq!(failed_ids("Sh0rt!x", Owner::default()), ["min_length"]);
        assert_eq!(
            failed_ids("alllowercaseletters", Owner::default()),
            ["character_classes"]
        );
        assert_eq!(
            failed_ids("40918273645512", Owner::default()),
            ["character_classes", "not_numeric"]
        );
        assert_eq!(
            failed_ids(
                "Xx-AdaLovelace-9",
                Owner {
                    username: Some("adalovelace"),
                    email: None
                }
            ),
            ["not_personal"]
        );
        assert_eq!(
            failed_ids(
                "Grace.Hopper#77",
                Owner {
                    username: None,
                    email: Some("grace.hopper@navy.example")
                }
            ),
            ["not_personal"]
        );
        assert_eq!(
            failed_ids(&"Aa1!".repeat(40), Owner::default()),
            ["max_length"]
        );
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        assert!(COMMON.len() >= 1000);
        assert!(failed_ids("Password123", Owner::default()).contains(&"not_common"));
        assert!(failed_ids("PASSWORD123", Owner::default()).contains(&"not_common"));
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let stored = hash("Correct-Horse-42").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("Correct-Horse-42", &stored));
        assert!(!verify("Correct-Horse-43", &stored));
        assert!(!verify("anything", "not a hash"));
    }
}
