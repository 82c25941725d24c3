//! Creating accounts: one path for self-registration, staff, `create-user`
//! and the demo seed, so every account meets the same rules.

use super::fields::{DisplayName, Email, SchoolNumber, Username, parse_field};
use super::model::{NewUser, Role, User};
use super::store as user_store;
use crate::auth::hashing::Hasher;
use crate::auth::password::{self, Owner};
use crate::db::DbPool;
use crate::deliveries::store as deliveries;
use crate::error::{AppError, FieldErrors};

/// An account as whoever creates it describes it: raw input, checked by
/// [`create`].
#[derive(Debug, Clone, Copy)]
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub email: &'a str,
    /// How the person is called; the username when not given.
    pub display_name: Option<&'a str>,
    pub number: Option<&'a str>,
    pub role: Role,
}

impl<'a> NewAccount<'a> {
    /// An account known by its username only (self-registration, tests).
    pub fn named(username: &'a str, email: &'a str, role: Role) -> Self {
        NewAccount {
            username,
            email,
            display_name: None,
            number: None,
            role,
        }
    }
}

/// Validates and stores a new account. With a `password` it can sign in at
/// once; without one it waits for its invitation to be accepted.
pub async fn create(
    db: &DbPool,
    hasher: &Hasher,
    account: &NewAccount<'_>,
    password: Option<&str>,
) -> Result<User, AppError> {
    let mut errors = FieldErrors::new();
    let username = parse_field(&mut errors, "username", account.username, Username::parse);
    let email = parse_field(&mut errors, "email", account.email, Email::parse);
    let display_name = parse_field(
        &mut errors,
        "display_name",
        account.display_name.unwrap_or(account.username),
        DisplayName::parse,
    );
    let number = account
        .number
        .filter(|number| !number.trim().is_empty())
        .and_then(|number| parse_field(&mut errors, "number", number, SchoolNumber::parse));
    if let Some(password) = password {
        let owner = Owner {
            username: username.as_ref().map(Username::as_str),
            email: email.as_ref().map(Email::as_str),
        };
        for failure in password::failures(password, owner) {
            errors.add("password", failure);
        }
    }
    errors.into_result()?;
    let (Some(username), Some(email), Some(display_name)) = (username, email, display_name) else {
        return Err(AppError::internal(
            "fields parsed without errors yet missing",
        ));
    };
    let number = number.as_ref().map(SchoolNumber::as_str);

    let taken = user_store::taken_fields(
        &mut *db.get().await?,
        Some(username.as_str()),
        Some(email.as_str()),
        number,
        None,
    )
    .await?;
    if !taken.is_empty() {
        return Err(AppError::conflict(
            "already_exists",
            "an account already uses these details",
            taken,
        ));
    }
    let password_hash = match password {
        Some(password) => Some(hasher.hash(password).await?),
        None => None,
    };
    let mut conn = db.get().await?;
    let user = user_store::insert(
        &mut conn,
        NewUser {
            username: username.as_str(),
            email: email.as_str(),
            display_name: display_name.as_str(),
            number,
            password_hash: password_hash.as_deref(),
            role: account.role,
        },
    )
    .await?;
    // "All students" announcements that are live reach students made later
    // too. A new account has no open session to tell.
    deliveries::deliver_due(&mut conn, &[user.id]).await?;
    Ok(user)
}
