//! Outgoing mail: the mailer actor and the messages classbell sends.

pub mod catalog;
pub mod mailer;
pub mod postage;
pub mod templates;

pub use mailer::{MAILER, Mailer, SendMail};
pub use postage::Postage;
