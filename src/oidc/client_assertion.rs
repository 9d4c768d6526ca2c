//! JWT client authentication (RFC 7523 §2.2 and §3, OIDC Core §9) at the token, revocation and
//! introspection endpoints: `private_key_jwt` (RS256 / ES256, keys from the client's `jwks` or
//! `jwks_uri`) and `client_secret_jwt` (HS256 keyed with the client secret).
//!
//! The client secret is stored as an argon2 hash, from which no HS256 key can be computed; so a
//! client registered for `client_secret_jwt` also keeps a copy of its secret sealed with
//! KEY_ENCRYPTION_KEY (AES-256-GCM; plain when that is unset, like the signing keys). Every
//! failure is `invalid_client` (RFC 6749 §5.2); the log says which rule failed.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::clock::UnixTime;
use crate::crypto::{sha256_hex, Sealer, SEALED_PREFIX};
use crate::domain::{AuthMethod, RegisteredClient};
use crate::keys::client_jwt::{self, JwksVerdict};
use crate::storage::StorageError;

use super::client_auth::PresentedCredentials;
use super::{ErrorCode, OAuthError, Params, Provider};

/// RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest an assertion may live: it is a one-request credential, and its `jti` is kept
/// until it expires.
const MAX_LIFETIME: i64 = 300;
/// Tolerated disagreement between the client's clock and ours.
const CLOCK_SKEW: i64 = 30;
/// How long a fetched `jwks_uri` document is used.
const JWKS_TTL: i64 = 300;
/// The least time between two fetches of one client's `jwks_uri`, whatever asks for them: an
/// assertion with an unknown `kid` (the client may have rotated its keys), or one arriving after
/// a failed fetch. A stream of made-up kids then costs the client one request per interval.
const JWKS_REFETCH_INTERVAL: i64 = 10;
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest `jwks_uri` document read; reading stops at the first byte past it.
const JWKS_MAX_BYTES: usize = 64 * 1024;

/// The client assertion of a request, if it carries one (RFC 7521 §4.2).
pub fn presented(
    authorization: Option<&str>,
    params: &Params,
) -> Result<Option<PresentedCredentials>, OAuthError> {
    let assertion_type = params.get("client_assertion_type");
    let assertion = params.get("client_assertion");
    if assertion_type.is_none() && assertion.is_none() {
        return Ok(None);
    }
    // RFC 6749 §2.3: one authentication method per request.
    if authorization.is_some() || params.get("client_secret").is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not a client assertion and other credentials",
        ));
    }
    let refused = |why: &str| OAuthError::new(ErrorCode::InvalidClient, why);
    if assertion_type != Some(JWT_BEARER) {
        return Err(refused("client_assertion_type must be the jwt-bearer URN"));
    }
    let assertion = assertion.ok_or_else(|| refused("client_assertion is missing"))?;
    let client_id = params
        .get("client_id")
        .map(str::to_owned)
        .or_else(|| client_jwt::peek_claim(assertion, "sub"))
        .ok_or_else(|| refused("the client assertion names no client"))?;
    Ok(Some(PresentedCredentials::Assertion {
        client_id,
        assertion: assertion.to_owned(),
    }))
}

/// What an accepted assertion leaves behind: its `jti` and when it expires.
#[derive(Debug, PartialEq, Eq)]
pub struct AcceptedClaims {
    pub jti: String,
    pub exp: UnixTime,
}

/// RFC 7523 §3 on a verified payload: `iss` = `sub` = client, `aud` names us, `exp` required and
/// near, `nbf`/`iat` not in the future, `jti` present.
pub fn check_claims(
    claims: &Map<String, Value>,
    client_id: &str,
    audiences: &[String],
    now: UnixTime,
) -> Result<AcceptedClaims, &'static str> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    if text("iss") != Some(client_id) || text("sub") != Some(client_id) {
        return Err("iss and sub must both be the client_id");
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => audiences.contains(aud),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|aud| audiences.iter().any(|a| a == aud)),
        _ => false,
    };
    if !aud_ok {
        return Err("aud must be the token endpoint or the issuer");
    }
    let exp = number("exp").ok_or("exp is required")?;
    if exp <= now {
        return Err("the assertion has expired");
    }
    if exp > now + MAX_LIFETIME + CLOCK_SKEW {
        return Err("exp is more than 5 minutes ahead");
    }
    if number("nbf").is_some_and(|nbf| nbf > now + CLOCK_SKEW) {
        return Err("nbf is in the future");
    }
    if let Some(iat) = number("iat") {
        if iat > now + CLOCK_SKEW || iat < now - MAX_LIFETIME - CLOCK_SKEW {
            return Err("iat is not recent");
        }
    }
    let jti = text("jti")
        .filter(|jti| !jti.is_empty() && jti.len() <= 512)
        .ok_or("jti is required")?;
    Ok(AcceptedClaims {
        jti: jti.to_owned(),
        exp,
    })
}

/// `jwks_uri` documents, fetched with a timeout and a size cap, and kept briefly.
pub struct ClientKeys {
    http: reqwest::Client,
    /// One slot per client and `jwks_uri`. Its lock is the single flight: one fetch at a time
    /// per client; requests arriving meanwhile wait for it and use what it brought.
    slots: Cache<String, Arc<Mutex<JwksSlot>>>,
}

/// What is known of one client's `jwks_uri`.
#[derive(Default)]
struct JwksSlot {
    document: Option<Arc<Value>>,
    fetched_at: UnixTime,
    /// The last fetch, whether it brought a document or not.
    attempted_at: Option<UnixTime>,
}

impl ClientKeys {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::outbound::client_builder()?
                .timeout(JWKS_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            // Expiry is judged against the request's `now` (see `get`); idle slots are dropped
            // so that deleted clients do not stay in memory.
            slots: Cache::builder()
                .max_capacity(1_000)
                .time_to_idle(Duration::from_secs(2 * JWKS_TTL as u64))
                .build(),
        })
    }

    /// `client_id`'s document at `uri`: the one kept while younger than JWKS_TTL, unless
    /// `refresh` (an unknown `kid`) asks for a newer one; fetched otherwise, but never twice
    /// within JWKS_REFETCH_INTERVAL.
    async fn get(
        &self,
        client_id: &str,
        uri: &str,
        refresh: bool,
        now: UnixTime,
    ) -> Option<Arc<Value>> {
        let slot = self
            .slots
            .get_with(format!("{client_id}\n{uri}"), async { Arc::default() })
            .await;
        let mut slot = slot.lock().await;
        let fresh = slot
            .document
            .as_ref()
            .filter(|_| now - slot.fetched_at < JWKS_TTL)
            .cloned();
        let recently_tried = slot
            .attempted_at
            .is_some_and(|at| now - at < JWKS_REFETCH_INTERVAL);
        if (fresh.is_some() && !refresh) || recently_tried {
            return fresh;
        }
        slot.attempted_at = Some(now);
        match self.fetch(uri).await {
            Some(document) => {
                let document = Arc::new(document);
                slot.document = Some(Arc::clone(&document));
                slot.fetched_at = now;
                Some(document)
            }
            None => fresh,
        }
    }

    async fn fetch(&self, uri: &str) -> Option<Value> {
        let mut response = match self.http.get(uri).send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                tracing::warn!(status = %response.status(), "client jwks_uri answered an error");
                return None;
            }
            Err(err) => {
                tracing::warn!(error = %err, "client jwks_uri unreachable");
                return None;
            }
        };
        let too_large = || tracing::warn!("client jwks_uri document larger than 64 KiB");
        if response
            .content_length()
            .is_some_and(|length| length > JWKS_MAX_BYTES as u64)
        {
            too_large();
            return None;
        }
        // Read chunk by chunk, so that a document without a length, or one longer than it
        // said, is dropped at the cap rather than read to its end.
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > JWKS_MAX_BYTES => {
                    too_large();
                    return None;
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "client jwks_uri document unreadable");
                    return None;
                }
            }
        }
        serde_json::from_slice(&body).ok()
    }
}

impl Provider {
    /// The client the credentials prove, assertions included; the front door of client
    /// authentication for the token, revocation and introspection endpoints.
    pub async fn authenticate_client_at(
        &self,
        credentials: &PresentedCredentials,
        now: UnixTime,
    ) -> Result<RegisteredClient, OAuthError> {
        let PresentedCredentials::Assertion {
            client_id,
            assertion,
        } = credentials
        else {
            return self.authenticate_client(credentials).await;
        };
        let client = match self.store.get_client(client_id).await {
            Ok(client) => Some(client),
            Err(StorageError::NotFound) => None,
            Err(other) => return Err(other.into()),
        };
        let outcome = self
            .verify_assertion(client.as_ref(), assertion, now)
            .await?;
        match (outcome, client) {
            (Ok(()), Some(client)) => Ok(client),
            (outcome, _) => {
                let reason = outcome.err().unwrap_or("unknown client");
                tracing::warn!(client_id = %client_id, reason, "client assertion refused");
                Err(OAuthError::new(
                    ErrorCode::InvalidClient,
                    "client authentication failed",
                ))
            }
        }
    }

    async fn verify_assertion(
        &self,
        client: Option<&RegisteredClient>,
        assertion: &str,
        now: UnixTime,
    ) -> Result<Result<(), &'static str>, OAuthError> {
        let Some(client) = client else {
            return Ok(Err("unknown client"));
        };
        let Some(header) = client_jwt::peek_header(assertion) else {
            return Ok(Err("not a JWT"));
        };
        let claims = match (
            client.metadata.token_endpoint_auth_method,
            header.alg.as_str(),
        ) {
            (AuthMethod::ClientSecretJwt, "HS256") => {
                let Some(secret) = self.client_jwt_key(&client.client_id).await? else {
                    return Ok(Err("no secret kept for client_secret_jwt"));
                };
                client_jwt::verify_hs256(assertion, &secret)
            }
            (AuthMethod::PrivateKeyJwt, "RS256" | "ES256") => {
                self.verify_with_client_keys(client, assertion, &header, now)
                    .await
            }
            _ => {
                return Ok(Err(
                    "alg does not fit the client's token_endpoint_auth_method",
                ))
            }
        };
        let Some(claims) = claims else {
            return Ok(Err("bad signature"));
        };
        let audiences = [
            self.issuer().to_owned(),
            self.config.issuer.endpoint(super::endpoints::TOKEN_PATH),
        ];
        let accepted = match check_claims(&claims, &client.client_id, &audiences, now) {
            Ok(accepted) => accepted,
            Err(reason) => return Ok(Err(reason)),
        };
        // RFC 7523 §3 item 7: a jti is accepted once; the table is shared by every replica.
        let jti_hash = sha256_hex(&format!("{}\n{}", client.client_id, accepted.jti));
        if !self
            .store
            .remember_assertion_jti(&jti_hash, &client.client_id, accepted.exp)
            .await?
        {
            return Ok(Err("jti replayed"));
        }
        Ok(Ok(()))
    }

    async fn verify_with_client_keys(
        &self,
        client: &RegisteredClient,
        assertion: &str,
        header: &client_jwt::UnverifiedHeader,
        now: UnixTime,
    ) -> Option<Map<String, Value>> {
        if let Some(jwks) = &client.metadata.jwks {
            return match client_jwt::verify_with_jwks(assertion, header, jwks) {
                JwksVerdict::Verified(claims) => Some(claims),
                _ => None,
            };
        }
        let uri = client.metadata.jwks_uri.as_deref()?;
        let document = self
            .client_keys
            .get(&client.client_id, uri, false, now)
            .await?;
        match client_jwt::verify_with_jwks(assertion, header, &document) {
            JwksVerdict::Verified(claims) => Some(claims),
            // The client may have rotated its keys since we fetched them: fetch once more.
            JwksVerdict::UnknownKid => {
                let document = self
                    .client_keys
                    .get(&client.client_id, uri, true, now)
                    .await?;
                match client_jwt::verify_with_jwks(assertion, header, &document) {
                    JwksVerdict::Verified(claims) => Some(claims),
                    _ => None,
                }
            }
            JwksVerdict::Invalid => None,
        }
    }

    /// The HS256 key of a `client_secret_jwt` client: its secret, unsealed.
    async fn client_jwt_key(&self, client_id: &str) -> Result<Option<Vec<u8>>, OAuthError> {
        let Some(stored) = self.store.client_jwt_secret(client_id).await? else {
            return Ok(None);
        };
        if !stored.starts_with(SEALED_PREFIX) {
            return Ok(Some(stored.into_bytes()));
        }
        let Some(key) = &self.config.key_encryption_key else {
            tracing::error!(
                "a client_secret_jwt secret is sealed but KEY_ENCRYPTION_KEY is not set"
            );
            return Ok(None);
        };
        match Sealer::new(key.expose_secret()).open(&stored) {
            Ok(secret) => Ok(Some(secret)),
            Err(_) => {
                tracing::error!("a client_secret_jwt secret does not open with KEY_ENCRYPTION_KEY");
                Ok(None)
            }
        }
    }
}

/// What the registry keeps for JWT authentication: a sealed copy of a new secret when the client
/// uses `client_secret_jwt`, nothing otherwise. Call it whenever the registry hands out a secret
/// or changes a client's method.
pub async fn keep_jwt_secret(
    store: &crate::storage::Store,
    key_encryption_key: Option<&secrecy::SecretString>,
    client: &RegisteredClient,
    new_secret: Option<&str>,
) -> anyhow::Result<()> {
    if client.metadata.token_endpoint_auth_method != AuthMethod::ClientSecretJwt {
        store.set_client_jwt_secret(&client.client_id, None).await?;
        return Ok(());
    }
    let Some(secret) = new_secret else {
        return Ok(());
    };
    let stored = match key_encryption_key {
        Some(key) => Sealer::new(key.expose_secret())
            .seal(secret.as_bytes())
            .map_err(|_| anyhow::anyhow!("sealing the client secret failed"))?,
        None => secret.to_owned(),
    };
    store
        .set_client_jwt_secret(&client.client_id, Some(&stored))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn assertion_claims_follow_rfc_7523() {
        let now = 1_000_000;
        let audiences = vec!["https://sso/token".to_owned(), "https://sso".to_owned()];
        let good = json!({"iss": "app", "sub": "app", "aud": "https://sso/token", "exp": now + 60, "iat": now, "jti": "j1"});
        assert_eq!(
            check_claims(&claims(good.clone()), "app", &audiences, now),
            Ok(AcceptedClaims {
                jti: "j1".into(),
                exp: now + 60
            })
        );
        let mut array_aud = good.clone();
        array_aud["aud"] = json!(["x", "https://sso"]);
        assert!(check_claims(&claims(array_aud), "app", &audiences, now).is_ok());
        let cases = [
            ("iss", json!("other"), "iss"),
            ("sub", json!("other"), "sub"),
            ("aud", json!("https://elsewhere/token"), "aud"),
            ("exp", json!(now), "expired"),
            ("exp", json!(now + 3600), "too far ahead"),
            ("exp", Value::Null, "no exp"),
            ("nbf", json!(now + 600), "nbf ahead"),
            ("iat", json!(now + 600), "iat ahead"),
            ("jti", Value::Null, "no jti"),
        ];
        for (name, value, case) in cases {
            let mut bad = good.clone();
            if value.is_null() {
                bad.as_object_mut().unwrap().remove(name);
            } else {
                bad[name] = value;
            }
            assert!(
                check_claims(&claims(bad), "app", &audiences, now).is_err(),
                "{case}"
            );
        }
    }
}
