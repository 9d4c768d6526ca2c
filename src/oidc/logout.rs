//! RP-Initiated Logout 1.0: end the SSO session, revoke what it issued, and return to the client
//! only at a post-logout URI it registered.

use crate::clock::UnixTime;
use crate::crypto::sha256_hex;
use crate::pages::{Page, PageKind};
use crate::storage::StorageError;

use super::{ClientRedirect, Params, Provider, ResponseMode};

#[derive(Debug)]
pub enum LogoutOutcome {
    /// Signed out; go back to the client.
    Redirect(String),
    /// Signed out, or refused (then nothing was ended); show the page.
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

impl Provider {
    #[tracing::instrument(skip_all)]
    pub async fn logout(
        &self,
        params: &Params,
        session_cookie: Option<&str>,
        now: UnixTime,
    ) -> Result<LogoutOutcome, StorageError> {
        let refuse = |kind: PageKind, detail: &str| {
            Ok(LogoutOutcome::ShowPage(Page::new(kind).detail(detail)))
        };
        if let Some(repeated) = params.first_repeated() {
            return refuse(
                PageKind::BadRequest,
                &format!("parameter {repeated} is repeated"),
            );
        }
        // The hint names the client (its `aud`); it may have expired (RP-Initiated Logout §2).
        let mut client_id = params.get("client_id").map(str::to_owned);
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
        if let Some(cookie) = session_cookie {
            let id_hash = sha256_hex(cookie);
            let sub = self.store.find_session(&id_hash, now).await?.map(|s| s.sub);
            self.store.end_session(&id_hash).await?;
            self.audit(
                now,
                "logout",
                "success",
                sub.as_deref(),
                client_id.as_deref(),
                None,
            )
            .await;
        }
        Ok(match redirect {
            Some(url) => LogoutOutcome::Redirect(url),
            None => LogoutOutcome::ShowPage(Page::new(PageKind::LoggedOut)),
        })
    }
}
