//! The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2): validate the request, answer
//! from the SSO session when it can, otherwise send the person to WeCom.

use crate::clock::UnixTime;
use crate::crypto::sha256_hex;
use crate::domain::{CodeChallenge, Scope, ScopeSet};
use crate::pages::{Lang, Page, PageKind};
use crate::storage::StorageError;
use crate::wecom;

use super::claims_request::ClaimsRequest;
use super::login_state::Parked;
use super::membership::MemberCheck;
use super::{
    AuthorizationRequest, ClientRedirect, ErrorCode, LoginMethod, Params, Provider, ResponseMode,
};

/// What the browser sent besides the parameters.
#[derive(Debug, Default)]
pub struct BrowserContext<'a> {
    pub session_cookie: Option<&'a str>,
    pub browser_cookie: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub lang: Lang,
}

#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// A local page; used whenever the redirect URI cannot be trusted (never redirect then).
    ShowError(Page),
    /// A code or an error for the client, at its verified redirect URI.
    Redirect(ClientRedirect),
    /// Off to WeCom, with the cookie that keeps the sign-in (see `login_state`).
    RedirectToWeCom { url: String, parked: Parked },
}

/// The longest `state` and `nonce` accepted; they are echoed and stored, so they are bounded.
/// 1 KiB holds what relying parties send (random values, or a signed blob with a return URL).
const MAX_ECHOED_LEN: usize = 1024;

impl Provider {
    #[tracing::instrument(skip_all, fields(client_id = params.get("client_id")))]
    pub async fn authorize(
        &self,
        params: &Params,
        browser: &BrowserContext<'_>,
        now: UnixTime,
    ) -> Result<AuthorizeOutcome, StorageError> {
        // RFC 6749 §4.1.2.1: when client_id or redirect_uri is missing, invalid or mismatching,
        // the server MUST NOT redirect; it informs the person instead.
        if params.is_repeated("client_id") || params.is_repeated("redirect_uri") {
            return Ok(AuthorizeOutcome::ShowError(
                Page::new(PageKind::BadRequest).detail("client_id or redirect_uri is repeated"),
            ));
        }
        let Some(client_id) = params.get("client_id") else {
            return Ok(AuthorizeOutcome::ShowError(
                Page::new(PageKind::BadRequest).detail("client_id is missing"),
            ));
        };
        let client = match self.sign_in_client(client_id).await {
            Ok(client) => client,
            Err(StorageError::NotFound) => {
                return Ok(AuthorizeOutcome::ShowError(Page::new(
                    PageKind::UnknownClient,
                )))
            }
            Err(other) => return Err(other),
        };
        // OIDC Core §3.1.2.1: redirect_uri is REQUIRED and must match a registered one exactly.
        let Some(redirect_uri) = params.get("redirect_uri") else {
            return Ok(AuthorizeOutcome::ShowError(
                Page::new(PageKind::BadRequest).detail("redirect_uri is missing"),
            ));
        };
        if !client.has_redirect_uri(redirect_uri) {
            tracing::warn!(
                client_id,
                "authorization request with an unregistered redirect_uri"
            );
            return Ok(AuthorizeOutcome::ShowError(Page::new(
                PageKind::RedirectUriMismatch,
            )));
        }

        // From here on the redirect URI is verified: errors go back to the client with `state`.
        let state = params.get("state").map(str::to_owned);
        let response_mode = ResponseMode::parse(params.get("response_mode"));
        let mut request = AuthorizationRequest {
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            response_mode: response_mode.clone().unwrap_or_default(),
            scope: String::new(),
            state,
            nonce: params.get("nonce").map(str::to_owned),
            code_challenge: None,
            login_method: LoginMethod::Qr,
            claims: None,
        };
        let fail = |request: &AuthorizationRequest, code: ErrorCode, description: &str| {
            Ok(AuthorizeOutcome::Redirect(request.error(
                code,
                description,
                self.issuer(),
            )))
        };
        if let Some(repeated) = params.first_repeated() {
            return fail(
                &request,
                ErrorCode::InvalidRequest,
                &format!("parameter {repeated} is repeated"),
            );
        }
        if let Err(description) = response_mode {
            return fail(&request, ErrorCode::InvalidRequest, &description);
        }
        if request
            .state
            .as_ref()
            .is_some_and(|s| s.len() > MAX_ECHOED_LEN)
            || request
                .nonce
                .as_ref()
                .is_some_and(|n| n.len() > MAX_ECHOED_LEN)
        {
            request.state = None;
            return fail(
                &request,
                ErrorCode::InvalidRequest,
                "state or nonce is too long",
            );
        }
        // OIDC Core §6: request objects are not supported and must be refused as such.
        if params.get("request").is_some() {
            return fail(
                &request,
                ErrorCode::RequestNotSupported,
                "request objects are not supported",
            );
        }
        if params.get("request_uri").is_some() {
            return fail(
                &request,
                ErrorCode::RequestUriNotSupported,
                "request_uri is not supported",
            );
        }
        match params.get("response_type") {
            None => {
                return fail(
                    &request,
                    ErrorCode::InvalidRequest,
                    "response_type is missing",
                )
            }
            Some("code") => {}
            Some(_) => {
                return fail(
                    &request,
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                )
            }
        }

        // RFC 6749 §3.3: the server may ignore scopes it does not support or the client may not
        // have; `openid` itself is required for an OpenID Connect request.
        let (requested, _unknown) = ScopeSet::parse(params.get("scope").unwrap_or(""));
        if !requested.contains(Scope::OpenId) {
            return fail(
                &request,
                ErrorCode::InvalidScope,
                "scope must include openid",
            );
        }
        let granted = requested.intersect(&client.allowed_scopes());
        if !granted.contains(Scope::OpenId) {
            return fail(
                &request,
                ErrorCode::InvalidScope,
                "this client may not use openid",
            );
        }
        request.scope = granted.to_string();
        if let Some(raw) = params.get("claims") {
            match ClaimsRequest::parse(raw) {
                Ok(claims) if claims.demands_an_acr() => {
                    return fail(
                        &request,
                        ErrorCode::AccessDenied,
                        "the essential acr requested cannot be met: no acr is asserted",
                    )
                }
                Ok(claims) => request.claims = Some(claims),
                Err(description) => return fail(&request, ErrorCode::InvalidRequest, description),
            }
        }

        // RFC 7636 and RFC 9700 §2.1.1: S256 only; required for public clients and for clients
        // registered with require_pkce.
        match params.get("code_challenge") {
            Some(challenge) => {
                match CodeChallenge::parse(challenge, params.get("code_challenge_method")) {
                    Ok(challenge) => request.code_challenge = Some(challenge.as_str().to_owned()),
                    Err(description) => {
                        return fail(&request, ErrorCode::InvalidRequest, description)
                    }
                }
            }
            None if client.metadata.require_pkce => {
                return fail(
                    &request,
                    ErrorCode::InvalidRequest,
                    "code_challenge (PKCE, S256) is required for this client",
                )
            }
            None => {}
        }

        let prompt: Vec<&str> = params
            .get("prompt")
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
            .collect();
        // OIDC Core §3.1.2.1: `none` with any other value is an error.
        if prompt.contains(&"none") && prompt.len() > 1 {
            return fail(
                &request,
                ErrorCode::InvalidRequest,
                "prompt=none cannot be combined with other values",
            );
        }
        let max_age = match params.get("max_age").map(str::parse::<i64>) {
            None => None,
            Some(Ok(age)) if age >= 0 => Some(age),
            Some(_) => {
                return fail(
                    &request,
                    ErrorCode::InvalidRequest,
                    "max_age must be a non-negative number",
                )
            }
        };

        // Single sign-on: a live session answers at once unless the client demands a fresh login.
        let session = match browser.session_cookie {
            Some(cookie) => self.store.find_session(&sha256_hex(cookie), now).await?,
            None => None,
        };
        let fresh_login_required = prompt.contains(&"login");
        // OIDC Core §5.5.1: a `sub` requested by value is answered only from that member's
        // session; anyone else's means signing in again.
        let required_sub = request.claims.as_ref().and_then(|c| c.required_sub());
        if let Some(session) = session.filter(|s| {
            !fresh_login_required
                && max_age.is_none_or(|age| now - s.auth_time <= age)
                && required_sub.is_none_or(|sub| sub == s.sub)
        }) {
            if let Some(hint_sub) = params
                .get("id_token_hint")
                .and_then(|h| self.keys.subject_of_own_token(h))
            {
                if hint_sub != session.sub && prompt.contains(&"none") {
                    return fail(
                        &request,
                        ErrorCode::LoginRequired,
                        "the signed-in user is not the one in id_token_hint",
                    );
                }
            }
            // A session outlives many WeCom changes: ask WeCom again when the member's last
            // confirmation is older than MEMBER_RECHECK_SECS.
            match self.confirm_member(&session.sub, now).await? {
                MemberCheck::Admitted(profile) => {
                    if !super::access::admits(&client.metadata, profile.current_groups()) {
                        let page = self.refuse_access(&request, &session.sub, now).await;
                        // A silent request (hidden iframe) would never show the page: answer
                        // the client.
                        if prompt.contains(&"none") {
                            return fail(&request, ErrorCode::AccessDenied, super::access::DENIED);
                        }
                        return Ok(AuthorizeOutcome::ShowError(page));
                    }
                    self.audit(
                        now,
                        "sign_in",
                        "success",
                        Some(&session.sub),
                        Some(&client.client_id),
                        Some("sso_session"),
                    )
                    .await;
                    return Ok(AuthorizeOutcome::Redirect(
                        self.issue_code(&request, &session, &profile, now).await?,
                    ));
                }
                // The session has ended with the member's access: WeCom's own login follows,
                // and refuses them with the usual page.
                MemberCheck::Revoked(reason) => {
                    tracing::info!(
                        reason,
                        "SSO session ended: WeCom no longer admits the member"
                    );
                }
                MemberCheck::Unknown(_) if prompt.contains(&"none") => {
                    return fail(
                        &request,
                        ErrorCode::TemporarilyUnavailable,
                        "WeCom cannot confirm the member just now",
                    );
                }
                MemberCheck::Unknown(_) => {
                    return Ok(AuthorizeOutcome::ShowError(Page::new(
                        PageKind::WeComUnavailable,
                    )));
                }
            }
        }
        if prompt.contains(&"none") {
            return fail(&request, ErrorCode::LoginRequired, "no active session");
        }

        let (Some(credentials), Some(_)) = (&self.config.wecom.credentials, &self.wecom) else {
            tracing::error!("WeCom credentials are not configured; sign-in cannot proceed");
            return Ok(AuthorizeOutcome::ShowError(Page::new(
                PageKind::NotConfigured,
            )));
        };

        // The state sent to WeCom is a fresh random id naming the sign-in this browser keeps
        // (`login_state`: login CSRF protection, RFC 9700 §4.7.1). WeCom documents `state` as
        // `[a-zA-Z0-9]`, at most 128 bytes: 256 random bits in hex.
        let wecom_state = crate::crypto::random_hex(32);
        let settings = &self.config.wecom;
        let in_client =
            settings.auto_login_in_client && browser.user_agent.is_some_and(wecom::is_wecom_client);
        if in_client {
            request.login_method = LoginMethod::InClient;
        }
        let parked = self
            .park_request(&request, &wecom_state, browser.browser_cookie, now)
            .await?;

        let url = if in_client {
            wecom::in_client_login_url(settings, credentials, &wecom_state)
        } else {
            wecom::web_login_url(
                settings,
                credentials,
                &wecom_state,
                Some(browser.lang.wecom_code()),
            )
        };
        Ok(AuthorizeOutcome::RedirectToWeCom {
            url: url.to_string(),
            parked,
        })
    }
}
