//! Outgoing mail: the mailer actor and the messages classbell sends.

pub mod mailer;
pub mod templates;

pub use mailer::{MAILER, Mailer, SendMail};
