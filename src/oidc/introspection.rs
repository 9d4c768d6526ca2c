//! Token revocation (RFC 7009) and introspection (RFC 7662). Both authenticate the client, and a
//! client sees and revokes only its own tokens.

use serde_json::{json, Value};

use crate::clock::UnixTime;
use crate::crypto::sha256_hex;
use crate::domain::RegisteredClient;

use super::client_auth::PresentedCredentials;
use super::{OAuthError, Params, Provider};

impl Provider {
    async fn authenticated_request<'p>(
        &self,
        authorization: Option<&str>,
        params: &'p Params,
        now: UnixTime,
    ) -> Result<(RegisteredClient, &'p str), OAuthError> {
        let credentials = PresentedCredentials::extract(authorization, params)?;
        let client = self.authenticate_client_at(&credentials, now).await?;
        if let Some(repeated) = params.first_repeated() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {repeated} is repeated"
            )));
        }
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        Ok((client, token))
    }

    /// RFC 7009 §2.1: revoking a refresh token revokes its grant's access tokens too. An unknown
    /// or foreign token is answered like a revoked one (§2.2): 200, nothing said.
    #[tracing::instrument(skip_all)]
    pub async fn revoke(
        &self,
        authorization: Option<&str>,
        params: &Params,
        now: UnixTime,
    ) -> Result<(), OAuthError> {
        let (client, token) = self
            .authenticated_request(authorization, params, now)
            .await?;
        let hash = sha256_hex(token);
        if self
            .store
            .revoke_access_token(&hash, &client.client_id)
            .await?
        {
            return Ok(());
        }
        if let Some(grant_id) = self
            .store
            .refresh_token_grant(&hash, &client.client_id)
            .await?
        {
            self.store
                .revoke_grant(&grant_id, self.grant_memory(now))
                .await?;
        }
        Ok(())
    }

    /// RFC 7662 §2.2: `{"active": false}` for anything that is not a live token of this client.
    #[tracing::instrument(skip_all)]
    pub async fn introspect(
        &self,
        authorization: Option<&str>,
        params: &Params,
        now: UnixTime,
    ) -> Result<Value, OAuthError> {
        let (client, token) = self
            .authenticated_request(authorization, params, now)
            .await?;
        let hash = sha256_hex(token);
        let inactive = json!({ "active": false });
        if let Some(access) = self.store.find_access_token(&hash, now).await? {
            if access.client_id != client.client_id {
                return Ok(inactive);
            }
            return Ok(json!({
                "active": true,
                "token_type": "Bearer",
                "scope": access.scope,
                "client_id": access.client_id,
                "sub": access.sub,
                "aud": access.client_id,
                "iss": self.issuer(),
                "iat": access.issued_at,
                "exp": access.expires_at,
            }));
        }
        if let Some(refresh) = self.store.find_refresh_token(&hash, now).await? {
            if refresh.client_id != client.client_id {
                return Ok(inactive);
            }
            return Ok(json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": refresh.scope,
                "client_id": refresh.client_id,
                "sub": refresh.sub,
                "aud": refresh.client_id,
                "iss": self.issuer(),
                "iat": refresh.issued_at,
                "exp": refresh.expires_at,
            }));
        }
        Ok(inactive)
    }
}
