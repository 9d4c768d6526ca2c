//! The integration tests: one binary, every test against a real server with its own database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod backchannel;
mod claims;
mod client_jwt;
mod discovery;
mod events;
mod login;
mod membership;
mod operations;
mod refresh;
mod relying_party;
mod session;
mod token;
