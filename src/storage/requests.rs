//! Pending authorization requests too large for a cookie (see `oidc::login_state`), consumed
//! WeCom states, and single sign-on sessions.

use serde::{de::DeserializeOwned, Serialize};

use super::{
    column, from_json, to_json, AuditEvent, Backend, NewCode, StorageError, StorageResult, Store,
};

/// A pending request as it was taken out of the store (already deleted there).
#[derive(Debug)]
pub struct PendingRequest<R> {
    pub browser_hash: String,
    pub request: R,
    pub expires_at: i64,
}

/// A `sessions` row read with all its columns.
fn session_from_row(row: &sqlx::any::AnyRow) -> StorageResult<Session> {
    Ok(Session {
        id_hash: column(row, "id_hash")?,
        sub: column(row, "sub")?,
        auth_time: column(row, "auth_time")?,
        expires_at: column(row, "expires_at")?,
        amr: column::<Option<String>>(row, "amr")?.unwrap_or_default(),
    })
}

/// The WeCom state a sign-in completes, remembered until `expires_at` (when the request it named
/// has expired anyway) so that it completes once.
#[derive(Debug, Clone, Copy)]
pub struct ConsumedState<'a> {
    pub state_hash: &'a str,
    pub expires_at: i64,
}

/// Everything a completed WeCom sign-in writes at once.
#[derive(Debug)]
pub struct SignIn<'a, D, P> {
    /// Consumed here, so that the sign-in completes once.
    pub state: ConsumedState<'a>,
    /// The profile WeCom just confirmed, for a member whose row exists (`session.sub`'s); a
    /// first sign-in's row is written before, with its profile, by `save_member`.
    pub profile_update: Option<&'a P>,
    pub session: &'a Session,
    /// The code for the client; none for a device sign-in, whose grant waits for the person's
    /// approval instead.
    pub code: Option<&'a NewCode<D>>,
    pub audit: &'a AuditEvent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub sub: String,
    pub auth_time: i64,
    pub expires_at: i64,
    /// How the person authenticated (OIDC `amr` values, space-separated).
    pub amr: String,
}

/// Where one member's access stands: what `revoke_member` ended, or what the admin API shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberGrant {
    pub grant_id: String,
    pub client_id: String,
    /// The session (id hash) the grant came from.
    pub session_id: Option<String>,
    /// Whether a refresh token keeps the grant alive past its access tokens.
    pub refreshable: bool,
    pub expires_at: i64,
}

/// What revoking a member ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedAccess {
    /// The grants that held live tokens.
    pub grants: Vec<MemberGrant>,
    pub sessions: Vec<Session>,
    /// (session id hash, client_id): each client that received an ID token from a session.
    pub session_clients: Vec<(String, String)>,
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
        let sql = match self.backend {
            // Commits without waiting for the WAL flush (see `Store`'s "Commits that may be
            // lost"): a request lost in a crash costs the person one more click on "sign in".
            Backend::Postgres => {
                "INSERT INTO auth_requests (id_hash, browser_hash, request, expires_at)
                 SELECT $1, $2, $3, $4 WHERE set_config('synchronous_commit', 'off', true) = 'off'"
            }
            Backend::Sqlite => {
                "INSERT INTO auth_requests (id_hash, browser_hash, request, expires_at) VALUES ($1, $2, $3, $4)"
            }
        };
        sqlx::query(sql)
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
        let sql = match self.backend {
            // Not waiting for the flush is safe here too: a request whose deletion was lost
            // comes back after a crash, but the WeCom code that would complete it is single-use
            // at WeCom, and whatever the callback wrote next (the session) commits durably,
            // which flushes this deletion before it.
            Backend::Postgres => {
                "DELETE FROM auth_requests
                 WHERE id_hash = $1 AND set_config('synchronous_commit', 'off', true) = 'off'
                 RETURNING browser_hash, request, expires_at"
            }
            Backend::Sqlite => {
                "DELETE FROM auth_requests WHERE id_hash = $1 RETURNING browser_hash, request, expires_at"
            }
        };
        let row = sqlx::query(sql)
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

    /// A WeCom sign-in's writes (see `SignIn`). On Postgres they are one statement
    /// (data-modifying CTEs: one round trip, one commit, and a unique violation anywhere writes
    /// none of it); on SQLite one transaction of five statements sent at once. The commit waits for the WAL flush: the session
    /// must survive a crash, or the person would have to scan again. `Conflict` when the state
    /// was consumed already: a replayed callback.
    #[tracing::instrument(skip_all, fields(sub = %sign_in.session.sub))]
    pub async fn start_session<D: Serialize, P: Serialize>(
        &self,
        sign_in: &SignIn<'_, D, P>,
    ) -> StorageResult<()> {
        let SignIn {
            state,
            profile_update,
            session,
            code,
            audit,
        } = sign_in;
        let profile = profile_update.map(to_json).transpose()?;
        // The same five writes, numbered alike. `$20 IS NOT NULL`: a first sign-in's profile
        // was stored with its row.
        let sql = match self.backend {
            Backend::Postgres => {
                "WITH consumed AS (
                     INSERT INTO consumed_login_states (state_hash, expires_at) VALUES ($18, $19)),
                 member AS (
                     UPDATE users SET profile = $20, updated_at = $15, checked_at = $15
                     WHERE sub = $14 AND $20 IS NOT NULL),
                 new_code AS (
                     INSERT INTO authorization_codes (code_hash, grant_id, client_id, session_id, details, expires_at)
                     SELECT $1, $2, $3, $4, $5, $6 WHERE $1 IS NOT NULL),
                 new_audit AS (
                     INSERT INTO audit_log (at, event, outcome, sub, client_id, reason)
                     VALUES ($7, $8, $9, $10, $11, $12))
                 INSERT INTO sessions (id_hash, sub, auth_time, expires_at, amr) VALUES ($13, $14, $15, $16, $17)"
            }
            // Several statements in one call: sqlx runs them one after the other on the
            // connection's thread, binding each `$n` from the one argument list, so the write
            // lock is held for one hand-off to that thread, not five.
            Backend::Sqlite => {
                "INSERT INTO consumed_login_states (state_hash, expires_at) VALUES ($18, $19);
                 UPDATE users SET profile = $20, updated_at = $15, checked_at = $15
                 WHERE sub = $14 AND $20 IS NOT NULL;
                 INSERT INTO authorization_codes (code_hash, grant_id, client_id, session_id, details, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6 WHERE $1 IS NOT NULL;
                 INSERT INTO audit_log (at, event, outcome, sub, client_id, reason)
                 VALUES ($7, $8, $9, $10, $11, $12);
                 INSERT INTO sessions (id_hash, sub, auth_time, expires_at, amr) VALUES ($13, $14, $15, $16, $17)"
            }
        };
        let details = code.map(|c| to_json(&c.details)).transpose()?;
        let query = audit
            .bind(
                sqlx::query(sql)
                    .bind(code.map(|c| c.code_hash.as_str()))
                    .bind(code.map(|c| c.grant_id.as_str()))
                    .bind(code.map(|c| c.client_id.as_str()))
                    .bind(code.and_then(|c| c.session_id.as_deref()))
                    .bind(details)
                    .bind(code.map(|c| c.expires_at)),
            )
            .bind(&session.id_hash)
            .bind(&session.sub)
            .bind(session.auth_time)
            .bind(session.expires_at)
            .bind(&session.amr)
            .bind(state.state_hash)
            .bind(state.expires_at)
            .bind(profile);
        match self.backend {
            Backend::Postgres => {
                query.execute(&self.pool).await?;
            }
            Backend::Sqlite => {
                // A failure part-way rolls the whole sign-in back with the transaction.
                let mut transaction = self.pool.begin().await?;
                query.execute(&mut *transaction).await?;
                transaction.commit().await?;
            }
        }
        Ok(())
    }

    /// The live session with this id, if any.
    pub async fn find_session(&self, id_hash: &str, now: i64) -> StorageResult<Option<Session>> {
        let row = sqlx::query(
            "SELECT id_hash, sub, auth_time, expires_at, amr FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// The live sessions of `sub`, newest first.
    pub async fn sessions_of(&self, sub: &str, now: i64) -> StorageResult<Vec<Session>> {
        let rows = sqlx::query(
            "SELECT id_hash, sub, auth_time, expires_at, amr FROM sessions
             WHERE sub = $1 AND expires_at > $2 ORDER BY auth_time DESC",
        )
        .bind(sub)
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// The grants `sub` holds: one row per grant with a live access or refresh token.
    pub async fn grants_of(&self, sub: &str, now: i64) -> StorageResult<Vec<MemberGrant>> {
        let rows = sqlx::query(
            "SELECT grant_id, MIN(client_id) AS client_id, MIN(session_id) AS session_id,
                    MAX(refreshable) AS refreshable, MAX(expires_at) AS expires_at
             FROM (SELECT grant_id, client_id, session_id, 0 AS refreshable, expires_at
                   FROM access_tokens WHERE sub = $1 AND expires_at > $2
                   UNION ALL
                   SELECT grant_id, client_id, session_id, 1 AS refreshable, expires_at
                   FROM refresh_tokens WHERE sub = $1 AND expires_at > $2 AND used_at IS NULL) t
             WHERE NOT EXISTS (SELECT 1 FROM revoked_grants r WHERE r.grant_id = t.grant_id)
             GROUP BY grant_id ORDER BY MIN(client_id), grant_id",
        )
        .bind(sub)
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberGrant {
                    grant_id: column(row, "grant_id")?,
                    client_id: column(row, "client_id")?,
                    session_id: column(row, "session_id")?,
                    refreshable: column::<i64>(row, "refreshable")? == 1,
                    expires_at: column(row, "expires_at")?,
                })
            })
            .collect()
    }

    /// Ends everything `sub` holds, in one transaction: every grant is remembered as revoked until
    /// `remember_until`, then their access and refresh tokens and their sessions are deleted
    /// (codes die with their session). Returns what was ended, for back-channel logout.
    ///
    /// The grants of the codes of `sub`'s sessions are remembered as revoked too, redeemed or
    /// not: a code redeemed just before this commits may still be issuing its tokens, and every
    /// token read checks `revoked_grants`, so whatever that redemption stores is dead once this
    /// commits, on either store and in either order of the two commits.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_member(
        &self,
        sub: &str,
        now: i64,
        remember_until: i64,
    ) -> StorageResult<EndedAccess> {
        let grants = self.grants_of(sub, now).await?;
        let sessions = self.sessions_of(sub, now).await?;
        let session_clients = sqlx::query(
            "SELECT session_id, client_id FROM session_clients
             WHERE sub = $1 AND expires_at > $2 ORDER BY session_id, client_id",
        )
        .bind(sub)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((column(row, "session_id")?, column(row, "client_id")?)))
        .collect::<StorageResult<Vec<_>>>()?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO revoked_grants (grant_id, expires_at)
             SELECT grant_id, $2 FROM (SELECT grant_id FROM access_tokens WHERE sub = $1
                                       UNION SELECT grant_id FROM refresh_tokens WHERE sub = $1
                                       UNION SELECT c.grant_id FROM authorization_codes c
                                             JOIN sessions s ON s.id_hash = c.session_id
                                             WHERE s.sub = $1) g
             WHERE true
             ON CONFLICT (grant_id) DO NOTHING",
        )
        .bind(sub)
        .bind(remember_until)
        .execute(&mut *tx)
        .await?;
        for statement in [
            "DELETE FROM access_tokens WHERE sub = $1",
            "DELETE FROM refresh_tokens WHERE sub = $1",
            "DELETE FROM session_clients WHERE sub = $1",
            "DELETE FROM sessions WHERE sub = $1",
        ] {
            sqlx::query(statement).bind(sub).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(EndedAccess {
            grants,
            sessions,
            session_clients,
        })
    }

    /// Ends the session and revokes every token issued under it, and (as `revoke_member` does)
    /// the grants of its codes until `remember_until`, so that a code redeemed concurrently
    /// leaves no live token behind.
    #[tracing::instrument(skip_all)]
    pub async fn end_session(&self, id_hash: &str, remember_until: i64) -> StorageResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO revoked_grants (grant_id, expires_at)
             SELECT grant_id, $2 FROM authorization_codes WHERE session_id = $1
             ON CONFLICT (grant_id) DO NOTHING",
        )
        .bind(id_hash)
        .bind(remember_until)
        .execute(&mut *tx)
        .await?;
        for statement in [
            "DELETE FROM access_tokens WHERE session_id = $1",
            "DELETE FROM refresh_tokens WHERE session_id = $1",
            "DELETE FROM session_clients WHERE session_id = $1",
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
