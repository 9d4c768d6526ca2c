//! Signing keys, one row per `kid`, shared by every replica.

use super::{column, StorageResult, Store};

#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    pub generation: i64,
    pub alg: String,
    /// The private JWK, sealed when KEY_ENCRYPTION_KEY is set.
    pub private_jwk: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl Store {
    /// Stores `key` as generation `key.generation` and retires every older key at `retire_older_at`
    /// (when the new key starts signing), in one transaction. The unique generation makes concurrent inserts of the same generation (two
    /// replicas starting on an empty database, two rotations at once) leave exactly one winner;
    /// the loser gets `false` and reads the winner's key.
    #[tracing::instrument(skip_all, fields(kid = %key.kid, generation = key.generation))]
    pub async fn insert_signing_key(
        &self,
        key: &StoredKey,
        retire_older_at: i64,
    ) -> StorageResult<bool> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO signing_keys (kid, generation, alg, private_jwk, public_jwk, created_at, retired_at)
             VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (generation) DO NOTHING",
        )
        .bind(&key.kid)
        .bind(key.generation)
        .bind(&key.alg)
        .bind(&key.private_jwk)
        .bind(&key.public_jwk)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            sqlx::query(
                "UPDATE signing_keys SET retired_at = $1 WHERE generation < $2 AND retired_at IS NULL",
            )
            .bind(retire_older_at)
            .bind(key.generation)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Every key, newest generation first.
    pub async fn signing_keys(&self) -> StorageResult<Vec<StoredKey>> {
        sqlx::query(
            "SELECT kid, generation, alg, private_jwk, public_jwk, created_at, retired_at
             FROM signing_keys ORDER BY generation DESC",
        )
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            Ok(StoredKey {
                kid: column(row, "kid")?,
                generation: column(row, "generation")?,
                alg: column(row, "alg")?,
                private_jwk: column(row, "private_jwk")?,
                public_jwk: column(row, "public_jwk")?,
                created_at: column(row, "created_at")?,
                retired_at: column(row, "retired_at")?,
            })
        })
        .collect()
    }
}
