//! Parsed protocol values: once a value is one of these types it has been checked.

pub mod client;
pub mod group;
pub mod pkce;
pub mod scope;

pub use client::{AuthMethod, ClientMetadata, ClientRegistration, GrantType, RegisteredClient};
pub use pkce::CodeChallenge;
pub use scope::{Scope, ScopeSet};
