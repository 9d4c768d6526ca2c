//! The OpenID Connect protocol core. Nothing here knows about HTTP: handlers in `routes/` parse
//! the request, call one function of `Provider`, and turn the outcome into a response. It never
//! imports actix-web nor anything above it (`routes`, `limits`, `registry`, `startup`); SQL is
//! reached through `storage`, WeCom through `wecom`, josekit through `keys`.
//!
//! ```text
//!  relying party          wecom-oidc                                   WeCom
//!  ─────────────          ──────────                                   ─────
//!  GET /authorize ──────▶ authorize::authorize
//!                         ├─ SSO session alive → code ──▶ redirect_uri
//!                         └─ else seal the request in a cookie ──────▶ QR page / in-client OAuth
//!                                                                        │ member scans / consents
//!                         callback::complete_login ◀── /auth/wecom/callback?code&state
//!                         ├─ getuserinfo, user/get, getuserdetail, groups ◀──▶ WeCom API
//!                         └─ session + code ──────▶ redirect_uri?code&state&iss
//!  POST /token ─────────▶ token::exchange → id_token (signed), access token, refresh token
//!  GET /userinfo ───────▶ userinfo::userinfo
//!  POST /revoke, /introspect ▶ introspection::{revoke, introspect}
//!  GET /logout ─────────▶ logout::logout (confirmation page unless id_token_hint names the member)
//!                         └─ session ended ─ background ─▶ POST backchannel_logout_uri (logout token)
//! ```

pub mod access;
pub mod authorize;
pub mod backchannel;
pub mod callback;
pub mod claims_request;
pub mod client_assertion;
pub mod client_auth;
pub mod discovery;
pub mod endpoints;
pub mod error;
pub mod id_token;
pub mod introspection;
pub mod login_state;
pub mod logout;
pub mod membership;
pub mod params;
pub mod profile;
pub mod redirect;
pub mod token;
pub mod userinfo;
pub mod wecom_events;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::config::Config;
use crate::crypto::{new_secret_token, random_token, sha256_hex};
use crate::domain::{AuthMethod, ClientMetadata, GrantType, RegisteredClient};
use crate::keys::KeyManager;
use crate::storage::{AuditEvent, NewCode, Session, StorageError, Store};
use crate::wecom::WeComClient;
pub use error::{ErrorCode, OAuthError};
pub use params::Params;
pub use redirect::{ClientRedirect, ResponseMode};

/// Cookie holding the single sign-on session id.
pub const SESSION_COOKIE: &str = "wecom_oidc_session";
/// Cookie binding a pending WeCom round trip to the browser that started it.
pub const BROWSER_COOKIE: &str = "wecom_oidc_browser";

/// The client_id of the admin console: the provider's own relying party, built in (never stored),
/// public, PKCE-bound, whose codes only the console redeems, in-process (`console::signin`).
pub const CONSOLE_CLIENT_ID: &str = "wecom-oidc-console";

/// Everything the protocol functions need; built once at start-up and shared by every request.
pub struct Provider {
    pub config: Config,
    pub store: Store,
    pub keys: Arc<KeyManager>,
    pub wecom: Option<WeComClient>,
    pub secrets: client_auth::VerifiedSecrets,
    /// Delivers back-channel logout tokens in the background.
    pub backchannel: backchannel::BackchannelSender,
    /// Fetched `jwks_uri` documents of `private_key_jwt` clients.
    pub client_keys: client_assertion::ClientKeys,
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
    /// How the person is sent to WeCom; becomes the session's `amr`.
    #[serde(default)]
    pub login_method: LoginMethod,
    /// The `claims` parameter (OIDC Core §5.5); absent in requests stored before it existed.
    #[serde(default)]
    pub claims: Option<claims_request::ClaimsRequest>,
}

/// The two ways WeCom signs a person in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// The web login page: a QR code scanned with the WeCom app (or a click in the desktop app).
    #[default]
    Qr,
    /// Silent OAuth inside the WeCom client's own browser.
    InClient,
}

impl LoginMethod {
    /// OIDC `amr` values (space-separated). Both prove possession of a device where the WeCom app
    /// is signed in (RFC 8176 `swk`, a software-secured key); `qr` and `wecom_client` tell the two
    /// apart, since RFC 8176 registers no name for either.
    pub fn amr(self) -> &'static str {
        match self {
            LoginMethod::Qr => "qr swk",
            LoginMethod::InClient => "wecom_client swk",
        }
    }
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
    /// The session's `amr` (space-separated), kept through every refresh.
    #[serde(default)]
    pub amr: String,
    #[serde(default)]
    pub claims: Option<claims_request::ClaimsRequest>,
    /// The member's profile as the code was issued (seconds before its exchange), so that the
    /// token endpoint signs the ID token's claims without reading the member again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<profile::UserProfile>,
}

impl Provider {
    /// The provider over `store` and `keys`, with a WeCom client when the credentials are set
    /// (without them discovery, JWKS and the admin API work, sign-in does not).
    pub fn new(
        config: Config,
        store: Store,
        keys: Arc<KeyManager>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> anyhow::Result<Self> {
        let wecom = match &config.wecom.credentials {
            Some(credentials) => Some(
                WeComClient::new(&config.wecom, credentials)
                    .map_err(|e| anyhow::anyhow!("cannot build the WeCom client: {e}"))?,
            ),
            None => {
                tracing::warn!("WECOM_CORP_ID, WECOM_CORP_SECRET and WECOM_AGENT_ID are not set: discovery, JWKS and the admin API work, sign-in does not");
                None
            }
        };
        let backchannel = backchannel::BackchannelSender::new(
            store.clone(),
            Arc::clone(&keys),
            clock,
            config.issuer.as_str(),
            config.backchannel_logout_timeout,
        )?;
        Ok(Self {
            secrets: client_auth::VerifiedSecrets::new(config.client_secret_cache_ttl),
            client_keys: client_assertion::ClientKeys::new()?,
            backchannel,
            wecom,
            keys,
            store,
            config,
        })
    }

    pub fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// The client a browser sign-in is for: the console's built-in registration when the console
    /// is on, otherwise a registered client from the store.
    pub async fn sign_in_client(&self, client_id: &str) -> Result<RegisteredClient, StorageError> {
        if client_id == CONSOLE_CLIENT_ID {
            return self.console_client().ok_or(StorageError::NotFound);
        }
        self.store.get_client(client_id).await
    }

    /// The console's built-in client, `None` while the console is off (`ADMIN_GROUPS` and
    /// `ADMIN_USERS` unset). Public (`none`) with PKCE required and no token-endpoint access:
    /// the token endpoint looks clients up in the store, where this one is not.
    pub fn console_client(&self) -> Option<RegisteredClient> {
        if !self.config.console.enabled() {
            return None;
        }
        Some(RegisteredClient {
            client_id: CONSOLE_CLIENT_ID.to_owned(),
            secret_hash: None,
            metadata: ClientMetadata {
                client_name: "wecom-oidc console".to_owned(),
                redirect_uris: vec![self
                    .config
                    .issuer
                    .endpoint(endpoints::CONSOLE_CALLBACK_PATH)],
                post_logout_redirect_uris: Vec::new(),
                token_endpoint_auth_method: AuthMethod::None,
                grant_types: vec![GrantType::AuthorizationCode],
                response_types: vec!["code".to_owned()],
                scope: "openid".to_owned(),
                require_pkce: true,
                id_token_profile_claims: false,
                always_issue_refresh_token: false,
                backchannel_logout_uri: None,
                backchannel_logout_session_required: false,
                allowed_groups: Vec::new(),
                groups_claim: None,
                groups_filter: Vec::new(),
                jwks: None,
                jwks_uri: None,
            },
            created_at: 0,
            updated_at: 0,
        })
    }

    /// Issues a code for `request` and builds the success redirect (RFC 6749 §4.1.2), with `iss`
    /// (RFC 9207) so the client can tell which provider answered.
    pub async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        session: &Session,
        profile: &profile::UserProfile,
        now: UnixTime,
    ) -> Result<ClientRedirect, StorageError> {
        let (code, redirect) = self.mint_code(request, session, profile, now);
        self.store.insert_code(&code).await?;
        Ok(redirect)
    }

    /// A fresh code for `request` from `session` of the member with `profile`: the row to store,
    /// and the redirect that carries the code to the client.
    pub fn mint_code(
        &self,
        request: &AuthorizationRequest,
        session: &Session,
        profile: &profile::UserProfile,
        now: UnixTime,
    ) -> (NewCode<CodeDetails>, ClientRedirect) {
        let code = new_secret_token();
        let details = CodeDetails {
            sub: session.sub.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time: session.auth_time,
            session_id: Some(session.id_hash.clone()),
            amr: session.amr.clone(),
            claims: request.claims.clone(),
            profile: Some(profile.clone()),
        };
        let stored = NewCode {
            code_hash: sha256_hex(&code),
            grant_id: random_token(16),
            client_id: request.client_id.clone(),
            session_id: Some(session.id_hash.clone()),
            details,
            expires_at: now + self.config.lifetimes.authorization_code.as_secs() as i64,
        };
        let redirect = request
            .reply()
            .with("code", Some(&code))
            .with("state", request.state.as_deref())
            .with("iss", Some(self.issuer()));
        (stored, redirect)
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
        let row = audit_event(now, event, outcome, sub, client_id, reason);
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

/// The audit row of an event, counted in the sign-in metrics as it is made.
pub fn audit_event(
    now: UnixTime,
    event: &str,
    outcome: &str,
    sub: Option<&str>,
    client_id: Option<&str>,
    reason: Option<&str>,
) -> AuditEvent {
    if event == "sign_in" {
        crate::telemetry::login(outcome, reason);
    }
    AuditEvent {
        at: now,
        event: event.to_owned(),
        outcome: outcome.to_owned(),
        sub: sub.map(str::to_owned),
        client_id: client_id.map(str::to_owned),
        reason: reason.map(str::to_owned),
    }
}
