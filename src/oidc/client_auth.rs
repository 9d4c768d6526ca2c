//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3):
//! `client_secret_basic`, `client_secret_post`, or `none` for public clients. Client assertions
//! (`client_secret_jwt`, `private_key_jwt`) are verified in `client_assertion`.
//!
//! A generated secret (256 random bits, stored as `sha256$…`) costs a digest and a constant-time
//! compare: no queue, no cache. A secret an administrator chose is stored as argon2id, as were
//! secrets made by older versions. argon2 makes such a secret expensive to guess, and would make
//! every token request of an honest client as expensive, so one that verified once is remembered
//! as its SHA-256 digest, keyed by the client and its current hash. argon2 work is bounded: a
//! request waits `ARGON2_WAIT` at most for a slot, then gets 503 `temporarily_unavailable`, so a
//! flood of wrong secrets cannot build an unbounded queue.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use moka::sync::Cache;
use percent_encoding::percent_decode_str;
use tokio::sync::Semaphore;

use crate::crypto::{
    constant_time_eq, dummy_secret_hash, is_slow_hash, sha256, sha256_hex, verify_digest,
    verify_secret,
};
use crate::domain::{AuthMethod, RegisteredClient};
use crate::storage::StorageError;

use super::{ErrorCode, OAuthError, Params, Provider};

/// What the client presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedCredentials {
    Basic {
        client_id: String,
        secret: String,
    },
    Post {
        client_id: String,
        secret: String,
    },
    /// A public client names itself and proves nothing (PKCE does that at the token endpoint).
    IdOnly {
        client_id: String,
    },
    /// A signed JWT (RFC 7523); see `client_assertion`.
    Assertion {
        client_id: String,
        assertion: String,
    },
}

impl PresentedCredentials {
    pub fn client_id(&self) -> &str {
        match self {
            PresentedCredentials::Basic { client_id, .. }
            | PresentedCredentials::Post { client_id, .. }
            | PresentedCredentials::IdOnly { client_id }
            | PresentedCredentials::Assertion { client_id, .. } => client_id,
        }
    }

    fn is_basic(&self) -> bool {
        matches!(self, PresentedCredentials::Basic { .. })
    }

    /// Reads the `Authorization` header and the body parameters. Using two methods at once is an
    /// error (RFC 6749 §2.3: the client MUST NOT use more than one).
    pub fn extract(authorization: Option<&str>, params: &Params) -> Result<Self, OAuthError> {
        if let Some(assertion) = super::client_assertion::presented(authorization, params)? {
            return Ok(assertion);
        }
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        if let Some(header) = authorization {
            let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
            if scheme.eq_ignore_ascii_case("basic") {
                let mut invalid =
                    OAuthError::new(ErrorCode::InvalidClient, "malformed Basic credentials");
                invalid.used_basic_auth = true;
                let decoded = STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .ok_or_else(|| invalid.clone())?;
                let (id, secret) = decoded.split_once(':').ok_or_else(|| invalid.clone())?;
                // RFC 6749 §2.3.1: both halves are form-urlencoded before being joined.
                let (client_id, secret) = (form_decode(id), form_decode(secret));
                if client_id.is_empty() {
                    return Err(invalid);
                }
                if body_secret.is_some() || body_id.is_some_and(|id| id != client_id) {
                    return Err(OAuthError::invalid_request(
                        "use one client authentication method, not Basic and body credentials together",
                    ));
                }
                return Ok(PresentedCredentials::Basic { client_id, secret });
            }
        }
        match (body_id, body_secret) {
            (Some(client_id), Some(secret)) => Ok(PresentedCredentials::Post {
                client_id: client_id.to_owned(),
                secret: secret.to_owned(),
            }),
            (Some(client_id), None) => Ok(PresentedCredentials::IdOnly {
                client_id: client_id.to_owned(),
            }),
            _ => Err(OAuthError::new(
                ErrorCode::InvalidClient,
                "client authentication is required",
            )),
        }
    }
}

/// The client, when it is registered as public (`none`).
fn public_client(
    client: Option<RegisteredClient>,
    failure: OAuthError,
) -> Result<RegisteredClient, OAuthError> {
    match client {
        Some(client) if client.metadata.token_endpoint_auth_method == AuthMethod::None => {
            Ok(client)
        }
        _ => Err(failure),
    }
}

fn form_decode(raw: &str) -> String {
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// How long a request waits for an argon2 slot before it is answered 503: long enough to ride
/// out a burst of honest requests, short enough that a flood builds no queue.
const ARGON2_WAIT: Duration = Duration::from_millis(500);

/// Digests of argon2id-hashed secrets that verified, keyed by client and current secret hash, and
/// the limit on argon2 work in flight.
#[derive(Clone)]
pub struct VerifiedSecrets {
    cache: Option<Cache<String, [u8; 32]>>,
    /// argon2 is CPU- and memory-bound: more verifications at once than cores only queue in the
    /// OS and multiply memory. Callers wait for a permit instead (and a flood of wrong secrets
    /// cannot take the whole machine).
    argon2_permits: Arc<Semaphore>,
}

impl VerifiedSecrets {
    /// A zero `ttl` turns the cache off: every request then pays argon2.
    pub fn new(ttl: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            cache: (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(ttl)
                    .build()
            }),
            argon2_permits: Arc::new(Semaphore::new(cores)),
        }
    }

    fn key(client_id: &str, secret_hash: &str) -> String {
        sha256_hex(&format!("{client_id}\n{secret_hash}"))
    }

    fn is_known(&self, client_id: &str, secret_hash: &str, secret: &str) -> bool {
        let Some(cache) = &self.cache else {
            return false;
        };
        cache
            .get(&Self::key(client_id, secret_hash))
            .is_some_and(|digest| constant_time_eq(digest.as_slice(), &sha256(secret.as_bytes())))
    }

    fn remember(&self, client_id: &str, secret_hash: &str, secret: &str) {
        if let Some(cache) = &self.cache {
            cache.insert(Self::key(client_id, secret_hash), sha256(secret.as_bytes()));
        }
    }
}

impl Provider {
    /// The client the credentials prove, or `invalid_client` (RFC 6749 §5.2).
    #[tracing::instrument(skip_all, fields(client_id = credentials.client_id()))]
    pub async fn authenticate_client(
        &self,
        credentials: &PresentedCredentials,
    ) -> Result<RegisteredClient, OAuthError> {
        let mut failure = OAuthError::new(ErrorCode::InvalidClient, "client authentication failed");
        failure.used_basic_auth = credentials.is_basic();
        let client = match self.store.get_client(credentials.client_id()).await {
            Ok(client) => Some(client),
            Err(StorageError::NotFound) => None,
            Err(other) => return Err(other.into()),
        };
        match credentials {
            // Verified by `authenticate_client_at`, which is the way in for assertions.
            PresentedCredentials::Assertion { .. } => Err(failure),
            // A public client names itself. Some send an empty secret to say the same (oidc-agent
            // sends `Basic base64(client_id:)`): no secret proves nothing, as for `none`.
            PresentedCredentials::IdOnly { .. } => public_client(client, failure),
            PresentedCredentials::Basic { secret, .. }
            | PresentedCredentials::Post { secret, .. }
                if secret.is_empty() =>
            {
                public_client(client, failure)
            }
            PresentedCredentials::Basic { secret, .. }
            | PresentedCredentials::Post { secret, .. } => {
                // Clients registered for a secret method may use either: relying parties differ in
                // what they send by default, and both carry the same secret. Clients registered
                // for a JWT method may not (OIDC Core §9: the registered method is the one used):
                // a client_secret_jwt client's secret never travels, and accepting it in the
                // clear would make whoever sees it once able to act as the client.
                let confidential = client.filter(|c| {
                    matches!(
                        c.metadata.token_endpoint_auth_method,
                        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
                    ) && c.secret_hash.is_some()
                });
                let verified = match &confidential {
                    Some(client) => self.verify_client_secret(client, secret).await?,
                    None => {
                        // Unknown clients are checked against a dummy digest, so timing does not
                        // reveal which client ids exist (those with generated secrets, at least).
                        verify_digest(secret, dummy_secret_hash())
                    }
                };
                match confidential {
                    Some(client) if verified => Ok(client),
                    _ => {
                        tracing::warn!("client authentication failed");
                        Err(failure)
                    }
                }
            }
        }
    }

    /// Checks `secret` against the client's stored hash: a digest compare for a generated secret,
    /// bounded argon2 (remembered once verified) for an administrator's or an old secret.
    async fn verify_client_secret(
        &self,
        client: &RegisteredClient,
        secret: &str,
    ) -> Result<bool, OAuthError> {
        let Some(hash) = client.secret_hash.as_deref() else {
            return Ok(false);
        };
        if !is_slow_hash(hash) {
            return Ok(verify_digest(secret, hash));
        }
        if self.secrets.is_known(&client.client_id, hash, secret) {
            return Ok(true);
        }
        let _permit =
            match tokio::time::timeout(ARGON2_WAIT, self.secrets.argon2_permits.acquire()).await {
                Ok(permit) => permit.map_err(|e| OAuthError::from(anyhow::Error::new(e)))?,
                Err(_) => {
                    tracing::warn!("argon2 slots busy; client secret check refused");
                    return Err(OAuthError::new(
                        ErrorCode::TemporarilyUnavailable,
                        "too many client authentications in progress; try again shortly",
                    ));
                }
            };
        // While this request waited, another may have verified the same secret.
        if self.secrets.is_known(&client.client_id, hash, secret) {
            return Ok(true);
        }
        let (presented, against) = (secret.to_owned(), hash.to_owned());
        let verified = tokio::task::spawn_blocking(move || verify_secret(&presented, &against))
            .await
            .map_err(|e| OAuthError::from(anyhow::Error::new(e)))?;
        if verified {
            self.secrets.remember(&client.client_id, hash, secret);
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(body: &str) -> Params {
        Params::parse(body.as_bytes())
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20app:p%3Ass+word"));
        let creds = PresentedCredentials::extract(Some(&header), &params("")).unwrap();
        assert_eq!(
            creds,
            PresentedCredentials::Basic {
                client_id: "my app".into(),
                secret: "p:ss word".into()
            }
        );
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        let err =
            PresentedCredentials::extract(Some(&header), &params("client_secret=b")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn no_credentials_is_invalid_client() {
        let err = PresentedCredentials::extract(None, &params("")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidClient);
    }
}
