//! What JWT client authentication keeps: the `jti` of every accepted assertion until it expires,
//! and the sealed secrets of `client_secret_jwt` clients.

use super::{column, StorageResult, Store};

impl Store {
    /// Records an assertion's `jti` (hashed with its client); `false` when it was seen before.
    /// The primary key makes this single-use across replicas on one database.
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn remember_assertion_jti(
        &self,
        jti_hash: &str,
        client_id: &str,
        expires_at: i64,
    ) -> StorageResult<bool> {
        let result = sqlx::query(
            "INSERT INTO client_assertion_jtis (jti_hash, client_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (jti_hash) DO NOTHING",
        )
        .bind(jti_hash)
        .bind(client_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Stores (or with `None` removes) the sealed secret of a `client_secret_jwt` client.
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn set_client_jwt_secret(
        &self,
        client_id: &str,
        sealed: Option<&str>,
    ) -> StorageResult<()> {
        match sealed {
            Some(sealed) => sqlx::query(
                "INSERT INTO client_jwt_secrets (client_id, secret) VALUES ($1, $2)
                 ON CONFLICT (client_id) DO UPDATE SET secret = excluded.secret",
            )
            .bind(client_id)
            .bind(sealed),
            None => {
                sqlx::query("DELETE FROM client_jwt_secrets WHERE client_id = $1").bind(client_id)
            }
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn client_jwt_secret(&self, client_id: &str) -> StorageResult<Option<String>> {
        sqlx::query("SELECT secret FROM client_jwt_secrets WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.reader)
            .await?
            .map(|row| column(&row, "secret"))
            .transpose()
    }
}
