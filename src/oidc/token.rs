//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6; OIDC Core §3.1.3, §12): code exchange and refresh,
//! with single-use codes and rotating refresh tokens.

use serde::Serialize;

use crate::clock::{UnixMillis, UnixTime};
use crate::crypto::{new_secret_token, sha256_hex};
use crate::domain::{CodeChallenge, GrantType, RegisteredClient, Scope, ScopeSet};
use crate::storage::{
    AccessTokenRecord, CodeGrant, CodeRedemption, RefreshRotation, RefreshTokenRecord, StorageError,
};

use super::backchannel::sid_of;
use super::claims_request::ClaimsRequest;
use super::client_auth::PresentedCredentials;
use super::id_token::IdTokenContent;
use super::membership::MemberCheck;
use super::profile::UserProfile;
use super::{CodeDetails, ErrorCode, OAuthError, Params, Provider};

/// RFC 6749 §5.1.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// A token request, parsed by `grant_type`.
#[derive(Debug)]
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
    },
}

impl TokenRequest {
    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        if let Some(repeated) = params.first_repeated() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {repeated} is repeated"
            )));
        }
        let required = |name: &str| {
            params
                .get(name)
                .map(str::to_owned)
                .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
        };
        match params.get("grant_type") {
            None => Err(OAuthError::invalid_request("grant_type is missing")),
            Some("authorization_code") => Ok(TokenRequest::AuthorizationCode {
                code: required("code")?,
                redirect_uri: params.get("redirect_uri").map(str::to_owned),
                code_verifier: params.get("code_verifier").map(str::to_owned),
            }),
            Some("refresh_token") => Ok(TokenRequest::RefreshToken {
                refresh_token: required("refresh_token")?,
                scope: params.get("scope").map(str::to_owned),
            }),
            Some(other) => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {other:?} is not supported"),
            )),
        }
    }

    fn grant_type(&self) -> GrantType {
        match self {
            TokenRequest::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            TokenRequest::RefreshToken { .. } => GrantType::RefreshToken,
        }
    }
}

/// The grant a new set of tokens belongs to.
struct GrantContext<'a> {
    client: &'a RegisteredClient,
    grant_id: &'a str,
    sub: &'a str,
    /// What these tokens carry.
    scope: ScopeSet,
    /// What the grant allows: the refresh token keeps it, so a refresh with a narrower scope does
    /// not narrow later ones (RFC 6749 §6).
    granted: ScopeSet,
    session_id: Option<String>,
    auth_time: UnixTime,
    /// OIDC `amr` values, space-separated.
    amr: &'a str,
    nonce: Option<&'a str>,
    /// The `claims` parameter of the authorization request (not kept for refreshes).
    claims: Option<&'a ClaimsRequest>,
    /// The member's profile when the grant already carries it (a code's); read otherwise.
    profile: Option<&'a UserProfile>,
}

impl Provider {
    /// When a grant started by a WeCom sign-in at `auth_time` ends, whatever its refreshes.
    fn grant_end(&self, auth_time: UnixTime) -> UnixTime {
        auth_time + self.config.membership.grant_max_ttl.as_secs() as i64
    }

    /// `now_ms` to the millisecond, for the refresh token reuse grace; seconds do elsewhere.
    #[tracing::instrument(skip_all)]
    pub async fn token(
        &self,
        authorization: Option<&str>,
        params: &Params,
        now_ms: UnixMillis,
    ) -> Result<TokenResponse, OAuthError> {
        let now: UnixTime = now_ms.div_euclid(1000);
        let credentials = PresentedCredentials::extract(authorization, params)?;
        let request = TokenRequest::parse(params)?;
        let client = self.authenticate_client_at(&credentials, now).await?;
        // Checked before a code or refresh token is spent: see `keys` on why a replica may
        // briefly have no key it is allowed to sign with.
        if self.keys.current_kid().is_none() {
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "no signing key is ready on this server; try again shortly",
            ));
        }
        if !client.allows_grant(request.grant_type()) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!(
                    "this client may not use grant_type {}",
                    request.grant_type().as_str()
                ),
            ));
        }
        let grant_type = request.grant_type().as_str();
        let issued = match request {
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
            } => {
                self.exchange_code(
                    &client,
                    &code,
                    redirect_uri.as_deref(),
                    code_verifier.as_deref(),
                    now,
                )
                .await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
            } => {
                self.refresh(&client, &refresh_token, scope.as_deref(), now_ms)
                    .await
            }
        };
        if issued.is_ok() {
            metrics::counter!("wecom_oidc_tokens_issued_total", "grant_type" => grant_type)
                .increment(1);
        }
        issued
    }

    /// Redeems `code` for `client` (RFC 6749 §4.1.3): once, unexpired, with the authorization
    /// request's redirect_uri and PKCE verifier. The token endpoint and the console's sign-in
    /// (which redeems the codes of its built-in client in-process) share it.
    pub async fn redeem_code(
        &self,
        client: &RegisteredClient,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        now: UnixTime,
    ) -> Result<CodeGrant<CodeDetails>, OAuthError> {
        let grant = match self
            .store
            .redeem_code::<CodeDetails>(&sha256_hex(code), &client.client_id, now)
            .await?
        {
            CodeRedemption::Redeemed(grant) => grant,
            // RFC 6749 §4.1.2: a code used twice SHOULD revoke every token issued from it;
            // someone else may hold it.
            CodeRedemption::Reused { grant_id, .. } => {
                return Err(self
                    .revoke_replayed_grant(client, &grant_id, "code_reused", now)
                    .await)
            }
            CodeRedemption::Unknown => {
                return Err(OAuthError::invalid_grant(
                    "the authorization code is invalid",
                ))
            }
        };
        let details = &grant.details;
        if grant.expires_at <= now {
            return Err(OAuthError::invalid_grant(
                "the authorization code has expired",
            ));
        }
        // RFC 6749 §4.1.3: redirect_uri is REQUIRED when the authorization request had one (it
        // always has here: OIDC Core §3.1.2.1) and must be identical.
        if redirect_uri != Some(details.redirect_uri.as_str()) {
            tracing::warn!(client_id = %client.client_id, "redirect_uri differs from the authorization request");
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        match (&details.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) => {
                if !CodeChallenge::from_stored(challenge.clone()).verify(verifier) {
                    tracing::warn!(client_id = %client.client_id, "PKCE verification failed");
                    return Err(OAuthError::invalid_grant(
                        "code_verifier does not match the code_challenge",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier is required (PKCE)",
                ))
            }
            // RFC 9700 §2.1.1: a verifier without a challenge is a PKCE downgrade attempt.
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier sent but the authorization request had no code_challenge",
                ))
            }
            (None, None) if client.metadata.require_pkce => {
                return Err(OAuthError::invalid_grant("this client must use PKCE"))
            }
            (None, None) => {}
        }
        Ok(grant)
    }

    async fn exchange_code(
        &self,
        client: &RegisteredClient,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        now: UnixTime,
    ) -> Result<TokenResponse, OAuthError> {
        let grant = self
            .redeem_code(client, code, redirect_uri, code_verifier, now)
            .await?;
        let details = grant.details;
        // Remembered for the session's whole life, beyond this grant's tokens: the client hears
        // of the session's end by back-channel logout even once its access token has expired.
        if let Some(session_id) = &details.session_id {
            self.store
                .record_session_client(session_id, &client.client_id)
                .await?;
        }
        let scope = ScopeSet::parse(&details.scope).0;
        let context = GrantContext {
            client,
            grant_id: &grant.grant_id,
            sub: &details.sub,
            granted: scope.clone(),
            scope,
            session_id: details.session_id.clone(),
            auth_time: details.auth_time,
            amr: &details.amr,
            nonce: details.nonce.as_deref(),
            claims: details.claims.as_ref(),
            profile: details.profile.as_ref(),
        };
        self.issue_tokens(context, now).await
    }

    async fn refresh(
        &self,
        client: &RegisteredClient,
        refresh_token: &str,
        scope: Option<&str>,
        now_ms: UnixMillis,
    ) -> Result<TokenResponse, OAuthError> {
        let now: UnixTime = now_ms.div_euclid(1000);
        let token_hash = sha256_hex(refresh_token);
        // The member's standing is settled before the token is used up, so that a refresh
        // refused because WeCom cannot be reached can be retried with the same token.
        // The member's profile, as stored or as WeCom answered just now: it decides access and
        // fills the refreshed ID token.
        let mut member: Option<UserProfile> = None;
        if let Some((sub, checked_at, stored)) = self
            .store
            .refresh_token_holder::<UserProfile>(&token_hash, &client.client_id, now)
            .await?
        {
            member = stored;
            let recheck_after = self.config.membership.recheck_after.as_secs() as i64;
            if now - checked_at >= recheck_after {
                match self.confirm_member(&sub, now).await? {
                    MemberCheck::Admitted(fresh) => member = Some(*fresh),
                    MemberCheck::Revoked(_) => {
                        return Err(OAuthError::invalid_grant(
                            "the member's access has ended (WeCom)",
                        ))
                    }
                    // Documented choice: 503 temporarily_unavailable (RFC 6749 §5.2 has no
                    // retryable code for the token endpoint; OIDC clients retry on 5xx), nothing
                    // revoked, the refresh token still valid.
                    MemberCheck::Unknown(_) => {
                        return Err(OAuthError::new(
                            ErrorCode::TemporarilyUnavailable,
                            "WeCom cannot confirm the member just now; try again shortly",
                        ))
                    }
                }
            }
        }
        let record = match self
            .store
            .rotate_refresh_token(&token_hash, &client.client_id, now_ms)
            .await?
        {
            RefreshRotation::Rotated(record) => record,
            // Two tabs or pods refreshing with one token at once: the loser answers from the same
            // grant (as Dex does) instead of logging the person out.
            RefreshRotation::Reused {
                used_at_ms, record, ..
            } if self.within_reuse_grace(used_at_ms, now_ms) => *record,
            // RFC 9700 §4.14.2: a rotated refresh token used again means it leaked; the whole
            // grant is revoked so that neither party keeps access.
            RefreshRotation::Reused { grant_id, .. } => {
                return Err(self
                    .revoke_replayed_grant(client, &grant_id, "refresh_token_reused", now)
                    .await)
            }
            RefreshRotation::Unknown => {
                return Err(OAuthError::invalid_grant("the refresh token is invalid"))
            }
        };
        if record.expires_at <= now {
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        if now >= self.grant_end(record.auth_time) {
            return Err(OAuthError::invalid_grant(
                "the grant has reached its maximum lifetime (GRANT_MAX_TTL_SECS); sign in again",
            ));
        }
        // Within the reuse grace the token was already used, so the holder was not read.
        let member = match member {
            Some(profile) => Some(profile),
            None => match self.store.get_user::<UserProfile>(&record.sub).await {
                Ok(profile) => Some(profile),
                Err(StorageError::NotFound) => None,
                Err(other) => return Err(other.into()),
            },
        };
        self.check_refresh_access(client, &record.sub, member.as_ref(), now)
            .await?;
        let granted = ScopeSet::parse(&record.scope).0;
        // RFC 6749 §6: the new scope must not exceed the original grant.
        let scope = match scope {
            None => granted.clone(),
            Some(raw) => {
                let (requested, unknown) = ScopeSet::parse(raw);
                if !unknown.is_empty() || !requested.is_subset_of(&granted) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        "scope exceeds the original grant",
                    ));
                }
                requested
            }
        };
        let context = GrantContext {
            client,
            grant_id: &record.grant_id,
            sub: &record.sub,
            scope,
            granted,
            session_id: record.session_id.clone(),
            auth_time: record.auth_time,
            amr: &record.amr,
            // OIDC Core §12.2: a refreshed ID token need not repeat the nonce.
            nonce: None,
            claims: None,
            profile: member.as_ref(),
        };
        self.issue_tokens(context, now).await
    }

    /// Whether a refresh token rotated at `used_at_ms` may still answer
    /// (REFRESH_REUSE_GRACE_SECS), to the millisecond: counted in whole seconds, a grace of 2 s
    /// would let a reuse through up to 2.999 s after the rotation.
    fn within_reuse_grace(&self, used_at_ms: UnixMillis, now_ms: UnixMillis) -> bool {
        let grace_ms = self.config.refresh_reuse_grace.as_millis() as i64;
        grace_ms > 0 && now_ms - used_at_ms <= grace_ms
    }

    /// A code or refresh token came back after its one use: kill its grant, record why, and
    /// answer `invalid_grant`.
    async fn revoke_replayed_grant(
        &self,
        client: &RegisteredClient,
        grant_id: &str,
        reason: &str,
        now: UnixTime,
    ) -> OAuthError {
        tracing::warn!(client_id = %client.client_id, reason, "replayed credential; revoking its grant");
        if let Err(err) = self
            .store
            .revoke_grant(grant_id, self.grant_memory(now))
            .await
        {
            return err.into();
        }
        self.audit(
            now,
            "token",
            "refused",
            None,
            Some(&client.client_id),
            Some(reason),
        )
        .await;
        OAuthError::invalid_grant("the authorization code or refresh token has already been used")
    }

    /// Stores a new access token (and refresh token when the grant calls for one) and signs the
    /// ID token.
    async fn issue_tokens(
        &self,
        grant: GrantContext<'_>,
        now: UnixTime,
    ) -> Result<TokenResponse, OAuthError> {
        let lifetimes = &self.config.lifetimes;
        let access_token = new_secret_token();
        let stored = self
            .store
            .insert_access_token(&AccessTokenRecord {
                token_hash: sha256_hex(&access_token),
                grant_id: grant.grant_id.to_owned(),
                client_id: grant.client.client_id.clone(),
                sub: grant.sub.to_owned(),
                scope: grant.scope.to_string(),
                session_id: grant.session_id.clone(),
                issued_at: now,
                expires_at: now + lifetimes.access_token.as_secs() as i64,
            })
            .await?;
        if !stored {
            // A concurrent replay of this code was detected and revoked the grant after this
            // request redeemed the code. This request still answers (exactly one redemption
            // succeeds) but its tokens were never stored: the replay defence holds.
            tracing::warn!(client_id = %grant.client.client_id, "grant revoked while issuing; tokens not stored");
        }
        let wants_refresh = grant.granted.contains(Scope::OfflineAccess)
            || grant.client.metadata.always_issue_refresh_token;
        let refresh_token = if wants_refresh && grant.client.allows_grant(GrantType::RefreshToken) {
            let token = new_secret_token();
            self.store
                .insert_refresh_token(&RefreshTokenRecord {
                    token_hash: sha256_hex(&token),
                    grant_id: grant.grant_id.to_owned(),
                    client_id: grant.client.client_id.clone(),
                    sub: grant.sub.to_owned(),
                    scope: grant.granted.to_string(),
                    session_id: grant.session_id.clone(),
                    auth_time: grant.auth_time,
                    amr: grant.amr.to_owned(),
                    issued_at: now,
                    // REFRESH_TOKEN_TTL_SECS is the idle limit; the grant's own end is absolute.
                    expires_at: (now + lifetimes.refresh_token.as_secs() as i64)
                        .min(self.grant_end(grant.auth_time)),
                })
                .await?
                .then_some(token)
        } else {
            None
        };
        let stored_profile;
        let profile = if !grant.client.metadata.id_token_profile_claims
            && grant.claims.is_none_or(|c| c.id_token.is_empty())
        {
            None
        } else if grant.profile.is_some() {
            grant.profile
        } else {
            stored_profile = match self.store.get_user::<UserProfile>(grant.sub).await {
                Ok(profile) => Some(profile),
                Err(StorageError::NotFound) => None,
                Err(other) => return Err(other.into()),
            };
            stored_profile.as_ref()
        };
        let sid = grant.session_id.as_deref().map(sid_of);
        let id_token = self.sign_id_token(
            IdTokenContent {
                client: grant.client,
                sub: grant.sub,
                scope: &grant.scope,
                nonce: grant.nonce,
                auth_time: grant.auth_time,
                amr: grant.amr,
                sid: sid.as_deref(),
                access_token: &access_token,
                requested: grant.claims,
                profile,
            },
            now,
        )?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetimes.access_token.as_secs() as i64,
            id_token,
            refresh_token,
            scope: grant.scope.to_string(),
        })
    }
}
