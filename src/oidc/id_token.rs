//! ID tokens (OIDC Core §2, §3.1.3.6): the signed statement of who signed in, for which client.

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::crypto::{base64url, sha256};
use crate::domain::{RegisteredClient, ScopeSet};

use super::claims_request::ClaimsRequest;
use super::profile::{GroupRelease, UserProfile};
use super::Provider;

/// What goes into one ID token.
pub struct IdTokenContent<'a> {
    pub client: &'a RegisteredClient,
    pub sub: &'a str,
    pub scope: &'a ScopeSet,
    pub nonce: Option<&'a str>,
    pub auth_time: UnixTime,
    /// OIDC `amr` values, space-separated; empty for grants older than `amr`.
    pub amr: &'a str,
    /// The provider session's public id (`backchannel::sid_of`), when the grant came from one.
    pub sid: Option<&'a str>,
    pub access_token: &'a str,
    /// Present when the client is registered to receive profile claims in the ID token, or asked
    /// for some with the `claims` parameter.
    pub profile: Option<&'a UserProfile>,
    pub requested: Option<&'a ClaimsRequest>,
}

/// OIDC Core §3.1.3.6: the left half of the SHA-256 of the access token, base64url-encoded (both
/// RS256 and ES256 use SHA-256).
pub fn at_hash(access_token: &str) -> String {
    let digest = sha256(access_token.as_bytes());
    base64url(&digest[..16])
}

impl Provider {
    pub fn sign_id_token(
        &self,
        content: IdTokenContent<'_>,
        now: UnixTime,
    ) -> anyhow::Result<String> {
        let mut claims = match content.profile {
            Some(profile) => profile.claims(
                content.scope,
                &self.config.login,
                &GroupRelease::for_client(content.client, &self.config.login),
            ),
            None => Map::new(),
        };
        // A minimal ID token carries only what the `claims` parameter named (OIDC Core §5.5),
        // and still only what the scopes granted.
        if !content.client.metadata.id_token_profile_claims {
            claims.retain(|name, _| content.requested.is_some_and(|r| r.wants_in_id_token(name)));
        }
        let ttl = self.config.lifetimes.id_token.as_secs() as i64;
        claims.insert("iss".into(), Value::String(self.issuer().to_owned()));
        claims.insert("sub".into(), Value::String(content.sub.to_owned()));
        claims.insert(
            "aud".into(),
            Value::String(content.client.client_id.clone()),
        );
        claims.insert(
            "azp".into(),
            Value::String(content.client.client_id.clone()),
        );
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + ttl));
        claims.insert("auth_time".into(), Value::from(content.auth_time));
        if !content.amr.is_empty() {
            claims.insert(
                "amr".into(),
                Value::Array(
                    content
                        .amr
                        .split(' ')
                        .map(|value| Value::String(value.to_owned()))
                        .collect(),
                ),
            );
        }
        claims.insert(
            "at_hash".into(),
            Value::String(at_hash(content.access_token)),
        );
        // Back-Channel Logout 1.0 §2.1: lets the client match a logout token's `sid`.
        if let Some(sid) = content.sid {
            claims.insert("sid".into(), Value::String(sid.to_owned()));
        }
        if let Some(nonce) = content.nonce {
            claims.insert("nonce".into(), Value::String(nonce.to_owned()));
        }
        self.keys.sign(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_oidc_core_example() {
        // OIDC Core Appendix A.3 uses this access token with RS256.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
