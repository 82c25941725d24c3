//! Users as the rest of classbell sees them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::users;
use crate::ids::UserId;
use crate::locale::Locale;

crate::text_enum! {
    /// What a user may do in the school.
    pub enum Role {
        Student => "student",
        Teacher => "teacher",
        Manager => "manager",
        Registrar => "registrar",
        Admin => "admin",
    }
}

impl Role {
    /// Managers, registrars and admins run the school's records.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Manager | Role::Registrar | Role::Admin)
    }
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        Role::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// A row of `users`, hash included: never serialised.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    /// `None` until an invited account's first password is set.
    pub password_hash: Option<String>,
    pub role: Role,
    pub is_active: bool,
    pub credentials_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub display_name: String,
    pub number: Option<String>,
    /// The language they chose; `None` until they (or staff) choose.
    pub locale: Option<Locale>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
    pub number: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub role: Role,
}

/// What the API shows of a user.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    /// The school's student or staff number, when it has one.
    pub number: Option<String>,
    pub email: String,
    pub role: Role,
    pub is_active: bool,
    /// Invited by staff and no password set yet.
    pub invitation_pending: bool,
    /// The language they chose (`en` or `zh-CN`); `null` until chosen.
    pub locale: Option<Locale>,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            number: user.number,
            email: user.email,
            role: user.role,
            is_active: user.is_active,
            invitation_pending: user.password_hash.is_none(),
            locale: user.locale,
            created_at: user.created_at,
        }
    }
}
