//! What each bus event means for the sessions connected here. Events that
//! reach many people are resolved with one query over the connected users
//! only; figures are coalesced and flushed on the hub's intervals.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws::CloseCode;
use diesel_async::AsyncPgConnection;
use metrics::counter;
use uuid::Uuid;

use super::badges::Flush;
use super::{BadgeStale, HUB, Hub, Push, SessionId, UNREAD_EVERY};
use crate::announcements::model::AnnouncementStats;
use crate::announcements::store as announcements;
use crate::db::DbPool;
use crate::deliveries::store as deliveries;
use crate::error::AppError;
use crate::events::{Envelope, Event};
use crate::ids::{AnnouncementId, JobId, UserId};
use crate::jobs::model::{JobKind, JobState, Progress};
use crate::realtime::protocol::ServerMessage;
use crate::telemetry::mailbox;

/// When the event behind a push was raised (ms since the epoch).
type Raised = Option<i64>;

impl Hub {
    /// What a bus event means for the sessions here: one small step per kind.
    pub(super) fn dispatch(&mut self, envelope: Arc<Envelope>, ctx: &mut Context<Self>) {
        let raised = Some(envelope.raised_at_ms);
        match envelope.event {
            Event::DeliveriesCreated {
                announcement_id,
                first_user_id,
                last_user_id,
                count,
                whole_range,
            } => {
                // A whole range of no more deliveries than connected users
                // is read by range (a section's 500 among a school's
                // thousands, or a chunk whose students are all online).
                let by_range = whole_range.then_some(count);
                let users = first_user_id..=last_user_id;
                self.deliveries_created(announcement_id, users, by_range, raised, ctx)
            }
            Event::DeliveryUpdated {
                delivery_id,
                user_id,
                announcement_id,
                state,
                delivered_at,
                ack_at,
                unread_change,
            } => {
                let message = ServerMessage::DeliveryUpdated {
                    delivery_id,
                    announcement_id,
                    state,
                    delivered_at,
                    ack_at,
                };
                self.delivery_updated(user_id, message, unread_change, raised);
            }
            Event::DeliveryRetracted {
                user_id,
                announcement_id,
            } => {
                // To the student, it is gone as a withdrawn one is.
                let message = ServerMessage::AnnouncementWithdrawn { announcement_id };
                self.delivery_updated(user_id, message, None, raised);
            }
            Event::AnnouncementWithdrawn { announcement_id } => {
                self.announcement_withdrawn(announcement_id, raised, ctx)
            }
            Event::AnnouncementStats { announcement_id } => self.stats_changed(announcement_id),
            Event::RemindersSent { announcement_id } => {
                self.reminders_sent(announcement_id, raised, ctx)
            }
            Event::JobProgress {
                job_id,
                owner_id,
                kind,
                state,
                done,
                total,
            } => self.job_progress(
                owner_id,
                job_id,
                kind,
                state,
                Progress { done, total },
                raised,
            ),
            Event::DueSummary {
                announcement_id,
                publisher_id,
                missing,
            } => {
                let message = ServerMessage::DueSummary {
                    announcement_id,
                    missing,
                };
                self.push_user(publisher_id, Push::new(message, raised));
            }
            Event::SignedOut { user_id, session } => self.signed_out(user_id, session),
            Event::RoleChanged { user_id } => self.role_changed(user_id),
        }
    }

    /// A fan-out chunk wrote deliveries for a user-id range: the new items
    /// go to whoever in that range is connected here.
    ///
    /// The read probes either each connected user in the range or, when the
    /// event says the range holds exactly `whole_range` deliveries and those
    /// are no more, the range itself (one index range scan, and no array of
    /// thousands of ids to send and hash); PostgreSQL's time follows
    /// whichever is smaller.
    fn deliveries_created(
        &mut self,
        announcement_id: AnnouncementId,
        users: std::ops::RangeInclusive<UserId>,
        whole_range: Option<i64>,
        raised: Raised,
        ctx: &mut Context<Self>,
    ) {
        if users.is_empty() {
            return;
        }
        // In id order: `by_user` is a BTreeMap.
        let connected: Vec<UserId> = self.by_user.range(users.clone()).map(|(u, _)| *u).collect();
        if connected.is_empty() {
            return;
        }
        let by_range = whole_range.is_some_and(|count| count <= connected.len() as i64);
        let (first, last) = users.into_inner();
        let db = self.db.clone();
        let work = async move {
            let mut conn = db.get().await?;
            let among = if by_range {
                deliveries::Among::Range(first, last)
            } else {
                deliveries::Among::Users(&connected)
            };
            let items = deliveries::created_for(&mut conn, announcement_id, among).await?;
            Ok((connected, items))
        };
        self.resolve(work, ctx, move |hub, (connected, items)| {
            for (user, item) in items {
                // A range read also brings those connected elsewhere.
                if by_range && connected.binary_search(&user).is_err() {
                    continue;
                }
                let message = ServerMessage::DeliveryCreated { delivery: item };
                hub.push_user(user, Push::new(message, raised));
                hub.badges.changed(user);
            }
            hub.badges.created(Instant::now());
        });
    }

    /// One delivery moved (or was retracted): its recipient's sessions
    /// (every device) hear it, and their unread count if it changed (by
    /// `unread_change`, or read again when that is not known).
    fn delivery_updated(
        &mut self,
        user_id: UserId,
        message: ServerMessage,
        unread_change: Option<i64>,
        raised: Raised,
    ) {
        if self.by_user.contains_key(&user_id) {
            self.push_user(user_id, Push::new(message, raised));
            match unread_change {
                Some(0) => {}
                Some(delta) => self.badges.moved_by(user_id, delta),
                None => self.badges.changed(user_id),
            }
        }
    }

    /// The connected recipients of a withdrawn announcement drop it.
    fn announcement_withdrawn(
        &mut self,
        announcement_id: AnnouncementId,
        raised: Raised,
        ctx: &mut Context<Self>,
    ) {
        let query = async move |conn: &mut AsyncPgConnection, users: &[UserId]| {
            deliveries::recipients_among(conn, announcement_id, users).await
        };
        let users = self.connected_users();
        self.resolve_among(users, query, ctx, move |hub, recipients| {
            let message = Arc::new(ServerMessage::AnnouncementWithdrawn { announcement_id });
            for user in recipients {
                let push = Push {
                    message: Arc::clone(&message),
                    raised_at_ms: raised,
                };
                hub.push_user(user, push);
                hub.badges.changed(user);
            }
        });
    }

    /// Figures changed: sent with the next flush, if anyone here watches them.
    fn stats_changed(&mut self, announcement_id: AnnouncementId) {
        if self.stats_watchers.contains_key(&announcement_id) {
            self.stats_dirty.insert(announcement_id);
        }
    }

    /// A reminder went out: the connected recipients who have not
    /// acknowledged are nudged.
    fn reminders_sent(
        &mut self,
        announcement_id: AnnouncementId,
        raised: Raised,
        ctx: &mut Context<Self>,
    ) {
        let query = async move |conn: &mut AsyncPgConnection, users: &[UserId]| {
            deliveries::unacked_among(conn, announcement_id, users).await
        };
        let users = self.connected_users();
        self.resolve_among(users, query, ctx, move |hub, reminded| {
            for (user, delivery_id, retry_count) in reminded {
                let message = ServerMessage::Reminder {
                    delivery_id,
                    announcement_id,
                    retry_count,
                };
                hub.push_user(user, Push::new(message, raised));
            }
        });
    }

    fn job_progress(
        &mut self,
        owner_id: UserId,
        task_id: JobId,
        kind: JobKind,
        state: JobState,
        progress: Progress,
        raised: Raised,
    ) {
        let message = ServerMessage::JobProgress {
            task_id,
            kind,
            state: state.task_state(),
            progress,
        };
        self.push_user(owner_id, Push::new(message, raised));
    }

    /// A login session ended (or all of a user's): its websockets close.
    fn signed_out(&mut self, user_id: UserId, session: Option<Uuid>) {
        let closes = |auth_session: Uuid| session.is_none_or(|s| s == auth_session);
        self.close_user(user_id, closes, CloseCode::Policy, "signed out");
    }

    /// A user's role changed: their sockets close (1013), and the clients
    /// reconnect to what the new role may see.
    fn role_changed(&mut self, user_id: UserId) {
        let reason = "your role changed; reconnect";
        self.close_user(user_id, |_| true, CloseCode::Again, reason);
    }

    /// Closes those of `user_id`'s sessions whose login session `which` picks.
    fn close_user(
        &mut self,
        user_id: UserId,
        which: impl Fn(Uuid) -> bool,
        code: CloseCode,
        reason: &'static str,
    ) {
        let ids = self.by_user.get(&user_id).cloned().unwrap_or_default();
        for id in ids {
            if let Some(entry) = self.sessions.get_mut(&id)
                && which(entry.link.auth_session)
            {
                entry.close(code, reason);
            }
        }
    }

    /// Starts sending `announcement_id`'s figures to session `id` (whose
    /// right to see them the session has checked), the current ones at once.
    pub(super) fn watch(
        &mut self,
        id: SessionId,
        announcement_id: AnnouncementId,
        ctx: &mut Context<Self>,
    ) {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return;
        };
        entry.watching.insert(announcement_id);
        self.stats_watchers
            .entry(announcement_id)
            .or_default()
            .insert(id);
        let db = self.db.clone();
        self.resolve(stats(db, announcement_id), ctx, move |hub, stats| {
            let message = ServerMessage::AnnouncementStats {
                announcement_id,
                stats,
            };
            hub.push_session(id, Push::new(message, None));
        });
    }

    /// Runs a lookup off the hub's own thread of control and hands its result
    /// back to the hub; a failure only costs live pushes (cursors catch up).
    fn resolve<T: 'static>(
        &mut self,
        work: impl Future<Output = Result<T, AppError>> + 'static,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Hub, T) + 'static,
    ) {
        ctx.spawn(work.into_actor(self).map(|result, hub, _| match result {
            Ok(value) => then(hub, value),
            Err(error) => {
                counter!("classbell_hub_events_lost_total").increment(1);
                tracing::warn!(%error, "could not resolve an event for live sessions");
            }
        }));
    }

    /// `resolve` for a query over some of the connected users (none: nothing to do).
    fn resolve_among<T: 'static>(
        &mut self,
        users: Vec<UserId>,
        query: impl AsyncFnOnce(&mut AsyncPgConnection, &[UserId]) -> Result<T, AppError> + 'static,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Hub, T) + 'static,
    ) {
        if users.is_empty() {
            return;
        }
        let db = self.db.clone();
        let work = async move {
            let mut conn = db.get().await?;
            query(&mut conn, &users).await
        };
        self.resolve(work, ctx, then);
    }

    /// Sends the unread counts that moved, and reads (with one query for
    /// all of them) those that must be read again.
    pub(super) fn flush_unread(&mut self, ctx: &mut Context<Self>) {
        if self.badges.hold(Instant::now(), UNREAD_EVERY) {
            counter!("classbell_ws_badge_flushes_held_total").increment(1);
            return;
        }
        let Flush {
            read,
            generation,
            send,
        } = self.badges.flush(|user| self.by_user.contains_key(user));
        for (user, unread) in send {
            let message = ServerMessage::UnreadCount { unread };
            self.push_user(user, Push::new(message, None));
        }
        if read.is_empty() {
            return;
        }
        let db = self.db.clone();
        let users = read.clone();
        let work = async move {
            let mut conn = db.get().await?;
            deliveries::unread_counts(&mut conn, &users).await
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |result, hub, _| match result {
                    Ok(counts) => {
                        let by_user = &hub.by_user;
                        let sent = hub.badges.read_back(generation, read, &counts, |user| {
                            by_user.contains_key(user)
                        });
                        for (user, unread) in sent {
                            let message = ServerMessage::UnreadCount { unread };
                            hub.push_user(user, Push::new(message, None));
                        }
                    }
                    Err(error) => {
                        hub.badges.read_failed(generation, &read);
                        counter!("classbell_hub_events_lost_total").increment(1);
                        tracing::warn!(%error, "could not read unread counts for live sessions");
                    }
                }),
        );
    }

    /// Sends the changed figures of watched announcements.
    pub(super) fn flush_stats(&mut self, ctx: &mut Context<Self>) {
        let dirty: Vec<AnnouncementId> = self
            .stats_dirty
            .drain()
            .filter(|id| self.stats_watchers.contains_key(id))
            .collect();
        for announcement_id in dirty {
            let db = self.db.clone();
            self.resolve(stats(db, announcement_id), ctx, move |hub, stats| {
                let Some(watchers) = hub.stats_watchers.get(&announcement_id).cloned() else {
                    return;
                };
                let message = Arc::new(ServerMessage::AnnouncementStats {
                    announcement_id,
                    stats,
                });
                for id in watchers {
                    let push = Push {
                        message: Arc::clone(&message),
                        raised_at_ms: None,
                    };
                    hub.push_session(id, push);
                }
            });
        }
    }
}

async fn stats(db: DbPool, announcement_id: AnnouncementId) -> Result<AnnouncementStats, AppError> {
    let mut conn = db.get().await?;
    let announcement = announcements::find(&mut conn, announcement_id).await?;
    announcements::stats(&mut conn, &announcement).await
}

impl Handler<BadgeStale> for Hub {
    type Result = ();

    fn handle(&mut self, BadgeStale { user_id }: BadgeStale, _: &mut Self::Context) {
        mailbox::handled(HUB);
        self.badges.changed(user_id);
    }
}
