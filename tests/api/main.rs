//! The integration tests: one binary, every test against a real server with its own database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod backchannel;
mod claims;
mod client_jwt;
mod client_secrets;
mod console;
mod database;
mod discovery;
mod egress;
mod events;
mod fuzz;
mod housekeeping;
mod key_rotation;
mod limits;
mod login;
mod membership;
mod metrics;
mod operations;
mod refresh;
mod relying_party;
mod replicas;
mod resilience;
mod session;
mod token;
