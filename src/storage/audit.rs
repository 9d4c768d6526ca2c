//! The audit log of sign-ins and refusals. Rows carry who, which client, the outcome and a reason
//! code; never a secret, code or token.

use super::{column, StorageResult, Store};
use crate::clock::UnixTime;

/// What `GET /admin/audit` and the console's audit page ask for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub sub: Option<String>,
    pub event: Option<String>,
    pub client_id: Option<String>,
    /// Rows at or after this Unix time.
    pub since: Option<i64>,
    /// Rows before this Unix time.
    pub until: Option<i64>,
    /// The cursor: rows with a smaller id than this (the last row of the previous page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: i64,
    pub event: String,
    pub outcome: String,
    pub sub: Option<String>,
    pub client_id: Option<String>,
    pub reason: Option<String>,
}

/// The insert of an audit row, with the values `AuditEvent::bind` gives.
pub(super) const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, event, outcome, sub, client_id, reason) VALUES ($1, $2, $3, $4, $5, $6)";

impl AuditEvent {
    /// Binds `at, event, outcome, sub, client_id, reason`, in that order.
    pub(super) fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        query
            .bind(self.at)
            .bind(self.event.as_str())
            .bind(self.outcome.as_str())
            .bind(self.sub.as_deref())
            .bind(self.client_id.as_deref())
            .bind(self.reason.as_deref())
    }
}

impl Store {
    pub async fn record_audit(&self, event: &AuditEvent) -> StorageResult<()> {
        event
            .bind(sqlx::query(INSERT_AUDIT))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes rows older than `before`, in small batches (see `delete_in_batches`).
    pub async fn purge_audit(&self, before: UnixTime) -> StorageResult<u64> {
        self.delete_in_batches("audit_log", &format!("at < {before}"))
            .await
    }

    /// One page of the log, newest first: rows matching `query`, older than its cursor.
    pub async fn audit_page(&self, query: &AuditQuery) -> StorageResult<Vec<(i64, AuditEvent)>> {
        let mut conditions = Vec::new();
        let mut text_binds: Vec<&str> = Vec::new();
        let mut number_binds: Vec<i64> = Vec::new();
        // Text placeholders first, then numbers: `$n` numbering follows that order.
        if let Some(sub) = &query.sub {
            text_binds.push(sub);
            conditions.push(format!("sub = ${}", text_binds.len()));
        }
        if let Some(event) = &query.event {
            text_binds.push(event);
            conditions.push(format!("event = ${}", text_binds.len()));
        }
        if let Some(client_id) = &query.client_id {
            text_binds.push(client_id);
            conditions.push(format!("client_id = ${}", text_binds.len()));
        }
        let numbers_from = text_binds.len();
        if let Some(since) = query.since {
            number_binds.push(since);
            conditions.push(format!("at >= ${}", numbers_from + number_binds.len()));
        }
        if let Some(until) = query.until {
            number_binds.push(until);
            conditions.push(format!("at < ${}", numbers_from + number_binds.len()));
        }
        if let Some(before_id) = query.before_id {
            number_binds.push(before_id);
            conditions.push(format!("id < ${}", numbers_from + number_binds.len()));
        }
        number_binds.push(query.limit);
        let limit_placeholder = numbers_from + number_binds.len();
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at, event, outcome, sub, client_id, reason FROM audit_log {filter} ORDER BY id DESC LIMIT ${limit_placeholder}"
        );
        let mut statement = sqlx::query(&sql);
        for text in text_binds {
            statement = statement.bind(text);
        }
        for number in number_binds {
            statement = statement.bind(number);
        }
        statement
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| Ok((column(row, "id")?, event_from_row(row)?)))
            .collect()
    }

    /// How many rows of each (event, outcome) were written at or after `since`: the console's
    /// status page counts sign-ins and refusals with it.
    pub async fn audit_counts(&self, since: UnixTime) -> StorageResult<Vec<(String, String, i64)>> {
        sqlx::query(
            "SELECT event, outcome, COUNT(*) AS n FROM audit_log WHERE at >= $1
             GROUP BY event, outcome ORDER BY event, outcome",
        )
        .bind(since)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            Ok((
                column(row, "event")?,
                column(row, "outcome")?,
                column(row, "n")?,
            ))
        })
        .collect()
    }

    /// The newest `limit` rows, newest first.
    pub async fn recent_audit(&self, limit: i64) -> StorageResult<Vec<AuditEvent>> {
        sqlx::query(
            "SELECT at, event, outcome, sub, client_id, reason FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }
}

fn event_from_row(row: &sqlx::any::AnyRow) -> StorageResult<AuditEvent> {
    Ok(AuditEvent {
        at: column(row, "at")?,
        event: column(row, "event")?,
        outcome: column(row, "outcome")?,
        sub: column(row, "sub")?,
        client_id: column(row, "client_id")?,
        reason: column(row, "reason")?,
    })
}
