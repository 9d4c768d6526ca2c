//! Access and refresh tokens, stored as SHA-256 hashes; grants and their revocation.
//!
//! A token is live only while its grant is not in `revoked_grants`, checked in the same query
//! that reads the token. Revocation therefore holds even against a token stored concurrently
//! with it (a code replayed while its first redemption is still issuing tokens).

use serde::de::DeserializeOwned;

use super::{column, from_json, StorageResult, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    pub token_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub sub: String,
    pub scope: String,
    pub session_id: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub sub: String,
    pub scope: String,
    pub session_id: Option<String>,
    pub auth_time: i64,
    /// How the person authenticated at `auth_time` (OIDC `amr`, space-separated).
    pub amr: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

#[derive(Debug)]
pub enum RefreshRotation {
    /// This call is the one use of the token.
    Rotated(RefreshTokenRecord),
    /// The token was already rotated: someone replays it, so the grant must die (RFC 9700 §4.14.2)
    /// — unless this is a concurrent refresh moments after the rotation (`used_at_ms`, `record`).
    Reused {
        grant_id: String,
        client_id: String,
        /// When it was rotated, in milliseconds since the epoch.
        used_at_ms: i64,
        record: Box<RefreshTokenRecord>,
    },
    Unknown,
}

const ACCESS_COLUMNS: &str =
    "token_hash, grant_id, client_id, sub, scope, session_id, issued_at, expires_at";
const REFRESH_COLUMNS: &str =
    "token_hash, grant_id, client_id, sub, scope, session_id, auth_time, amr, issued_at, expires_at";

fn access_from_row(row: &sqlx::any::AnyRow) -> StorageResult<AccessTokenRecord> {
    Ok(AccessTokenRecord {
        token_hash: column(row, "token_hash")?,
        grant_id: column(row, "grant_id")?,
        client_id: column(row, "client_id")?,
        sub: column(row, "sub")?,
        scope: column(row, "scope")?,
        session_id: column(row, "session_id")?,
        issued_at: column(row, "issued_at")?,
        expires_at: column(row, "expires_at")?,
    })
}

fn refresh_from_row(row: &sqlx::any::AnyRow) -> StorageResult<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        token_hash: column(row, "token_hash")?,
        grant_id: column(row, "grant_id")?,
        client_id: column(row, "client_id")?,
        sub: column(row, "sub")?,
        scope: column(row, "scope")?,
        session_id: column(row, "session_id")?,
        auth_time: column(row, "auth_time")?,
        amr: column::<Option<String>>(row, "amr")?.unwrap_or_default(),
        issued_at: column(row, "issued_at")?,
        expires_at: column(row, "expires_at")?,
    })
}

/// A token is stored only for a `sub` whose binding to a userid has not ended (`$4` is the
/// token's `sub`): a retired `sub` is never issued again, even by a grant that raced its release.
const SUB_NOT_RETIRED: &str =
    "NOT EXISTS (SELECT 1 FROM users WHERE sub = $4 AND released_at IS NOT NULL)";

impl Store {
    /// Stores a new access token unless its grant has been revoked meanwhile, or its `sub`
    /// retired; `false` then.
    #[tracing::instrument(skip_all, fields(client_id = %token.client_id))]
    pub async fn insert_access_token(&self, token: &AccessTokenRecord) -> StorageResult<bool> {
        let result = sqlx::query(&format!(
            "INSERT INTO access_tokens ({ACCESS_COLUMNS})
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE NOT EXISTS (SELECT 1 FROM revoked_grants WHERE grant_id = $2)
               AND {SUB_NOT_RETIRED}"
        ))
        .bind(&token.token_hash)
        .bind(&token.grant_id)
        .bind(&token.client_id)
        .bind(&token.sub)
        .bind(&token.scope)
        .bind(&token.session_id)
        .bind(token.issued_at)
        .bind(token.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(client_id = %token.client_id))]
    pub async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> StorageResult<bool> {
        let result = sqlx::query(&format!(
            "INSERT INTO refresh_tokens ({REFRESH_COLUMNS})
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
             WHERE NOT EXISTS (SELECT 1 FROM revoked_grants WHERE grant_id = $2)
               AND {SUB_NOT_RETIRED}"
        ))
        .bind(&token.token_hash)
        .bind(&token.grant_id)
        .bind(&token.client_id)
        .bind(&token.sub)
        .bind(&token.scope)
        .bind(&token.session_id)
        .bind(token.auth_time)
        .bind(&token.amr)
        .bind(token.issued_at)
        .bind(token.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The access token with this hash if it is still live.
    pub async fn find_access_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StorageResult<Option<AccessTokenRecord>> {
        sqlx::query(&format!(
            "SELECT {ACCESS_COLUMNS} FROM access_tokens WHERE token_hash = $1 AND expires_at > $2 AND NOT EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = access_tokens.grant_id)"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(access_from_row)
        .transpose()
    }

    /// The live access token with this hash and the stored profile of its subject, in one round
    /// trip (what userinfo needs).
    pub async fn find_access_token_with_user<P: DeserializeOwned>(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StorageResult<Option<(AccessTokenRecord, Option<P>)>> {
        let row = sqlx::query(
            "SELECT t.token_hash, t.grant_id, t.client_id, t.sub, t.scope, t.session_id, t.issued_at,
                    t.expires_at, u.profile
             FROM access_tokens t LEFT JOIN users u ON u.sub = t.sub
             WHERE t.token_hash = $1 AND t.expires_at > $2
               AND NOT EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = t.grant_id)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let profile = column::<Option<String>>(&row, "profile")?
            .map(|raw| from_json(&raw))
            .transpose()?;
        Ok(Some((access_from_row(&row)?, profile)))
    }

    /// The refresh token with this hash if it is live and not yet rotated (for introspection).
    pub async fn find_refresh_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StorageResult<Option<RefreshTokenRecord>> {
        sqlx::query(&format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1 AND expires_at > $2 AND used_at IS NULL AND NOT EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = refresh_tokens.grant_id)"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(refresh_from_row)
        .transpose()
    }

    /// The member holding a live, unused refresh token of `client_id`, when WeCom last
    /// confirmed them and their stored profile: what a refresh must know before it uses the
    /// token up, read in the same round trip.
    pub async fn refresh_token_holder<P: DeserializeOwned>(
        &self,
        token_hash: &str,
        client_id: &str,
        now: i64,
    ) -> StorageResult<Option<(String, i64, Option<P>)>> {
        let row = sqlx::query(
            "SELECT r.sub, COALESCE(u.checked_at, 0) AS checked_at, u.profile
             FROM refresh_tokens r LEFT JOIN users u ON u.sub = r.sub
             WHERE r.token_hash = $1 AND r.client_id = $2 AND r.used_at IS NULL AND r.expires_at > $3",
        )
        .bind(token_hash)
        .bind(client_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let profile = column::<Option<String>>(&row, "profile")?
                .map(|document| from_json(&document))
                .transpose()?;
            Ok((column(&row, "sub")?, column(&row, "checked_at")?, profile))
        })
        .transpose()
    }

    /// Marks the refresh token used in one conditional statement: of two concurrent uses, one wins.
    /// Another client's token is left untouched and reported `Unknown` (RFC 6749 §6).
    /// `used_at` keeps whole seconds like every other timestamp; `used_at_ms` the millisecond,
    /// for the reuse grace.
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        client_id: &str,
        now_ms: i64,
    ) -> StorageResult<RefreshRotation> {
        let row = sqlx::query(&format!(
            "UPDATE refresh_tokens SET used_at = $1, used_at_ms = $2
             WHERE token_hash = $3 AND client_id = $4 AND used_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = refresh_tokens.grant_id)
             RETURNING {REFRESH_COLUMNS}"
        ))
        .bind(now_ms.div_euclid(1000))
        .bind(now_ms)
        .bind(token_hash)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(RefreshRotation::Rotated(refresh_from_row(&row)?));
        }
        // A token rotated before `used_at_ms` existed counts from the start of its second.
        let used = sqlx::query(&format!(
            "SELECT {REFRESH_COLUMNS}, COALESCE(used_at_ms, used_at * 1000) AS used_at_ms FROM refresh_tokens
             WHERE token_hash = $1 AND client_id = $2 AND used_at IS NOT NULL"
        ))
        .bind(token_hash)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        match used {
            Some(row) => Ok(RefreshRotation::Reused {
                grant_id: column(&row, "grant_id")?,
                client_id: column(&row, "client_id")?,
                used_at_ms: column(&row, "used_at_ms")?,
                record: Box::new(refresh_from_row(&row)?),
            }),
            None => Ok(RefreshRotation::Unknown),
        }
    }

    /// Kills a whole grant: its access and refresh tokens now, and any token still being issued
    /// for it later (the `revoked_grants` row outlives every token of the grant).
    #[tracing::instrument(skip_all, fields(grant_id))]
    pub async fn revoke_grant(&self, grant_id: &str, remember_until: i64) -> StorageResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO revoked_grants (grant_id, expires_at) VALUES ($1, $2) ON CONFLICT (grant_id) DO NOTHING",
        )
        .bind(grant_id)
        .bind(remember_until)
        .execute(&mut *tx)
        .await?;
        for statement in [
            "DELETE FROM access_tokens WHERE grant_id = $1",
            "DELETE FROM refresh_tokens WHERE grant_id = $1",
        ] {
            sqlx::query(statement)
                .bind(grant_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Remembers, for as long as the session lives, that `client_id` received an ID token from
    /// the session with this id hash (nothing when the session has ended meanwhile).
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn record_session_client(
        &self,
        session_id_hash: &str,
        client_id: &str,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO session_clients (session_id, client_id, sub, expires_at)
             SELECT id_hash, $2, sub, expires_at FROM sessions WHERE id_hash = $1
             ON CONFLICT (session_id, client_id) DO NOTHING",
        )
        .bind(session_id_hash)
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The (client_id, sub) pairs that received an ID token from the session with this id hash,
    /// or hold tokens issued under it: who must hear of its end by back-channel logout. Read
    /// before `end_session` deletes them.
    #[tracing::instrument(skip_all)]
    pub async fn clients_of_session(
        &self,
        session_id_hash: &str,
    ) -> StorageResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT client_id, sub FROM session_clients WHERE session_id = $1
             UNION
             SELECT client_id, sub FROM access_tokens WHERE session_id = $1
             UNION
             SELECT client_id, sub FROM refresh_tokens WHERE session_id = $1
             ORDER BY client_id, sub",
        )
        .bind(session_id_hash)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((column(row, "client_id")?, column(row, "sub")?)))
            .collect()
    }

    /// Revokes one access token of `client_id`; another client's token is left alone (RFC 7009 §2.1).
    pub async fn revoke_access_token(
        &self,
        token_hash: &str,
        client_id: &str,
    ) -> StorageResult<bool> {
        let result =
            sqlx::query("DELETE FROM access_tokens WHERE token_hash = $1 AND client_id = $2")
                .bind(token_hash)
                .bind(client_id)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() > 0)
    }

    /// The grant of a refresh token of `client_id`, if it exists (RFC 7009 §2.1: revoking a refresh
    /// token revokes the grant's access tokens too).
    pub async fn refresh_token_grant(
        &self,
        token_hash: &str,
        client_id: &str,
    ) -> StorageResult<Option<String>> {
        let row = sqlx::query(
            "SELECT grant_id FROM refresh_tokens WHERE token_hash = $1 AND client_id = $2",
        )
        .bind(token_hash)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| column(&row, "grant_id")).transpose()
    }
}
