//! Queries on login sessions, refresh tokens and password resets.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::secret_token;
use crate::db::schema::{auth_sessions, password_resets, refresh_tokens, users};
use crate::error::AppError;
use crate::ids::UserId;
use crate::users::model::User;
use crate::users::store as user_store;

/// Opens a login session and returns it with its first refresh token.
pub async fn open_session(
    conn: &mut AsyncPgConnection,
    user_id: UserId,
    refresh_ttl: Duration,
) -> Result<(Uuid, String), AppError> {
    let session = Uuid::new_v4();
    let refresh = secret_token::generate();
    conn.transaction(async |conn| {
        diesel::insert_into(auth_sessions::table)
            .values((
                auth_sessions::id.eq(session),
                auth_sessions::user_id.eq(user_id),
            ))
            .execute(conn)
            .await?;
        insert_refresh_token(conn, session, &refresh, refresh_ttl).await
    })
    .await?;
    Ok((session, refresh))
}

async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    session: Uuid,
    token: &str,
    ttl: Duration,
) -> Result<(), AppError> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(secret_token::digest(token)),
            refresh_tokens::session_id.eq(session),
            refresh_tokens::expires_at.eq(Utc::now() + ttl),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// What presenting a refresh token led to.
pub enum Refresh {
    Rotated {
        user: Box<User>,
        session: Uuid,
        refresh_token: String,
    },
    /// The token was already spent: the whole session has been revoked.
    Reused,
    Invalid,
}

/// Spends `token` and issues its successor in the same session. Presenting a
/// spent token means it was stolen or replayed, so the session is revoked.
pub async fn rotate_refresh_token(
    conn: &mut AsyncPgConnection,
    token: &str,
    ttl: Duration,
) -> Result<Refresh, AppError> {
    let hash = secret_token::digest(token);
    conn.transaction(async |conn| {
        let found = refresh_tokens::table
            .inner_join(auth_sessions::table.inner_join(users::table))
            .filter(refresh_tokens::token_hash.eq(&hash))
            .select((
                refresh_tokens::session_id,
                refresh_tokens::expires_at,
                refresh_tokens::spent_at,
                auth_sessions::revoked_at,
                User::as_select(),
            ))
            .for_update()
            .first::<(
                Uuid,
                chrono::DateTime<Utc>,
                Option<chrono::DateTime<Utc>>,
                Option<chrono::DateTime<Utc>>,
                User,
            )>(conn)
            .await
            .optional()?;
        let Some((session, expires_at, spent_at, revoked_at, user)) = found else {
            return Ok(Refresh::Invalid);
        };
        if spent_at.is_some() {
            revoke_session(conn, session).await?;
            return Ok(Refresh::Reused);
        }
        if revoked_at.is_some() || expires_at <= Utc::now() || !user.is_active {
            return Ok(Refresh::Invalid);
        }
        diesel::update(refresh_tokens::table.find(&hash))
            .set(refresh_tokens::spent_at.eq(Utc::now()))
            .execute(conn)
            .await?;
        let refresh_token = secret_token::generate();
        insert_refresh_token(conn, session, &refresh_token, ttl).await?;
        Ok(Refresh::Rotated {
            user: Box::new(user),
            session,
            refresh_token,
        })
    })
    .await
}

/// The active user behind a live session, or `None` once either has ended.
pub async fn session_user(
    conn: &mut AsyncPgConnection,
    session: Uuid,
    user_id: UserId,
) -> Result<Option<User>, AppError> {
    Ok(auth_sessions::table
        .inner_join(users::table)
        .filter(auth_sessions::id.eq(session))
        .filter(auth_sessions::revoked_at.is_null())
        .filter(users::id.eq(user_id))
        .filter(users::is_active.eq(true))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn revoke_session(conn: &mut AsyncPgConnection, session: Uuid) -> Result<(), AppError> {
    diesel::update(auth_sessions::table.find(session))
        .filter(auth_sessions::revoked_at.is_null())
        .set(auth_sessions::revoked_at.eq(Utc::now()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of a user: after a password change or reset, or deactivation.
pub async fn revoke_all_sessions(
    conn: &mut AsyncPgConnection,
    user_id: UserId,
) -> Result<usize, AppError> {
    Ok(diesel::update(auth_sessions::table)
        .filter(auth_sessions::user_id.eq(user_id))
        .filter(auth_sessions::revoked_at.is_null())
        .set(auth_sessions::revoked_at.eq(Utc::now()))
        .execute(conn)
        .await?)
}

/// Stores a new password and ends every session, atomically.
pub async fn replace_password(
    conn: &mut AsyncPgConnection,
    user_id: UserId,
    password_hash: &str,
) -> Result<(), AppError> {
    conn.transaction(async |conn| {
        user_store::set_password_hash(conn, user_id, password_hash).await?;
        revoke_all_sessions(conn, user_id).await?;
        Ok(())
    })
    .await
}

crate::text_enum! {
    /// What a mailed password-setting token is for; one is never accepted as the other.
    pub enum TokenPurpose {
        /// Forgot-password: replaces a password.
        Reset => "reset",
        /// Staff created the account: sets its first password.
        Invitation => "invitation",
    }
}

/// Issues a single-use password-setting token; only its hash is stored. A
/// new invitation spends the user's earlier ones, so only the latest link works.
pub async fn create_password_reset(
    conn: &mut AsyncPgConnection,
    user_id: UserId,
    purpose: TokenPurpose,
    ttl: Duration,
) -> Result<String, AppError> {
    let token = secret_token::generate();
    conn.transaction(async |conn| {
        if purpose == TokenPurpose::Invitation {
            diesel::update(password_resets::table)
                .filter(password_resets::user_id.eq(user_id))
                .filter(password_resets::purpose.eq(purpose))
                .filter(password_resets::used_at.is_null())
                .set(password_resets::used_at.eq(Utc::now()))
                .execute(conn)
                .await?;
        }
        diesel::insert_into(password_resets::table)
            .values((
                password_resets::token_hash.eq(secret_token::digest(&token)),
                password_resets::user_id.eq(user_id),
                password_resets::purpose.eq(purpose),
                password_resets::expires_at.eq(Utc::now() + ttl),
            ))
            .execute(conn)
            .await?;
        Ok::<_, AppError>(())
    })
    .await?;
    Ok(token)
}

/// The active user a still-usable token of `purpose` belongs to.
pub async fn password_reset_user(
    conn: &mut AsyncPgConnection,
    token: &str,
    purpose: TokenPurpose,
) -> Result<Option<User>, AppError> {
    Ok(password_resets::table
        .inner_join(users::table)
        .filter(password_resets::token_hash.eq(secret_token::digest(token)))
        .filter(password_resets::purpose.eq(purpose))
        .filter(password_resets::used_at.is_null())
        .filter(password_resets::expires_at.gt(Utc::now()))
        .filter(users::is_active.eq(true))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Spends the token, sets the new password, spends the user's other
/// tokens (of either purpose) and ends their sessions, all or nothing. `false` when the
/// token was spent or expired meanwhile.
pub async fn complete_password_reset(
    conn: &mut AsyncPgConnection,
    token: &str,
    purpose: TokenPurpose,
    user_id: UserId,
    password_hash: &str,
) -> Result<bool, AppError> {
    let hash = secret_token::digest(token);
    conn.transaction(async |conn| {
        let now = Utc::now();
        let spent = diesel::update(password_resets::table.find(&hash))
            .filter(password_resets::user_id.eq(user_id))
            .filter(password_resets::purpose.eq(purpose))
            .filter(password_resets::used_at.is_null())
            .filter(password_resets::expires_at.gt(now))
            .set(password_resets::used_at.eq(now))
            .execute(conn)
            .await?;
        if spent == 0 {
            return Ok(false);
        }
        diesel::update(password_resets::table)
            .filter(password_resets::user_id.eq(user_id))
            .filter(password_resets::used_at.is_null())
            .set(password_resets::used_at.eq(now))
            .execute(conn)
            .await?;
        replace_password(conn, user_id, password_hash).await?;
        Ok(true)
    })
    .await
}

/// How long spent or expired credentials are kept for investigation before
/// they are deleted.
pub const KEEP_DEAD_CREDENTIALS: Duration = Duration::days(30);

/// What a pruning pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: usize,
    pub refresh_tokens: usize,
    pub password_resets: usize,
}

/// Deletes sessions revoked, refresh tokens spent or expired, and reset
/// tokens used or expired, more than `keep` ago; the tables would otherwise
/// grow with every login. Live credentials are never touched.
pub async fn prune_dead_credentials(
    conn: &mut AsyncPgConnection,
    keep: Duration,
) -> Result<Pruned, AppError> {
    let before = Utc::now() - keep;
    conn.transaction(async |conn| {
        let refresh_tokens = diesel::delete(refresh_tokens::table)
            .filter(
                refresh_tokens::spent_at
                    .lt(before)
                    .or(refresh_tokens::expires_at.lt(before)),
            )
            .execute(conn)
            .await?;
        // Deleting a session deletes its remaining refresh tokens too.
        let sessions = diesel::delete(auth_sessions::table)
            .filter(auth_sessions::revoked_at.lt(before))
            .execute(conn)
            .await?;
        let password_resets = diesel::delete(password_resets::table)
            .filter(
                password_resets::used_at
                    .lt(before)
                    .or(password_resets::expires_at.lt(before)),
            )
            .execute(conn)
            .await?;
        Ok(Pruned {
            sessions,
            refresh_tokens,
            password_resets,
        })
    })
    .await
}

/// Prunes dead credentials every `every` for as long as the system runs.
pub fn spawn_pruner(db: crate::db::DbPool, every: std::time::Duration) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        loop {
            tick.tick().await;
            let pruned = match db.get().await {
                Ok(mut conn) => prune_dead_credentials(&mut conn, KEEP_DEAD_CREDENTIALS).await,
                Err(error) => Err(error),
            };
            match pruned {
                Ok(pruned) if pruned != Pruned::default() => {
                    tracing::info!(?pruned, "pruned dead credentials")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not prune dead credentials"),
            }
        }
    });
}
