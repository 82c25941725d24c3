//! Creating accounts: one path for self-registration, `create-user` and the demo seed,
//! so every account meets the same rules.

use super::fields::{Email, Username, parse_field};
use super::model::{NewUser, Role, User};
use super::store as user_store;
use crate::auth::hashing::Hasher;
use crate::auth::password::{self, Owner};
use crate::db::DbPool;
use crate::error::{AppError, FieldErrors};

/// Validates and stores a new account; shared by register, `create-user` and the demo seed.
pub async fn create(
    db: &DbPool,
    hasher: &Hasher,
    username: &str,
    email: &str,
    password: &str,
    role: Role,
) -> Result<User, AppError> {
    let mut errors = FieldErrors::new();
    let username = parse_field(&mut errors, "username", username, Username::parse);
    let email = parse_field(&mut errors, "email", email, Email::parse);
    let owner = Owner {
        username: username.as_ref().map(Username::as_str),
        email: email.as_ref().map(Email::as_str),
    };
    for failure in password::failures(password, owner) {
        errors.add("password", failure);
    }
    errors.into_result()?;
    let (Some(username), Some(email)) = (username, email) else {
        return Err(AppError::internal(
            "fields parsed without errors yet missing",
        ));
    };

    let taken =
        user_store::taken_fields(&mut *db.get().await?, username.as_str(), email.as_str()).await?;
    if !taken.is_empty() {
        return Err(AppError::conflict(
            "already_exists",
            "an account already uses these details",
            taken,
        ));
    }
    let password_hash = hasher.hash(password).await?;
    user_store::insert(
        &mut *db.get().await?,
        NewUser {
            username: username.as_str(),
            email: email.as_str(),
            password_hash: &password_hash,
            role,
        },
    )
    .await
}
