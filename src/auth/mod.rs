//! Accounts: register, sign in, tokens, password changes and resets.

pub mod extract;
pub mod hashing;
pub mod jwt;
pub mod password;
pub mod recovery;
pub mod routes;
pub mod secret_token;
pub mod store;
pub mod throttle;

pub use extract::{AuthClaims, AuthUser};
