//! The client registry: registering, updating, rotating and removing relying parties. Shared by
//! the admin HTTP API (`http`) and the command line (`cli`); nothing here knows about either.
//!
//! Validation of metadata lives in `domain::client`, SQL in `storage`; `http` is the only part that
//! knows actix-web.

pub mod cli;
pub mod http;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::clock::UnixTime;
use crate::crypto::{digest_generated_secret, hash_secret, new_secret_token, random_token};
use crate::domain::client::MetadataError;
use crate::domain::{AuthMethod, ClientRegistration, RegisteredClient};
use crate::storage::{StorageError, Store};

/// A client as registered, with its secret when one was just made (shown once, never stored).
#[derive(Debug)]
pub struct CreatedClient {
    pub client: RegisteredClient,
    pub client_secret: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// RFC 7591 §3.2.2 `invalid_redirect_uri` / `invalid_client_metadata`.
    #[error("{}: {}", .0.error, .0.description)]
    Invalid(MetadataError),
    #[error("no client with that client_id")]
    NotFound,
    #[error("public and private_key_jwt clients have no secret to rotate")]
    PublicClient,
    #[error("database unavailable")]
    Unavailable,
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<StorageError> for RegistryError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound => RegistryError::NotFound,
            StorageError::Unavailable(_) => RegistryError::Unavailable,
            StorageError::Conflict => {
                RegistryError::Unexpected(anyhow::anyhow!("client_id collision"))
            }
            StorageError::Unexpected(e) => RegistryError::Unexpected(e),
        }
    }
}

/// Bounds on a secret an administrator chooses: short secrets are guessable even behind argon2,
/// and a huge one is only a way to make hashing expensive.
const CHOSEN_SECRET_CHARS: std::ops::RangeInclusive<usize> = 8..=512;

/// A client secret set by an administrator (`client_secret` in the admin API, `--client-secret`
/// on the command line), to move a relying party from another provider without touching its
/// configuration. Stored with argon2id, since a person may have chosen it.
#[derive(Debug)]
pub struct ChosenSecret(SecretString);

impl ChosenSecret {
    pub fn parse(raw: &str) -> Result<Self, RegistryError> {
        if !CHOSEN_SECRET_CHARS.contains(&raw.chars().count()) || raw.chars().any(char::is_control)
        {
            return Err(RegistryError::Invalid(MetadataError {
                error: "invalid_client_metadata",
                description: format!(
                    "client_secret must be {} to {} printable characters",
                    CHOSEN_SECRET_CHARS.start(),
                    CHOSEN_SECRET_CHARS.end()
                ),
            }));
        }
        Ok(Self(SecretString::from(raw)))
    }
}

/// Refuses an administrator's secret for a `client_secret_jwt` client (400
/// `invalid_client_metadata`), rather than making it the HS256 key.
///
/// HS256 needs the secret itself to verify an assertion, so a `client_secret_jwt` client's secret
/// is kept sealed beside its hash (`oidc::client_assertion`). A secret a person chose is kept only
/// as an argon2id hash, for two reasons that HS256 would both undo: a copy of the database must
/// not reveal it, and guessing it must be slow. Keeping it sealed (or plain, without
/// KEY_ENCRYPTION_KEY) gives up the first; and every assertion the client sends is an HMAC of
/// the secret, against which a guessable secret can be tried offline at HMAC speed, which gives
/// up the second. RFC 7518 §3.2 also requires an HS256 key of at least 256 bits, which a
/// generated secret has (256 random bits) and an 8-character choice does not. So such a client
/// keeps a generated secret; an application that must keep its old secret uses
/// client_secret_basic or client_secret_post instead.
fn refuse_chosen_secret_for_jwt(
    method: AuthMethod,
    chosen: Option<&ChosenSecret>,
) -> Result<(), RegistryError> {
    if method == AuthMethod::ClientSecretJwt && chosen.is_some() {
        return Err(RegistryError::Invalid(MetadataError {
            error: "invalid_client_metadata",
            description: "a client_secret_jwt client cannot have a chosen client_secret: its \
                          HS256 key must be a generated secret (rotate it without choosing one)"
                .to_owned(),
        }));
    }
    Ok(())
}

/// The secret to store: a new generated one (returned, to be shown once, and stored as a
/// digest), or the administrator's (not returned; argon2id on the blocking pool).
async fn new_secret(
    chosen: Option<ChosenSecret>,
) -> Result<(Option<String>, String), RegistryError> {
    match chosen {
        None => {
            let secret = new_secret_token();
            let digest = digest_generated_secret(&secret);
            Ok((Some(secret), digest))
        }
        Some(ChosenSecret(secret)) => {
            let hash = tokio::task::spawn_blocking(move || hash_secret(secret.expose_secret()))
                .await
                .map_err(|e| RegistryError::Unexpected(e.into()))?
                .map_err(|e| {
                    RegistryError::Unexpected(anyhow::anyhow!("hashing the secret: {e}"))
                })?;
            Ok((None, hash))
        }
    }
}

pub async fn create_client(
    store: &Store,
    registration: ClientRegistration,
    chosen_secret: Option<ChosenSecret>,
    now: UnixTime,
) -> Result<CreatedClient, RegistryError> {
    let metadata = registration
        .into_metadata()
        .map_err(RegistryError::Invalid)?;
    refuse_chosen_secret_for_jwt(metadata.token_endpoint_auth_method, chosen_secret.as_ref())?;
    let (client_secret, secret_hash) = if metadata.token_endpoint_auth_method.uses_secret() {
        let (secret, hash) = new_secret(chosen_secret).await?;
        (secret, Some(hash))
    } else if chosen_secret.is_some() {
        return Err(RegistryError::PublicClient);
    } else {
        (None, None)
    };
    let client = RegisteredClient {
        client_id: random_token(16),
        secret_hash,
        metadata,
        created_at: now,
        updated_at: now,
    };
    store.insert_client(&client).await?;
    Ok(CreatedClient {
        client,
        client_secret,
    })
}

/// Replaces the metadata. A client that becomes confidential gets a new secret (returned when
/// generated); one that becomes public loses its secret; otherwise the secret is kept, unless the
/// administrator sets one.
pub async fn update_client(
    store: &Store,
    client_id: &str,
    registration: ClientRegistration,
    chosen_secret: Option<ChosenSecret>,
    now: UnixTime,
) -> Result<CreatedClient, RegistryError> {
    let current = store.get_client(client_id).await?;
    let metadata = registration
        .into_metadata()
        .map_err(RegistryError::Invalid)?;
    refuse_chosen_secret_for_jwt(metadata.token_endpoint_auth_method, chosen_secret.as_ref())?;
    let was_confidential = current.metadata.token_endpoint_auth_method.uses_secret();
    let is_confidential = metadata.token_endpoint_auth_method.uses_secret();
    // A client turning to client_secret_jwt needs a secret the server can read back, which only
    // a new one gives (the old one exists only as its hash).
    let becomes_secret_jwt = metadata.token_endpoint_auth_method == AuthMethod::ClientSecretJwt
        && current.metadata.token_endpoint_auth_method != AuthMethod::ClientSecretJwt;
    let (client_secret, secret_change) = match (was_confidential, is_confidential) {
        (_, false) if chosen_secret.is_some() => return Err(RegistryError::PublicClient),
        (true, true) if chosen_secret.is_some() => {
            let (secret, hash) = new_secret(chosen_secret).await?;
            (secret, Some(Some(hash)))
        }
        (false, true) | (true, true) if becomes_secret_jwt || !was_confidential => {
            let (secret, hash) = new_secret(None).await?;
            (secret, Some(Some(hash)))
        }
        (true, false) => (None, Some(None)),
        _ => (None, None),
    };
    store
        .update_client(client_id, &metadata, secret_change.clone(), now)
        .await?;
    Ok(CreatedClient {
        client: RegisteredClient {
            metadata,
            secret_hash: secret_change.unwrap_or(current.secret_hash),
            updated_at: now,
            ..current
        },
        client_secret,
    })
}

/// Replaces a confidential client's secret with a generated one (returned) or the
/// administrator's (`None` returned).
pub async fn rotate_secret(
    store: &Store,
    client_id: &str,
    chosen_secret: Option<ChosenSecret>,
    now: UnixTime,
) -> Result<Option<String>, RegistryError> {
    let client = store.get_client(client_id).await?;
    if !client.metadata.token_endpoint_auth_method.uses_secret() {
        return Err(RegistryError::PublicClient);
    }
    refuse_chosen_secret_for_jwt(
        client.metadata.token_endpoint_auth_method,
        chosen_secret.as_ref(),
    )?;
    let (secret, hash) = new_secret(chosen_secret).await?;
    store.set_client_secret(client_id, &hash, now).await?;
    Ok(secret)
}

/// Keeps what `client_secret_jwt` needs after the registry made a secret or changed a client's
/// method (see `oidc::client_assertion`). Call it with the secret just handed out, if any.
pub async fn keep_jwt_secret(
    store: &Store,
    key_encryption_key: Option<&SecretString>,
    client: &RegisteredClient,
    new_secret: Option<&str>,
) -> Result<(), RegistryError> {
    crate::oidc::client_assertion::keep_jwt_secret(store, key_encryption_key, client, new_secret)
        .await
        .map_err(RegistryError::Unexpected)
}

/// [`create_client`], then [`keep_jwt_secret`]: a registration as the admin API and the console
/// make it.
pub async fn register_client(
    store: &Store,
    key_encryption_key: Option<&SecretString>,
    registration: ClientRegistration,
    chosen_secret: Option<ChosenSecret>,
    now: UnixTime,
) -> Result<CreatedClient, RegistryError> {
    let created = create_client(store, registration, chosen_secret, now).await?;
    keep_jwt_secret(
        store,
        key_encryption_key,
        &created.client,
        created.client_secret.as_deref(),
    )
    .await?;
    tracing::info!(client_id = %created.client.client_id, "client registered");
    Ok(created)
}

/// [`update_client`], then [`keep_jwt_secret`].
pub async fn reregister_client(
    store: &Store,
    key_encryption_key: Option<&SecretString>,
    client_id: &str,
    registration: ClientRegistration,
    chosen_secret: Option<ChosenSecret>,
    now: UnixTime,
) -> Result<CreatedClient, RegistryError> {
    let updated = update_client(store, client_id, registration, chosen_secret, now).await?;
    keep_jwt_secret(
        store,
        key_encryption_key,
        &updated.client,
        updated.client_secret.as_deref(),
    )
    .await?;
    Ok(updated)
}

/// [`rotate_secret`], then [`keep_jwt_secret`]; the new secret when it was generated.
pub async fn rotate_client_secret(
    store: &Store,
    key_encryption_key: Option<&SecretString>,
    client_id: &str,
    chosen_secret: Option<ChosenSecret>,
    now: UnixTime,
) -> Result<Option<String>, RegistryError> {
    let secret = rotate_secret(store, client_id, chosen_secret, now).await?;
    keep_jwt_secret(
        store,
        key_encryption_key,
        &store.get_client(client_id).await?,
        secret.as_deref(),
    )
    .await?;
    Ok(secret)
}

/// The RFC 7591 §3.2.1 client information response; `client_secret` only when just made.
pub fn client_document(client: &RegisteredClient, secret: Option<&str>) -> Value {
    let mut doc = serde_json::to_value(&client.metadata).unwrap_or_else(|_| json!({}));
    doc["client_id"] = json!(client.client_id);
    doc["client_id_issued_at"] = json!(client.created_at);
    if client.metadata.token_endpoint_auth_method.uses_secret() {
        // 0: the secret does not expire (RFC 7591 §3.2.1).
        doc["client_secret_expires_at"] = json!(0);
    }
    if let Some(secret) = secret {
        doc["client_secret"] = json!(secret);
    }
    doc
}
