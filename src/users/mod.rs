//! The school's people and their roles.

pub mod accounts;
pub mod fields;
pub mod invitations;
pub mod model;
pub mod roster;
pub mod routes;
pub mod store;
