//! Authorization codes: stored hashed, redeemed once, remembered after use so that a second
//! redemption can revoke what the first one issued (RFC 6749 §4.1.2).

use serde::{de::DeserializeOwned, Serialize};

use super::{column, from_json, to_json, Backend, StorageResult, Store};

/// What a code was issued for; `D` is the protocol layer's details document.
#[derive(Debug, Clone)]
pub struct CodeGrant<D> {
    pub grant_id: String,
    pub client_id: String,
    pub details: D,
    pub expires_at: i64,
}

#[derive(Debug)]
pub enum CodeRedemption<D> {
    /// This call is the one redemption.
    Redeemed(CodeGrant<D>),
    /// The code was redeemed before: the grant it started must be revoked.
    Reused {
        grant_id: String,
        client_id: String,
    },
    Unknown,
}

/// A code about to be stored: only its hash, bound to its client and, when a session issued
/// it, to that session (so that it dies with it).
#[derive(Debug, Clone)]
pub struct NewCode<D> {
    pub code_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub session_id: Option<String>,
    pub details: D,
    pub expires_at: i64,
}

/// The plain insert of a code, with the values `NewCode::bind` gives.
pub(super) const INSERT_CODE: &str = "INSERT INTO authorization_codes (code_hash, grant_id, client_id, session_id, details, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";

impl<D: Serialize> NewCode<D> {
    /// Binds `code_hash, grant_id, client_id, session_id, details, expires_at`, in that order.
    pub(super) fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> StorageResult<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>> {
        Ok(query
            .bind(self.code_hash.as_str())
            .bind(self.grant_id.as_str())
            .bind(self.client_id.as_str())
            .bind(self.session_id.as_deref())
            .bind(to_json(&self.details)?)
            .bind(self.expires_at))
    }
}

impl Store {
    #[tracing::instrument(skip_all, fields(client_id = %code.client_id))]
    pub async fn insert_code<D: Serialize>(&self, code: &NewCode<D>) -> StorageResult<()> {
        let sql = match self.backend {
            // Commits without waiting for the WAL flush (see `Store`'s "Commits that may be
            // lost"): a code lost in a crash fails its exchange, and the person signs in again.
            Backend::Postgres => {
                "INSERT INTO authorization_codes (code_hash, grant_id, client_id, session_id, details, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6 WHERE set_config('synchronous_commit', 'off', true) = 'off'"
            }
            Backend::Sqlite => INSERT_CODE,
        };
        code.bind(sqlx::query(sql))?.execute(&self.pool).await?;
        Ok(())
    }

    /// Marks the code used in one conditional statement, so of two concurrent redemptions exactly
    /// one gets `Redeemed`. A code presented by another client than its own is left untouched and
    /// reported `Unknown` (RFC 6749 §4.1.3: the code is bound to its client), and so is a code
    /// whose session has ended since (logout, or the member's access revoked).
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn redeem_code<D: DeserializeOwned>(
        &self,
        code_hash: &str,
        client_id: &str,
        now: i64,
    ) -> StorageResult<CodeRedemption<D>> {
        let sql = match self.backend {
            // The redemption may commit without waiting for the WAL flush: the tokens it leads
            // to are stored by a durable commit before any is sent, which flushes this one with
            // it. Lost in a crash, it was one whose tokens never reached the client, so the code
            // is redeemable once more, exactly as if that exchange had not happened.
            Backend::Postgres => {
                "UPDATE authorization_codes SET used_at = $1
                 WHERE code_hash = $2 AND client_id = $3 AND used_at IS NULL
                   AND (session_id IS NULL
                        OR EXISTS (SELECT 1 FROM sessions s WHERE s.id_hash = authorization_codes.session_id))
                   AND set_config('synchronous_commit', 'off', true) = 'off'
                 RETURNING grant_id, client_id, details, expires_at"
            }
            Backend::Sqlite => {
                "UPDATE authorization_codes SET used_at = $1
                 WHERE code_hash = $2 AND client_id = $3 AND used_at IS NULL
                   AND (session_id IS NULL
                        OR EXISTS (SELECT 1 FROM sessions s WHERE s.id_hash = authorization_codes.session_id))
                 RETURNING grant_id, client_id, details, expires_at"
            }
        };
        let row = sqlx::query(sql)
            .bind(now)
            .bind(code_hash)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            return Ok(CodeRedemption::Redeemed(CodeGrant {
                grant_id: column(&row, "grant_id")?,
                client_id: column(&row, "client_id")?,
                details: from_json(&column::<String>(&row, "details")?)?,
                expires_at: column(&row, "expires_at")?,
            }));
        }
        let used = sqlx::query(
            "SELECT grant_id, client_id FROM authorization_codes
             WHERE code_hash = $1 AND client_id = $2 AND used_at IS NOT NULL",
        )
        .bind(code_hash)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        match used {
            Some(row) => Ok(CodeRedemption::Reused {
                grant_id: column(&row, "grant_id")?,
                client_id: column(&row, "client_id")?,
            }),
            None => Ok(CodeRedemption::Unknown),
        }
    }
}
