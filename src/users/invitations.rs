//! Mailing the invitations a roster import queued, a few a second: a roster
//! of thousands reaches the relay at `CLASSBELL_INVITATIONS_PER_SEC`, not
//! all at once. The queue is a table, so what is not sent yet survives a
//! restart; each node takes its own share (`SKIP LOCKED`).

use std::time::Duration;

use metrics::gauge;

use super::roster;
use super::store as users;
use crate::auth::recovery;
use crate::config;
use crate::db::DbPool;
use crate::error::AppError;
use crate::mail::Postage;

/// Sends due invitations every second, for as long as the system runs.
pub fn spawn_sender(db: DbPool, postage: Postage, auth: config::Auth, per_second: u32) {
    gauge!("classbell_invitations_waiting").set(0.0);
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(error) = send_due(&db, &postage, &auth, per_second).await {
                tracing::warn!(%error, "could not send due invitations");
            }
        }
    });
}

/// Mails up to `limit` queued invitations to accounts still waiting for
/// their first password (an account deactivated or already set up since is
/// skipped), and records how many wait.
async fn send_due(
    db: &DbPool,
    postage: &Postage,
    auth: &config::Auth,
    limit: u32,
) -> Result<(), AppError> {
    let mut conn = db.get().await?;
    let due = roster::take_due_invitations(&mut conn, i64::from(limit.max(1))).await?;
    for id in due {
        let user = users::find(&mut conn, id).await?;
        if user.is_active && user.password_hash.is_none() {
            recovery::send_invitation(db, postage, auth, &user).await?;
        }
    }
    let waiting = roster::invitations_waiting(&mut conn).await?;
    gauge!("classbell_invitations_waiting").set(waiting as f64);
    Ok(())
}
