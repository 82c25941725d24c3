//! What the client sends: its requests, carried out through the same state
//! machine as HTTP, and the frames themselves, rate-limited (a flood is
//! closed with 1008) and size-limited (1009).

use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode};
use metrics::counter;

use super::Session;
use crate::announcements::store as announcements;
use crate::deliveries::model::DeliveryState;
use crate::deliveries::writer::{self, Transition};
use crate::error::AppError;
use crate::ids::{AnnouncementId, DeliveryId};
use crate::realtime::hub::{HUB, WatchStats};
use crate::realtime::protocol::{ClientMessage, ServerMessage};
use crate::telemetry::mailbox;
use crate::users::model::Role;
use crate::users::store as users;

impl Session {
    fn on_client_message(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let message = match ClientMessage::parse(text) {
            Ok(message) => message,
            Err(reason) => {
                counter!("classbell_ws_bad_messages_total").increment(1);
                return self.write(&ServerMessage::error("bad_message", reason), ctx);
            }
        };
        match message {
            ClientMessage::Ping => self.write(&ServerMessage::Pong, ctx),
            ClientMessage::Delivered { delivery_id } => {
                self.transition(delivery_id, DeliveryState::Delivered, ctx)
            }
            ClientMessage::Ack { delivery_id } => {
                self.transition(delivery_id, DeliveryState::Acknowledged, ctx)
            }
            ClientMessage::SubscribeStats { announcement_id } => {
                self.watch_stats(announcement_id, ctx)
            }
            ClientMessage::UnsubscribeStats { announcement_id } => {
                let watch = WatchStats {
                    id: self.id,
                    announcement_id,
                    watch: false,
                };
                mailbox::tell(&self.services.hub, HUB, watch);
            }
        }
    }

    /// The delivery writer moves the delivery; the bus then tells every
    /// session of the user (this one included). A repeat changes nothing and
    /// raises no event, so its answer comes straight back here.
    fn transition(
        &mut self,
        delivery_id: DeliveryId,
        to: DeliveryState,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let request = Transition {
            delivery_id,
            user_id: self.user.id,
            session: self.auth_session,
            to,
        };
        let writer = self.services.writer.clone();
        let work = async move { writer::transition(&writer, request).await };
        ctx.spawn(
            work.into_actor(self)
                .map(|result, session, ctx| match result {
                    Ok(done) if done.changed => {}
                    Ok(done) => {
                        let status = done.status;
                        let message = ServerMessage::DeliveryUpdated {
                            delivery_id: status.id,
                            announcement_id: status.announcement_id,
                            state: status.state,
                            delivered_at: status.delivered_at,
                            ack_at: status.ack_at,
                        };
                        session.write(&message, ctx);
                    }
                    Err(AppError::Unauthorized(reason)) => {
                        session.close(CloseCode::Policy, reason, ctx)
                    }
                    Err(error) => {
                        session.write(&ServerMessage::error(error.code(), error.to_string()), ctx)
                    }
                }),
        );
    }

    /// Live figures are for staff and the announcement's publisher while a
    /// teacher, as over HTTP; checked against the user's role now.
    fn watch_stats(
        &mut self,
        announcement_id: AnnouncementId,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let db = self.services.db.clone();
        let user = self.user.id;
        let work = async move {
            let mut conn = db.get().await?;
            // The role now, not when the socket opened.
            let role = users::find(&mut conn, user).await?.role;
            if role == Role::Student {
                return Err(AppError::Forbidden(
                    "students do not see announcement figures",
                ));
            }
            announcements::find_visible(&mut conn, announcement_id, user, role).await
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |result, session, ctx| match result {
                    Ok(_) => {
                        let watch = WatchStats {
                            id: session.id,
                            announcement_id,
                            watch: true,
                        };
                        mailbox::tell(&session.services.hub, HUB, watch);
                    }
                    Err(error) => {
                        session.write(&ServerMessage::error(error.code(), error.to_string()), ctx)
                    }
                }),
        );
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let counted = matches!(
            item,
            Ok(ws::Message::Text(_) | ws::Message::Binary(_) | ws::Message::Continuation(_))
        );
        if counted && self.inbound.check().is_err() {
            counter!("classbell_ws_floods_closed_total").increment(1);
            return self.close(CloseCode::Policy, "too many messages", ctx);
        }
        match item {
            Ok(ws::Message::Text(text)) => self.on_client_message(&text, ctx),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Binary(_)) | Ok(ws::Message::Continuation(_)) => {
                counter!("classbell_ws_bad_messages_total").increment(1);
                self.write(
                    &ServerMessage::error("bad_message", "send JSON text frames"),
                    ctx,
                );
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                counter!("classbell_ws_bad_messages_total").increment(1);
                self.close(CloseCode::Size, "message too big", ctx);
            }
            Err(error) => {
                tracing::debug!(%error, "websocket protocol error");
                self.close(CloseCode::Protocol, "protocol error", ctx);
            }
        }
    }
}
