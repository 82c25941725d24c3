//! Sections: a course taught in a term by one teacher, and who is enrolled.

pub mod bulk;
pub mod enrollments;
pub mod model;
pub mod routes;
pub mod store;
