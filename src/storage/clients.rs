//! The client registry.

use std::sync::Arc;

use super::{column, from_json, to_json, StorageError, StorageResult, Store};
use crate::domain::{ClientMetadata, RegisteredClient};

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
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StorageError::NotFound)?;
        let client = client_from_row(&row)?;
        self.clients
            .insert(client_id.to_owned(), Arc::new(client.clone()));
        Ok(client)
    }

    pub async fn list_clients(&self) -> StorageResult<Vec<RegisteredClient>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM clients ORDER BY created_at, client_id"
        ))
        .fetch_all(&self.pool)
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
        // After the write, so that the next read on this replica sees the new row.
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
        // After the write, so that the next read on this replica sees the new row.
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
        // After the write, so that the next read on this replica sees the new row.
        self.clients.invalidate(client_id);
        Ok(())
    }
}
