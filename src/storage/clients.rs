//! The client registry, and the short-lived cache of it that every authorize and token request
//! reads.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{column, from_json, to_json, StorageError, StorageResult, Store};
use crate::clock::{Clock, UnixTime};
use crate::domain::{ClientMetadata, RegisteredClient};

/// How long a replica may use a client row it read, in seconds of the application's clock: an
/// administrator's change made elsewhere (another replica, the CLI) — a rotated secret, a deleted
/// client, new redirect URIs — takes at most this long to reach every replica. Changes made
/// through a replica's own store apply there at once.
pub const CLIENT_CACHE_SECS: i64 = 5;

/// Client rows, each with the second (by the application's clock) its read began. An entry is
/// used while younger than `CLIENT_CACHE_SECS` by that clock; whole seconds counted from before
/// the read make the real age of a used entry always less than that. Only found clients are
/// kept: a deleted or unknown one is looked up again each time.
#[derive(Clone)]
pub(super) struct ClientCache {
    entries: moka::sync::Cache<String, (Arc<RegisteredClient>, UnixTime)>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCache")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl ClientCache {
    pub(super) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(10_000)
                // Frees entries nobody asks for again; expiry itself goes by `clock`.
                .time_to_live(Duration::from_secs(CLIENT_CACHE_SECS.unsigned_abs()))
                .build(),
            clock,
        }
    }

    fn get(&self, client_id: &str) -> Option<Arc<RegisteredClient>> {
        let now = self.clock.now();
        self.entries
            .get(client_id)
            .filter(|(_, read_at)| now - read_at < CLIENT_CACHE_SECS)
            .map(|(client, _)| client)
    }

    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    fn insert(&self, client: &RegisteredClient, read_at: UnixTime) {
        self.entries.insert(
            client.client_id.clone(),
            (Arc::new(client.clone()), read_at),
        );
    }

    /// After a change through this store, so that the next read sees the new row.
    fn invalidate(&self, client_id: &str) {
        self.entries.invalidate(client_id);
    }
}

const COLUMNS: &str = "client_id, secret_hash, metadata, created_at, updated_at";

fn client_from_row(row: &sqlx::any::AnyRow) -> StorageResult<RegisteredClient> {
    Ok(RegisteredClient {
        client_id: column(row, "client_id")?,
        secret_hash: column(row, "secret_hash")?,
        metadata: from_json(&column::<String>(row, "metadata")?)?,
        created_at: column(row, "created_at")?,
        updated_at: column(row, "updated_at")?,
    })
}

impl Store {
    #[tracing::instrument(skip_all, fields(client_id = %client.client_id))]
    pub async fn insert_client(&self, client: &RegisteredClient) -> StorageResult<()> {
        sqlx::query(&format!(
            "INSERT INTO clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&client.client_id)
        .bind(&client.secret_hash)
        .bind(to_json(&client.metadata)?)
        .bind(client.created_at)
        .bind(client.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The client, from the short-lived cache when this replica read it a moment ago.
    pub async fn get_client(&self, client_id: &str) -> StorageResult<RegisteredClient> {
        if let Some(client) = self.clients.get(client_id) {
            return Ok(client.as_ref().clone());
        }
        let read_at = self.clients.now();
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StorageError::NotFound)?;
        let client = client_from_row(&row)?;
        self.clients.insert(&client, read_at);
        Ok(client)
    }

    pub async fn list_clients(&self) -> StorageResult<Vec<RegisteredClient>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM clients ORDER BY created_at, client_id"
        ))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(client_from_row)
        .collect()
    }

    /// Replaces the metadata and, when `secret_hash` is `Some`, the secret (`Some(None)` removes it).
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn update_client(
        &self,
        client_id: &str,
        metadata: &ClientMetadata,
        secret_hash: Option<Option<String>>,
        now: i64,
    ) -> StorageResult<()> {
        let result = match secret_hash {
            Some(hash) => {
                sqlx::query("UPDATE clients SET metadata = $1, secret_hash = $2, updated_at = $3 WHERE client_id = $4")
                    .bind(to_json(metadata)?)
                    .bind(hash)
                    .bind(now)
                    .bind(client_id)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("UPDATE clients SET metadata = $1, updated_at = $2 WHERE client_id = $3")
                    .bind(to_json(metadata)?)
                    .bind(now)
                    .bind(client_id)
                    .execute(&self.pool)
                    .await?
            }
        };
        if result.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        self.clients.invalidate(client_id);
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        now: i64,
    ) -> StorageResult<()> {
        let result = sqlx::query(
            "UPDATE clients SET secret_hash = $1, updated_at = $2 WHERE client_id = $3",
        )
        .bind(secret_hash)
        .bind(now)
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        self.clients.invalidate(client_id);
        Ok(())
    }

    /// Removes the client and every code and token issued to it.
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn delete_client(&self, client_id: &str) -> StorageResult<()> {
        let mut tx = self.pool.begin().await?;
        for table in ["authorization_codes", "access_tokens", "refresh_tokens"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE client_id = $1"))
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
        }
        let result = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        tx.commit().await?;
        self.clients.invalidate(client_id);
        Ok(())
    }
}
