//! PKCE (RFC 7636) with the S256 method only; `plain` is refused (RFC 9700 §2.1.1).

use crate::crypto::{base64url, constant_time_eq, sha256};

/// A `code_challenge` that has been checked to be an S256 challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn is_pkce_string(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl CodeChallenge {
    /// `method` is `code_challenge_method`; RFC 7636 §4.3 makes `plain` the default when it is
    /// absent, and plain is not accepted here, so an absent method is refused too.
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, &'static str> {
        match method {
            Some("S256") => {}
            Some("plain") | None => {
                return Err("code_challenge_method must be S256; plain is not supported")
            }
            Some(_) => return Err("unsupported code_challenge_method; use S256"),
        }
        // An S256 challenge is base64url(SHA-256) without padding: exactly 43 characters.
        if challenge.len() != 43 || !is_pkce_string(challenge) {
            return Err("code_challenge is not a valid S256 challenge");
        }
        Ok(Self(challenge.to_owned()))
    }

    /// Restores a challenge read back from the store.
    pub fn from_stored(challenge: String) -> Self {
        Self(challenge)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) == code_challenge.
    pub fn verify(&self, verifier: &str) -> bool {
        is_pkce_string(verifier)
            && constant_time_eq(
                base64url(&sha256(verifier.as_bytes())).as_bytes(),
                self.0.as_bytes(),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_example_verifies() {
        let challenge = CodeChallenge::parse(CHALLENGE, Some("S256")).unwrap();
        assert!(challenge.verify(VERIFIER));
        assert!(!challenge.verify(&VERIFIER.replace('d', "e")));
        assert!(!challenge.verify("short"));
    }

    #[test]
    fn plain_and_missing_methods_are_refused() {
        assert!(CodeChallenge::parse(CHALLENGE, Some("plain")).is_err());
        assert!(CodeChallenge::parse(CHALLENGE, None).is_err());
        assert!(CodeChallenge::parse("too-short", Some("S256")).is_err());
    }
}
