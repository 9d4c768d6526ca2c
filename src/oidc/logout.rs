//! RP-Initiated Logout 1.0: end the SSO session, revoke what it issued, tell the clients by
//! back-channel logout, and return to the client only at a post-logout URI it registered.
//!
//! A logout is a state change a third-party site must not trigger (RP-Initiated Logout §4): a GET
//! ends the session only with an `id_token_hint` naming the session's member. Otherwise the person
//! is asked on a page whose button posts back with a token bound to their session cookie.

use crate::clock::UnixTime;
use crate::crypto::{base64url, constant_time_eq, sha256, sha256_hex};
use crate::pages::{Page, PageForm, PageKind};
use crate::storage::StorageError;

use super::endpoints::LOGOUT_PATH;
use super::{ClientRedirect, Params, Provider, ResponseMode};

/// The confirmation form's field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

#[derive(Debug)]
pub enum LogoutOutcome {
    /// Signed out; go back to the client.
    Redirect(String),
    /// Signed out, asked to confirm, or refused (then nothing was ended); show the page.
    ShowPage(Page),
}

impl LogoutOutcome {
    pub fn signed_out(&self) -> bool {
        match self {
            LogoutOutcome::Redirect(_) => true,
            LogoutOutcome::ShowPage(page) => page.kind == PageKind::LoggedOut,
        }
    }
}

/// The logout request as it arrived at the edge.
#[derive(Debug, Clone, Copy)]
pub struct LogoutRequest<'a> {
    pub params: &'a Params,
    pub session_cookie: Option<&'a str>,
    /// Only a POST may carry the confirmation's CSRF token: a token in a URL leaks into logs.
    pub via_post: bool,
}

/// The CSRF token of the confirmation form: a one-way function of the session cookie itself,
/// which only the person's browser holds. It cannot be computed from what the store keeps (the
/// cookie's hash) nor from the `sid` clients receive (a function of that hash), and it dies with
/// the session.
pub fn csrf_token(session_cookie: &str) -> String {
    let mut input = b"wecom-oidc logout csrf v1\0".to_vec();
    input.extend_from_slice(session_cookie.as_bytes());
    base64url(&sha256(&input))
}

fn csrf_token_is_valid(session_cookie: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|presented| {
        constant_time_eq(
            &sha256(presented.as_bytes()),
            &sha256(csrf_token(session_cookie).as_bytes()),
        )
    })
}

impl Provider {
    #[tracing::instrument(skip_all)]
    pub async fn logout(
        &self,
        request: LogoutRequest<'_>,
        now: UnixTime,
    ) -> Result<LogoutOutcome, StorageError> {
        let params = request.params;
        let refuse = |kind: PageKind, detail: &str| {
            Ok(LogoutOutcome::ShowPage(Page::new(kind).detail(detail)))
        };
        if let Some(repeated) = params.first_repeated() {
            return refuse(
                PageKind::BadRequest,
                &format!("parameter {repeated} is repeated"),
            );
        }
        // The hint names the client (its `aud`) and the member (its `sub`); it may have expired
        // (RP-Initiated Logout §2), but it must be ours.
        let mut client_id = params.get("client_id").map(str::to_owned);
        let mut hint_sub = None;
        if let Some(hint) = params.get("id_token_hint") {
            let claims = self
                .keys
                .verify_own_token(hint)
                .filter(|c| c.get("iss").and_then(|i| i.as_str()) == Some(self.issuer()));
            let Some(claims) = claims else {
                return refuse(
                    PageKind::BadRequest,
                    "id_token_hint was not issued by this provider",
                );
            };
            let audience = claims
                .get("aud")
                .and_then(|a| a.as_str())
                .map(str::to_owned);
            if client_id.is_some() && client_id != audience {
                return refuse(
                    PageKind::BadRequest,
                    "client_id does not match the id_token_hint",
                );
            }
            client_id = audience;
            hint_sub = claims
                .get("sub")
                .and_then(|s| s.as_str())
                .map(str::to_owned);
        }
        let redirect = match params.get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                // Never redirect to a URI the client did not register: no open redirect here.
                let Some(client_id) = &client_id else {
                    return refuse(
                        PageKind::LogoutRefused,
                        "post_logout_redirect_uri needs client_id or id_token_hint",
                    );
                };
                let client = match self.store.get_client(client_id).await {
                    Ok(client) => client,
                    Err(StorageError::NotFound) => {
                        return refuse(PageKind::LogoutRefused, "unknown client")
                    }
                    Err(other) => return Err(other),
                };
                if !client.has_post_logout_redirect_uri(uri) {
                    tracing::warn!(
                        client_id,
                        "logout with an unregistered post_logout_redirect_uri"
                    );
                    return refuse(
                        PageKind::LogoutRefused,
                        "post_logout_redirect_uri is not registered for this client",
                    );
                }
                Some(
                    ClientRedirect::new(uri, ResponseMode::Query)
                        .with("state", params.get("state"))
                        .url(),
                )
            }
        };
        let done = || match &redirect {
            Some(url) => LogoutOutcome::Redirect(url.clone()),
            None => LogoutOutcome::ShowPage(Page::new(PageKind::LoggedOut)),
        };
        let Some(cookie) = request.session_cookie else {
            return Ok(done());
        };

        // What this browser's cookie still holds: a live session, or tokens issued under one
        // that has expired (they are revoked at logout too).
        let id_hash = sha256_hex(cookie);
        let session = self.store.find_session(&id_hash, now).await?;
        let notices = self.session_logout_notices(&id_hash).await?;
        let member = session
            .as_ref()
            .map(|s| s.sub.clone())
            .or_else(|| notices.first().map(|n| n.sub.clone()));
        let Some(member) = member else {
            return Ok(done());
        };

        let hint_names_member = hint_sub.as_deref() == Some(member.as_str());
        let confirmed = request.via_post && csrf_token_is_valid(cookie, params.get(CSRF_FIELD));
        if !hint_names_member && !confirmed {
            if request.via_post && params.get(CSRF_FIELD).is_some() {
                tracing::warn!(
                    "logout confirmation with a CSRF token that does not match the session"
                );
            }
            return Ok(LogoutOutcome::ShowPage(self.logout_confirmation(
                cookie,
                params,
                client_id.as_deref(),
            )));
        }

        self.store
            .end_session(&id_hash, self.grant_memory(now))
            .await?;
        self.audit(
            now,
            "logout",
            "success",
            Some(&member),
            client_id.as_deref(),
            Some(if hint_names_member {
                "id_token_hint"
            } else {
                "confirmed"
            }),
        )
        .await;
        self.send_backchannel_logout(notices, "logout", now).await;
        Ok(done())
    }

    /// The "Sign out?" page: its button posts the original parameters back with the CSRF token.
    fn logout_confirmation(&self, cookie: &str, params: &Params, client_id: Option<&str>) -> Page {
        let mut fields = vec![(CSRF_FIELD.to_owned(), csrf_token(cookie))];
        for name in ["post_logout_redirect_uri", "state", "ui_locales"] {
            if let Some(value) = params.get(name) {
                fields.push((name.to_owned(), value.to_owned()));
            }
        }
        if let Some(client_id) = client_id {
            fields.push(("client_id".to_owned(), client_id.to_owned()));
        }
        Page::new(PageKind::ConfirmLogout).form(PageForm {
            action: self.config.issuer.endpoint(LOGOUT_PATH),
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_bound_to_the_session_cookie() {
        let token = csrf_token("cookie-a");
        assert!(csrf_token_is_valid("cookie-a", Some(&token)));
        assert!(!csrf_token_is_valid("cookie-b", Some(&token)));
        assert!(!csrf_token_is_valid("cookie-a", None));
        assert!(!csrf_token_is_valid("cookie-a", Some("")));
    }

    #[test]
    fn the_csrf_token_cannot_be_derived_from_the_stored_hash_or_the_sid() {
        let cookie = "cookie-a";
        let id_hash = sha256_hex(cookie);
        let token = csrf_token(cookie);
        assert_ne!(token, super::super::backchannel::sid_of(&id_hash));
        assert_ne!(token, csrf_token(&id_hash));
    }
}
