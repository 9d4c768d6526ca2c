//! The UserInfo endpoint (OIDC Core §5.3) behind Bearer access tokens (RFC 6750).

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::crypto::sha256_hex;
use crate::domain::{Scope, ScopeSet};
use crate::storage::StorageError;

use super::profile::{GroupRelease, UserProfile};
use super::{ErrorCode, OAuthError, Provider};

/// RFC 6750 §3.1 errors: `invalid_token` → 401, `insufficient_scope` → 403.
#[derive(Debug)]
pub enum UserinfoError {
    InvalidToken(&'static str),
    InsufficientScope,
    Failed(OAuthError),
}

impl From<StorageError> for UserinfoError {
    fn from(err: StorageError) -> Self {
        UserinfoError::Failed(err.into())
    }
}

/// The token of an `Authorization: Bearer …` header (RFC 6750 §2.1), if that is what it holds.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Provider {
    #[tracing::instrument(skip_all)]
    pub async fn userinfo(
        &self,
        access_token: &str,
        now: UnixTime,
    ) -> Result<Map<String, Value>, UserinfoError> {
        let found = self
            .store
            .find_access_token_with_user::<UserProfile>(&sha256_hex(access_token), now)
            .await?;
        let Some((record, profile)) = found else {
            return Err(UserinfoError::InvalidToken(
                "the access token is invalid, expired or revoked",
            ));
        };
        let scope = ScopeSet::parse(&record.scope).0;
        if !scope.contains(Scope::OpenId) {
            return Err(UserinfoError::InsufficientScope);
        }
        let client = match self.store.get_client(&record.client_id).await {
            Ok(client) => client,
            Err(StorageError::NotFound) => {
                return Err(UserinfoError::InvalidToken("the client no longer exists"))
            }
            Err(other) => return Err(other.into()),
        };
        let groups = GroupRelease::for_client(&client, &self.config.login);
        match profile {
            Some(profile) => {
                let mut claims = profile.claims(&scope, &self.config.login, &groups);
                // The token's subject, not one derived from the profile: a member keeps their
                // `sub` when an administrator changes their userid.
                claims.insert("sub".into(), Value::String(record.sub));
                Ok(claims)
            }
            None => Err(UserinfoError::InvalidToken("the user no longer exists")),
        }
    }
}

impl UserinfoError {
    pub fn code(&self) -> &'static str {
        match self {
            UserinfoError::InvalidToken(_) => ErrorCode::InvalidToken.as_str(),
            UserinfoError::InsufficientScope => "insufficient_scope",
            UserinfoError::Failed(err) => err.code.as_str(),
        }
    }
}
