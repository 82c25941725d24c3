//! Reminding those who have not acknowledged: the in-app reminder (a bump of
//! each delivery's reminder count) and its mail, stored in one transaction,
//! at most once per cooldown.

use chrono::Utc;
use diesel_async::AsyncConnection;

use super::model::Announcement;
use super::store::{self, RemindRefused, steps};
use crate::db::DbPool;
use crate::deliveries::store::Reminded;
use crate::error::{AppError, FieldErrors};
use crate::mail::{Postage, SendMail, templates};

/// A reminder mail to each of `recipients`, in their language, with the
/// publication time on the school's clock.
pub fn reminder_mails<'a>(
    postage: &'a Postage,
    announcement: &'a Announcement,
    recipients: &'a [Reminded],
) -> impl Iterator<Item = Option<SendMail>> + 'a {
    let link = postage.link("/inbox");
    let published = announcement.published_at.unwrap_or_else(Utc::now);
    recipients.iter().map(move |recipient| {
        let to = postage.recipient(&recipient.display_name, &recipient.email, recipient.locale);
        let when = postage.local_time(to.locale, published);
        templates::reminder(to, &announcement.title, &when, &link)
    })
}

/// Reminds everyone who has not acknowledged `announcement` and queues their
/// mails; refused while the last reminder is younger than `cooldown_secs`,
/// and for announcements that are not published. The caller posts the mail
/// and tells the live inboxes.
pub async fn remind(
    db: &DbPool,
    postage: &Postage,
    announcement: &Announcement,
    cooldown_secs: u64,
) -> Result<Vec<Reminded>, AppError> {
    // The reminders and their mails are stored together, or neither is.
    let outcome = db
        .get()
        .await?
        .transaction(async |conn| {
            let outcome = store::remind_unacked(conn, announcement.id, cooldown_secs).await?;
            if let Ok(reminded) = &outcome {
                postage
                    .queue(conn, reminder_mails(postage, announcement, reminded))
                    .await?;
                steps::record_manual(conn, announcement.id, reminded.len()).await?;
            }
            Ok::<_, AppError>(outcome)
        })
        .await?;
    match outcome {
        Ok(reminded) => Ok(reminded),
        Err(RemindRefused::CoolingDown { retry_after_secs }) => Err(AppError::TooManyRequests {
            message: "this announcement was reminded recently",
            retry_after_secs,
        }),
        Err(RemindRefused::NotPublished) => Err(AppError::conflict(
            "not_published",
            "only published announcements can be reminded",
            FieldErrors::new(),
        )),
    }
}
