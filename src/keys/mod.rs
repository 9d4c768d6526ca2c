//! Signing keys and the JWKS, and (in `client_jwt`) client assertions: the only user of josekit.
//! It reaches the database only through `storage` and never imports the HTTP framework.
//!
//! Keys live in the database so that every replica signs with the same key. Replicas re-read the
//! table every `KEY_RELOAD_INTERVAL`, so a `keys rotate` run elsewhere reaches all of them.
//!
//! Rotation never breaks a relying party that caches the JWKS (`Cache-Control: max-age`):
//!
//! ```text
//!  t0 rotate            t0 + delay                     t0 + delay + ID token lifetime + margin
//!  |--- new key published, old key signs ---|--- new key signs, old key published ---|--- old key gone
//! ```
//!
//! `delay` is `KEY_ACTIVATION_DELAY_SECS` (default: the JWKS cache lifetime plus the reload
//! interval), so every cached JWKS holds the new key before any token it signed is seen. A
//! replica also never signs with a key it has not itself published for `delay`: one that learned
//! of the new key at its next reload, after the rotation, keeps signing with the previous key
//! until its own `delay` is over, so no request fails across a rotation. The previous key is
//! published long enough for that (`LATE_SIGNING`, counted into the retention). Only a replica
//! that could not read the table for longer than `LATE_SIGNING` past the activation has no key to
//! sign with: token requests then get 503, which is safer than tokens nobody can verify. The
//! first key of an empty table signs at once: no JWKS without it was ever served.
//!
//! Sign-in cookies are sealed independently of all this (see `seal_for_browser`): with the
//! newest key every replica has had time to read, whichever key signs.

pub mod client_jwt;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
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
use crate::key_timing::{JWKS_MAX_AGE, KEY_RELOAD_INTERVAL};
use crate::storage::{Store, StoredKey};

/// How long past an ID token's lifetime a retired key stays published, for clock skew and caches.
const RETENTION_MARGIN: i64 = 300;

/// How long after its retirement a replica that has not yet published the new key for the delay
/// may still sign with the previous one. A replica learns of a rotation at its next reload, at most
/// `KEY_RELOAD_INTERVAL` after it; this allows four missed reloads more. The retired key stays
/// published this much longer, so that what it signed late still verifies.
const LATE_SIGNING: i64 = 5 * KEY_RELOAD_INTERVAL.as_secs() as i64;

/// How old a key must be before this replica seals sign-in cookies with it: by then every
/// replica has re-read the key table (twice, given one slow reload) and can open them.
const SEAL_AFTER: i64 = 2 * KEY_RELOAD_INTERVAL.as_secs() as i64;

/// The key that signs now and the JWKS document, built once per change of the key table or of
/// which key may sign.
struct KeySet {
    /// `None` while no key may sign on this replica (see the module documentation).
    kid: Option<String>,
    alg: SigningAlg,
    signer: Option<Box<dyn JwsSigner>>,
    /// One verifier per published key, to check tokens this provider issued (id_token_hint).
    verifiers: Vec<(String, Box<dyn JwsVerifier>)>,
    jwks: Arc<String>,
    /// One browser sealer per stored key whose private part opens (see `seal_for_browser`).
    browser_sealers: Vec<(String, Sealer)>,
    /// The key of `browser_sealers` that seals now; `None` only when no stored key opens.
    sealing_kid: Option<String>,
    /// Which rows this set was built from, which signs and which seals, to skip rebuilding when
    /// nothing changed.
    fingerprint: Fingerprint,
}

type Fingerprint = (Vec<(String, Option<i64>)>, Option<String>, Option<String>);

/// When a rotated key may start signing, and when keys rotate by themselves.
#[derive(Debug, Clone, Copy)]
struct Rotation {
    activation_delay: i64,
    every: Option<i64>,
}

/// One signing key as [`KeyManager::overview`] reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStanding {
    pub kid: String,
    pub alg: String,
    pub created_at: UnixTime,
    /// When it stops (or stopped) signing: the moment its successor takes over.
    pub retired_at: Option<UnixTime>,
    /// This replica signs with it now.
    pub signing: bool,
    /// It is in the JWKS now.
    pub published: bool,
    /// A retired key leaves the JWKS then, when every ID token it signed has expired.
    pub published_until: Option<UnixTime>,
}

pub struct KeyManager {
    store: Store,
    alg: SigningAlg,
    sealer: Option<Sealer>,
    retention: i64,
    rotation: Rotation,
    /// When this replica first published each key it learned of while running; keys it found
    /// at start-up count from their creation (the other replicas published them meanwhile).
    first_seen: std::sync::Mutex<HashMap<String, UnixTime>>,
    current: ArcSwap<KeySet>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("kid", &self.current.load().kid)
            .field("rotation", &self.rotation)
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
        if sealer.is_none() {
            tracing::warn!(
                "KEY_ENCRYPTION_KEY is not set: signing keys (and client_secret_jwt secrets) are stored unencrypted in the database; set it to 32 or more random characters"
            );
        }
        let retention =
            config.lifetimes.id_token.as_secs() as i64 + LATE_SIGNING + RETENTION_MARGIN;
        let rotation = Rotation {
            activation_delay: config.keys.activation_delay.as_secs() as i64,
            every: config.keys.rotate_every.map(|d| d.as_secs() as i64),
        };
        let mut keys = store.signing_keys().await.context("reading signing keys")?;
        if keys.is_empty() {
            let key = generate(config.signing_alg, 1, now, sealer.as_ref())?;
            // Another replica may win this race; either way the table now holds generation 1.
            insert_at_start_up(&store, &key).await?;
            keys = store.signing_keys().await.context("reading signing keys")?;
        }
        let first_seen: HashMap<String, UnixTime> =
            keys.iter().map(|k| (k.kid.clone(), k.created_at)).collect();
        let signing = choose_signer(&keys, &first_seen, rotation.activation_delay, now);
        let set = build_key_set(&keys, signing, sealer.as_ref(), retention, now)?;
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
            rotation,
            first_seen: std::sync::Mutex::new(first_seen),
            current: ArcSwap::from_pointee(set),
        })
    }

    /// Adds a new key (generation + 1), published at once; it signs from `now + delay`, when the
    /// previous ones retire (and stay published until their tokens have expired).
    pub async fn rotate(&self, now: UnixTime) -> anyhow::Result<String> {
        let keys = self
            .store
            .signing_keys()
            .await
            .context("reading signing keys")?;
        let generation = keys.first().map(|k| k.generation).unwrap_or(0) + 1;
        let key = generate(self.alg, generation, now, self.sealer.as_ref())?;
        let activates_at = now + self.rotation.activation_delay;
        if !self.store.insert_signing_key(&key, activates_at).await? {
            bail!("another rotation stored generation {generation} at the same moment; try again");
        }
        self.reload(now).await?;
        Ok(key.kid)
    }

    /// Re-reads the key table and swaps in a new key set when it, or the key that may sign at
    /// `now`, changed.
    pub async fn reload(&self, now: UnixTime) -> anyhow::Result<()> {
        let keys = self
            .store
            .signing_keys()
            .await
            .context("reading signing keys")?;
        let first_seen = {
            let mut first_seen = self
                .first_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for key in &keys {
                first_seen.entry(key.kid.clone()).or_insert(now);
            }
            first_seen.clone()
        };
        let signing = choose_signer(&keys, &first_seen, self.rotation.activation_delay, now);
        let current = self.current.load();
        let wanted = fingerprint(
            &keys,
            signing,
            choose_sealer(&keys, &current.browser_sealers, now),
            self.retention,
            now,
        );
        if wanted != current.fingerprint {
            let set = build_key_set(&keys, signing, self.sealer.as_ref(), self.retention, now)?;
            match &set.kid {
                Some(kid) => tracing::info!(%kid, "signing key set reloaded"),
                None => tracing::warn!(
                    "no signing key may sign on this replica yet: it learned of the newest key late; token requests get 503 until it has published it for KEY_ACTIVATION_DELAY_SECS"
                ),
            }
            self.current.store(Arc::new(set));
        }
        Ok(())
    }

    /// Rotates when `KEY_ROTATION_DAYS` is set and the newest key is that old. Replicas race
    /// harmlessly: one rotation wins, the others find its key.
    pub async fn rotate_if_due(&self, now: UnixTime) -> anyhow::Result<()> {
        let Some(every) = self.rotation.every else {
            return Ok(());
        };
        let keys = self
            .store
            .signing_keys()
            .await
            .context("reading signing keys")?;
        if keys
            .first()
            .is_some_and(|newest| newest.created_at + every <= now)
        {
            match self.rotate(now).await {
                Ok(kid) => tracing::info!(%kid, "signing key rotated (KEY_ROTATION_DAYS)"),
                Err(err) => {
                    tracing::debug!(error = %format!("{err:#}"), "automatic rotation lost a race")
                }
            }
        }
        Ok(())
    }

    /// `max-age` for the JWKS: at most `JWKS_MAX_AGE`, and short enough that a cached copy is
    /// refreshed before a rotated key starts signing.
    pub fn jwks_max_age(&self) -> Duration {
        let delay = Duration::from_secs(self.rotation.activation_delay.max(0) as u64);
        JWKS_MAX_AGE.min(delay.saturating_sub(KEY_RELOAD_INTERVAL))
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
                if let Err(err) = manager.rotate_if_due(clock.now()).await {
                    tracing::warn!(error = %format!("{err:#}"), "could not check key rotation");
                }
                if let Err(err) = manager.reload(clock.now()).await {
                    tracing::warn!(error = %format!("{err:#}"), "could not reload signing keys");
                }
            }
        });
    }

    /// Every stored key as this replica stands at `now`: which signs, which are published (and
    /// until when a retired one stays so), newest first. What the console's keys page shows.
    pub async fn overview(&self, now: UnixTime) -> anyhow::Result<Vec<KeyStanding>> {
        let keys = self
            .store
            .signing_keys()
            .await
            .context("reading signing keys")?;
        let signing = self.current_kid();
        Ok(keys
            .iter()
            .map(|key| KeyStanding {
                kid: key.kid.clone(),
                alg: key.alg.clone(),
                created_at: key.created_at,
                retired_at: key.retired_at,
                signing: signing.as_deref() == Some(key.kid.as_str()),
                published: is_published(key, self.retention, now),
                published_until: key.retired_at.map(|retired| retired + self.retention),
            })
            .collect())
    }

    /// The JWKS document (RFC 7517 §5), already serialised.
    pub fn jwks(&self) -> Arc<String> {
        Arc::clone(&self.current.load().jwks)
    }

    pub fn signing_alg(&self) -> SigningAlg {
        self.current.load().alg
    }

    /// The key this replica signs with now; `None` while none may (see the module documentation).
    pub fn current_kid(&self) -> Option<String> {
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

    /// Seals `plaintext` for a cookie that only this provider can open: AES-256-GCM under a key
    /// derived from a stored key's private part, which every replica shares through the key
    /// table (so any replica opens what another sealed). `<kid>.<sealed>`.
    ///
    /// The sealing key is not the signing key: which key may sign depends on when this replica
    /// learned of it, and a sign-in must not fail while no key may sign. It is the newest key
    /// stored at least `SEAL_AFTER` ago (every replica has read it by then), or the oldest.
    pub fn seal_for_browser(&self, plaintext: &[u8]) -> anyhow::Result<String> {
        let set = self.current.load();
        let Some(kid) = &set.sealing_kid else {
            bail!("no stored key opens with this KEY_ENCRYPTION_KEY");
        };
        let (_, sealer) = set
            .browser_sealers
            .iter()
            .find(|(id, _)| id == kid)
            .ok_or_else(|| anyhow!("the sealing key {kid} has no browser sealer"))?;
        let sealed = sealer
            .seal(plaintext)
            .map_err(|_| anyhow!("sealing failed"))?;
        Ok(format!("{kid}.{sealed}"))
    }

    /// Opens what `seal_for_browser` sealed, with any key still in the table (one rotated out
    /// since opens too). `None` for anything forged, altered or unknown.
    pub fn open_from_browser(&self, sealed: &str) -> Option<Vec<u8>> {
        let (kid, sealed) = sealed.split_once('.')?;
        let set = self.current.load();
        let (_, sealer) = set.browser_sealers.iter().find(|(id, _)| id == kid)?;
        sealer.open(sealed).ok()
    }

    /// Signs `claims` as a JWT with the current key (`typ: JWT`, `kid` set).
    pub fn sign(&self, claims: Map<String, Value>) -> anyhow::Result<String> {
        self.sign_typed("JWT", claims)
    }

    /// Signs `claims` with the current key under an explicit `typ`, so that one kind of token
    /// cannot pass for another (`logout+jwt`: Back-Channel Logout 1.0 §2.4, RFC 8725 §3.11).
    pub fn sign_typed(&self, typ: &str, claims: Map<String, Value>) -> anyhow::Result<String> {
        let set = self.current.load();
        let (Some(kid), Some(signer)) = (&set.kid, &set.signer) else {
            bail!("no signing key may sign on this replica yet");
        };
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(kid);
        let payload = JwtPayload::from_map(claims).map_err(|e| anyhow!("invalid claims: {e}"))?;
        jwt::encode_with_signer(&payload, &header, signer.as_ref())
            .map_err(|e| anyhow!("signing failed: {e}"))
    }
}

/// Which keys are published at `now`: unretired ones (a rotated key from the moment it is
/// stored) and those retired less than `retention` ago.
fn is_published(key: &StoredKey, retention: i64, now: UnixTime) -> bool {
    key.retired_at
        .is_none_or(|retired| retired + retention > now)
}

/// The key this replica may sign with at `now`: the newest one that it has published for `delay`
/// and that everyone has had `delay` to learn of (`keys` is newest first). A key with no older key
/// signs at once (no JWKS without it was ever served).
///
/// That key may have been retired already: the rotation retires it when the new key may sign on
/// the replica that rotated, while this one may have learned of the new key later. It keeps
/// signing until the new key may sign here, for `LATE_SIGNING` at most, which its retention
/// covers; after that nothing signs (see the module documentation).
fn choose_signer<'k>(
    keys: &'k [StoredKey],
    first_seen: &HashMap<String, UnixTime>,
    delay: i64,
    now: UnixTime,
) -> Option<&'k StoredKey> {
    let oldest = keys.iter().map(|k| k.generation).min()?;
    keys.iter()
        .find(|k| {
            let seen = first_seen.get(&k.kid).copied().unwrap_or(now);
            k.generation == oldest || k.created_at.max(seen) + delay <= now
        })
        .filter(|k| {
            k.retired_at
                .is_none_or(|retired| retired + LATE_SIGNING > now)
        })
}

/// The key that seals sign-in cookies at `now` (see `seal_for_browser`), among those whose
/// browser sealer this replica has: the newest stored at least `SEAL_AFTER` ago, else the oldest.
fn choose_sealer(
    keys: &[StoredKey],
    sealers: &[(String, Sealer)],
    now: UnixTime,
) -> Option<String> {
    let mut usable = keys
        .iter()
        .filter(|k| sealers.iter().any(|(kid, _)| kid == &k.kid));
    let newest_settled = usable.clone().find(|k| k.created_at + SEAL_AFTER <= now);
    newest_settled
        .or_else(|| usable.next_back())
        .map(|k| k.kid.clone())
}

fn fingerprint(
    keys: &[StoredKey],
    signing: Option<&StoredKey>,
    sealing_kid: Option<String>,
    retention: i64,
    now: UnixTime,
) -> Fingerprint {
    (
        keys.iter()
            .filter(|k| is_published(k, retention, now))
            .map(|k| (k.kid.clone(), k.retired_at))
            .collect(),
        signing.map(|k| k.kid.clone()),
        sealing_kid,
    )
}

fn build_key_set(
    keys: &[StoredKey],
    signing: Option<&StoredKey>,
    sealer: Option<&Sealer>,
    retention: i64,
    now: UnixTime,
) -> anyhow::Result<KeySet> {
    let signer: Option<Box<dyn JwsSigner>> = match signing {
        Some(key) => {
            let private = open_private_jwk(&key.private_jwk, sealer)
                .with_context(|| format!("reading the private part of signing key {}", key.kid))?;
            Some(match alg_of(key)? {
                SigningAlg::Rs256 => Box::new(RS256.signer_from_jwk(&private)?),
                SigningAlg::Es256 => Box::new(ES256.signer_from_jwk(&private)?),
            })
        }
        None => None,
    };
    let alg = match signing.or(keys.first()) {
        Some(key) => alg_of(key)?,
        None => bail!("the signing_keys table is empty"),
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
    // Keys whose private part this replica cannot open (KEY_ENCRYPTION_KEY changed since) seal
    // nothing; the signing key's was opened above.
    let browser_sealers: Vec<(String, Sealer)> = keys
        .iter()
        .filter_map(|k| {
            let private = open_private_json(&k.private_jwk, sealer).ok()?;
            Some((k.kid.clone(), browser_sealer(&private)))
        })
        .collect();
    let sealing_kid = choose_sealer(keys, &browser_sealers, now);
    Ok(KeySet {
        kid: signing.map(|k| k.kid.clone()),
        alg,
        signer,
        verifiers,
        jwks: Arc::new(jwks),
        fingerprint: fingerprint(keys, signing, sealing_kid.clone(), retention, now),
        browser_sealers,
        sealing_kid,
    })
}

fn alg_of(key: &StoredKey) -> anyhow::Result<SigningAlg> {
    SigningAlg::parse(&key.alg)
        .ok_or_else(|| anyhow!("signing key {} has unsupported alg {}", key.kid, key.alg))
}

/// The sealer for browser cookies that belongs to a key: its own AES key, derived from the
/// private JWK with a label of its own, so it is never the key that seals anything else.
fn browser_sealer(private_jwk_json: &str) -> Sealer {
    Sealer::new(&format!("wecom-oidc browser seal v1\n{private_jwk_json}"))
}

fn open_private_jwk(stored: &str, sealer: Option<&Sealer>) -> anyhow::Result<Jwk> {
    Ok(Jwk::from_bytes(
        open_private_json(stored, sealer)?.as_bytes(),
    )?)
}

/// The private JWK's JSON as generated, opened with `KEY_ENCRYPTION_KEY` when sealed at rest.
fn open_private_json(stored: &str, sealer: Option<&Sealer>) -> anyhow::Result<String> {
    Ok(if stored.starts_with(SEALED_PREFIX) {
        let sealer = sealer.ok_or_else(|| {
            anyhow!("the key is encrypted at rest; set KEY_ENCRYPTION_KEY to the value it was sealed with")
        })?;
        let plain = sealer.open(stored).map_err(|_| {
            anyhow!("KEY_ENCRYPTION_KEY does not open the stored key (wrong value?)")
        })?;
        String::from_utf8(plain).context("the decrypted key is not UTF-8")?
    } else {
        stored.to_owned()
    })
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
        match store.insert_signing_key(key, key.created_at).await {
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
