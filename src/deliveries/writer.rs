//! The delivery writer: the one owner of state-machine writes.
//!
//! Requests queue in the actor; whenever fewer than `max_in_flight` batches
//! are at the database, the queue goes out as **one** statement. While a
//! batch is in flight the next one gathers, so under load many transitions
//! share a round trip and a commit (group commit), and at rest a lone request
//! goes out at once. Every answer is sent after its batch committed.
//!
//! The statement also checks the caller's session, so a transition needs no
//! separate authentication query, and it moves states forward only: repeats
//! change nothing, and two racing requests make one transition.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use actix::prelude::*;
use metrics::{counter, gauge, histogram};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::model::{DeliveryState, DeliveryStatus};
use super::store;
use crate::db::DbPool;
use crate::error::AppError;
use crate::events::{Event, EventBus};
use crate::ids::{DeliveryId, UserId};
use crate::telemetry::mailbox;

/// The writer's name in actor metrics.
pub const DELIVERY_WRITER: &str = "delivery_writer";

/// Move a delivery forward on behalf of its recipient.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Transitioned, AppError>")]
pub struct Transition {
    pub delivery_id: DeliveryId,
    pub user_id: UserId,
    /// The caller's login session; a revoked one gets 401.
    pub session: Uuid,
    /// `Delivered` or `Acknowledged`.
    pub to: DeliveryState,
}

/// A transition's outcome: the delivery as it now stands, and whether this
/// request moved it (a repeat, or a race lost to another request, did not).
#[derive(Debug, Clone)]
pub struct Transitioned {
    pub status: DeliveryStatus,
    pub changed: bool,
}

/// Hands `request` to the writer and waits for its answer, which comes after
/// the commit: the one way HTTP and websockets move a delivery.
pub async fn transition(
    writer: &Addr<DeliveryWriter>,
    request: Transition,
) -> Result<Transitioned, AppError> {
    mailbox::sent(DELIVERY_WRITER);
    writer
        .send(request)
        .await
        .map_err(|_| AppError::unavailable("the delivery writer"))?
}

struct Pending {
    request: Transition,
    reply: oneshot::Sender<Result<Transitioned, AppError>>,
}

pub struct DeliveryWriter {
    db: DbPool,
    bus: EventBus,
    queue: Vec<Pending>,
    /// Deliveries in a batch at the database; a second request for one waits
    /// for the next batch, so its answer reflects the first.
    busy: HashSet<DeliveryId>,
    in_flight: usize,
    max_in_flight: usize,
    max_batch: usize,
}

impl DeliveryWriter {
    pub fn new(db: DbPool, bus: EventBus, max_in_flight: usize, max_batch: usize) -> Self {
        gauge!("classbell_delivery_writer_queue_depth").set(0.0);
        mailbox::register(DELIVERY_WRITER);
        for state in ["delivered", "acknowledged"] {
            counter!("classbell_delivery_transitions_total", "state" => state).absolute(0);
        }
        DeliveryWriter {
            db,
            bus,
            queue: Vec::new(),
            busy: HashSet::new(),
            in_flight: 0,
            max_in_flight: max_in_flight.max(1),
            max_batch: max_batch.max(1),
        }
    }

    /// Sends out the next batch if a slot is free.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight < self.max_in_flight && !self.queue.is_empty() {
            let (mut batch, mut rest) = (Vec::new(), Vec::new());
            for pending in self.queue.drain(..) {
                let free = !self.busy.contains(&pending.request.delivery_id);
                if free && batch.len() < self.max_batch {
                    batch.push(pending);
                } else {
                    rest.push(pending);
                }
            }
            self.queue = rest;
            if batch.is_empty() {
                break;
            }
            let ids: HashSet<DeliveryId> = batch.iter().map(|p| p.request.delivery_id).collect();
            self.busy.extend(ids.iter().copied());
            self.in_flight += 1;
            gauge!("classbell_delivery_writer_queue_depth").set(self.queue.len() as f64);
            histogram!("classbell_delivery_writer_batch_size").record(batch.len() as f64);
            let db = self.db.clone();
            let bus = self.bus.clone();
            let work = async move {
                let requests: Vec<Transition> = batch.iter().map(|p| p.request.clone()).collect();
                let results = commit(&db, &bus, &requests).await;
                (batch, results)
            };
            ctx.spawn(
                work.into_actor(self)
                    .map(move |(batch, results), writer, ctx| {
                        writer.in_flight -= 1;
                        for id in &ids {
                            writer.busy.remove(id);
                        }
                        match results {
                            Ok(results) => {
                                for (pending, result) in batch.into_iter().zip(results) {
                                    let _ = pending.reply.send(result);
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "a delivery batch failed");
                                for pending in batch {
                                    let _ =
                                        pending.reply.send(Err(AppError::unavailable("postgres")));
                                }
                            }
                        }
                        writer.flush(ctx);
                    }),
            );
        }
        gauge!("classbell_delivery_writer_queue_depth").set(self.queue.len() as f64);
    }
}

impl Actor for DeliveryWriter {
    type Context = Context<Self>;
}

impl Handler<Transition> for DeliveryWriter {
    type Result = ResponseFuture<Result<Transitioned, AppError>>;

    fn handle(&mut self, request: Transition, ctx: &mut Self::Context) -> Self::Result {
        mailbox::handled(DELIVERY_WRITER);
        let (reply, answer) = oneshot::channel();
        self.queue.push(Pending { request, reply });
        self.flush(ctx);
        Box::pin(async move {
            answer
                .await
                .unwrap_or_else(|_| Err(AppError::unavailable("the delivery writer")))
        })
    }
}

async fn commit(
    db: &DbPool,
    bus: &EventBus,
    requests: &[Transition],
) -> Result<Vec<Result<Transitioned, AppError>>, AppError> {
    let started = Instant::now();
    let mut conn = db.get().await?;
    let ids: Vec<DeliveryId> = requests.iter().map(|r| r.delivery_id).collect();
    let users: Vec<UserId> = requests.iter().map(|r| r.user_id).collect();
    let sessions: Vec<Uuid> = requests.iter().map(|r| r.session).collect();
    let targets: Vec<&'static str> = requests.iter().map(|r| r.to.as_str()).collect();
    let rows = store::transition_batch(&mut conn, &ids, &users, &sessions, &targets).await?;
    histogram!("classbell_delivery_writer_commit_seconds").record(started.elapsed().as_secs_f64());

    let mut announced = HashSet::new();
    let mut changed_announcements = HashMap::new();
    let mut results = Vec::with_capacity(requests.len());
    for (request, row) in requests.iter().zip(rows) {
        debug_assert_eq!(row.n as usize, results.len() + 1);
        if !row.session_live {
            results.push(Err(AppError::Unauthorized(
                "session has ended; sign in again",
            )));
            continue;
        }
        if !row.found {
            results.push(Err(AppError::NotFound("delivery")));
            continue;
        }
        let mut row = row;
        let mut state: DeliveryState = parse_state(row.state.as_deref())?;
        if !row.changed && state.rank() < request.to.rank() {
            // Another node moved it after this statement's snapshot: read it again.
            let fresh = store::reread(&mut conn, request.delivery_id).await?;
            state = parse_state(fresh.state.as_deref())?;
            row = fresh;
        }
        let announcement_id = row.announcement_id.unwrap_or_default();
        let status = DeliveryStatus {
            id: request.delivery_id,
            announcement_id,
            state,
            delivered_at: row.delivered_at,
            ack_at: row.ack_at,
        };
        let changed = row.changed && announced.insert(request.delivery_id);
        if changed {
            counter!("classbell_delivery_transitions_total", "state" => state.as_str())
                .increment(1);
            changed_announcements.insert(announcement_id, ());
            bus.publish(Event::DeliveryUpdated {
                delivery_id: request.delivery_id,
                user_id: request.user_id,
                announcement_id,
                state,
                delivered_at: status.delivered_at,
                ack_at: status.ack_at,
                unread_change: Some(if row.left_unread { -1 } else { 0 }),
            });
        }
        results.push(Ok(Transitioned { status, changed }));
    }
    for announcement_id in changed_announcements.into_keys() {
        bus.publish(Event::AnnouncementStats { announcement_id });
    }
    Ok(results)
}

fn parse_state(text: Option<&str>) -> Result<DeliveryState, AppError> {
    text.unwrap_or_default().parse().map_err(AppError::internal)
}
