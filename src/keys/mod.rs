//! Signing keys and the JWKS: the only user of josekit.
//!
//! Keys live in the database so that every replica signs with the same key. The newest generation
//! signs; a rotated key stays in the JWKS until every ID token it signed has expired. Replicas
//! re-read the table periodically, so a `keys rotate` run elsewhere reaches all of them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use arc_swap::ArcSwap;
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsSigner, JwsVerifier, ES256, RS256};
use josekit::jwt::{self, JwtPayload};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::config::{Config, SigningAlg};
use crate::crypto::{base64url, sha256, Sealer, SEALED_PREFIX};
use crate::storage::{Store, StoredKey};

/// How long past an ID token's lifetime a retired key stays published, for clock skew and caches.
const RETENTION_MARGIN: i64 = 300;

/// The key that signs now and the JWKS document, built once per change of the key table.
struct KeySet {
    kid: String,
    alg: SigningAlg,
    signer: Box<dyn JwsSigner>,
    /// One verifier per published key, to check tokens this provider issued (id_token_hint).
    verifiers: Vec<(String, Box<dyn JwsVerifier>)>,
    jwks: Arc<String>,
    /// Which rows this set was built from, to skip rebuilding when nothing changed.
    fingerprint: Vec<(String, Option<i64>)>,
}

pub struct KeyManager {
    store: Store,
    alg: SigningAlg,
    sealer: Option<Sealer>,
    retention: i64,
    current: ArcSwap<KeySet>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("kid", &self.current.load().kid)
            .finish_non_exhaustive()
    }
}

impl KeyManager {
    /// Loads the key set, generating the first key when the table is empty.
    pub async fn load_or_create(
        store: Store,
        config: &Config,
        now: UnixTime,
    ) -> anyhow::Result<Self> {
        let sealer = config
            .key_encryption_key
            .as_ref()
            .map(|k| Sealer::new(k.expose_secret()));
        let retention = config.lifetimes.id_token.as_secs() as i64 + RETENTION_MARGIN;
        let mut keys = store.signing_keys().await.context("reading signing keys")?;
        if keys.is_empty() {
            let key = generate(config.signing_alg, 1, now, sealer.as_ref())?;
            // Another replica may win this race; either way the table now holds generation 1.
            insert_at_start_up(&store, &key).await?;
            keys = store.signing_keys().await.context("reading signing keys")?;
        }
        let set = build_key_set(&keys, sealer.as_ref(), retention, now)?;
        if set.alg != config.signing_alg {
            tracing::warn!(
                current = set.alg.as_str(),
                configured = config.signing_alg.as_str(),
                "the signing key's algorithm differs from SIGNING_ALG; run `wecom-oidc keys rotate` to switch"
            );
        }
        Ok(Self {
            store,
            alg: config.signing_alg,
            sealer,
            retention,
            current: ArcSwap::from_pointee(set),
        })
    }

    /// Adds a new signing key (generation + 1); the previous one is retired but still published.
    pub async fn rotate(&self, now: UnixTime) -> anyhow::Result<String> {
        let keys = self
            .store
            .signing_keys()
            .await
            .context("reading signing keys")?;
        let generation = keys.first().map(|k| k.generation).unwrap_or(0) + 1;
        let key = generate(self.alg, generation, now, self.sealer.as_ref())?;
        if !self.store.insert_signing_key(&key).await? {
            bail!("another rotation stored generation {generation} at the same moment; try again");
        }
        self.reload(now).await?;
        Ok(key.kid)
    }

    /// Re-reads the key table and swaps in a new key set when it changed.
    pub async fn reload(&self, now: UnixTime) -> anyhow::Result<()> {
        let keys = self
            .store
            .signing_keys()
            .await
            .context("reading signing keys")?;
        let published = fingerprint(&keys, self.retention, now);
        if published != self.current.load().fingerprint {
            let set = build_key_set(&keys, self.sealer.as_ref(), self.retention, now)?;
            tracing::info!(kid = %set.kid, "signing key set reloaded");
            self.current.store(Arc::new(set));
        }
        Ok(())
    }

    /// Reloads every `interval` until the task is dropped with the runtime.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        clock: Arc<dyn crate::clock::Clock>,
        interval: Duration,
    ) {
        let manager = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(err) = manager.reload(clock.now()).await {
                    tracing::warn!(error = %format!("{err:#}"), "could not reload signing keys");
                }
            }
        });
    }

    /// The JWKS document (RFC 7517 §5), already serialised.
    pub fn jwks(&self) -> Arc<String> {
        Arc::clone(&self.current.load().jwks)
    }

    pub fn signing_alg(&self) -> SigningAlg {
        self.current.load().alg
    }

    pub fn current_kid(&self) -> String {
        self.current.load().kid.clone()
    }

    /// The claims of a JWT this provider signed with a published key, whatever its expiry (an
    /// `id_token_hint` may be expired: OIDC Core §3.1.2.1, RP-Initiated Logout §2). `None` when the
    /// signature does not verify.
    pub fn verify_own_token(&self, token: &str) -> Option<Map<String, Value>> {
        let set = self.current.load();
        let selected = jwt::decode_with_verifier_selector(token, |header| {
            Ok(header.key_id().and_then(|kid| {
                set.verifiers
                    .iter()
                    .find(|(id, _)| id == kid)
                    .map(|(_, v)| v.as_ref())
            }))
        });
        selected
            .ok()
            .map(|(payload, _)| payload.claims_set().clone())
    }

    /// The `sub` of a token this provider signed (see `verify_own_token`).
    pub fn subject_of_own_token(&self, token: &str) -> Option<String> {
        self.verify_own_token(token)?
            .get("sub")?
            .as_str()
            .map(str::to_owned)
    }

    /// Signs `claims` as a JWT with the current key (`typ: JWT`, `kid` set).
    pub fn sign(&self, claims: Map<String, Value>) -> anyhow::Result<String> {
        let set = self.current.load();
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&set.kid);
        let payload = JwtPayload::from_map(claims).map_err(|e| anyhow!("invalid claims: {e}"))?;
        jwt::encode_with_signer(&payload, &header, set.signer.as_ref())
            .map_err(|e| anyhow!("signing failed: {e}"))
    }
}

/// Which keys are published at `now`: unretired ones and those retired less than `retention` ago.
fn is_published(key: &StoredKey, retention: i64, now: UnixTime) -> bool {
    key.retired_at
        .is_none_or(|retired| retired + retention > now)
}

fn fingerprint(keys: &[StoredKey], retention: i64, now: UnixTime) -> Vec<(String, Option<i64>)> {
    keys.iter()
        .filter(|k| is_published(k, retention, now))
        .map(|k| (k.kid.clone(), k.retired_at))
        .collect()
}

fn build_key_set(
    keys: &[StoredKey],
    sealer: Option<&Sealer>,
    retention: i64,
    now: UnixTime,
) -> anyhow::Result<KeySet> {
    let newest = keys
        .iter()
        .find(|k| k.retired_at.is_none())
        .ok_or_else(|| anyhow!("the signing_keys table holds no active key"))?;
    let alg = SigningAlg::parse(&newest.alg).ok_or_else(|| {
        anyhow!(
            "signing key {} has unsupported alg {}",
            newest.kid,
            newest.alg
        )
    })?;
    let private = open_private_jwk(&newest.private_jwk, sealer)
        .with_context(|| format!("reading the private part of signing key {}", newest.kid))?;
    let signer: Box<dyn JwsSigner> = match alg {
        SigningAlg::Rs256 => Box::new(RS256.signer_from_jwk(&private)?),
        SigningAlg::Es256 => Box::new(ES256.signer_from_jwk(&private)?),
    };
    let published: Vec<Value> = keys
        .iter()
        .filter(|k| is_published(k, retention, now))
        .map(|k| serde_json::from_str(&k.public_jwk))
        .collect::<Result<_, _>>()
        .context("a stored public JWK is not JSON")?;
    let mut verifiers: Vec<(String, Box<dyn JwsVerifier>)> = Vec::new();
    for key in keys.iter().filter(|k| is_published(k, retention, now)) {
        let public = Jwk::from_bytes(key.public_jwk.as_bytes())?;
        let verifier: Box<dyn JwsVerifier> = match SigningAlg::parse(&key.alg) {
            Some(SigningAlg::Rs256) => Box::new(RS256.verifier_from_jwk(&public)?),
            Some(SigningAlg::Es256) => Box::new(ES256.verifier_from_jwk(&public)?),
            None => continue,
        };
        verifiers.push((key.kid.clone(), verifier));
    }
    let jwks = serde_json::to_string(&serde_json::json!({ "keys": published }))?;
    Ok(KeySet {
        kid: newest.kid.clone(),
        alg,
        signer,
        verifiers,
        jwks: Arc::new(jwks),
        fingerprint: fingerprint(keys, retention, now),
    })
}

fn open_private_jwk(stored: &str, sealer: Option<&Sealer>) -> anyhow::Result<Jwk> {
    let json = if stored.starts_with(SEALED_PREFIX) {
        let sealer = sealer.ok_or_else(|| {
            anyhow!("the key is encrypted at rest; set KEY_ENCRYPTION_KEY to the value it was sealed with")
        })?;
        let plain = sealer.open(stored).map_err(|_| {
            anyhow!("KEY_ENCRYPTION_KEY does not open the stored key (wrong value?)")
        })?;
        String::from_utf8(plain).context("the decrypted key is not UTF-8")?
    } else {
        stored.to_owned()
    };
    Ok(Jwk::from_bytes(json.as_bytes())?)
}

/// A fresh key pair as a storable row; `kid` is the RFC 7638 thumbprint of the public key.
fn generate(
    alg: SigningAlg,
    generation: i64,
    now: UnixTime,
    sealer: Option<&Sealer>,
) -> anyhow::Result<StoredKey> {
    let (mut private, mut public) = match alg {
        SigningAlg::Rs256 => {
            let pair = RS256.generate_key_pair(2048)?;
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
        SigningAlg::Es256 => {
            let pair = ES256.generate_key_pair()?;
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
    };
    let kid = thumbprint(&public)?;
    for jwk in [&mut private, &mut public] {
        jwk.set_key_id(&kid);
        jwk.set_algorithm(alg.as_str());
        jwk.set_key_use("sig");
    }
    let private_json = private.to_string();
    let private_jwk = match sealer {
        Some(sealer) => sealer
            .seal(private_json.as_bytes())
            .map_err(|_| anyhow!("could not encrypt the new key"))?,
        None => private_json,
    };
    Ok(StoredKey {
        kid,
        generation,
        alg: alg.as_str().to_owned(),
        private_jwk,
        public_jwk: public.to_string(),
        created_at: now,
        retired_at: None,
    })
}

/// RFC 7638: SHA-256 over the required members in lexicographic order (serde_json's maps are sorted).
fn thumbprint(public: &Jwk) -> anyhow::Result<String> {
    let members: &[&str] = match public.key_type() {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        other => bail!("unsupported key type {other}"),
    };
    let map: Map<String, Value> = members
        .iter()
        .map(|m| {
            public
                .parameter(m)
                .cloned()
                .map(|v| ((*m).to_owned(), v))
                .ok_or_else(|| anyhow!("public key lacks {m}"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(base64url(&sha256(serde_json::to_string(&map)?.as_bytes())))
}

/// Stores the first key. Replicas starting together on SQLite contend for its write lock, which
/// a request would rather see as a quick 503; at start-up, waiting a little longer is right.
async fn insert_at_start_up(store: &Store, key: &StoredKey) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match store.insert_signing_key(key).await {
            Ok(_) => return Ok(()),
            Err(crate::storage::StorageError::Unavailable(reason)) if attempt < 10 => {
                attempt += 1;
                tracing::debug!(
                    reason,
                    "database busy while storing the first key; retrying"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(err).context("storing the first signing key"),
        }
    }
}
