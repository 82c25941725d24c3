//! The school's people and their roles.

pub mod accounts;
pub mod fields;
pub mod model;
pub mod routes;
pub mod store;
