//! Announcements: what a teacher or the school publishes, to whom, and the
//! actors that turn one into a delivery per recipient.

pub mod audience;
pub mod checks;
pub mod compose;
pub mod escalation;
pub mod fanout;
pub mod ladder;
pub mod model;
pub mod reminders;
pub mod routes;
pub mod scheduler;
pub mod store;
