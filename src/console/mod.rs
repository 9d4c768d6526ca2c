//! The admin console: server-rendered pages under `{issuer}/console` for the people who run the
//! provider, signed in with WeCom like everyone else. Nothing here knows about HTTP; the handlers
//! are in `http`, the pages in `pages`.
//!
//! The console is the provider's own relying party (`oidc::CONSOLE_CLIENT_ID`), built in and
//! never stored. Signing in to it is an ordinary authorization request, so everything the
//! provider does for an application it does for the console too: the SSO session is reused, or
//! WeCom's QR / in-client login runs; the member's standing with WeCom is checked; `max_age`
//! forces a fresh login. The one difference is that the code is redeemed in-process, with the
//! token endpoint's own checks (`Provider::redeem_code`: once, unexpired, redirect URI, PKCE),
//! and no token is ever issued. The only new surface is the two sealed cookies below.
//!
//! ```text
//!  GET /console/…  no console cookie ─▶ /console/login ─ sealed {state, PKCE verifier, next} ─┐
//!                                                                                           ▼
//!  /authorize?client_id=wecom-oidc-console&redirect_uri=…/console/callback&code_challenge=…&state
//!   ├─ SSO session alive (and younger than max_age) → code
//!   └─ else WeCom QR / in-client → /auth/wecom/callback → code
//!  GET /console/callback?code&state ─▶ signin::complete: state matches the sealed one, code
//!      redeemed with the verifier, member an administrator? ─┬─ yes: console cookie, ─▶ next
//!                                                             └─ no: 403 page
//!  every later request: console cookie opens, its SSO session still exists (logout and
//!  revocation end it), the member is rechecked with WeCom (`confirm_member`) and is still an
//!  administrator (`ADMIN_GROUPS`, `ADMIN_USERS`); POSTs carry the session's CSRF token and a
//!  same-origin `Origin`; destructive ones need a sign-in of the last 10 minutes.
//! ```

pub mod http;
mod pages;
mod text;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::oidc::membership::MemberCheck;
use crate::oidc::profile::UserProfile;
use crate::oidc::Provider;
use crate::storage::StorageError;

pub use pages::ConsolePages;

/// The console session cookie.
pub const SESSION_COOKIE: &str = "wecom_oidc_console";
/// The cookie that holds a console sign-in while the person is at `/authorize` and WeCom.
pub const SIGN_IN_COOKIE: &str = "wecom_oidc_console_signin";
/// The longest a console session lasts, whatever the SSO session's lifetime.
pub const MAX_SESSION_SECS: i64 = 12 * 3600;
/// How recent a sign-in must be for revoke, rotate and delete (`max_age` of the re-sign-in).
pub const FRESH_SIGN_IN_SECS: i64 = 600;
/// How long a console sign-in may take at WeCom.
const SIGN_IN_SECS: i64 = 600;

/// A console sign-in in progress, sealed in the browser that started it.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The hash of the `state` sent to `/authorize`.
    state_hash: String,
    /// The PKCE verifier (RFC 7636) whose S256 challenge went with the request.
    verifier: String,
    /// Where to go afterwards: a console path, checked by [`console_path`].
    pub next: String,
    expires_at: UnixTime,
}

/// A console session, sealed in its cookie: nothing is stored for it. It lives no longer than the
/// SSO session it came from, which logout and revocation delete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleSession {
    pub sub: String,
    /// The hash of the SSO session id (`sessions.id_hash`).
    sso_session: String,
    pub auth_time: UnixTime,
    pub expires_at: UnixTime,
    /// The CSRF token of this session's forms.
    csrf: String,
}

/// The administrator behind a request that passed every check.
#[derive(Debug, Clone)]
pub struct Administrator {
    pub sub: String,
    pub userid: String,
    pub name: String,
    pub auth_time: UnixTime,
    pub csrf: String,
}

impl Administrator {
    /// Whether the sign-in is recent enough for a destructive action.
    pub fn signed_in_recently(&self, now: UnixTime) -> bool {
        now - self.auth_time <= FRESH_SIGN_IN_SECS
    }

    /// The CSRF token sent with a form is this session's (constant-time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|token| constant_time_eq(token.as_bytes(), self.csrf.as_bytes()))
    }
}

/// Where a request stands.
#[derive(Debug)]
pub enum Standing {
    Admin(Administrator),
    /// No (valid) console session: sign in first, and show nothing.
    SignInNeeded,
    /// Signed in, but not an administrator (or no longer): the 403 page.
    Forbidden,
    /// WeCom cannot confirm the member now: nothing is shown until it can.
    WeComUnavailable,
}

/// What the console callback ends in.
#[derive(Debug)]
pub enum SignInOutcome {
    /// Set this sealed session cookie and go to `next`.
    SignedIn {
        cookie: String,
        max_age: i64,
        next: String,
    },
    /// The member signed in but may not use the console.
    Forbidden,
    /// The sign-in is unknown, used, expired, or someone else's: start again.
    Expired,
    /// `/authorize` answered with an error (the person cancelled, WeCom refused them).
    Refused(String),
}

/// `next` if it is a path of the console under `prefix` (and nothing that a browser would take
/// for another host), else the console's home: the sign-in never redirects anywhere else.
pub fn console_path(prefix: &str, next: Option<&str>) -> String {
    let home = format!("{prefix}/console/clients");
    let Some(next) = next else {
        return home;
    };
    let inside = next
        .strip_prefix(prefix)
        .is_some_and(|rest| rest == "/console" || rest.starts_with("/console/"));
    // No dot segment, plain or percent-encoded: a browser resolves `/console/../authorize`
    // to a path outside the console.
    let path = next.split(['?', '#']).next().unwrap_or_default();
    let dot_segment = path.split('/').any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    });
    let harmless = !dot_segment
        && !next.contains("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    if inside && harmless {
        next.to_owned()
    } else {
        home
    }
}

/// Whether a POST comes from the console's own pages: its `Origin` is the issuer's (RFC 6454);
/// without one, or with the opaque `null` a browser sends under a `no-referrer` policy,
/// `Sec-Fetch-Site: same-origin` will do. Both headers are set by the browser, never by page
/// content. Anything else is a cross-site request, refused whatever it carries.
pub fn same_origin(expected: &str, origin: Option<&str>, fetch_site: Option<&str>) -> bool {
    match origin {
        Some(origin) if origin != "null" => origin.eq_ignore_ascii_case(expected),
        _ => fetch_site == Some("same-origin"),
    }
}

impl Provider {
    /// Starts a console sign-in: the `/authorize` URL to send the browser to and the sealed value
    /// of [`SIGN_IN_COOKIE`]. `max_age` asks for a sign-in that recent (OIDC Core §3.1.2.1).
    pub fn start_console_sign_in(
        &self,
        next: String,
        max_age: Option<i64>,
        ui_locale: &str,
        now: UnixTime,
    ) -> anyhow::Result<(String, String)> {
        let state = random_token(32);
        let verifier = random_token(32);
        let challenge = crate::crypto::base64url(&crate::crypto::sha256(verifier.as_bytes()));
        let pending = PendingSignIn {
            state_hash: sha256_hex(&state),
            verifier,
            next,
            expires_at: now + SIGN_IN_SECS,
        };
        let sealed = self.keys.seal_for_browser(&serde_json::to_vec(&pending)?)?;
        let mut url = url::Url::parse(
            &self
                .config
                .issuer
                .endpoint(crate::oidc::endpoints::AUTHORIZE_PATH),
        )?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", crate::oidc::CONSOLE_CLIENT_ID)
            .append_pair(
                "redirect_uri",
                &self
                    .config
                    .issuer
                    .endpoint(crate::oidc::endpoints::CONSOLE_CALLBACK_PATH),
            )
            .append_pair("scope", "openid")
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("ui_locales", ui_locale);
        if let Some(age) = max_age {
            url.query_pairs_mut()
                .append_pair("max_age", &age.to_string());
        }
        Ok((url.to_string(), sealed))
    }

    /// The console callback: the sign-in this browser started (`sealed`), answered by `/authorize`
    /// with `code` and `state` (or `error`).
    pub async fn complete_console_sign_in(
        &self,
        params: &crate::oidc::Params,
        sealed: Option<&str>,
        now: UnixTime,
    ) -> Result<SignInOutcome, StorageError> {
        let Some(pending) = sealed
            .and_then(|value| self.keys.open_from_browser(value))
            .and_then(|plain| serde_json::from_slice::<PendingSignIn>(&plain).ok())
        else {
            return Ok(SignInOutcome::Expired);
        };
        // RFC 6749 §10.12: the response answers this browser's request, or it is ignored.
        let state_matches = params.get("state").is_some_and(|state| {
            constant_time_eq(sha256_hex(state).as_bytes(), pending.state_hash.as_bytes())
        });
        if !state_matches || pending.expires_at <= now {
            return Ok(SignInOutcome::Expired);
        }
        if let Some(error) = params.get("error") {
            return Ok(SignInOutcome::Refused(error.to_owned()));
        }
        let (Some(code), Some(client)) = (params.get("code"), self.console_client()) else {
            return Ok(SignInOutcome::Expired);
        };
        let redirect_uri = self
            .config
            .issuer
            .endpoint(crate::oidc::endpoints::CONSOLE_CALLBACK_PATH);
        let grant = match self
            .redeem_code(
                &client,
                code,
                Some(&redirect_uri),
                Some(&pending.verifier),
                now,
            )
            .await
        {
            Ok(grant) => grant,
            Err(err) => {
                tracing::warn!(error = %err.description, "console sign-in: the code did not redeem");
                return Ok(SignInOutcome::Expired);
            }
        };
        let details = grant.details;
        let session = match &details.session_id {
            Some(id_hash) => self.store.find_session(id_hash, now).await?,
            None => None,
        };
        let Some(session) = session else {
            return Ok(SignInOutcome::Expired);
        };
        let admitted = details
            .profile
            .as_ref()
            .is_some_and(|profile| self.is_console_admin(profile));
        if !admitted {
            tracing::info!("console sign-in refused: not an administrator");
            self.audit(
                now,
                "console_sign_in",
                "refused",
                Some(&details.sub),
                None,
                Some("not_an_administrator"),
            )
            .await;
            return Ok(SignInOutcome::Forbidden);
        }
        let console = ConsoleSession {
            sub: details.sub.clone(),
            sso_session: session.id_hash,
            auth_time: details.auth_time,
            expires_at: (now + MAX_SESSION_SECS).min(session.expires_at),
            csrf: random_token(32),
        };
        let cookie = self
            .keys
            .seal_for_browser(&serde_json::to_vec(&console).map_err(anyhow::Error::from)?)?;
        self.audit(
            now,
            "console_sign_in",
            "success",
            Some(&details.sub),
            None,
            None,
        )
        .await;
        Ok(SignInOutcome::SignedIn {
            cookie,
            max_age: console.expires_at - now,
            next: pending.next,
        })
    }

    /// Whether the member with this profile may use the console now.
    pub fn is_console_admin(&self, profile: &UserProfile) -> bool {
        self.config.console.admits(
            &profile.userid,
            profile.current_groups().unwrap_or_default(),
        )
    }

    /// Where a request carrying the console cookie `sealed` stands: the session must open, be
    /// unexpired, its SSO session must still exist, and the member must still be an
    /// administrator as WeCom sees them now (rechecked as an SSO reuse would).
    pub async fn console_standing(
        &self,
        sealed: Option<&str>,
        now: UnixTime,
    ) -> Result<Standing, StorageError> {
        let Some(session) = sealed
            .and_then(|value| self.keys.open_from_browser(value))
            .and_then(|plain| serde_json::from_slice::<ConsoleSession>(&plain).ok())
            .filter(|session| session.expires_at > now)
        else {
            return Ok(Standing::SignInNeeded);
        };
        if self
            .store
            .find_session(&session.sso_session, now)
            .await?
            .is_none()
        {
            return Ok(Standing::SignInNeeded);
        }
        let profile = match self.confirm_member(&session.sub, now).await? {
            MemberCheck::Admitted(profile) => profile,
            // Everything the member held, the SSO session included, is gone.
            MemberCheck::Revoked(_) => return Ok(Standing::SignInNeeded),
            MemberCheck::Unknown(_) => return Ok(Standing::WeComUnavailable),
        };
        if !self.is_console_admin(&profile) {
            return Ok(Standing::Forbidden);
        }
        Ok(Standing::Admin(Administrator {
            name: profile
                .name
                .clone()
                .unwrap_or_else(|| profile.userid.clone()),
            userid: profile.userid.clone(),
            sub: session.sub,
            auth_time: session.auth_time,
            csrf: session.csrf,
        }))
    }

    /// The audit row of an administrator's console action: `sub` is the administrator's.
    pub async fn audit_console(
        &self,
        admin: &Administrator,
        event: &str,
        client_id: Option<&str>,
        target: Option<&str>,
        now: UnixTime,
    ) {
        self.audit(now, event, "success", Some(&admin.sub), client_id, target)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_returns_only_to_console_paths() {
        let cases = [
            (Some("/console/people/abc?q=1"), "/console/people/abc?q=1"),
            (Some("/console"), "/console"),
            (None, "/console/clients"),
            (Some("https://evil.example/console/"), "/console/clients"),
            (Some("//evil.example/console/"), "/console/clients"),
            (Some("/console//evil.example"), "/console/clients"),
            (Some("/consoleX"), "/console/clients"),
            (Some("/console/\\evil"), "/console/clients"),
            (Some("/token"), "/console/clients"),
            (Some("/console/../authorize?x=1"), "/console/clients"),
            (Some("/console/%2E%2e/token"), "/console/clients"),
            (Some("/console/./.."), "/console/clients"),
            (Some("/console/people?q=../x"), "/console/people?q=../x"),
        ];
        for (next, expected) in cases {
            assert_eq!(console_path("", next), expected, "{next:?}");
        }
        assert_eq!(
            console_path("/sso", Some("/sso/console/keys")),
            "/sso/console/keys"
        );
        assert_eq!(
            console_path("/sso", Some("/console/keys")),
            "/sso/console/clients"
        );
    }

    #[test]
    fn posts_must_come_from_the_issuers_origin() {
        let origin = "https://sso.example.com";
        assert!(same_origin(origin, Some("https://sso.example.com"), None));
        assert!(!same_origin(
            origin,
            Some("https://evil.example"),
            Some("same-origin")
        ));
        assert!(!same_origin(origin, Some("null"), None));
        assert!(!same_origin(origin, Some("null"), Some("cross-site")));
        assert!(same_origin(origin, Some("null"), Some("same-origin")));
        assert!(same_origin(origin, None, Some("same-origin")));
        assert!(!same_origin(origin, None, Some("cross-site")));
        assert!(!same_origin(origin, None, None));
    }
}
