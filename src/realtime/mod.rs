//! The live inbox: a websocket per browser tab or device, pushed to by a hub
//! that resolves bus events into messages, and joined to other nodes by a
//! Redis bridge. PostgreSQL stays the truth: every message carries a cursor,
//! and a client that reconnects with it is sent whatever it missed.

pub mod bridge;
pub mod hub;
pub mod ledger;
pub mod protocol;
pub mod routes;
pub mod session;
pub mod sessions;
pub mod socket;
pub mod store;
pub mod ticket;
