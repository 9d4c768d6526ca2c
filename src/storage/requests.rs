//! Pending authorization requests (the WeCom round trip's state) and single sign-on sessions.

use serde::{de::DeserializeOwned, Serialize};

use super::{column, from_json, to_json, StorageError, StorageResult, Store};

/// A pending request as it was taken out of the store (already deleted there).
#[derive(Debug)]
pub struct PendingRequest<R> {
    pub browser_hash: String,
    pub request: R,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub sub: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

impl Store {
    #[tracing::instrument(skip_all)]
    pub async fn insert_pending_request<R: Serialize>(
        &self,
        id_hash: &str,
        browser_hash: &str,
        request: &R,
        expires_at: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO auth_requests (id_hash, browser_hash, request, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(browser_hash)
        .bind(to_json(request)?)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes the request and returns it, in one statement: of two deliveries of the same WeCom
    /// callback only one can get it.
    #[tracing::instrument(skip_all)]
    pub async fn take_pending_request<R: DeserializeOwned>(
        &self,
        id_hash: &str,
    ) -> StorageResult<PendingRequest<R>> {
        let row = sqlx::query(
            "DELETE FROM auth_requests WHERE id_hash = $1 RETURNING browser_hash, request, expires_at",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StorageError::NotFound)?;
        Ok(PendingRequest {
            browser_hash: column(&row, "browser_hash")?,
            request: from_json(&column::<String>(&row, "request")?)?,
            expires_at: column(&row, "expires_at")?,
        })
    }

    #[tracing::instrument(skip_all, fields(sub = %session.sub))]
    pub async fn insert_session(&self, session: &Session) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, sub, auth_time, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.id_hash)
        .bind(&session.sub)
        .bind(session.auth_time)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live session with this id, if any.
    pub async fn find_session(&self, id_hash: &str, now: i64) -> StorageResult<Option<Session>> {
        let row = sqlx::query(
            "SELECT sub, auth_time, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Session {
                id_hash: id_hash.to_owned(),
                sub: column(&row, "sub")?,
                auth_time: column(&row, "auth_time")?,
                expires_at: column(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends the session and revokes every token issued under it.
    #[tracing::instrument(skip_all)]
    pub async fn end_session(&self, id_hash: &str) -> StorageResult<()> {
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM access_tokens WHERE session_id = $1",
            "DELETE FROM refresh_tokens WHERE session_id = $1",
            "DELETE FROM sessions WHERE id_hash = $1",
        ] {
            sqlx::query(statement)
                .bind(id_hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
