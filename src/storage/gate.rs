//! The way to the database for every query: a connection pool behind a circuit breaker.
//!
//! From a request's side two kinds of waiting look alike, and are told apart here:
//! - *every connection is busy*: the request waits its turn, up to `CONNECTION_WAIT` (the pool's
//!   acquire timeout). A burst is served late, not refused.
//! - *the database cannot be reached*: an operation fails for want of a connection (an I/O or TLS
//!   error, a Postgres connection exception or shutdown, or a wait that ran out). At once one
//!   fresh connection is tried outside the pool (the probe), which no busy pool can delay. When it
//!   fails too, the breaker opens: every request fails at once (503) instead of each waiting
//!   `CONNECTION_WAIT`. `BREAKER_RETRY_SECS` later the first request probes again (half-open; the
//!   others still fail at once meanwhile); when that probe connects, the breaker closes and the
//!   request goes on.
//!
//! Probes are single-flight: of many requests failing together, one probes and the rest answer.
//! Pooled connections that went idle before a connection was last lost (or a probe failed) are
//! closed instead of used, so that after a restart or an outage no request fails on a connection
//! that died in it.
//!
//! SQLite's one writer (see `Store`) waits `SQLITE_BUSY_TIMEOUT_MS` for a lock another process
//! holds. When that wait runs out, writes queued behind it look at the lock without waiting for
//! as long again (going on when it is free, failing at once when not) rather than each waiting a
//! busy timeout in turn: a long-held lock (a backup) answers 503 within a second, as it would
//! without the queue.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::TryStreamExt;
use sqlx::any::{Any, AnyConnectOptions, AnyQueryResult, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{AnyConnection, AnyPool, Connection, Database, Describe, Either, Execute, Executor};

use crate::clock::Clock;

/// How long a request waits for a pooled connection. Long enough to ride out a burst on a busy
/// machine (a query takes milliseconds, so seconds of queueing mean hundreds of requests ahead),
/// short enough to answer before a proxy or a browser gives up (commonly 30–60 s).
pub(super) const CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// How long a probe may take to connect. A connection to a reachable database, TLS and
/// authentication included, takes milliseconds; two seconds leave room for a busy machine.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the breaker stays open before a request probes again: a restarting database is back
/// within seconds, and one probe per replica every two seconds costs the database nothing.
pub(super) const BREAKER_RETRY_SECS: i64 = 2;

/// `retry_at` while the breaker is closed.
const CLOSED: i64 = i64::MIN;

/// Whether the database accepts connections, as last found out.
pub(super) struct Breaker {
    /// `CLOSED`, or the app-clock second from which a request may probe again.
    retry_at: AtomicI64,
    /// Held by the one probe in flight.
    probing: tokio::sync::Mutex<()>,
    /// When a connection was last lost or a probe last failed.
    last_lost: Mutex<Option<Instant>>,
    connect: AnyConnectOptions,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    pub(super) fn new(connect: AnyConnectOptions, clock: Arc<dyn Clock>) -> Self {
        Self {
            retry_at: AtomicI64::new(CLOSED),
            probing: tokio::sync::Mutex::new(()),
            last_lost: Mutex::new(None),
            connect,
            clock,
        }
    }

    /// Whether a pooled connection idle for `idle_for` may be used: not when it was idle already
    /// when a connection was last lost (a database restart or outage most likely took it too).
    pub(super) fn may_reuse(&self, idle_for: Duration) -> bool {
        match *self.last_lost() {
            Some(at) => idle_for < at.elapsed(),
            None => true,
        }
    }

    fn last_lost(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.last_lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_open(&self) -> bool {
        self.retry_at.load(Ordering::SeqCst) != CLOSED
    }

    /// `Ok` when a request may use the pool: the breaker is closed, or it is due for a retry and
    /// this caller's probe connected.
    async fn admit(&self) -> Result<(), sqlx::Error> {
        let retry_at = self.retry_at.load(Ordering::SeqCst);
        if retry_at == CLOSED {
            return Ok(());
        }
        if self.clock.now() < retry_at {
            return Err(unreachable());
        }
        let Ok(_probing) = self.probing.try_lock() else {
            return Err(unreachable());
        };
        if !self.is_open() || self.probe().await {
            Ok(())
        } else {
            Err(unreachable())
        }
    }

    /// After a failed operation: when the failure may mean the database is gone, a probe finds
    /// out, unless the breaker is open already. When a probe is under way, its verdict is awaited
    /// instead, so that the breaker is settled before the caller answers.
    async fn observe(&self, err: &sqlx::Error) {
        if !is_connection_failure(err) {
            return;
        }
        if !matches!(err, sqlx::Error::PoolTimedOut) {
            *self.last_lost() = Some(Instant::now());
        }
        match self.probing.try_lock() {
            Ok(_probing) if !self.is_open() => {
                self.probe().await;
            }
            Ok(_) => {}
            Err(_) => drop(self.probing.lock().await),
        }
    }

    /// Connects once outside the pool, and opens or closes the breaker on the outcome; whether
    /// the database accepted the connection.
    async fn probe(&self) -> bool {
        let outcome = tokio::time::timeout(PROBE_TIMEOUT, async {
            AnyConnection::connect_with(&self.connect)
                .await?
                .close()
                .await
        })
        .await;
        let reachable = match outcome {
            Ok(Ok(())) => true,
            // Postgres answered "too many connections": busy, not gone.
            Ok(Err(sqlx::Error::Database(db)))
                if db.code().is_some_and(|c| c.starts_with("53")) =>
            {
                true
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "database probe failed");
                false
            }
            Err(_) => false,
        };
        if reachable {
            if self.retry_at.swap(CLOSED, Ordering::SeqCst) != CLOSED {
                tracing::info!("the database accepts connections again: requests use it");
            }
        } else {
            *self.last_lost() = Some(Instant::now());
            let retry_at = self.clock.now() + BREAKER_RETRY_SECS;
            if self.retry_at.swap(retry_at, Ordering::SeqCst) == CLOSED {
                tracing::error!(
                    retry_secs = BREAKER_RETRY_SECS,
                    "the database cannot be reached: requests fail at once until a probe connects"
                );
            }
        }
        reachable
    }
}

/// What a request gets while the breaker is open: an I/O error, so `StorageError::Unavailable`.
fn unreachable() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the database cannot be reached (checked again every few seconds)",
    ))
}

/// Errors that may mean no connection can be had, as opposed to a query the database refused.
fn is_connection_failure(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions (08), the server shutting down or starting up (57P01-57P03), a
        // database closed to connections (55000).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "55000"),
        _ => false,
    }
}

/// A pool and the breaker in front of it; used as an executor (`&gate`) exactly like a pool.
#[derive(Clone, Debug)]
pub(super) struct Gate {
    pool: AnyPool,
    breaker: Arc<Breaker>,
    /// The statement that opens a transaction (SQLite's writer takes its lock at once).
    begin: &'static str,
    /// Until when writes look at SQLite's lock without waiting for it: another process held it
    /// for a whole busy timeout, and most likely still does.
    locked_elsewhere_until: Arc<Mutex<Option<Instant>>>,
}

impl Gate {
    pub(super) fn new(pool: AnyPool, breaker: Arc<Breaker>, begin: &'static str) -> Self {
        Self {
            pool,
            breaker,
            begin,
            locked_elsewhere_until: Arc::new(Mutex::new(None)),
        }
    }

    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn acquire(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        self.breaker.admit().await?;
        let mut conn = self.observed(self.pool.acquire().await).await?;
        if self.lock_mark().is_some_and(|until| Instant::now() < until) {
            self.check_lock(&mut conn).await?;
        }
        Ok(conn)
    }

    fn lock_mark(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.locked_elsewhere_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether SQLite's lock is free now, found out without waiting: a writer that queued behind
    /// a failed lock wait answers at once instead of waiting a busy timeout of its own. The busy
    /// timeout is off meanwhile, so the connection is not reused (a request dropped half-way
    /// must not leave it without one).
    async fn check_lock(&self, conn: &mut PoolConnection<Any>) -> Result<(), sqlx::Error> {
        conn.close_on_drop();
        conn.execute("PRAGMA busy_timeout = 0").await?;
        let free = conn.execute("BEGIN IMMEDIATE; ROLLBACK").await;
        conn.execute(format!("PRAGMA busy_timeout = {}", super::SQLITE_BUSY_TIMEOUT_MS).as_str())
            .await?;
        free?;
        *self.lock_mark() = None;
        Ok(())
    }

    async fn observed<T>(&self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        match &result {
            // Only SQLite's writer (its transactions begin IMMEDIATE) waits for the write lock;
            // a read-only connection cannot take it, so a busy read must not send the reader's
            // next connection to `check_lock`.
            Err(sqlx::Error::Database(db))
                if super::is_sqlite_busy(db.as_ref()) && self.begin == "BEGIN IMMEDIATE" =>
            {
                *self.lock_mark() =
                    Some(Instant::now() + Duration::from_millis(super::SQLITE_BUSY_TIMEOUT_MS));
            }
            Err(err) => self.breaker.observe(err).await,
            Ok(_) => {}
        }
        result
    }

    pub(super) async fn begin(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        let conn = self.acquire().await?;
        let tx = sqlx::Transaction::begin(conn, Some(self.begin.into())).await;
        self.observed(tx).await
    }
}

// The same as sqlx's executor for `&Pool`, with the breaker around the connection. Results are
// gathered before they are streamed: every query here returns a bounded set of rows.
impl<'p> Executor<'p> for &'_ Gate {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let gate = self.clone();
        Box::pin(
            futures_util::stream::once(async move {
                let mut conn = gate.acquire().await?;
                let items = conn.fetch_many(query).try_collect::<Vec<_>>().await;
                gate.observed(items).await
            })
            .map_ok(|items| futures_util::stream::iter(items.into_iter().map(Ok)))
            .try_flatten(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let gate = self.clone();
        Box::pin(async move {
            let mut conn = gate.acquire().await?;
            let row = conn.fetch_optional(query).await;
            gate.observed(row).await
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [<Any as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<<Any as Database>::Statement<'q>, sqlx::Error>> {
        let gate = self.clone();
        Box::pin(async move { gate.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>> {
        let gate = self.clone();
        Box::pin(async move { gate.acquire().await?.describe(sql).await })
    }
}
