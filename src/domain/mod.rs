//! Parsed protocol values: once a value is one of these types it has been checked.
//!
//! The vocabulary every layer shares, so it sits just above the leaves: it imports only `crypto`,
//! does no I/O and knows no HTTP, storage or WeCom API. `config` parses into its types.

pub mod client;
pub mod group;
pub mod pkce;
pub mod scope;

pub use client::{AuthMethod, ClientMetadata, ClientRegistration, GrantType, RegisteredClient};
pub use pkce::CodeChallenge;
pub use scope::{Scope, ScopeSet};
