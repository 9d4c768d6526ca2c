//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6; OIDC Core §3.1.3, §12): code exchange and refresh,
//! with single-use codes and rotating refresh tokens.

use serde::Serialize;

use crate::clock::UnixTime;
use crate::crypto::{new_secret_token, sha256_hex};
use crate::domain::{CodeChallenge, GrantType, RegisteredClient, Scope, ScopeSet};
use crate::storage::{
    AccessTokenRecord, CodeRedemption, RefreshRotation, RefreshTokenRecord, StorageError,
};

use super::client_auth::PresentedCredentials;
use super::id_token::IdTokenContent;
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
    scope: ScopeSet,
    session_id: Option<String>,
    auth_time: UnixTime,
    nonce: Option<&'a str>,
}

impl Provider {
    #[tracing::instrument(skip_all)]
    pub async fn token(
        &self,
        authorization: Option<&str>,
        params: &Params,
        now: UnixTime,
    ) -> Result<TokenResponse, OAuthError> {
        let credentials = PresentedCredentials::extract(authorization, params)?;
        let request = TokenRequest::parse(params)?;
        let client = self.authenticate_client(&credentials).await?;
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
                self.refresh(&client, &refresh_token, scope.as_deref(), now)
                    .await
            }
        };
        if issued.is_ok() {
            metrics::counter!("wecom_oidc_tokens_issued_total", "grant_type" => grant_type)
                .increment(1);
        }
        issued
    }

    async fn exchange_code(
        &self,
        client: &RegisteredClient,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        now: UnixTime,
    ) -> Result<TokenResponse, OAuthError> {
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
        let details = grant.details;
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
        let context = GrantContext {
            client,
            grant_id: &grant.grant_id,
            sub: &details.sub,
            scope: ScopeSet::parse(&details.scope).0,
            session_id: details.session_id.clone(),
            auth_time: details.auth_time,
            nonce: details.nonce.as_deref(),
        };
        self.issue_tokens(context, now).await
    }

    async fn refresh(
        &self,
        client: &RegisteredClient,
        refresh_token: &str,
        scope: Option<&str>,
        now: UnixTime,
    ) -> Result<TokenResponse, OAuthError> {
        let record = match self
            .store
            .rotate_refresh_token(&sha256_hex(refresh_token), &client.client_id, now)
            .await?
        {
            RefreshRotation::Rotated(record) => record,
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
        let granted = ScopeSet::parse(&record.scope).0;
        // RFC 6749 §6: the new scope must not exceed the original grant.
        let scope = match scope {
            None => granted,
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
            session_id: record.session_id.clone(),
            auth_time: record.auth_time,
            // OIDC Core §12.2: a refreshed ID token need not repeat the nonce.
            nonce: None,
        };
        self.issue_tokens(context, now).await
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
        let wants_refresh = grant.scope.contains(Scope::OfflineAccess)
            || grant.client.metadata.always_issue_refresh_token;
        let refresh_token = if wants_refresh && grant.client.allows_grant(GrantType::RefreshToken) {
            let token = new_secret_token();
            self.store
                .insert_refresh_token(&RefreshTokenRecord {
                    token_hash: sha256_hex(&token),
                    grant_id: grant.grant_id.to_owned(),
                    client_id: grant.client.client_id.clone(),
                    sub: grant.sub.to_owned(),
                    scope: grant.scope.to_string(),
                    session_id: grant.session_id.clone(),
                    auth_time: grant.auth_time,
                    issued_at: now,
                    expires_at: now + lifetimes.refresh_token.as_secs() as i64,
                })
                .await?
                .then_some(token)
        } else {
            None
        };
        let profile = if grant.client.metadata.id_token_profile_claims {
            match self.store.get_user::<UserProfile>(grant.sub).await {
                Ok(profile) => Some(profile),
                Err(StorageError::NotFound) => None,
                Err(other) => return Err(other.into()),
            }
        } else {
            None
        };
        let id_token = self.sign_id_token(
            IdTokenContent {
                client: grant.client,
                sub: grant.sub,
                scope: &grant.scope,
                nonce: grant.nonce,
                auth_time: grant.auth_time,
                access_token: &access_token,
                profile: profile.as_ref(),
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
