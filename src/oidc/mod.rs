//! The OpenID Connect protocol core. Nothing here knows about HTTP: handlers in `routes/` parse
//! the request, call one function of `Provider`, and turn the outcome into a response.
//!
//! ```text
//!  relying party          wecom-oidc                                   WeCom
//!  ─────────────          ──────────                                   ─────
//!  GET /authorize ──────▶ authorize::authorize
//!                         ├─ SSO session alive → code ──▶ redirect_uri
//!                         └─ else store pending request ─────────────▶ QR page / in-client OAuth
//!                                                                        │ member scans / consents
//!                         callback::complete_login ◀── /auth/wecom/callback?code&state
//!                         ├─ getuserinfo, user/get, getuserdetail, groups ◀──▶ WeCom API
//!                         └─ session + code ──────▶ redirect_uri?code&state&iss
//!  POST /token ─────────▶ token::exchange → id_token (signed), access token, refresh token
//!  GET /userinfo ───────▶ userinfo::userinfo
//!  POST /revoke, /introspect ▶ introspection::{revoke, introspect}
//!  GET /logout ─────────▶ logout::logout
//! ```

pub mod authorize;
pub mod callback;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod id_token;
pub mod introspection;
pub mod logout;
pub mod params;
pub mod profile;
pub mod redirect;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::config::Config;
use crate::crypto::{new_secret_token, random_token, sha256_hex};
use crate::keys::KeyManager;
use crate::storage::{AuditEvent, Session, StorageError, Store};
use crate::wecom::WeComClient;
pub use error::{ErrorCode, OAuthError};
pub use params::Params;
pub use redirect::{ClientRedirect, ResponseMode};

/// Cookie holding the single sign-on session id.
pub const SESSION_COOKIE: &str = "wecom_oidc_session";
/// Cookie binding a pending WeCom round trip to the browser that started it.
pub const BROWSER_COOKIE: &str = "wecom_oidc_browser";

/// Everything the protocol functions need; built once at start-up and shared by every request.
pub struct Provider {
    pub config: Config,
    pub store: Store,
    pub keys: Arc<KeyManager>,
    pub wecom: Option<WeComClient>,
    pub secrets: client_auth::VerifiedSecrets,
}

/// A validated authorization request, kept in the store while the person is at WeCom.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
}

impl AuthorizationRequest {
    /// A response to this request's verified redirect URI, carrying its `state`.
    pub fn reply(&self) -> ClientRedirect {
        ClientRedirect::new(&self.redirect_uri, self.response_mode)
    }

    /// An error response (RFC 6749 §4.1.2.1), always with `state` when the request had one.
    pub fn error(&self, code: ErrorCode, description: &str, issuer: &str) -> ClientRedirect {
        self.reply()
            .with("error", Some(code.as_str()))
            .with("error_description", Some(description))
            .with("state", self.state.as_deref())
            .with("iss", Some(issuer))
    }
}

/// What an authorization code stands for, stored with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeDetails {
    pub sub: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: UnixTime,
    /// Hash of the SSO session id, so that logout revokes what the session issued.
    pub session_id: Option<String>,
}

impl Provider {
    pub fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// Issues a code for `request` and builds the success redirect (RFC 6749 §4.1.2), with `iss`
    /// (RFC 9207) so the client can tell which provider answered.
    pub async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        session: &Session,
        now: UnixTime,
    ) -> Result<ClientRedirect, StorageError> {
        let code = new_secret_token();
        let details = CodeDetails {
            sub: session.sub.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time: session.auth_time,
            session_id: Some(session.id_hash.clone()),
        };
        let expires_at = now + self.config.lifetimes.authorization_code.as_secs() as i64;
        self.store
            .insert_code(
                &sha256_hex(&code),
                &random_token(16),
                &request.client_id,
                &details,
                expires_at,
            )
            .await?;
        Ok(request
            .reply()
            .with("code", Some(&code))
            .with("state", request.state.as_deref())
            .with("iss", Some(self.issuer())))
    }

    /// Writes an audit row; a failure to write it is logged, never shown to the person.
    pub async fn audit(
        &self,
        now: UnixTime,
        event: &str,
        outcome: &str,
        sub: Option<&str>,
        client_id: Option<&str>,
        reason: Option<&str>,
    ) {
        if event == "sign_in" {
            crate::telemetry::login(outcome, reason);
        }
        let row = AuditEvent {
            at: now,
            event: event.to_owned(),
            outcome: outcome.to_owned(),
            sub: sub.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            reason: reason.map(str::to_owned),
        };
        if let Err(err) = self.store.record_audit(&row).await {
            tracing::error!(error = %err, event, outcome, "could not write the audit row");
        }
    }

    /// How long a revoked grant must be remembered: past the longest life of any of its tokens.
    pub fn grant_memory(&self, now: UnixTime) -> UnixTime {
        let lifetimes = &self.config.lifetimes;
        now + lifetimes
            .refresh_token
            .max(lifetimes.access_token)
            .max(lifetimes.authorization_code)
            .as_secs() as i64
    }
}
