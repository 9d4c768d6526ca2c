//! Snapshots of WeCom member profiles, keyed by `sub`.

use serde::{de::DeserializeOwned, Serialize};

use super::{column, from_json, to_json, StorageError, StorageResult, Store};

impl Store {
    /// Inserts or replaces the profile of `sub`.
    #[tracing::instrument(skip_all, fields(sub))]
    pub async fn upsert_user<P: Serialize>(
        &self,
        sub: &str,
        profile: &P,
        now: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO users (sub, profile, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (sub) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
        )
        .bind(sub)
        .bind(to_json(profile)?)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_user<P: DeserializeOwned>(&self, sub: &str) -> StorageResult<P> {
        let row = sqlx::query("SELECT profile FROM users WHERE sub = $1")
            .bind(sub)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StorageError::NotFound)?;
        from_json(&column::<String>(&row, "profile")?)
    }
}
