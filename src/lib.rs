//! wecom-oidc: an OpenID Connect provider whose login step is WeCom (企业微信).
//!
//! The crate is a library so that `tests/` and the benchmark start the real application; `main.rs`
//! only wires the command line to it.

// Tests may unwrap: a panic there is a failed assertion. The normal build still denies it.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod check;
pub mod clock;
pub mod config;
pub mod console;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod event_keys;
pub mod health;
pub mod key_timing;
pub mod keys;
#[cfg(test)]
mod layers;
pub mod limit_settings;
pub mod limits;
pub mod oidc;
pub mod outbound;
pub mod pages;
pub mod registry;
pub mod routes;
pub mod simulator;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod wecom;
