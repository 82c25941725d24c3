//! A websocket client for the tests: awc over a real connection, answering
//! the server's pings only while it is being read (a client that is not read
//! is a client that has stopped reading).

use std::time::Duration;

use actix_codec::Framed;
use awc::BoxedSocket;
use awc::ws::{Codec, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

/// What came off the socket.
#[derive(Debug)]
pub enum Incoming {
    Json(Value),
    Closed(Option<awc::ws::CloseReason>),
    /// Nothing within the wait.
    Quiet,
}

pub struct WsClient {
    framed: Framed<BoxedSocket, Codec>,
}

/// The websocket address of `http_base` plus `path_and_query`.
pub fn ws_url(http_base: &str, path_and_query: &str) -> String {
    format!("{}{path_and_query}", http_base.replacen("http", "ws", 1))
}

impl WsClient {
    /// Opens `path_and_query` (e.g. `/ws?since=12`), with a Bearer token if given.
    pub async fn connect(http_base: &str, path_and_query: &str, token: Option<&str>) -> WsClient {
        Self::try_connect(http_base, path_and_query, token)
            .await
            .unwrap_or_else(|error| panic!("websocket {path_and_query}: {error}"))
    }

    pub async fn try_connect(
        http_base: &str,
        path_and_query: &str,
        token: Option<&str>,
    ) -> Result<WsClient, String> {
        let mut request = awc::Client::new().ws(ws_url(http_base, path_and_query));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (_, framed) = request.connect().await.map_err(|e| e.to_string())?;
        Ok(WsClient { framed })
    }

    /// The next message, frame or close within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Incoming {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.framed.next()).await;
            match next {
                Err(_) => return Incoming::Quiet,
                Ok(None) => return Incoming::Closed(None),
                Ok(Some(Err(error))) => panic!("websocket error: {error}"),
                Ok(Some(Ok(frame))) => match frame {
                    Frame::Text(bytes) => {
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        let value = serde_json::from_str(&text)
                            .unwrap_or_else(|_| panic!("not JSON: {text}"));
                        return Incoming::Json(value);
                    }
                    Frame::Ping(bytes) => {
                        let _ = self.framed.send(Message::Pong(bytes)).await;
                    }
                    Frame::Close(reason) => return Incoming::Closed(reason),
                    _ => {}
                },
            }
        }
    }

    /// The next JSON message (5 s at most), or a panic saying what came instead.
    pub async fn next_json(&mut self) -> Value {
        match self.recv_within(Duration::from_secs(5)).await {
            Incoming::Json(value) => value,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Reads until a message of type `kind` (5 s at most), returning it and
    /// leaving the ones before it behind.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Incoming::Json(value) if value["type"] == kind => return value,
                Incoming::Json(_) => continue,
                other => panic!("expected {kind}, got {other:?}"),
            }
        }
    }

    /// Every message that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut messages = Vec::new();
        while let Incoming::Json(value) = self.recv_within(wait).await {
            messages.push(value);
        }
        messages
    }

    /// Reads until the server closes, returning the close code and reason.
    pub async fn closed(&mut self, wait: Duration) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Incoming::Json(_) => continue,
                Incoming::Closed(Some(reason)) => {
                    return (
                        u16::from(reason.code),
                        reason.description.unwrap_or_default(),
                    );
                }
                Incoming::Closed(None) => return (0, String::new()),
                Incoming::Quiet => panic!("the server did not close within {wait:?}"),
            }
        }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.framed
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send a websocket message");
    }

    pub async fn send_binary(&mut self, bytes: &'static [u8]) {
        self.framed
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send a websocket frame");
    }
}
