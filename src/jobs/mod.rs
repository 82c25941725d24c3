//! Background jobs: CSV exports and imports of the school's data, run by a
//! durable job runner off the request path, with progress pushed live to
//! the job's owner.

pub mod context;
pub mod exports;
pub mod imports;
pub mod model;
pub mod routes;
pub mod runner;
pub mod sheet;
pub mod store;
pub mod upload;
