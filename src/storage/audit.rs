//! The audit log of sign-ins and refusals. Rows carry who, which client, the outcome and a reason
//! code; never a secret, code or token.

use super::{column, StorageResult, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: i64,
    pub event: String,
    pub outcome: String,
    pub sub: Option<String>,
    pub client_id: Option<String>,
    pub reason: Option<String>,
}

impl Store {
    pub async fn record_audit(&self, event: &AuditEvent) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, event, outcome, sub, client_id, reason) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event.at)
        .bind(&event.event)
        .bind(&event.outcome)
        .bind(&event.sub)
        .bind(&event.client_id)
        .bind(&event.reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` rows, newest first.
    pub async fn recent_audit(&self, limit: i64) -> StorageResult<Vec<AuditEvent>> {
        sqlx::query(
            "SELECT at, event, outcome, sub, client_id, reason FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(AuditEvent {
                at: column(row, "at")?,
                event: column(row, "event")?,
                outcome: column(row, "outcome")?,
                sub: column(row, "sub")?,
                client_id: column(row, "client_id")?,
                reason: column(row, "reason")?,
            })
        })
        .collect()
    }
}
