//! The bridge: carries events between classbell nodes over Redis pub/sub, so
//! a student connected to one node sees what happened on another.
//!
//! It publishes this node's events (batched: one Redis message for all that
//! are waiting) and hands other nodes' events to the local hub. Pushes are
//! best effort: when Redis goes away the node keeps serving HTTP and its own
//! sessions, `/readyz` says the bridge is down, the bridge reconnects with
//! backoff, and on its return the hub has every session catch up from its
//! cursor, so what was missed meanwhile arrives after all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use bb8_redis::redis;
use chrono::Utc;
use futures_util::StreamExt;
use metrics::{counter, gauge, histogram};
use tokio::sync::broadcast;

use super::hub::{BridgeChanged, HUB, Hub, Remote};
use crate::events::{Envelope, EventBus};
use crate::redis::Redis;
use crate::telemetry::mailbox;

/// The bridge's name in actor metrics.
pub const BRIDGE: &str = "bridge";

/// Most events in one Redis message.
const MAX_BATCH: usize = 512;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether the bridge is subscribed, for `/readyz`.
#[derive(Debug, Default)]
pub struct BridgeHealth {
    connected: AtomicBool,
}

impl BridgeHealth {
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn set(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        gauge!("classbell_bridge_connected").set(if connected { 1.0 } else { 0.0 });
    }
}

pub struct Bridge {
    redis_url: String,
    redis: Redis,
    channel: String,
    bus: EventBus,
    hub: Addr<Hub>,
    health: Arc<BridgeHealth>,
}

impl Bridge {
    pub fn new(
        redis_url: &str,
        redis: Redis,
        bus: EventBus,
        hub: Addr<Hub>,
        health: Arc<BridgeHealth>,
    ) -> Self {
        health.set(false);
        mailbox::register(BRIDGE);
        gauge!("classbell_bridge_publish_queue_depth").set(0.0);
        for name in [
            "classbell_bridge_published_total",
            "classbell_bridge_received_total",
            "classbell_bridge_reconnects_total",
            "classbell_bridge_publish_failures_total",
        ] {
            counter!(name).absolute(0);
        }
        Bridge {
            redis_url: redis_url.to_owned(),
            channel: redis.key("events"),
            redis,
            bus,
            hub,
            health,
        }
    }
}

impl Actor for Bridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let publisher = publish_local(
            self.bus.subscribe(),
            self.redis.clone(),
            self.channel.clone(),
            self.bus.node(),
            Arc::clone(&self.health),
        );
        ctx.spawn(publisher.into_actor(self));
        let subscriber = receive_remote(
            self.redis_url.clone(),
            self.channel.clone(),
            self.bus.node(),
            self.hub.clone(),
            Arc::clone(&self.health),
        );
        ctx.spawn(subscriber.into_actor(self));
    }
}

/// Publishes this node's events, as many per Redis message as are waiting.
async fn publish_local(
    mut events: broadcast::Receiver<Arc<Envelope>>,
    redis: Redis,
    channel: String,
    node: uuid::Uuid,
    health: Arc<BridgeHealth>,
) {
    loop {
        let first = match events.recv().await {
            Ok(envelope) => envelope,
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                counter!("classbell_bridge_publish_failures_total").increment(lost);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match events.try_recv() {
                Ok(envelope) => batch.push(envelope),
                Err(_) => break,
            }
        }
        gauge!("classbell_bridge_publish_queue_depth").set(events.len() as f64);
        mailbox::ran(BRIDGE);
        // Only this node's own events: remote ones reach the hub, never the bus.
        batch.retain(|envelope| envelope.origin == node);
        if batch.is_empty() {
            continue;
        }
        if !health.connected() {
            // Redis is away: other nodes' clients catch up through their cursors.
            counter!("classbell_bridge_publish_failures_total").increment(batch.len() as u64);
            continue;
        }
        let count = batch.len() as u64;
        match publish(&redis, &channel, &batch).await {
            Ok(()) => counter!("classbell_bridge_published_total").increment(count),
            Err(error) => {
                counter!("classbell_bridge_publish_failures_total").increment(count);
                tracing::warn!(%error, "could not publish events to other nodes");
            }
        }
    }
}

async fn publish(redis: &Redis, channel: &str, batch: &[Arc<Envelope>]) -> Result<(), String> {
    let events: Vec<&Envelope> = batch.iter().map(AsRef::as_ref).collect();
    let payload = serde_json::to_vec(&events).map_err(|e| e.to_string())?;
    let mut conn = redis.get().await.map_err(|e| e.to_string())?;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Subscribes and hands other nodes' events to the hub; reconnects with
/// backoff whenever the subscription drops.
async fn receive_remote(
    url: String,
    channel: String,
    node: uuid::Uuid,
    hub: Addr<Hub>,
    health: Arc<BridgeHealth>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut first = true;
    loop {
        match subscribe(&url, &channel).await {
            Ok(mut pubsub) => {
                backoff = FIRST_BACKOFF;
                health.set(true);
                mailbox::tell(&hub, HUB, BridgeChanged { connected: true });
                tracing::info!("the bridge to other nodes is up");
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let batch: Vec<Envelope> =
                        match serde_json::from_slice(message.get_payload_bytes()) {
                            Ok(batch) => batch,
                            Err(error) => {
                                tracing::warn!(%error, "ignoring an undecodable bridge message");
                                continue;
                            }
                        };
                    let now = Utc::now().timestamp_millis();
                    for envelope in batch {
                        if envelope.origin == node {
                            continue;
                        }
                        counter!("classbell_bridge_received_total").increment(1);
                        mailbox::ran(BRIDGE);
                        let lag = (now - envelope.raised_at_ms).max(0) as f64 / 1000.0;
                        histogram!("classbell_bridge_lag_seconds").record(lag);
                        mailbox::tell(&hub, HUB, Remote(Arc::new(envelope)));
                    }
                }
                tracing::warn!("the bridge to other nodes dropped; reconnecting");
            }
            Err(error) if first => {
                tracing::warn!(%error, "the bridge to other nodes is down; retrying")
            }
            Err(error) => tracing::debug!(%error, "the bridge is still down"),
        }
        first = false;
        if health.connected() || backoff == FIRST_BACKOFF {
            health.set(false);
            mailbox::tell(&hub, HUB, BridgeChanged { connected: false });
        }
        counter!("classbell_bridge_reconnects_total").increment(1);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(url: &str, channel: &str) -> Result<redis::aio::PubSub, String> {
    let connect = async {
        let client = redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(MAX_BACKOFF, connect).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("timed out connecting to Redis".to_owned()),
    }
}
