//! Random tokens, hashing, client secrets, constant-time comparison and encryption at rest.
//!
//! Client secrets are stored in one of two forms. A secret the server generated carries 256 bits
//! from the OS generator: nobody can guess it, so a slow hash adds nothing and its SHA-256 digest
//! (`sha256$<hex>`) is stored and compared in constant time. A secret an administrator chose may
//! be guessable, so it is stored as argon2id (`$argon2id$…`), like every secret made before
//! generated secrets were digested.
//!
//! A leaf: no crate imports and no I/O. Signing and JWS/JWE belong to `keys` (josekit), not here.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A random URL-safe token carrying `bytes` bytes of entropy from the OS generator.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// `bytes` random bytes in lowercase hex, for values a peer restricts to `[a-zA-Z0-9]`.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// 256-bit tokens for codes, access and refresh tokens, sessions and state.
pub fn new_secret_token() -> String {
    random_token(32)
}

/// How codes and tokens are stored: only this hash ever reaches the database.
pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

pub fn sha256(input: &[u8]) -> [u8; 32] {
    Sha256::digest(input).into()
}

pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Constant-time equality, so comparing a presented secret leaks nothing through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// argon2id with explicit parameters, so the cost does not change silently with the crate's
/// defaults: 7 MiB, 5 passes, 1 lane — one of OWASP's equivalent recommended settings, chosen over
/// 19 MiB × 2 because a provider verifies several secrets at once and must stay small in memory.
fn argon2() -> Argon2<'static> {
    let params = Params::new(7 * 1024, 5, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// How a server-generated secret's digest is marked in `clients.secret_hash`.
const DIGEST_PREFIX: &str = "sha256$";

/// The stored form of a secret the server generated (256 random bits): `sha256$<hex digest>`.
pub fn digest_generated_secret(secret: &str) -> String {
    format!("{DIGEST_PREFIX}{}", sha256_hex(secret))
}

/// True when verifying against `stored` costs argon2 (an administrator's secret or an old hash).
pub fn is_slow_hash(stored: &str) -> bool {
    stored.starts_with("$argon2")
}

/// Compares a presented secret with a stored `sha256$…` digest in constant time. Any other stored
/// form is compared against a digest nobody matches, so the work is the same.
pub fn verify_digest(secret: &str, stored: &str) -> bool {
    let expected = stored
        .strip_prefix(DIGEST_PREFIX)
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
        .filter(|digest| digest.len() == 32);
    let presented = sha256(secret.as_bytes());
    match expected {
        Some(digest) => constant_time_eq(&presented, &digest),
        None => {
            // Same work as a real comparison; the result is thrown away.
            let _ = constant_time_eq(&presented, &[0u8; 32]);
            false
        }
    }
}

/// Verifies a secret against whichever stored form it has. Slow for argon2id hashes: call it on
/// the blocking pool when `is_slow_hash` says so.
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    if is_slow_hash(stored) {
        verify_argon2(secret, stored)
    } else {
        verify_digest(secret, stored)
    }
}

/// Hashes a client secret into a PHC string (`$argon2id$v=19$m=7168,t=5,p=1$…`).
pub fn hash_secret(secret: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()
        .hash_password(secret.as_bytes(), &salt)?
        .to_string())
}

/// Verifies a secret against its argon2 PHC string. Slow on purpose; call it on the blocking pool.
fn verify_argon2(secret: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => argon2().verify_password(secret.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A digest of nothing anyone knows: checking an unknown client_id against it costs what checking
/// a generated secret costs, so timing does not tell which clients exist.
pub fn dummy_secret_hash() -> &'static str {
    "sha256$0000000000000000000000000000000000000000000000000000000000000000"
}

/// AES-256-GCM sealing of private key material with a key derived from `KEY_ENCRYPTION_KEY`.
pub struct Sealer(Aes256Gcm);

impl Sealer {
    pub fn new(passphrase: &str) -> Self {
        let key = sha256(passphrase.as_bytes());
        Self(Aes256Gcm::new(&key.into()))
    }

    /// `enc:v1:<base64url(nonce || ciphertext)>`.
    pub fn seal(&self, plaintext: &[u8]) -> Result<String, aes_gcm::Error> {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(self.0.encrypt(Nonce::from_slice(&nonce), plaintext)?);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, aes_gcm::Error> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .filter(|raw| raw.len() > 12)
            .ok_or(aes_gcm::Error)?;
        let (nonce, ciphertext) = raw.split_at(12);
        self.0.decrypt(Nonce::from_slice(nonce), ciphertext)
    }
}

pub const SEALED_PREFIX: &str = "enc:v1:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_only_against_their_own_hash() {
        let hash = hash_secret("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"));
        assert!(verify_secret("s3cret", &hash));
        assert!(!verify_secret("s3cret!", &hash));
        assert!(!verify_secret("s3cret", dummy_secret_hash()));
        assert!(!verify_secret("s3cret", "not a hash"));
    }

    #[test]
    fn generated_secrets_are_stored_as_digests_and_compared_exactly() {
        let secret = new_secret_token();
        let stored = digest_generated_secret(&secret);
        assert!(stored.starts_with("sha256$") && !is_slow_hash(&stored));
        assert!(verify_secret(&secret, &stored));
        assert!(!verify_secret(&format!("{secret}x"), &stored));
        assert!(!verify_secret("", &stored));
        assert!(!verify_secret(&secret, dummy_secret_hash()));
        assert!(!verify_digest(&secret, "sha256$zz"));
    }

    #[test]
    fn sealed_material_opens_only_with_the_same_key() {
        let sealed = Sealer::new("k".repeat(32).as_str())
            .seal(b"private")
            .unwrap();
        assert_eq!(
            Sealer::new("k".repeat(32).as_str()).open(&sealed).unwrap(),
            b"private"
        );
        assert!(Sealer::new("x".repeat(32).as_str()).open(&sealed).is_err());
    }

    #[test]
    fn tokens_are_unique_and_url_safe() {
        let a = new_secret_token();
        assert_ne!(a, new_secret_token());
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
