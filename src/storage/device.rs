//! Device authorization grants (RFC 8628): one row per device request, found by the digest of
//! its device code (the device polling) or of its user code (the person approving). Every change
//! of status is one conditional statement, so that a grant is decided once and redeemed once.

use serde::{de::DeserializeOwned, Serialize};

use super::{column, from_json, to_json, StorageError, StorageResult, Store};

/// Where a device grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the person.
    Pending,
    Approved,
    Denied,
    /// Redeemed at the token endpoint: it gives nothing more.
    Used,
    /// Seen past its lifetime while pending (and audited then, once).
    Expired,
}

impl DeviceStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Used => "used",
            DeviceStatus::Expired => "expired",
        }
    }

    fn parse(raw: &str) -> StorageResult<Self> {
        Ok(match raw {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "used" => DeviceStatus::Used,
            "expired" => DeviceStatus::Expired,
            other => {
                return Err(StorageError::Unexpected(anyhow::anyhow!(
                    "unknown device grant status {other:?}"
                )))
            }
        })
    }
}

/// A device request as stored; `D` is the protocol layer's document of the approval.
#[derive(Debug, Clone)]
pub struct DeviceGrant<D> {
    pub device_code_hash: String,
    pub user_code_hash: String,
    pub client_id: String,
    pub scope: String,
    /// The source address of the device request, as the abuse limits saw it.
    pub requested_from: String,
    pub requested_at: i64,
    pub expires_at: i64,
    pub poll_interval: i64,
    pub last_polled_at: Option<i64>,
    pub status: DeviceStatus,
    /// Who approved, from which session, and what: set when approved.
    pub sub: Option<String>,
    pub session_id: Option<String>,
    pub details: Option<D>,
}

/// The person's answer on the approval page.
#[derive(Debug)]
pub enum DeviceDecision<'a, D> {
    Approve {
        sub: &'a str,
        session_id: &'a str,
        details: &'a D,
    },
    Deny,
}

const COLUMNS: &str = "device_code_hash, user_code_hash, client_id, scope, requested_from, requested_at, expires_at, poll_interval, last_polled_at, status, sub, session_id, details";

fn grant_from_row<D: DeserializeOwned>(row: &sqlx::any::AnyRow) -> StorageResult<DeviceGrant<D>> {
    Ok(DeviceGrant {
        device_code_hash: column(row, "device_code_hash")?,
        user_code_hash: column(row, "user_code_hash")?,
        client_id: column(row, "client_id")?,
        scope: column(row, "scope")?,
        requested_from: column(row, "requested_from")?,
        requested_at: column(row, "requested_at")?,
        expires_at: column(row, "expires_at")?,
        poll_interval: column(row, "poll_interval")?,
        last_polled_at: column(row, "last_polled_at")?,
        status: DeviceStatus::parse(&column::<String>(row, "status")?)?,
        sub: column(row, "sub")?,
        session_id: column(row, "session_id")?,
        details: column::<Option<String>>(row, "details")?
            .map(|raw| from_json(&raw))
            .transpose()?,
    })
}

impl Store {
    /// Stores a new pending grant; `Conflict` when its user code is taken (the caller draws
    /// another).
    #[tracing::instrument(skip_all, fields(client_id = %grant.client_id))]
    pub async fn insert_device_grant<D>(&self, grant: &DeviceGrant<D>) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO device_grants (device_code_hash, user_code_hash, client_id, scope, requested_from, requested_at, expires_at, poll_interval, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&grant.device_code_hash)
        .bind(&grant.user_code_hash)
        .bind(&grant.client_id)
        .bind(&grant.scope)
        .bind(&grant.requested_from)
        .bind(grant.requested_at)
        .bind(grant.expires_at)
        .bind(grant.poll_interval)
        .bind(DeviceStatus::Pending.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn device_grant_where<D: DeserializeOwned>(
        &self,
        key: &str,
        value: &str,
    ) -> StorageResult<Option<DeviceGrant<D>>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM device_grants WHERE {key} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    pub async fn device_grant_by_device_code<D: DeserializeOwned>(
        &self,
        device_code_hash: &str,
    ) -> StorageResult<Option<DeviceGrant<D>>> {
        self.device_grant_where("device_code_hash", device_code_hash)
            .await
    }

    pub async fn device_grant_by_user_code<D: DeserializeOwned>(
        &self,
        user_code_hash: &str,
    ) -> StorageResult<Option<DeviceGrant<D>>> {
        self.device_grant_where("user_code_hash", user_code_hash)
            .await
    }

    /// Records a poll at `now` and the interval the device must keep from now on.
    pub async fn record_device_poll(
        &self,
        device_code_hash: &str,
        now: i64,
        poll_interval: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "UPDATE device_grants SET last_polled_at = $1, poll_interval = $2 WHERE device_code_hash = $3",
        )
        .bind(now)
        .bind(poll_interval)
        .bind(device_code_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a pending grant past its lifetime as expired; `true` for the one call that did.
    pub async fn expire_device_grant(
        &self,
        device_code_hash: &str,
        now: i64,
    ) -> StorageResult<bool> {
        let changed = sqlx::query(
            "UPDATE device_grants SET status = 'expired'
             WHERE device_code_hash = $1 AND status = 'pending' AND expires_at <= $2",
        )
        .bind(device_code_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(changed.rows_affected() == 1)
    }

    /// The person's answer, taken only while the grant is pending and alive: `false` when it was
    /// decided already or has expired (a second tab, a late click).
    #[tracing::instrument(skip_all)]
    pub async fn decide_device_grant<D: Serialize>(
        &self,
        user_code_hash: &str,
        decision: &DeviceDecision<'_, D>,
        now: i64,
    ) -> StorageResult<bool> {
        let (status, sub, session_id, details) = match decision {
            DeviceDecision::Approve {
                sub,
                session_id,
                details,
            } => (
                DeviceStatus::Approved,
                Some(*sub),
                Some(*session_id),
                Some(to_json(details)?),
            ),
            DeviceDecision::Deny => (DeviceStatus::Denied, None, None, None),
        };
        let changed = sqlx::query(
            "UPDATE device_grants SET status = $1, sub = $2, session_id = $3, details = $4
             WHERE user_code_hash = $5 AND status = 'pending' AND expires_at > $6",
        )
        .bind(status.as_str())
        .bind(sub)
        .bind(session_id)
        .bind(details)
        .bind(user_code_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(changed.rows_affected() == 1)
    }

    /// Marks an approved grant of `client_id` used and returns it, in one statement: of two
    /// concurrent polls one gets it. Nothing when the session that approved has ended since
    /// (logout, or the member's access revoked), as for authorization codes.
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn redeem_device_grant<D: DeserializeOwned>(
        &self,
        device_code_hash: &str,
        client_id: &str,
    ) -> StorageResult<Option<DeviceGrant<D>>> {
        let row = sqlx::query(&format!(
            "UPDATE device_grants SET status = 'used'
             WHERE device_code_hash = $1 AND client_id = $2 AND status = 'approved'
               AND EXISTS (SELECT 1 FROM sessions s WHERE s.id_hash = device_grants.session_id)
             RETURNING {COLUMNS}"
        ))
        .bind(device_code_hash)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    /// How many device requests are waiting for their person: for the metrics.
    pub async fn pending_device_grants(&self, now: i64) -> StorageResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS pending FROM device_grants WHERE status = 'pending' AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        column(&row, "pending")
    }
}
