//! Queries on `users`.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::model::{NewUser, Role, User};
use crate::db::schema::users;
use crate::db::{lower, violates};
use crate::error::{AppError, Code, FieldErrors};
use crate::ids::UserId;
use crate::locale::Locale;
use crate::pagination::Page;

pub async fn insert(conn: &mut AsyncPgConnection, new: NewUser<'_>) -> Result<User, AppError> {
    diesel::insert_into(users::table)
        .values(&new)
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(map_taken)
}

/// A unique field someone else holds, as the conflict it is.
pub fn map_taken(error: diesel::result::Error) -> AppError {
    if violates(&error, "users_username_lower_key") {
        taken("username")
    } else if violates(&error, "users_email_lower_key") {
        taken("email")
    } else if violates(&error, "users_number_lower_key") {
        taken("number")
    } else {
        error.into()
    }
}

fn taken(field: &str) -> AppError {
    AppError::conflict(
        "already_exists",
        format!("that {field} is already taken"),
        FieldErrors::new().with(field, Code::Taken),
    )
}

/// Which of `username`, `email` and `number` already belong to someone
/// else than `except` (any case). Unset ones are not looked for.
pub async fn taken_fields(
    conn: &mut AsyncPgConnection,
    username: Option<&str>,
    email: Option<&str>,
    number: Option<&str>,
    except: Option<UserId>,
) -> Result<FieldErrors, AppError> {
    let lowered = |value: Option<&str>| value.map(str::to_lowercase).unwrap_or_default();
    let (username, email, number) = (lowered(username), lowered(email), lowered(number));
    let rows: Vec<(String, String, Option<String>)> = users::table
        .filter(
            lower(users::username)
                .eq(&username)
                .or(lower(users::email).eq(&email))
                .or(lower(users::number.assume_not_null()).eq(&number)),
        )
        .filter(users::id.ne(except.unwrap_or(UserId(0))))
        .select((users::username, users::email, users::number))
        .load(conn)
        .await?;
    let mut fields = FieldErrors::new();
    let matches =
        |stored: &str, wanted: &str| !wanted.is_empty() && stored.to_lowercase() == wanted;
    if rows.iter().any(|(u, _, _)| matches(u, &username)) {
        fields.add("username", Code::Taken);
    }
    if rows.iter().any(|(_, e, _)| matches(e, &email)) {
        fields.add("email", Code::Taken);
    }
    if rows
        .iter()
        .any(|(_, _, n)| n.as_deref().is_some_and(|n| matches(n, &number)))
    {
        fields.add("number", Code::Taken);
    }
    Ok(fields)
}

pub async fn find(conn: &mut AsyncPgConnection, id: UserId) -> Result<User, AppError> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("user"))
}

/// The user a login name designates: an email when it contains `@`, else a username.
pub async fn find_by_login(
    conn: &mut AsyncPgConnection,
    login: &str,
) -> Result<Option<User>, AppError> {
    let login = login.trim().to_lowercase();
    let query = users::table.select(User::as_select()).into_boxed();
    let query = if login.contains('@') {
        query.filter(lower(users::email).eq(login))
    } else {
        query.filter(lower(users::username).eq(login))
    };
    Ok(query.first(conn).await.optional()?)
}

pub async fn find_active_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> Result<Option<User>, AppError> {
    Ok(users::table
        .filter(lower(users::email).eq(email.trim().to_lowercase()))
        .filter(users::is_active.eq(true))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?)
}

#[derive(Debug, Default)]
pub struct UserFilter {
    /// Matches anywhere in the name, username, number or e-mail, any case.
    pub q: Option<String>,
    pub role: Option<Role>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &UserFilter,
    page: Page,
) -> Result<(Vec<User>, i64), AppError> {
    let filtered = || {
        let mut query = users::table.into_boxed();
        if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = format!("%{}%", escape_like(q));
            query = query.filter(
                users::username
                    .ilike(pattern.clone())
                    .or(users::display_name.ilike(pattern.clone()))
                    .or(users::number.assume_not_null().ilike(pattern.clone()))
                    .or(users::email.ilike(pattern)),
            );
        }
        if let Some(role) = filter.role {
            query = query.filter(users::role.eq(role));
        }
        query
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(User::as_select())
        .order(users::id)
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    Ok((items, total))
}

/// Escapes `%`, `_` and `\` so user text matches literally inside LIKE.
pub fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// What staff may change of an account; `None` leaves a field as it is,
/// and `number: Some(None)` clears the number.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub number: Option<Option<String>>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    pub locale: Option<Locale>,
}

impl UserChanges {
    fn is_empty(&self) -> bool {
        self.display_name.is_none()
            && self.email.is_none()
            && self.number.is_none()
            && self.role.is_none()
            && self.is_active.is_none()
            && self.locale.is_none()
    }
}

/// Changes an account if `allowed` accepts it as it stands (it is locked
/// meanwhile), refusing to leave the school without an active admin. Active
/// admins are locked first, so two admins demoting each other at once cannot
/// both succeed. Returns the user as it was, and as it is now.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: UserId,
    changes: UserChanges,
    allowed: impl Fn(&User) -> Result<(), AppError> + Send + Sync,
) -> Result<(User, User), AppError> {
    conn.transaction(async |conn| {
        let admins: Vec<UserId> = users::table
            .filter(users::role.eq(Role::Admin))
            .filter(users::is_active.eq(true))
            .select(users::id)
            .for_update()
            .load(conn)
            .await?;
        let current = users::table
            .find(id)
            .select(User::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or(AppError::NotFound("user"))?;
        allowed(&current)?;
        let stays_admin = changes.role.unwrap_or(current.role) == Role::Admin
            && changes.is_active.unwrap_or(current.is_active);
        if admins == [id] && !stays_admin {
            return Err(AppError::conflict(
                "last_admin",
                "the school must keep at least one active admin",
                FieldErrors::new(),
            ));
        }
        if changes.is_empty() {
            return Ok((current.clone(), current));
        }
        let updated = diesel::update(users::table.find(id))
            .set((&changes, users::updated_at.eq(Utc::now())))
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .map_err(map_taken)?;
        Ok((current, updated))
    })
    .await
}

pub async fn set_password_hash(
    conn: &mut AsyncPgConnection,
    id: UserId,
    password_hash: &str,
) -> Result<(), AppError> {
    let now = Utc::now();
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::credentials_changed_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn exists_by_username(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> Result<bool, AppError> {
    Ok(diesel::select(diesel::dsl::exists(
        users::table.filter(lower(users::username).eq(username.to_lowercase())),
    ))
    .get_result(conn)
    .await?)
}

/// Whether `id` is an active user with `role`.
pub async fn has_active_role(
    conn: &mut AsyncPgConnection,
    id: UserId,
    role: Role,
) -> Result<bool, AppError> {
    Ok(diesel::select(diesel::dsl::exists(
        users::table
            .find(id)
            .filter(users::role.eq(role))
            .filter(users::is_active.eq(true)),
    ))
    .get_result(conn)
    .await?)
}

/// Active users of `role` by username (any case): (lowercased username, id).
pub async fn ids_by_username(
    conn: &mut AsyncPgConnection,
    usernames: &[String],
    role: Role,
) -> Result<Vec<(String, UserId)>, AppError> {
    Ok(users::table
        .filter(crate::db::lower(users::username).eq_any(usernames))
        .filter(users::role.eq(role))
        .filter(users::is_active.eq(true))
        .select((crate::db::lower(users::username), users::id))
        .load(conn)
        .await?)
}

/// Active users of `role` by school number (any case): (lowercased number, id).
pub async fn ids_by_number(
    conn: &mut AsyncPgConnection,
    numbers: &[String],
    role: Role,
) -> Result<Vec<(String, UserId)>, AppError> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    Ok(users::table
        .filter(lower(users::number.assume_not_null()).eq_any(numbers))
        .filter(users::role.eq(role))
        .filter(users::is_active.eq(true))
        .select((lower(users::number.assume_not_null()), users::id))
        .load(conn)
        .await?)
}

/// Sets the language a user chose.
pub async fn set_locale(
    conn: &mut AsyncPgConnection,
    id: UserId,
    locale: Locale,
) -> Result<User, AppError> {
    Ok(diesel::update(users::table.find(id))
        .set((users::locale.eq(locale), users::updated_at.eq(Utc::now())))
        .returning(User::as_returning())
        .get_result(conn)
        .await?)
}
