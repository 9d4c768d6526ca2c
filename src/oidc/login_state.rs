//! Where a sign-in waits while the person is at WeCom. The validated authorization request
//! travels sealed in a cookie of the browser that started it (AES-256-GCM, see
//! `KeyManager::seal_for_browser`): no row is written at authorize and none is deleted at the
//! callback, two round trips to the database fewer per login. The cookie is named after the
//! WeCom `state`, so several sign-ins in several tabs each find their own, and only that browser
//! holds it, which is the binding RFC 9700 §4.7.1 asks for against login CSRF.
//!
//! A request too large for a cookie (long `state`, `nonce` and `claims` together) is kept as a
//! row instead, bound to the browser by its `wecom_oidc_browser` cookie, as before.
//!
//! Either way the state is single-use: the statement that opens the session records it
//! (`consumed_login_states`), so a replayed callback, cookie and all, issues no second code.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::{constant_time_eq, new_secret_token, sha256_hex};
use crate::storage::StorageError;

use super::{AuthorizationRequest, Provider};

/// The login cookie's name before the first characters of the state's hash.
const LOGIN_COOKIE_PREFIX: &str = "wecom_oidc_login_";
/// The longest sealed cookie value sent: with its name and attributes it stays under the 4096
/// bytes that browsers keep per cookie (RFC 6265 §6.1).
const MAX_SEALED_LEN: usize = 3800;

/// The name of the cookie that carries the sign-in whose WeCom state is `state`.
pub fn login_cookie_name(state: &str) -> String {
    format!("{LOGIN_COOKIE_PREFIX}{}", &sha256_hex(state)[..16])
}

/// What the cookie holds, sealed: `R` is the request, borrowed when sealing and owned when
/// opened.
#[derive(Serialize, Deserialize)]
struct SealedLogin<R> {
    /// The hash of the WeCom state this sign-in answers to: a cookie is good for its own only.
    state_hash: String,
    expires_at: UnixTime,
    request: R,
}

/// Where authorize left the request, for the response to carry.
#[derive(Debug)]
pub enum Parked {
    /// Set this cookie (name, sealed value) until the request expires.
    Cookie { name: String, value: String },
    /// Stored as a row; set `wecom_oidc_browser` to this value if the browser had none.
    Row { new_browser_cookie: Option<String> },
}

/// What the callback found for its state.
pub enum Unparked {
    /// Waiting, and until when: the state is remembered as consumed that long.
    Found {
        request: AuthorizationRequest,
        expires_at: UnixTime,
    },
    /// Nothing for this state in this browser: unknown, used, or another browser's.
    Unknown,
    /// A genuine request of this browser, after its lifetime: `client_id` for the audit row.
    Expired(AuthorizationRequest),
    /// A stored request that another browser started: the login CSRF of RFC 9700 §4.7.
    OtherBrowser(AuthorizationRequest),
}

impl Provider {
    /// Keeps `request` until the callback with `state` comes back, in a cookie when it fits.
    pub(super) async fn park_request(
        &self,
        request: &AuthorizationRequest,
        state: &str,
        browser_cookie: Option<&str>,
        now: UnixTime,
    ) -> Result<Parked, StorageError> {
        let expires_at = now + self.config.lifetimes.auth_request.as_secs() as i64;
        let sealed = SealedLogin {
            state_hash: sha256_hex(state),
            expires_at,
            request,
        };
        let plaintext = serde_json::to_vec(&sealed).map_err(anyhow::Error::from)?;
        let value = self.keys.seal_for_browser(&plaintext)?;
        if value.len() <= MAX_SEALED_LEN {
            return Ok(Parked::Cookie {
                name: login_cookie_name(state),
                value,
            });
        }
        let (browser_secret, new_browser_cookie) = match browser_cookie {
            Some(existing) if existing.len() >= 32 => (existing.to_owned(), None),
            _ => {
                let fresh = new_secret_token();
                (fresh.clone(), Some(fresh))
            }
        };
        self.store
            .insert_pending_request(
                &sealed.state_hash,
                &sha256_hex(&browser_secret),
                request,
                expires_at,
            )
            .await?;
        Ok(Parked::Row { new_browser_cookie })
    }

    /// The request the callback with `state` completes: from this browser's login cookie, or
    /// else taken (deleted) from the store.
    pub(super) async fn unpark_request(
        &self,
        state: &str,
        login_cookie: Option<&str>,
        browser_cookie: Option<&str>,
        now: UnixTime,
    ) -> Result<Unparked, StorageError> {
        let state_hash = sha256_hex(state);
        if let Some(sealed) = login_cookie
            .and_then(|value| self.keys.open_from_browser(value))
            .and_then(|plain| {
                serde_json::from_slice::<SealedLogin<AuthorizationRequest>>(&plain).ok()
            })
            .filter(|sealed| constant_time_eq(sealed.state_hash.as_bytes(), state_hash.as_bytes()))
        {
            return Ok(if sealed.expires_at <= now {
                Unparked::Expired(sealed.request)
            } else {
                Unparked::Found {
                    request: sealed.request,
                    expires_at: sealed.expires_at,
                }
            });
        }
        let pending = match self
            .store
            .take_pending_request::<AuthorizationRequest>(&state_hash)
            .await
        {
            Ok(pending) => pending,
            Err(StorageError::NotFound) => return Ok(Unparked::Unknown),
            Err(other) => return Err(other),
        };
        let bound_to_this_browser = browser_cookie.is_some_and(|cookie| {
            constant_time_eq(
                sha256_hex(cookie).as_bytes(),
                pending.browser_hash.as_bytes(),
            )
        });
        Ok(if !bound_to_this_browser {
            Unparked::OtherBrowser(pending.request)
        } else if pending.expires_at <= now {
            Unparked::Expired(pending.request)
        } else {
            Unparked::Found {
                request: pending.request,
                expires_at: pending.expires_at,
            }
        })
    }
}
