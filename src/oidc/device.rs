//! The device authorization grant (RFC 8628): a terminal without a browser asks for a code,
//! the person approves it on their phone or desktop after signing in with WeCom, and the
//! terminal polls the token endpoint until the answer comes.
//!
//! ```text
//!  terminal                       wecom-oidc                          person (WeCom, browser)
//!  POST /device_authorization ──▶ device::device_authorization
//!     ◀── device_code, user_code, verification_uri(_complete)
//!                                 GET /device?user_code ◀──────────── scans the QR / types the code
//!                                 device::device_page
//!                                 ├─ SSO session alive → approval page
//!                                 └─ else WeCom sign-in (as authorize), callback → approval page
//!                                 POST /device ◀───────────────────── Approve / Deny (CSRF-bound)
//!                                 device::device_decision
//!  POST /token (device_code) ───▶ token → poll_device: authorization_pending, slow_down,
//!     ◀── tokens                  access_denied, expired_token, or the tokens (once)
//! ```

use rand::rngs::OsRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::{constant_time_eq, new_secret_token, sha256_hex};
use crate::domain::{GrantType, RegisteredClient, Scope, ScopeSet};
use crate::pages::{DeviceApproval, DevicePage, Page, PageKind};
use crate::storage::{DeviceDecision, DeviceGrant, DeviceStatus, StorageError};

use super::authorize::{AuthorizeOutcome, BrowserContext};
use super::client_auth::PresentedCredentials;
use super::login_state::Parked;
use super::membership::MemberCheck;
use super::profile::UserProfile;
use super::token::{GrantContext, TokenResponse};
use super::{
    AuthorizationRequest, ErrorCode, LoginMethod, OAuthError, Params, Provider, ResponseMode,
};

/// RFC 8628 §6.1: a short code from an alphabet without vowels (no words can be spelt) and
/// without characters people confuse (0/O, 1/I/L... only consonants remain): 20^8 ≈ 2^34.6.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;
/// RFC 8628 §3.5: each `slow_down` adds 5 seconds to the interval.
const SLOW_DOWN_STEP: i64 = 5;
/// How many user codes are drawn before giving up on a clash (each clash is 1 in 2.5e10 per
/// live code).
const USER_CODE_ATTEMPTS: usize = 4;

/// How often approvals are pushed: one message per member per 30 s (WeCom drops messages past
/// 30 a minute to one member anyway), and a few per source per minute, so that a CLI cannot
/// flood someone's WeCom.
pub struct PushLimits {
    members: governor::DefaultKeyedRateLimiter<String>,
    sources: governor::DefaultKeyedRateLimiter<String>,
}

/// Pushes per requesting source per minute.
const PUSHES_PER_SOURCE_PER_MINUTE: u32 = 6;
const PUSH_PERIOD_PER_MEMBER: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for PushLimits {
    fn default() -> Self {
        let per_member = governor::Quota::with_period(PUSH_PERIOD_PER_MEMBER)
            .unwrap_or_else(|| governor::Quota::per_minute(std::num::NonZeroU32::MIN));
        let per_source = governor::Quota::per_minute(
            std::num::NonZeroU32::new(PUSHES_PER_SOURCE_PER_MINUTE)
                .unwrap_or(std::num::NonZeroU32::MIN),
        );
        Self {
            members: governor::DefaultKeyedRateLimiter::keyed(per_member),
            sources: governor::DefaultKeyedRateLimiter::keyed(per_source),
        }
    }
}

impl PushLimits {
    /// Whether one more message may go to `userid` for a request from `source`; counts it.
    fn admits(&self, userid: &str, source: &str) -> bool {
        // Keys are what callers send: forget the ones whose allowance has refilled, so that the
        // maps hold only the last period's senders.
        self.sources.retain_recent();
        self.members.retain_recent();
        self.sources.check_key(&source.to_owned()).is_ok()
            && self.members.check_key(&userid.to_lowercase()).is_ok()
    }
}

/// A user code, normalised: eight characters of the alphabet, upper case, no separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCode(String);

impl UserCode {
    pub fn generate() -> Self {
        let mut rng = OsRng;
        Self(
            (0..USER_CODE_LEN)
                .map(|_| char::from(USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())]))
                .collect(),
        )
    }

    /// What a person typed. RFC 8628 §6.1: case-insensitive, with dashes, spaces and other
    /// punctuation ignored.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() > 64 {
            return None;
        }
        let code: String = raw
            .chars()
            .filter(|c| c.is_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
            .then_some(Self(code))
    }

    /// As shown to people: `XXXX-XXXX`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }

    /// How the store finds it.
    pub fn digest(&self) -> String {
        sha256_hex(&self.0)
    }
}

/// RFC 8628 §3.2.
#[derive(Debug, Serialize)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// What an approval records for the token response, stored with the grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceApprovalDetails {
    pub auth_time: UnixTime,
    /// The session's `amr` (space-separated).
    pub amr: String,
    /// The member's profile at approval, so the token response signs it without a read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<UserProfile>,
}

type StoredGrant = DeviceGrant<DeviceApprovalDetails>;

/// What the person's side shows next.
#[derive(Debug)]
pub enum DeviceOutcome {
    /// The verification page: the code field, or the approval.
    Device(DevicePage),
    /// A result, or a refusal with the usual pages.
    ShowPage(Page),
    /// Off to WeCom to sign in; back at the approval page afterwards.
    RedirectToWeCom { url: String, parked: Parked },
}

impl DeviceOutcome {
    /// Whether this answers a user code that matches nothing: counted against the source's
    /// failure allowance (RFC 8628 §5.1, brute force of the user code).
    pub fn is_wrong_code(&self) -> bool {
        matches!(
            self,
            DeviceOutcome::Device(DevicePage::EnterCode { wrong: true })
        )
    }
}

impl Provider {
    /// `POST /device_authorization` (RFC 8628 §3.1–3.2). `source` is the requesting address as
    /// the abuse limits see it; it is shown to the person on the approval page (§5.4).
    #[tracing::instrument(skip_all)]
    pub async fn device_authorization(
        &self,
        authorization: Option<&str>,
        params: &Params,
        source: &str,
        now: UnixTime,
    ) -> Result<DeviceAuthorizationResponse, OAuthError> {
        if let Some(repeated) = params.first_repeated() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {repeated} is repeated"
            )));
        }
        // §3.1: the client authenticates as at the token endpoint (RFC 6749 §2.3); a public
        // client names itself with client_id.
        let credentials = PresentedCredentials::extract(authorization, params)?;
        let client = self.authenticate_client_at(&credentials, now).await?;
        if !client.allows_grant(GrantType::DeviceCode) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use the device authorization grant",
            ));
        }
        let scope = device_scope(&client, params.get("scope"))?;
        // PKCE parameters (kubelogin sends them) are accepted and ignored: the device code never
        // travels through a browser, so there is nothing for PKCE to bind.
        let device_code = new_secret_token();
        let settings = &self.config.device;
        let expires_in = settings.code_ttl.as_secs() as i64;
        let interval = settings.poll_interval.as_secs() as i64;
        let mut attempts = 0;
        let user_code = loop {
            let user_code = UserCode::generate();
            let grant: StoredGrant = DeviceGrant {
                device_code_hash: sha256_hex(&device_code),
                user_code_hash: user_code.digest(),
                client_id: client.client_id.clone(),
                scope: scope.to_string(),
                requested_from: source.to_owned(),
                requested_at: now,
                expires_at: now + expires_in,
                poll_interval: interval,
                last_polled_at: None,
                status: DeviceStatus::Pending,
                sub: None,
                session_id: None,
                details: None,
            };
            match self.store.insert_device_grant(&grant).await {
                Ok(()) => break user_code,
                Err(StorageError::Conflict) if attempts + 1 < USER_CODE_ATTEMPTS => attempts += 1,
                Err(other) => return Err(other.into()),
            }
        };
        let verification_uri = self.issuer_endpoint(super::endpoints::DEVICE_PATH);
        let mut complete = url::Url::parse(&verification_uri).map_err(anyhow::Error::from)?;
        complete
            .query_pairs_mut()
            .append_pair("user_code", &user_code.display());
        if let Some(userid) = params.get("login_hint") {
            self.push_approval(userid, &client, source, &user_code, complete.as_str())
                .await;
        }
        Ok(DeviceAuthorizationResponse {
            device_code,
            user_code: user_code.display(),
            verification_uri_complete: complete.to_string(),
            verification_uri,
            expires_in,
            interval,
        })
    }

    /// Sends the member named by `login_hint` a WeCom card linking to the approval, when
    /// DEVICE_PUSH is on and neither the member nor the source has had one too recently. The
    /// device request answers the same whatever happens here, so a CLI learns nothing of who
    /// exists or who can be reached.
    async fn push_approval(
        &self,
        userid: &str,
        client: &RegisteredClient,
        source: &str,
        user_code: &UserCode,
        link: &str,
    ) {
        let Some(wecom) = self.wecom.as_ref().filter(|_| self.config.device.push) else {
            return;
        };
        let userid = userid.trim();
        if !crate::wecom::is_one_member(userid) {
            return;
        }
        if !self.device_push.admits(userid, source) {
            tracing::info!(
                userid,
                "device approval not pushed: sent to this member or source just now"
            );
            crate::telemetry::device_push("limited");
            return;
        }
        let card = crate::wecom::TextCard {
            title: format!("设备登录请求：{}", client.metadata.client_name),
            // Plain lines: the HTML-like colour classes of textcards are unconfirmed (§10).
            description: format!(
                "{} 请求以你的身份登录\n请求来自 {source}\n设备码 {}\n如果不是你本人刚刚发起的，请忽略或拒绝。",
                client.metadata.client_name,
                user_code.display()
            ),
            url: link.to_owned(),
            button: "去批准".to_owned(),
        };
        match wecom.send_textcard(userid, &card).await {
            Ok(crate::wecom::Delivery::Sent) => crate::telemetry::device_push("sent"),
            // Outside the visible range, disabled, unknown: the code still works when typed.
            Ok(crate::wecom::Delivery::NotReachable) => {
                tracing::info!(
                    userid,
                    "device approval not pushed: WeCom cannot reach the member"
                );
                crate::telemetry::device_push("unreachable");
            }
            Err(err) => {
                tracing::warn!(userid, error = %err, explanation = %wecom.explain(&err), "device approval not pushed");
                crate::telemetry::device_push("failed");
            }
        }
    }

    fn issuer_endpoint(&self, path: &str) -> String {
        self.config.issuer.endpoint(path)
    }

    /// The device access token request (RFC 8628 §3.4–3.5), for an authenticated client allowed
    /// the grant.
    pub(super) async fn poll_device(
        &self,
        client: &RegisteredClient,
        device_code: &str,
        now: UnixTime,
    ) -> Result<TokenResponse, OAuthError> {
        let hash = sha256_hex(device_code);
        let grant = match self
            .store
            .device_grant_by_device_code::<DeviceApprovalDetails>(&hash)
            .await?
        {
            // A device code is bound to the client it was issued to.
            Some(grant) if grant.client_id == client.client_id => grant,
            _ => return Err(OAuthError::invalid_grant("the device code is invalid")),
        };
        match grant.status {
            DeviceStatus::Used => {
                return Err(OAuthError::invalid_grant(
                    "the device code has already been used",
                ))
            }
            DeviceStatus::Expired => return Err(expired_token()),
            _ if grant.expires_at <= now => {
                if self.store.expire_device_grant(&hash, now).await? {
                    self.audit_device(now, "expired", None, &client.client_id)
                        .await;
                }
                return Err(expired_token());
            }
            DeviceStatus::Denied => {
                return Err(OAuthError::new(
                    ErrorCode::AccessDenied,
                    "the person denied the request",
                ))
            }
            DeviceStatus::Pending => {
                // §3.5: polling before the interval has passed is answered slow_down, and the
                // interval grows by 5 seconds for every later request.
                let too_soon = grant
                    .last_polled_at
                    .is_some_and(|last| now - last < grant.poll_interval);
                let interval = grant.poll_interval + if too_soon { SLOW_DOWN_STEP } else { 0 };
                self.store.record_device_poll(&hash, now, interval).await?;
                return Err(if too_soon {
                    OAuthError::new(
                        ErrorCode::SlowDown,
                        format!("poll no more often than every {interval} seconds"),
                    )
                } else {
                    OAuthError::new(
                        ErrorCode::AuthorizationPending,
                        "the person has not answered yet",
                    )
                });
            }
            DeviceStatus::Approved => {}
        }
        let Some(grant) = self
            .store
            .redeem_device_grant::<DeviceApprovalDetails>(&hash, &client.client_id)
            .await?
        else {
            // Another poll took it just now, or the approving session has ended since.
            return Err(OAuthError::invalid_grant(
                "the device code has already been used or its sign-in has ended",
            ));
        };
        let (Some(sub), Some(details)) = (grant.sub.as_deref(), grant.details.as_ref()) else {
            return Err(OAuthError::invalid_grant("the device code is invalid"));
        };
        let scope = ScopeSet::parse(&grant.scope).0;
        let grant_id = crate::crypto::random_token(16);
        let context = GrantContext {
            client,
            grant_id: &grant_id,
            sub,
            granted: scope.clone(),
            scope,
            session_id: grant.session_id.clone(),
            auth_time: details.auth_time,
            amr: &details.amr,
            // RFC 8628 has no nonce: the ID token carries none.
            nonce: None,
            claims: None,
            profile: details.profile.as_ref(),
        };
        self.issue_tokens(context, now).await
    }

    /// `GET /device`: the code field, then (signed in) the approval page (RFC 8628 §3.3).
    #[tracing::instrument(skip_all)]
    pub async fn device_page(
        &self,
        params: &Params,
        browser: &BrowserContext<'_>,
        now: UnixTime,
    ) -> Result<DeviceOutcome, StorageError> {
        let Some(raw) = params.get("user_code").filter(|c| !c.trim().is_empty()) else {
            return Ok(DeviceOutcome::Device(DevicePage::EnterCode {
                wrong: false,
            }));
        };
        let Some(user_code) = UserCode::parse(raw) else {
            return Ok(wrong_code());
        };
        let grant = match self.live_grant(&user_code, now).await? {
            Ok(grant) => grant,
            Err(outcome) => return Ok(outcome),
        };
        let client = match self.store.get_client(&grant.client_id).await {
            Ok(client) => client,
            Err(StorageError::NotFound) => return Ok(nothing_to_approve()),
            Err(other) => return Err(other),
        };
        let session = match browser.session_cookie {
            Some(cookie) => self
                .store
                .find_session(&sha256_hex(cookie), now)
                .await?
                .map(|session| (cookie, session)),
            None => None,
        };
        if let Some((cookie, session)) = session {
            match self.confirm_member(&session.sub, now).await? {
                MemberCheck::Admitted(profile) => {
                    if !super::access::admits(&client.metadata, profile.current_groups()) {
                        self.audit_access_refused(&client.client_id, &session.sub, now)
                            .await;
                        return Ok(DeviceOutcome::ShowPage(Page::new(
                            PageKind::NoAccessToApplication,
                        )));
                    }
                    return Ok(DeviceOutcome::Device(DevicePage::Approve(DeviceApproval {
                        client_name: client.metadata.client_name.clone(),
                        scopes: ScopeSet::parse(&grant.scope).0.iter().collect(),
                        requested_from: grant.requested_from,
                        requested_at: grant.requested_at,
                        user_code: user_code.display(),
                        csrf_token: csrf_token(cookie, &user_code),
                    })));
                }
                // Signing in again meets WeCom's own refusal and its page.
                MemberCheck::Revoked(_) => {}
                MemberCheck::Unknown(_) => {
                    return Ok(DeviceOutcome::ShowPage(Page::new(
                        PageKind::WeComUnavailable,
                    )))
                }
            }
        }
        let mut back = url::Url::parse(&self.issuer_endpoint(super::endpoints::DEVICE_PATH))
            .map_err(anyhow::Error::from)?;
        back.query_pairs_mut()
            .append_pair("user_code", &user_code.display());
        let request = AuthorizationRequest {
            client_id: client.client_id.clone(),
            redirect_uri: back.to_string(),
            response_mode: ResponseMode::Query,
            scope: grant.scope.clone(),
            state: None,
            nonce: None,
            code_challenge: None,
            login_method: LoginMethod::Qr,
            claims: None,
            device: Some(user_code.display()),
        };
        Ok(match self.send_to_wecom(request, browser, now).await? {
            AuthorizeOutcome::RedirectToWeCom { url, parked } => {
                DeviceOutcome::RedirectToWeCom { url, parked }
            }
            AuthorizeOutcome::ShowError(page) => DeviceOutcome::ShowPage(page),
            // `send_to_wecom` answers with WeCom or a page, never with the client.
            AuthorizeOutcome::Redirect(_) => {
                DeviceOutcome::ShowPage(Page::new(PageKind::InternalError))
            }
        })
    }

    /// `POST /device`: the person's Approve or Deny, from the session the approval page was
    /// shown to (the CSRF token is bound to it and to the user code).
    #[tracing::instrument(skip_all)]
    pub async fn device_decision(
        &self,
        params: &Params,
        session_cookie: Option<&str>,
        now: UnixTime,
    ) -> Result<DeviceOutcome, StorageError> {
        let Some(user_code) = params.get("user_code").and_then(UserCode::parse) else {
            return Ok(DeviceOutcome::ShowPage(
                Page::new(PageKind::BadRequest).detail("user_code is missing or malformed"),
            ));
        };
        let approve = match params.get("decision") {
            Some("approve") => true,
            Some("deny") => false,
            _ => {
                return Ok(DeviceOutcome::ShowPage(
                    Page::new(PageKind::BadRequest).detail("decision must be approve or deny"),
                ))
            }
        };
        let session = match session_cookie {
            Some(cookie) => self.store.find_session(&sha256_hex(cookie), now).await?,
            None => None,
        };
        let (Some(cookie), Some(session)) = (session_cookie, session) else {
            return Ok(DeviceOutcome::ShowPage(Page::new(PageKind::LoginExpired)));
        };
        let presented = params.get("csrf_token").unwrap_or("");
        if !constant_time_eq(
            presented.as_bytes(),
            csrf_token(cookie, &user_code).as_bytes(),
        ) {
            tracing::warn!("device decision with a wrong CSRF token");
            return Ok(DeviceOutcome::ShowPage(
                Page::new(PageKind::BadRequest).detail("the form has expired; open the link again"),
            ));
        }
        let grant = match self.live_grant(&user_code, now).await? {
            Ok(grant) => grant,
            Err(outcome) => return Ok(outcome),
        };
        let decision = if approve {
            let profile = match self.confirm_member(&session.sub, now).await? {
                MemberCheck::Admitted(profile) => *profile,
                MemberCheck::Revoked(_) => {
                    return Ok(DeviceOutcome::ShowPage(Page::new(PageKind::LoginExpired)))
                }
                MemberCheck::Unknown(_) => {
                    return Ok(DeviceOutcome::ShowPage(Page::new(
                        PageKind::WeComUnavailable,
                    )))
                }
            };
            if !self.admits_profile(&grant.client_id, &profile).await? {
                self.audit_access_refused(&grant.client_id, &session.sub, now)
                    .await;
                return Ok(DeviceOutcome::ShowPage(Page::new(
                    PageKind::NoAccessToApplication,
                )));
            }
            Some(DeviceApprovalDetails {
                auth_time: session.auth_time,
                amr: session.amr.clone(),
                profile: Some(profile),
            })
        } else {
            None
        };
        let answer = match &decision {
            Some(details) => DeviceDecision::Approve {
                sub: &session.sub,
                session_id: &session.id_hash,
                details,
            },
            None => DeviceDecision::Deny,
        };
        if !self
            .store
            .decide_device_grant(&user_code.digest(), &answer, now)
            .await?
        {
            return Ok(nothing_to_approve());
        }
        let (outcome, kind) = match decision {
            Some(_) => ("authorized", PageKind::DeviceApproved),
            None => ("denied", PageKind::DeviceDenied),
        };
        self.audit_device(now, outcome, Some(&session.sub), &grant.client_id)
            .await;
        Ok(DeviceOutcome::ShowPage(Page::new(kind)))
    }

    /// The pending, unexpired grant `user_code` names, or what to show instead.
    async fn live_grant(
        &self,
        user_code: &UserCode,
        now: UnixTime,
    ) -> Result<Result<StoredGrant, DeviceOutcome>, StorageError> {
        let grant = match self
            .store
            .device_grant_by_user_code(&user_code.digest())
            .await?
        {
            Some(grant) => grant,
            None => return Ok(Err(wrong_code())),
        };
        if grant.status != DeviceStatus::Pending || grant.expires_at <= now {
            if grant.status == DeviceStatus::Pending
                && self
                    .store
                    .expire_device_grant(&grant.device_code_hash, now)
                    .await?
            {
                self.audit_device(now, "expired", None, &grant.client_id)
                    .await;
            }
            return Ok(Err(nothing_to_approve()));
        }
        Ok(Ok(grant))
    }

    async fn audit_device(&self, now: UnixTime, outcome: &str, sub: Option<&str>, client_id: &str) {
        self.audit(now, "device_grant", outcome, sub, Some(client_id), None)
            .await;
    }
}

/// The scope of a device request: `openid` when absent; otherwise what the client may have of
/// what it asked (RFC 6749 §3.3), which must include `openid` as at the authorization endpoint.
fn device_scope(client: &RegisteredClient, raw: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let (requested, _unknown) = ScopeSet::parse(raw.unwrap_or(Scope::OpenId.as_str()));
    if !requested.contains(Scope::OpenId) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope must include openid",
        ));
    }
    let granted = requested.intersect(&client.allowed_scopes());
    if !granted.contains(Scope::OpenId) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "this client may not use openid",
        ));
    }
    Ok(granted)
}

fn expired_token() -> OAuthError {
    OAuthError::new(ErrorCode::ExpiredToken, "the device code has expired")
}

fn wrong_code() -> DeviceOutcome {
    DeviceOutcome::Device(DevicePage::EnterCode { wrong: true })
}

fn nothing_to_approve() -> DeviceOutcome {
    DeviceOutcome::ShowPage(Page::new(PageKind::DeviceCodeExpired))
}

/// The approval form's CSRF token: bound to the session (whose cookie value only that browser
/// holds) and to the user code, so a form from another session or for another code fails.
fn csrf_token(session_cookie: &str, user_code: &UserCode) -> String {
    sha256_hex(&format!(
        "wecom-oidc device approval\n{session_cookie}\n{}",
        user_code.0
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_typed_case_insensitively_with_separators_ignored() {
        let code = UserCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 9);
        assert_eq!(shown.as_bytes()[4], b'-');
        for typed in [
            shown.clone(),
            shown.to_lowercase(),
            shown.replace('-', ""),
            shown.replace('-', " "),
            format!(" {} ", shown.replace('-', " - ")),
        ] {
            assert_eq!(UserCode::parse(&typed), Some(code.clone()), "{typed:?}");
        }
        for wrong in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ABCD-EFGH",
            "BCDF-GHJ1",
            "ＢCDF-GHJK",
        ] {
            assert_eq!(UserCode::parse(wrong), None, "{wrong:?}");
        }
    }

    #[test]
    fn generated_user_codes_use_only_the_consonant_alphabet() {
        for _ in 0..200 {
            let code = UserCode::generate();
            assert!(code.0.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        }
    }
}
