//! The hub: which users this node has websockets for, and what each event on
//! the bus (or from other nodes, through the bridge) means for them.
//!
//! Events that reach many people name a range or an announcement; the hub
//! resolves them with one query over just the users connected here, so a
//! fan-out to 10,000 students costs each node one query per chunk, not one
//! message per recipient. Figures are coalesced: unread counts every 100 ms,
//! announcement stats every 250 ms, each with one query for all who changed;
//! an acknowledgment moves a badge the hub knows without a query (`badges`).
//!
//! Sessions are reached through `Recipient`s with bounded mailboxes. A
//! session whose mailbox is full has stopped reading: it is told to close
//! and sent nothing more; if it never reads again, the kernel's stall timeout
//! ends its connection (see `socket`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use actix_web_actors::ws::CloseCode;
use futures_util::stream;
use metrics::{counter, gauge};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::protocol::ServerMessage;
use crate::db::DbPool;
use crate::events::{Envelope, EventBus};
use crate::ids::{AnnouncementId, UserId};
use crate::telemetry::mailbox::{self, Mailbox};

mod badges;
mod events;

/// The hub's name in actor metrics.
pub const HUB: &str = "hub";
/// The sessions' name in actor metrics: their mailboxes, summed.
pub const SESSION: &str = "session";

/// How often changed unread counts are sent.
const UNREAD_EVERY: Duration = Duration::from_millis(100);
/// How often an announcement's changed figures are sent, at most.
const STATS_EVERY: Duration = Duration::from_millis(250);

/// A session's number on this node.
pub type SessionId = u64;

/// A message for one session's client.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Push {
    pub message: Arc<ServerMessage>,
    /// When the event behind it was raised (ms since the epoch), for push latency.
    pub raised_at_ms: Option<i64>,
}

impl Push {
    pub fn new(message: ServerMessage, raised_at_ms: Option<i64>) -> Self {
        Push {
            message: Arc::new(message),
            raised_at_ms,
        }
    }
}

/// The hub (or the session itself) telling a session what to do.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Control {
    /// Close the websocket with this code and reason.
    Close {
        code: CloseCode,
        reason: &'static str,
    },
    /// Events may have been missed: catch up from the cursor.
    Resync,
}

/// A session as the hub knows it.
pub struct SessionLink {
    pub id: SessionId,
    pub user_id: UserId,
    /// The login session it was opened with.
    pub auth_session: Uuid,
    pub push: Recipient<Push>,
    pub control: Recipient<Control>,
    /// Pushes in the session's mailbox: the hub adds, the session takes away.
    pub queued: Arc<AtomicI64>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect(pub SessionLink);

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub id: SessionId,
}

/// A session healed changes its student missed (its checkpoint's read left
/// the count out): their unread count is to be read again with the next
/// flush and sent to every session of theirs.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BadgeStale {
    pub user_id: UserId,
}

/// Start or stop sending an announcement's live figures to a session (whose
/// right to see them the session has checked).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WatchStats {
    pub id: SessionId,
    pub announcement_id: AnnouncementId,
    pub watch: bool,
}

/// An event raised on another node, brought by the bridge.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Remote(pub Arc<Envelope>);

/// The server is shutting down: every websocket closes with 1001.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ShutDown;

/// The bridge to other nodes went down or came back.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BridgeChanged {
    pub connected: bool,
}

/// Something from the local bus.
enum Local {
    Event(Arc<Envelope>),
    /// The hub fell behind the bus and lost this many events.
    Lagged(u64),
}

struct Entry {
    link: SessionLink,
    /// Told to close; nothing more is sent to it.
    closing: bool,
    watching: HashSet<AnnouncementId>,
}

impl Entry {
    /// Tells the session to close; nothing more is sent to it.
    fn close(&mut self, code: CloseCode, reason: &'static str) {
        self.closing = true;
        self.link.control.do_send(Control::Close { code, reason });
    }
}

pub struct Hub {
    db: DbPool,
    bus: EventBus,
    sessions: HashMap<SessionId, Entry>,
    /// Ordered, so a fan-out chunk's user-id range finds its users directly.
    by_user: BTreeMap<UserId, Vec<SessionId>>,
    stats_watchers: HashMap<AnnouncementId, HashSet<SessionId>>,
    stats_dirty: HashSet<AnnouncementId>,
    badges: badges::Badges,
    bridge_was_down: bool,
    /// The sessions' mailbox series (one push each per recipient).
    session_mailbox: Mailbox,
}

impl Hub {
    pub fn new(db: DbPool, bus: EventBus) -> Self {
        mailbox::register(HUB);
        mailbox::register(SESSION);
        gauge!("classbell_ws_users").set(0.0);
        gauge!("classbell_ws_sessions_open").increment(0.0);
        gauge!("classbell_ws_hellos_waiting").increment(0.0);
        for name in [
            "classbell_ws_slow_consumer_closes_total",
            "classbell_ws_resyncs_total",
            "classbell_hub_events_lost_total",
            "classbell_ws_bad_messages_total",
            "classbell_ws_heartbeat_timeouts_total",
            "classbell_ws_messages_healed_total",
            "classbell_ws_sessions_opened_total",
            "classbell_ws_floods_closed_total",
            "classbell_ws_replays_cut_total",
            "classbell_ws_hellos_refused_total",
            "classbell_ws_checkpoints_deferred_total",
            "classbell_ws_badges_moved_total",
            "classbell_ws_badge_flushes_held_total",
        ] {
            counter!(name).absolute(0);
        }
        for reason in ["slow_consumer", "closing", "already_sent"] {
            counter!("classbell_ws_messages_dropped_total", "reason" => reason).absolute(0);
        }
        Hub {
            db,
            bus,
            sessions: HashMap::new(),
            by_user: BTreeMap::new(),
            stats_watchers: HashMap::new(),
            stats_dirty: HashSet::new(),
            badges: badges::Badges::default(),
            bridge_was_down: false,
            session_mailbox: Mailbox::of(SESSION),
        }
    }

    /// Distinct users connected here (sessions are counted by the sessions).
    fn report(&self) {
        gauge!("classbell_ws_users").set(self.by_user.len() as f64);
    }

    fn connected_users(&self) -> Vec<UserId> {
        self.by_user.keys().copied().collect()
    }

    fn push_user(&mut self, user: UserId, push: Push) {
        let Some(ids) = self.by_user.get(&user) else {
            return;
        };
        let mut slow = Vec::new();
        for &id in ids {
            if !self.offer(id, push.clone()) {
                slow.push(id);
            }
        }
        for id in slow {
            self.close_slow(id);
        }
    }

    fn push_session(&mut self, id: SessionId, push: Push) {
        if !self.offer(id, push) {
            self.close_slow(id);
        }
    }

    /// Puts a push in a session's mailbox; false when the mailbox is full
    /// (the session stopped reading).
    fn offer(&self, id: SessionId, push: Push) -> bool {
        let Some(entry) = self.sessions.get(&id) else {
            return true;
        };
        if entry.closing {
            counter!("classbell_ws_messages_dropped_total", "reason" => "closing").increment(1);
            return true;
        }
        match entry.link.push.try_send(push) {
            Ok(()) => {
                entry.link.queued.fetch_add(1, Ordering::Relaxed);
                self.session_mailbox.sent();
                true
            }
            Err(SendError::Full(_)) => {
                counter!("classbell_ws_messages_dropped_total", "reason" => "slow_consumer")
                    .increment(1);
                false
            }
            // The session is ending; its `Disconnect` is on the way.
            Err(SendError::Closed(_)) => true,
        }
    }

    /// The session stopped reading: nothing more is sent to it, and it is
    /// told to close, which it does if it reads again (otherwise the stall
    /// timeout ends its connection).
    fn close_slow(&mut self, id: SessionId) {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return;
        };
        counter!("classbell_ws_slow_consumer_closes_total").increment(1);
        tracing::info!(
            session = id,
            user = %entry.link.user_id,
            "closing a websocket that stopped reading"
        );
        entry.close(
            CloseCode::Again,
            "slow consumer: messages were not read; reconnect with your cursor",
        );
    }

    /// Stops sending `announcement_id`'s figures to session `id`.
    fn unwatch(&mut self, id: SessionId, announcement_id: AnnouncementId) {
        if let Some(entry) = self.sessions.get_mut(&id) {
            entry.watching.remove(&announcement_id);
            self.forget_watcher(id, announcement_id);
        }
    }

    fn forget_watcher(&mut self, id: SessionId, announcement_id: AnnouncementId) {
        if let Some(watchers) = self.stats_watchers.get_mut(&announcement_id) {
            watchers.remove(&id);
            if watchers.is_empty() {
                self.stats_watchers.remove(&announcement_id);
            }
        }
    }

    /// Every session catches up from its cursor: something may have been
    /// missed, so no badge the hub knows is trusted either.
    fn resync_all(&mut self) {
        self.badges.forget_all();
        counter!("classbell_ws_resyncs_total").increment(self.sessions.len() as u64);
        for entry in self.sessions.values() {
            if !entry.closing {
                entry.link.control.do_send(Control::Resync);
            }
        }
    }
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let events = stream::unfold(self.bus.subscribe(), |mut receiver| async move {
            let item = match receiver.recv().await {
                Ok(envelope) => Local::Event(envelope),
                Err(broadcast::error::RecvError::Lagged(lost)) => Local::Lagged(lost),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((item, receiver))
        });
        ctx.add_stream(events);
        ctx.run_interval(UNREAD_EVERY, |hub, ctx| hub.flush_unread(ctx));
        ctx.run_interval(STATS_EVERY, |hub, ctx| hub.flush_stats(ctx));
    }
}

impl StreamHandler<Local> for Hub {
    fn handle(&mut self, item: Local, ctx: &mut Self::Context) {
        // Bus events wait in the bus, not the mailbox: counted as handled only.
        mailbox::ran(HUB);
        match item {
            Local::Event(envelope) => self.dispatch(envelope, ctx),
            Local::Lagged(lost) => {
                counter!("classbell_hub_events_lost_total").increment(lost);
                tracing::warn!(lost, "the hub fell behind the event bus; sessions resync");
                self.resync_all();
            }
        }
    }
}

impl Handler<Connect> for Hub {
    type Result = ();

    fn handle(&mut self, Connect(link): Connect, _: &mut Self::Context) {
        mailbox::handled(HUB);
        self.by_user.entry(link.user_id).or_default().push(link.id);
        self.sessions.insert(
            link.id,
            Entry {
                link,
                closing: false,
                watching: HashSet::new(),
            },
        );
        self.report();
    }
}

impl Handler<Disconnect> for Hub {
    type Result = ();

    fn handle(&mut self, message: Disconnect, _: &mut Self::Context) {
        mailbox::handled(HUB);
        let Some(entry) = self.sessions.remove(&message.id) else {
            return;
        };
        // What it never took out of its mailbox is gone with it.
        let left = entry.link.queued.load(Ordering::Relaxed).max(0);
        self.session_mailbox.lost(left as usize);
        if let Some(ids) = self.by_user.get_mut(&entry.link.user_id) {
            ids.retain(|id| *id != message.id);
            if ids.is_empty() {
                self.by_user.remove(&entry.link.user_id);
                self.badges.forget(entry.link.user_id);
            }
        }
        for announcement_id in entry.watching {
            self.forget_watcher(message.id, announcement_id);
        }
        self.report();
    }
}

impl Handler<WatchStats> for Hub {
    type Result = ();

    fn handle(&mut self, message: WatchStats, ctx: &mut Self::Context) {
        mailbox::handled(HUB);
        if message.watch {
            self.watch(message.id, message.announcement_id, ctx);
        } else {
            self.unwatch(message.id, message.announcement_id);
        }
    }
}

impl Handler<Remote> for Hub {
    type Result = ();

    fn handle(&mut self, Remote(envelope): Remote, ctx: &mut Self::Context) {
        mailbox::handled(HUB);
        self.dispatch(envelope, ctx);
    }
}

impl Handler<ShutDown> for Hub {
    type Result = ();

    fn handle(&mut self, _: ShutDown, _: &mut Self::Context) {
        mailbox::handled(HUB);
        for entry in self.sessions.values_mut() {
            entry.close(
                CloseCode::Away,
                "server shutting down; reconnect with your cursor",
            );
        }
    }
}

impl Handler<BridgeChanged> for Hub {
    type Result = ();

    fn handle(&mut self, message: BridgeChanged, _: &mut Self::Context) {
        mailbox::handled(HUB);
        if !message.connected {
            self.bridge_was_down = true;
        } else if std::mem::take(&mut self.bridge_was_down) {
            tracing::info!("the bridge is back; live sessions catch up from their cursors");
            self.resync_all();
        }
    }
}
