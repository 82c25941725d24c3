//! Courses: the school's catalogue.

pub mod credits;
pub mod model;
pub mod routes;
pub mod store;
