//! Verifying the JWTs clients sign to authenticate themselves (RFC 7523 §2.2): HS256 with the
//! client secret (`client_secret_jwt`) or RS256 / ES256 with a key of the client's JWK Set
//! (`private_key_jwt`). The claims are judged by `oidc::client_assertion`; this module only says
//! whether the signature holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::Jwk;
use josekit::jws::{JwsVerifier, ES256, HS256, RS256};
use josekit::jwt;
use serde_json::{Map, Value};

/// The algorithms a client may sign its assertion with.
pub const ASSERTION_ALGS: [&str; 3] = ["HS256", "RS256", "ES256"];

/// The `alg` and `kid` of a JWT, read before its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedHeader {
    pub alg: String,
    pub kid: Option<String>,
}

pub fn peek_header(token: &str) -> Option<UnverifiedHeader> {
    let header = jwt::decode_header(token).ok()?;
    Some(UnverifiedHeader {
        alg: header.claim("alg")?.as_str()?.to_owned(),
        kid: header
            .claim("kid")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// A claim of the payload, unverified: only to learn which client the assertion names when the
/// request carries no `client_id` (RFC 7521 §4.2); everything is checked after the signature.
pub fn peek_claim(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get(name)?.as_str().map(str::to_owned)
}

/// The payload of an HS256 JWT keyed with `secret`, if the signature holds.
pub fn verify_hs256(token: &str, secret: &[u8]) -> Option<Map<String, Value>> {
    let verifier = HS256.verifier_from_bytes(secret).ok()?;
    decode(token, &verifier)
}

/// What a JWK Set says about an RS256 / ES256 JWT.
#[derive(Debug, PartialEq)]
pub enum JwksVerdict {
    Verified(Map<String, Value>),
    /// No key of the set has the JWT's `kid`: the set may be stale.
    UnknownKid,
    Invalid,
}

pub fn verify_with_jwks(token: &str, header: &UnverifiedHeader, jwks: &Value) -> JwksVerdict {
    let kty = match header.alg.as_str() {
        "RS256" => "RSA",
        "ES256" => "EC",
        _ => return JwksVerdict::Invalid,
    };
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let candidates: Vec<&Map<String, Value>> = keys
        .iter()
        .filter_map(Value::as_object)
        .filter(|key| key.get("kty").and_then(Value::as_str) == Some(kty))
        .filter(|key| {
            key.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
        })
        .filter(|key| match &header.kid {
            Some(kid) => key.get("kid").and_then(Value::as_str) == Some(kid.as_str()),
            None => true,
        })
        .collect();
    if candidates.is_empty() {
        return if header.kid.is_some() {
            JwksVerdict::UnknownKid
        } else {
            JwksVerdict::Invalid
        };
    }
    for key in candidates {
        let Ok(jwk) = Jwk::from_map(key.clone()) else {
            continue;
        };
        let verifier: Option<Box<dyn JwsVerifier>> = match kty {
            "RSA" => RS256
                .verifier_from_jwk(&jwk)
                .ok()
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            _ => ES256
                .verifier_from_jwk(&jwk)
                .ok()
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
        };
        if let Some(claims) = verifier.and_then(|v| decode(token, v.as_ref())) {
            return JwksVerdict::Verified(claims);
        }
    }
    JwksVerdict::Invalid
}

fn decode(token: &str, verifier: &dyn JwsVerifier) -> Option<Map<String, Value>> {
    // josekit checks that the header's `alg` is the verifier's, so `none` never passes.
    let (payload, _) = jwt::decode_with_verifier(token, verifier).ok()?;
    Some(payload.claims_set().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jws::JwsHeader;
    use josekit::jwt::JwtPayload;

    fn hs256(secret: &[u8], sub: &str) -> String {
        let mut payload = JwtPayload::new();
        payload.set_subject(sub);
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        jwt::encode_with_signer(&payload, &header, &HS256.signer_from_bytes(secret).unwrap())
            .unwrap()
    }

    #[test]
    fn hs256_verifies_only_with_its_secret() {
        let secret = [7u8; 32];
        let token = hs256(&secret, "app");
        assert_eq!(peek_claim(&token, "sub").as_deref(), Some("app"));
        assert_eq!(peek_header(&token).unwrap().alg, "HS256");
        assert!(verify_hs256(&token, &secret).is_some());
        assert!(verify_hs256(&token, &[8u8; 32]).is_none());
    }

    #[test]
    fn a_jwks_finds_the_key_by_kid_and_refuses_others() {
        let pair = ES256.generate_key_pair().unwrap();
        let mut public = pair.to_jwk_public_key();
        public.set_key_id("k1");
        let mut header = JwsHeader::new();
        header.set_key_id("k1");
        let token = jwt::encode_with_signer(
            &JwtPayload::new(),
            &header,
            &ES256.signer_from_jwk(&pair.to_jwk_private_key()).unwrap(),
        )
        .unwrap();
        let jwks = serde_json::json!({ "keys": [Value::Object(public.as_ref().clone())] });
        let seen = peek_header(&token).unwrap();
        assert!(matches!(
            verify_with_jwks(&token, &seen, &jwks),
            JwksVerdict::Verified(_)
        ));
        let other = UnverifiedHeader {
            kid: Some("k2".into()),
            ..seen.clone()
        };
        assert_eq!(
            verify_with_jwks(&token, &other, &jwks),
            JwksVerdict::UnknownKid
        );
        let hs = UnverifiedHeader {
            alg: "HS256".into(),
            ..seen
        };
        assert_eq!(verify_with_jwks(&token, &hs, &jwks), JwksVerdict::Invalid);
    }
}
