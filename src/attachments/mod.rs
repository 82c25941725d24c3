//! Files attached to a course; their bytes live in object storage.

pub mod filename;
pub mod media;
pub mod model;
pub mod routes;
pub mod store;
pub mod upload;
