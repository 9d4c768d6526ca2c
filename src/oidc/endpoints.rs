//! The path of every endpoint, relative to the issuer (which may carry a path prefix). They belong
//! to the protocol: discovery publishes them, logout and client assertions name them, and the HTTP
//! adapter (`routes/`) mounts its handlers on them. Plain constants; nothing here imports.

pub const AUTHORIZE_PATH: &str = "/authorize";
pub const TOKEN_PATH: &str = "/token";
pub const USERINFO_PATH: &str = "/userinfo";
pub const JWKS_PATH: &str = "/jwks";
pub const REVOKE_PATH: &str = "/revoke";
pub const INTROSPECT_PATH: &str = "/introspect";
pub const LOGOUT_PATH: &str = "/logout";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Defined beside `WECOM_REDIRECT_URL`, whose default it is: configuration sits below the protocol.
pub use crate::config::WECOM_CALLBACK_PATH;
pub const WECOM_EVENTS_PATH: &str = "/wecom/events";
/// Where the admin console's own authorization responses arrive (`console`).
pub const CONSOLE_CALLBACK_PATH: &str = "/console/callback";
