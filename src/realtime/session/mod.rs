//! One actor per websocket: says hello, catches the client up from its
//! cursor, relays what the hub pushes, runs the heartbeat, and carries out
//! the client's requests through the same state machine as HTTP.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use metrics::{counter, gauge};
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use super::hub::{BadgeStale, Connect, Control, Disconnect, HUB, Push, SessionId, SessionLink};
use super::ledger::Ledger;
use super::protocol::{Cursor, Frame, HelloUser, ServerMessage};
use super::sessions::SessionServices;
use super::store;
use crate::error::AppError;
use crate::telemetry::mailbox;
use crate::users::model::User;

mod inbound;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

pub struct Session {
    id: SessionId,
    /// Who is connected (only what the session needs: no hash kept around).
    user: HelloUser,
    auth_session: Uuid,
    services: web::Data<SessionServices>,
    /// Where the client said it stands (`since`), until the catch-up ran.
    since: Option<Cursor>,
    /// The cursor every message carries; `None` until `hello` is sent.
    cursor: Option<Cursor>,
    /// Pushes that arrived before `hello` (sent right after the catch-up).
    early: Vec<Push>,
    /// Inbox messages sent since the cursor last moved.
    ledger: Ledger,
    /// Pushes in this session's mailbox (see `SessionLink::queued`).
    queued: Arc<AtomicI64>,
    checkpointing: bool,
    /// Where this session's checkpoint interval starts: a random point of
    /// the first interval after it opened (see `arm_checkpoint`).
    checkpoint_phase: Instant,
    /// A checkpoint is scheduled.
    checkpoint_armed: bool,
    last_heard: Instant,
    /// What the client may still send now (see `SessionSettings::inbound`).
    inbound: DefaultDirectRateLimiter,
    /// This session's turn among those being opened, given back once its
    /// catch-up is read (see `SessionServices::admit`).
    turn: Option<OwnedSemaphorePermit>,
}

impl Session {
    pub fn new(
        user: User,
        auth_session: Uuid,
        since: Option<Cursor>,
        services: web::Data<SessionServices>,
        turn: OwnedSemaphorePermit,
    ) -> Self {
        let inbound = RateLimiter::direct(services.settings.inbound);
        // Each session's checkpoints fall at a random point of the interval:
        // sessions that opened together (a class, a storm's return) would
        // otherwise read PostgreSQL in the same instant every interval, and
        // the live pushes in that instant would wait.
        let every = services.settings.checkpoint;
        let checkpoint_phase = Instant::now() + every.mul_f64(rand::random::<f64>());
        Session {
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            user: HelloUser {
                id: user.id,
                username: user.username,
                role: user.role,
            },
            auth_session,
            services,
            since,
            cursor: None,
            early: Vec::new(),
            ledger: Ledger::default(),
            queued: Arc::default(),
            checkpointing: false,
            checkpoint_phase,
            checkpoint_armed: false,
            last_heard: Instant::now(),
            inbound,
            turn: Some(turn),
        }
    }

    fn write(&mut self, message: &ServerMessage, ctx: &mut ws::WebsocketContext<Self>) {
        self.ledger.record(message);
        self.arm_checkpoint(ctx);
        let cursor = match message {
            ServerMessage::Error { .. } | ServerMessage::Pong => None,
            _ => self.cursor,
        };
        match serde_json::to_string(&Frame { message, cursor }) {
            Ok(text) => {
                ctx.text(text);
                self.services.metrics.sent(message);
            }
            Err(error) => tracing::error!(%error, "could not encode a websocket message"),
        }
    }

    /// What of `message` the client lacks: nothing if it was told the same
    /// since the cursor last moved (a checkpoint or catch-up sent it from the
    /// database before its push arrived, or the other way round), an update
    /// if it heard of the item in an older state. A client hears of each
    /// item's creation once.
    fn news<'m>(&self, message: &'m ServerMessage) -> Option<Cow<'m, ServerMessage>> {
        if self.ledger.already_sent(message) {
            counter!("classbell_ws_messages_dropped_total", "reason" => "already_sent")
                .increment(1);
            return None;
        }
        Some(match message {
            ServerMessage::DeliveryCreated { delivery }
                if self.ledger.told_created(delivery.id) =>
            {
                Cow::Owned(store::updated(delivery))
            }
            other => Cow::Borrowed(other),
        })
    }

    /// Sends a push, or what of it the client lacks.
    fn deliver(&mut self, push: &Push, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(news) = self.news(&push.message) else {
            return;
        };
        self.write(&news, ctx);
        if let Some(raised) = push.raised_at_ms {
            let waited = (Utc::now().timestamp_millis() - raised).max(0);
            let latency = &self.services.metrics.push_latency;
            latency.record(waited as f64 / 1000.0);
        }
    }

    /// Pings the client, or closes a socket silent for longer than the timeout.
    fn heartbeat(&self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.last_heard.elapsed() > self.services.settings.timeout {
            counter!("classbell_ws_heartbeat_timeouts_total").increment(1);
            return self.close(CloseCode::Away, "heartbeat timeout", ctx);
        }
        ctx.ping(b"");
    }

    fn close(&self, code: CloseCode, reason: &str, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.close(Some(CloseReason {
            code,
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    /// Reads the cursor, the unread count and (with `since`) what the client
    /// missed, then says hello and sends it. Until then pushes wait in `early`.
    ///
    /// The hub has registered the session before the read begins, so every
    /// change either is in the read or reaches the session as a push.
    fn start(
        &mut self,
        link: SessionLink,
        since: Option<Cursor>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let db = self.services.db.clone();
        let hub = self.services.hub.clone();
        let user = self.user.id;
        let limit = self.services.settings.replay_limit;
        let turn = self.turn.take();
        let work = async move {
            mailbox::sent(HUB);
            hub.send(Connect(link))
                .await
                .map_err(|_| AppError::unavailable("the websocket hub"))?;
            let mut conn = db.get().await?;
            let catch_up = store::catch_up(&mut conn, user, since, limit, true).await;
            drop(turn);
            catch_up
        };
        ctx.spawn(work.into_actor(self).map(move |result, session, ctx| {
            let catch_up = match result {
                Ok(catch_up) => catch_up,
                Err(error) => {
                    tracing::warn!(%error, "could not start a websocket session");
                    return session.close(CloseCode::Again, "try again shortly", ctx);
                }
            };
            // Until everything missed is written, messages carry the client's
            // own cursor: a drop half-way through loses nothing.
            session.cursor = Some(since.unwrap_or(catch_up.cursor));
            let unread = catch_up.unread.unwrap_or_default();
            let hello = ServerMessage::Hello {
                user: session.user.clone(),
                unread_count: unread,
            };
            session.write(&hello, ctx);
            for message in &catch_up.messages {
                session.write(message, ctx);
            }
            session.cursor = Some(catch_up.cursor);
            if catch_up.too_many {
                let resync = ServerMessage::Resync {
                    unread_count: unread,
                };
                session.write(&resync, ctx);
            } else if since.is_some() {
                // Carries the new cursor once all the rest is out.
                session.write(&ServerMessage::UnreadCount { unread }, ctx);
            }
            // What came meanwhile as a push and is in the catch-up too is
            // not sent again (the ledger holds the catch-up until a
            // checkpoint's read replaces it).
            for push in std::mem::take(&mut session.early) {
                session.deliver(&push, ctx);
            }
        }));
    }

    /// Schedules a checkpoint at the session's next point of its interval
    /// when something was sent since the last one and none is scheduled.
    ///
    /// Only busy sessions hold a timer: an idle one is not woken every
    /// interval to find it has nothing to check. The points keep the
    /// session's random phase, so the sessions that heard one publish do not
    /// all read PostgreSQL in the same instant an interval later.
    fn arm_checkpoint(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.checkpoint_armed || self.ledger.is_empty() {
            return;
        }
        self.checkpoint_armed = true;
        let every = self.services.settings.checkpoint;
        let now = Instant::now();
        let delay = match now.checked_duration_since(self.checkpoint_phase) {
            Some(into) => {
                let into_interval = into.as_nanos() % every.as_nanos().max(1);
                every.saturating_sub(Duration::from_nanos(into_interval as u64))
            }
            None => self.checkpoint_phase - now,
        };
        ctx.run_later(delay, |session, ctx| {
            session.checkpoint_armed = false;
            if !session.ledger.is_empty() {
                session.checkpoint(ctx);
            }
            // Again if the client still holds news (or no turn was free).
            session.arm_checkpoint(ctx);
        });
    }

    /// Reads the changes since the cursor, sends those the ledger says the
    /// client never got (a push lost on the way), and moves the cursor on.
    fn checkpoint(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(since) = self.cursor else { return };
        if self.checkpointing {
            return;
        }
        // A checkpoint is not urgent: while every turn is taken (a storm of
        // clients coming back), it waits for the next interval.
        let Some(turn) = self.services.try_admit() else {
            counter!("classbell_ws_checkpoints_deferred_total").increment(1);
            return;
        };
        self.checkpointing = true;
        self.ledger.begin_checkpoint();
        let db = self.services.db.clone();
        let user = self.user.id;
        let limit = self.services.settings.replay_limit;
        let work = async move {
            let mut conn = db.get().await?;
            let catch_up = store::catch_up(&mut conn, user, Some(since), limit, false).await;
            drop(turn);
            catch_up
        };
        ctx.spawn(work.into_actor(self).map(|result, session, ctx| {
            session.checkpointing = false;
            // While the ledger holds anything, the next one is due (a
            // spare one finds it empty and stops).
            session.arm_checkpoint(ctx);
            let catch_up = match result {
                Ok(catch_up) => catch_up,
                // The cursor stays put; the next checkpoint tries again.
                Err(error) => return tracing::warn!(%error, "a websocket checkpoint failed"),
            };
            if catch_up.too_many {
                // Too much to compare against what was sent: start over.
                session.cursor = Some(catch_up.cursor);
                session.ledger = Ledger::default();
                let resync = ServerMessage::Resync {
                    unread_count: catch_up.unread.unwrap_or_default(),
                };
                return session.write(&resync, ctx);
            }
            // What the client lacks (a push lost on the way).
            let missed: Vec<ServerMessage> = catch_up
                .messages
                .iter()
                .filter_map(|message| session.news(message).map(Cow::into_owned))
                .collect();
            for message in &missed {
                session.write(message, ctx);
            }
            session.cursor = Some(catch_up.cursor);
            session.ledger.end_checkpoint(&catch_up.messages);
            if !missed.is_empty() {
                counter!("classbell_ws_messages_healed_total").increment(missed.len() as u64);
                // The read left the count out (a checkpoint seldom needs
                // it): the hub reads it with its next badge flush and sends
                // it to every session of the student.
                let stale = BadgeStale {
                    user_id: session.user.id,
                };
                mailbox::tell(&session.services.hub, HUB, stale);
            }
        }));
    }
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.services.settings.outbound_queue);
        gauge!("classbell_ws_sessions_open").increment(1.0);
        counter!("classbell_ws_sessions_opened_total").increment(1);
        let address = ctx.address();
        let link = SessionLink {
            id: self.id,
            user_id: self.user.id,
            auth_session: self.auth_session,
            push: address.clone().recipient(),
            control: address.recipient(),
            queued: Arc::clone(&self.queued),
        };
        let since = self.since.take();
        self.start(link, since, ctx);
        // Pings likewise start at a random point of the first interval.
        let every = self.services.settings.heartbeat;
        let offset = every.mul_f64(rand::random::<f64>());
        ctx.run_later(offset, move |_, ctx| {
            ctx.run_interval(every, |session, ctx| session.heartbeat(ctx));
        });
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        mailbox::tell(&self.services.hub, HUB, Disconnect { id: self.id });
        Running::Stop
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        gauge!("classbell_ws_sessions_open").decrement(1.0);
    }
}

impl Handler<Push> for Session {
    type Result = ();

    fn handle(&mut self, push: Push, ctx: &mut Self::Context) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.services.metrics.mailbox.handled();
        if self.cursor.is_some() {
            return self.deliver(&push, ctx);
        }
        if self.early.len() >= self.services.settings.outbound_queue {
            counter!("classbell_ws_messages_dropped_total", "reason" => "slow_consumer")
                .increment(1);
            return self.close(
                CloseCode::Again,
                "too many messages before the catch-up finished",
                ctx,
            );
        }
        self.early.push(push);
    }
}

impl Handler<Control> for Session {
    type Result = ();

    fn handle(&mut self, control: Control, ctx: &mut Self::Context) {
        match control {
            Control::Close { code, reason } => self.close(code, reason, ctx),
            Control::Resync => self.checkpoint(ctx),
        }
    }
}
