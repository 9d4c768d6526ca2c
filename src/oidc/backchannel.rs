//! OpenID Connect Back-Channel Logout 1.0: when a session or a member's access ends, every client
//! that registered a `backchannel_logout_uri` and holds a grant from it gets a signed logout token.
//!
//! Delivery happens in the background, one task per relying party, so that a slow or dead relying
//! party delays neither the person nor the others: a short timeout, a few attempts with exponential
//! backoff, redirects never followed, and the final outcome written to the audit log. This is the
//! one place besides `wecom/` that makes outgoing HTTP calls, with its own client built once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::clock::{Clock, UnixTime};
use crate::crypto::{base64url, random_token, sha256};
use crate::keys::KeyManager;
use crate::storage::{AuditEvent, StorageError, Store};

use super::Provider;

/// BCL §2.4: the `events` member that makes a JWT a logout token.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// BCL §2.4 recommends a short life; two minutes cover every retry below with room for skew.
const LOGOUT_TOKEN_TTL: i64 = 120;
/// Attempts per relying party; the waits between them double from `FIRST_RETRY_DELAY`.
const ATTEMPTS: u32 = 3;
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The session's public id (`sid`, OIDC Front/Back-Channel Logout): a one-way function of the
/// stored session id hash, so that neither a relying party nor a reader of the database can get
/// from it to the session cookie, and the CSRF token of the logout page (derived from the cookie
/// itself) cannot be computed from it.
pub fn sid_of(session_id_hash: &str) -> String {
    let mut input = b"wecom-oidc sid v1\0".to_vec();
    input.extend_from_slice(session_id_hash.as_bytes());
    base64url(&sha256(&input))
}

/// One relying party to tell that `sub`'s session (`sid`, when known) or access has ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogoutNotice {
    pub client_id: String,
    pub sub: String,
    pub sid: Option<String>,
}

/// Counts deliveries still running, so that tests (and a graceful shutdown) can wait for them.
#[derive(Debug, Default)]
struct Inflight {
    count: AtomicUsize,
    idle: Notify,
}

/// Held by each background task; the last one to finish wakes whoever waits for idleness.
struct InflightGuard(Arc<Inflight>);

impl InflightGuard {
    fn new(inflight: &Arc<Inflight>) -> Self {
        inflight.count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(inflight))
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Sends logout tokens in the background. Cheap to clone; every clone shares one HTTP client.
#[derive(Clone)]
pub struct BackchannelSender {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    store: Store,
    keys: Arc<KeyManager>,
    clock: Arc<dyn Clock>,
    issuer: String,
    inflight: Arc<Inflight>,
}

impl std::fmt::Debug for BackchannelSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackchannelSender")
            .field(
                "inflight",
                &self.inner.inflight.count.load(Ordering::SeqCst),
            )
            .finish_non_exhaustive()
    }
}

/// Why one attempt did not deliver, and whether another attempt may do better.
#[derive(Debug)]
struct AttemptFailure {
    detail: String,
    retry: bool,
}

impl BackchannelSender {
    /// `timeout` bounds each attempt, connection included (`BACKCHANNEL_LOGOUT_TIMEOUT_SECS`).
    pub fn new(
        store: Store,
        keys: Arc<KeyManager>,
        clock: Arc<dyn Clock>,
        issuer: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let http = crate::outbound::client_builder()?
            // BCL §2.5 names the URI to post to; a redirect could carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("wecom-oidc/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the back-channel logout HTTP client")?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                store,
                keys,
                clock,
                issuer: issuer.to_owned(),
                inflight: Arc::new(Inflight::default()),
            }),
        })
    }

    /// Starts delivering `notices` and returns at once; `reason` goes to the audit log with each
    /// outcome. Duplicates are sent once; clients without a back-channel URI are skipped.
    pub fn send(&self, notices: Vec<LogoutNotice>, reason: &str, now: UnixTime) {
        let notices: BTreeSet<LogoutNotice> = notices.into_iter().collect();
        if notices.is_empty() {
            return;
        }
        let guard = InflightGuard::new(&self.inner.inflight);
        let inner = Arc::clone(&self.inner);
        let reason = reason.to_owned();
        tokio::spawn(async move {
            for notice in notices {
                inner.dispatch(notice, &reason, now).await;
            }
            drop(guard);
        });
    }

    /// Resolves once no delivery is running (tests await this instead of sleeping).
    pub async fn wait_idle(&self) {
        let inflight = &self.inner.inflight;
        loop {
            let notified = inflight.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a delivery finishing in between still wakes us.
            notified.as_mut().enable();
            if inflight.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Inner {
    /// Looks the client up, signs its token and spawns its delivery.
    async fn dispatch(self: &Arc<Self>, notice: LogoutNotice, reason: &str, now: UnixTime) {
        let client = match self.store.get_client(&notice.client_id).await {
            Ok(client) => client,
            // Deleted meanwhile: its tokens went with it, there is no one to tell.
            Err(StorageError::NotFound) => return,
            Err(err) => {
                tracing::error!(client_id = %notice.client_id, error = %err, "back-channel logout: cannot read the client");
                self.audit(&notice, "failed", reason).await;
                return;
            }
        };
        let Some(uri) = client.metadata.backchannel_logout_uri.clone() else {
            return;
        };
        if client.metadata.backchannel_logout_session_required && notice.sid.is_none() {
            // BCL §2.2: such a client requires `sid` in every logout token; an access that
            // ended without a session (a member revoked) has none to give.
            tracing::info!(client_id = %notice.client_id, "back-channel logout skipped: the client requires sid and this ending has no session");
            return;
        }
        let token = match self.logout_token(&notice, now) {
            Ok(token) => token,
            Err(err) => {
                tracing::error!(client_id = %notice.client_id, error = %format!("{err:#}"), "back-channel logout: cannot sign the logout token");
                self.audit(&notice, "failed", reason).await;
                return;
            }
        };
        let guard = InflightGuard::new(&self.inflight);
        let inner = Arc::clone(self);
        let reason = reason.to_owned();
        tokio::spawn(async move {
            inner.deliver(&notice, &uri, &token, &reason).await;
            drop(guard);
        });
    }

    /// BCL §2.4: `iss`, `aud`, `iat`, `exp`, `jti`, `sub`, `sid` when known, the logout event, and
    /// never a `nonce`; `typ: logout+jwt` keeps it from passing for an ID token (§2.6 step 4).
    fn logout_token(&self, notice: &LogoutNotice, now: UnixTime) -> anyhow::Result<String> {
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::String(self.issuer.clone()));
        claims.insert("aud".into(), Value::String(notice.client_id.clone()));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + LOGOUT_TOKEN_TTL));
        claims.insert("jti".into(), Value::String(random_token(16)));
        claims.insert("sub".into(), Value::String(notice.sub.clone()));
        if let Some(sid) = &notice.sid {
            claims.insert("sid".into(), Value::String(sid.clone()));
        }
        claims.insert("events".into(), json!({ LOGOUT_EVENT: {} }));
        self.keys.sign_typed("logout+jwt", claims)
    }

    /// Posts the token until it is accepted or the attempts run out; audits the outcome.
    async fn deliver(&self, notice: &LogoutNotice, uri: &str, token: &str, reason: &str) {
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 1;
        let outcome = loop {
            match self.attempt(uri, token).await {
                Ok(()) => break Ok(()),
                Err(failure) if failure.retry && attempt < ATTEMPTS => {
                    tracing::debug!(client_id = %notice.client_id, attempt, detail = %failure.detail, "back-channel logout attempt failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(failure) => break Err(failure),
            }
        };
        match outcome {
            Ok(()) => {
                tracing::info!(client_id = %notice.client_id, attempt, "back-channel logout delivered");
                self.audit(notice, "delivered", reason).await;
            }
            Err(failure) => {
                tracing::warn!(client_id = %notice.client_id, attempts = attempt, detail = %failure.detail, "back-channel logout failed");
                self.audit(notice, "failed", reason).await;
            }
        }
    }

    /// One POST (BCL §2.5). 200 and 204 mean done (§2.8). A 400 means the relying party refused
    /// the token, which another try will not change; 5xx, 429 and transport errors may pass.
    async fn attempt(&self, uri: &str, token: &str) -> Result<(), AttemptFailure> {
        let response = self
            .http
            .post(uri)
            .form(&[("logout_token", token)])
            .send()
            .await
            .map_err(|err| AttemptFailure {
                // Without the URL: its query may hold something the relying party keeps private.
                detail: err.without_url().to_string(),
                retry: true,
            })?;
        let status = response.status();
        if status.as_u16() == 200 || status.as_u16() == 204 {
            return Ok(());
        }
        Err(AttemptFailure {
            detail: format!("HTTP {}", status.as_u16()),
            retry: status.is_server_error() || status.as_u16() == 429,
        })
    }

    async fn audit(&self, notice: &LogoutNotice, outcome: &str, reason: &str) {
        let row = AuditEvent {
            at: self.clock.now(),
            event: "backchannel_logout".to_owned(),
            outcome: outcome.to_owned(),
            sub: Some(notice.sub.clone()),
            client_id: Some(notice.client_id.clone()),
            reason: Some(reason.to_owned()),
        };
        if let Err(err) = self.store.record_audit(&row).await {
            tracing::error!(error = %err, "could not write the back-channel logout audit row");
        }
    }
}

impl Provider {
    /// Tells each client in `notices` that the session or access ended (`reason` is audited:
    /// `logout`, `revoked`, …). Returns at once; delivery runs in the background.
    pub async fn send_backchannel_logout(
        &self,
        notices: Vec<LogoutNotice>,
        reason: &str,
        now: UnixTime,
    ) {
        self.backchannel.send(notices, reason, now);
    }

    /// The notices for every client holding tokens from the session with this id hash; read them
    /// before ending the session, which deletes those tokens.
    pub async fn session_logout_notices(
        &self,
        session_id_hash: &str,
    ) -> Result<Vec<LogoutNotice>, StorageError> {
        let sid = sid_of(session_id_hash);
        Ok(self
            .store
            .clients_of_session(session_id_hash)
            .await?
            .into_iter()
            .map(|(client_id, sub)| LogoutNotice {
                client_id,
                sub,
                sid: Some(sid.clone()),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_is_stable_distinct_and_not_the_stored_hash() {
        let hash = crate::crypto::sha256_hex("cookie value");
        let sid = sid_of(&hash);
        assert_eq!(sid, sid_of(&hash));
        assert_ne!(sid, sid_of(&crate::crypto::sha256_hex("another cookie")));
        assert!(sid.len() >= 22);
        assert!(!hash.contains(&sid) && !sid.contains(&hash));
        assert!(sid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
