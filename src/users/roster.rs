//! The school's people in bulk: the roster as exports write it and imports
//! read and write it, and the queue of invitations a roster import owes its
//! new accounts.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::model::Role;
use crate::db::lower;
use crate::db::schema::{invitations_due, users};
use crate::deliveries::store as deliveries;
use crate::error::AppError;
use crate::ids::UserId;

/// A person as a roster file holds them.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct RosterRow {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub role: Role,
    pub number: Option<String>,
}

/// Every account, by username: what an export writes.
pub async fn records(conn: &mut AsyncPgConnection) -> Result<Vec<RosterRow>, AppError> {
    Ok(users::table
        .select((
            users::username,
            users::display_name,
            users::email,
            users::role,
            users::number,
        ))
        .order(lower(users::username))
        .load(conn)
        .await?)
}

/// An account a roster row may be about or collide with, its keys lowercased.
#[derive(Debug, Clone, Queryable)]
pub struct Existing {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub number: Option<String>,
    pub role: Role,
}

/// The accounts with any of these (lowercased) usernames, e-mails or numbers.
pub async fn existing(
    conn: &mut AsyncPgConnection,
    usernames: &[String],
    emails: &[String],
    numbers: &[String],
) -> Result<Vec<Existing>, AppError> {
    Ok(users::table
        .filter(
            lower(users::username)
                .eq_any(usernames)
                .or(lower(users::email).eq_any(emails))
                .or(lower(users::number.assume_not_null()).eq_any(numbers)),
        )
        .select((
            users::id,
            lower(users::username),
            lower(users::email),
            users::number.nullable(),
            users::role,
        ))
        .load::<Existing>(conn)
        .await?
        .into_iter()
        .map(|mut found| {
            found.number = found.number.map(|n| n.to_lowercase());
            found
        })
        .collect())
}

/// What writing one roster row did.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Written {
    #[diesel(sql_type = BigInt)]
    pub id: UserId,
    /// A new account (without a password; its invitation is queued).
    #[diesel(sql_type = Bool)]
    pub inserted: bool,
}

/// Inserts the rows' accounts, or updates those whose username (any case)
/// exists, in one statement; a row that matches what is stored changes
/// nothing and is not returned. New accounts have no password: each is
/// queued for an invitation, and new students get the live announcements
/// addressed to all students. The usernames must differ from each other.
/// An e-mail or number another account holds fails the whole statement
/// with a 409 naming the field (the caller may then go row by row).
pub async fn upsert_many(
    conn: &mut AsyncPgConnection,
    rows: &[RosterRow],
) -> Result<Vec<Written>, AppError> {
    let usernames: Vec<&str> = rows.iter().map(|r| r.username.as_str()).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.display_name.as_str()).collect();
    let emails: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
    let roles: Vec<&str> = rows.iter().map(|r| r.role.as_str()).collect();
    let numbers: Vec<&str> = rows
        .iter()
        .map(|r| r.number.as_deref().unwrap_or_default())
        .collect();
    conn.transaction(async |conn| {
        let written: Vec<Written> = diesel::sql_query(
            "INSERT INTO users (username, display_name, email, role, number)
             SELECT u, d, e, r, NULLIF(n, '')
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t(u, d, e, r, n)
             ON CONFLICT (lower(username)) DO UPDATE
                 SET display_name = EXCLUDED.display_name, email = EXCLUDED.email,
                     role = EXCLUDED.role, number = EXCLUDED.number, updated_at = now()
                 WHERE (users.display_name, users.email, users.role, users.number)
                       IS DISTINCT FROM (EXCLUDED.display_name, EXCLUDED.email, EXCLUDED.role, EXCLUDED.number)
             RETURNING id, (xmax = 0) AS inserted",
        )
        .bind::<Array<Text>, _>(&usernames)
        .bind::<Array<Text>, _>(&names)
        .bind::<Array<Text>, _>(&emails)
        .bind::<Array<Text>, _>(&roles)
        .bind::<Array<Text>, _>(&numbers)
        .load(conn)
        .await
        .map_err(super::store::map_taken)?;
        let new: Vec<UserId> = written.iter().filter(|w| w.inserted).map(|w| w.id).collect();
        diesel::insert_into(invitations_due::table)
            .values(
                new.iter()
                    .map(|id| invitations_due::user_id.eq(*id))
                    .collect::<Vec<_>>(),
            )
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        let changed: Vec<UserId> = written.iter().map(|w| w.id).collect();
        deliveries::deliver_due(conn, &changed).await?;
        Ok(written)
    })
    .await
}

/// Takes up to `limit` accounts off the invitation queue, oldest first; a
/// node's take skips what another node is taking.
pub async fn take_due_invitations(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<UserId>, AppError> {
    Ok(diesel::sql_query(
        "DELETE FROM invitations_due WHERE user_id IN (
             SELECT user_id FROM invitations_due ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING user_id",
    )
    .bind::<BigInt, _>(limit)
    .load::<DueInvitation>(conn)
    .await?
    .into_iter()
    .map(|due| due.user_id)
    .collect())
}

#[derive(QueryableByName)]
struct DueInvitation {
    #[diesel(sql_type = BigInt)]
    user_id: UserId,
}

/// How many invitations wait to be mailed.
pub async fn invitations_waiting(conn: &mut AsyncPgConnection) -> Result<i64, AppError> {
    Ok(invitations_due::table.count().get_result(conn).await?)
}
