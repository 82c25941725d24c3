//! Deliveries: one per recipient of an announcement, moving
//! `queued → delivered → acknowledged`.

pub mod model;
pub mod reach;
pub mod routes;
pub mod store;
pub mod writer;
