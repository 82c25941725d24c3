//! Outgoing mail: the messages classbell sends, the queue in PostgreSQL
//! that holds them until a relay accepts them, and the mailer actor that
//! sends them.

pub mod catalog;
pub mod mailer;
pub mod postage;
pub mod queue;
pub mod templates;

pub use mailer::{MAILER, Mailer};
pub use postage::Postage;
pub use templates::SendMail;
