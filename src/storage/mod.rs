//! All SQL lives here. One set of queries serves Postgres and SQLite through sqlx's `Any` driver:
//! placeholders are `$n` (both backends accept them), times are Unix seconds, flags and JSON are
//! stored as BIGINT and TEXT. Callers see domain types and `StorageError`.
//!
//! Knows no HTTP, no WeCom and no protocol rule beyond what a statement must make atomic
//! (single-use codes, states and refresh tokens). The only user of sqlx.

mod assertions;
mod audit;
mod clients;
mod codes;
mod device;
mod gate;
mod requests;
mod signing_keys;
mod tokens;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use gate::{Breaker, Gate, CONNECTION_WAIT};

pub use audit::{AuditEvent, AuditQuery};
pub use codes::{CodeGrant, CodeRedemption, NewCode};
pub use device::{DeviceDecision, DeviceGrant, DeviceStatus};
pub use requests::{ConsumedState, EndedAccess, MemberGrant, PendingRequest, Session, SignIn};
pub use signing_keys::StoredKey;
pub use tokens::{AccessTokenRecord, RefreshRotation, RefreshTokenRecord};
pub use users::{MemberRecord, Release};

use crate::clock::{Clock, SystemClock, UnixTime};
use crate::config::DatabaseSettings;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    /// The database could not be reached (down, or no connection free within the wait): 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Postgres SQLSTATEs that mean "the database cannot serve now", not "this query is wrong":
/// connection exceptions (08), insufficient resources (53), operator intervention such as a
/// shutdown (57), and a database closed to connections (55000).
fn is_unavailable_state(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57") || code == "55000"
}

/// SQLite result codes for "another connection holds the lock" (SQLITE_BUSY, SQLITE_LOCKED and
/// their extended codes): the database is busy, not broken, and the request may be retried.
fn is_sqlite_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    // Postgres SQLSTATEs are digits too (22021 & 0xff is 5): look only at SQLite's errors.
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_none() {
        return false;
    }
    matches!(sqlite_primary_code(db), Some(5 | 6)) || db.message().contains("database is locked")
}

/// A SQLite error's primary result code: the low byte of its extended code.
fn sqlite_primary_code(db: &dyn sqlx::error::DatabaseError) -> Option<i64> {
    db.code()
        .and_then(|c| c.parse::<i64>().ok())
        .map(|c| c & 0xff)
}

/// Says what to do when opening the store failed because SQLite could not open or create the file
/// (SQLITE_CANTOPEN) or may only read it (SQLITE_READONLY). SQLite itself says only "unable to
/// open database file"; the usual cause is a volume or bind mount the image's user (uid 10001) may
/// not write to, since SQLite creates the file and its `-wal` and `-shm` companions beside it.
fn with_sqlite_open_hint(err: anyhow::Error, url: &str) -> anyhow::Error {
    let cannot_open = match err.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => {
            db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && matches!(sqlite_primary_code(db.as_ref()), Some(8 | 14))
        }
        _ => false,
    };
    if cannot_open {
        err.context(sqlite_open_hint(url))
    } else {
        err
    }
}

fn sqlite_open_hint(url: &str) -> String {
    let file = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map(|options| options.get_filename().to_path_buf())
        .unwrap_or_default();
    let directory = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    format!(
        "cannot open the SQLite database {}: the directory {} must exist and be writable by the \
         user wecom-oidc runs as (uid 10001 in the container image) — chown 10001 the volume or \
         directory, or set DATABASE_URL to another place",
        file.display(),
        directory.display()
    )
}

/// Postgres SQLSTATE 22021: a value the database cannot store as text (a NUL byte). No row can
/// hold such a value, so a lookup by it finds nothing: answered as `NotFound`, never as a 500.
const UNSTORABLE_CHARACTER: &str = "22021";

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StorageError::Unavailable(err.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
            sqlx::Error::Database(db) if db.code().is_some_and(|c| is_unavailable_state(&c)) => {
                StorageError::Unavailable(err.to_string())
            }
            sqlx::Error::Database(db) if is_sqlite_busy(db.as_ref()) => {
                StorageError::Unavailable(err.to_string())
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some(UNSTORABLE_CHARACTER) => {
                StorageError::NotFound
            }
            _ => StorageError::Unexpected(anyhow::Error::new(err)),
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The connection pools and which backend is behind them. Cheap to clone.
///
/// Commits that may be lost: on Postgres, the rows whose loss in a crash costs a person at most
/// a retry — pending authorization requests, authorization codes and their redemption — are
/// written with `synchronous_commit` off for that one statement's transaction (`set_config(…,
/// true)` inside the statement, so no extra round trip). Such a commit is flushed within a few
/// hundred milliseconds by the WAL writer, or at once by the next durable commit, since the WAL
/// is written in order. Sessions, users, tokens, revocations, clients, keys and the audit log stay
/// durable before they are acknowledged. (SQLite runs in WAL mode with `synchronous = NORMAL`
/// throughout: a commit survives a crash of the process, not necessarily of the machine.)
///
/// One writer per process on SQLite: `pool` is a single connection, and every write goes through
/// it (transactions with `BEGIN IMMEDIATE`), so writers of this process queue for that connection
/// instead of contending for SQLite's lock, and none fails with "database is locked". `reader` is
/// `DATABASE_MAX_CONNECTIONS` connections opened `query_only`, so a write sent there by mistake
/// fails loudly rather than becoming a second writer; WAL lets them read beside the writer. Only
/// another process (the CLI, a backup) can still hold the lock: the busy timeout covers that. On
/// Postgres both are the same pool.
#[derive(Clone, Debug)]
pub struct Store {
    /// Writes, and reads that belong with a write.
    pool: Gate,
    /// Reads that stand alone.
    reader: Gate,
    backend: Backend,
    clients: clients::ClientCache,
}

/// How long start-up keeps trying to open the SQLite file (see `Store::connect`).
const SQLITE_STARTUP_PATIENCE: Duration = Duration::from_secs(10);

/// How long SQLite's writer waits for the lock held by another process (writers of this process
/// queue for the one writer connection instead): long enough for the short transactions of
/// another replica or the CLI, short enough to answer 503 well within a second when a long-held
/// lock (a backup, a manual session) blocks writes.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 500;

/// Rows deleted per statement by the purges: small enough that one statement holds SQLite's
/// write lock for milliseconds.
const PURGE_BATCH: u64 = 500;

/// How long the digest of a processed WeCom event is kept. Redeliveries come within minutes, and
/// a delivery whose signed timestamp is older than the event window is refused before its
/// digest is looked at; a day covers both with room to spare.
pub const WECOM_EVENT_MEMORY_SECS: i64 = 86_400;

/// `/readyz` answers within a second whether or not the database does.
const PING_DEADLINE: Duration = Duration::from_millis(900);

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Store {
    /// Connects (creating the SQLite file when missing) and brings the schema up to date.
    /// Several replicas may run this at once: Postgres migrations hold an advisory lock.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        Self::connect_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// `connect`, with the clock that ages cached clients and times the breaker's retries (the
    /// application's, so that tests move it).
    pub async fn connect_with_clock(
        settings: &DatabaseSettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if settings.is_postgres() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let mut url = settings.url.expose_secret().to_owned();
        if backend == Backend::Sqlite && !url.contains("mode=") && !url.contains(":memory:") {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        let options = AnyConnectOptions::from_str(&url).context("DATABASE_URL is not valid")?;
        let breaker = Arc::new(Breaker::new(options.clone(), Arc::clone(&clock)));
        let (pool, reader) = match backend {
            Backend::Postgres => {
                let pool = open_pool(
                    pool_options(backend, settings.max_connections, "", &breaker),
                    &options,
                    backend,
                )
                .await?;
                let gate = Gate::new(pool, breaker, "BEGIN");
                (gate.clone(), gate)
            }
            Backend::Sqlite => {
                let writer = open_pool(pool_options(backend, 1, "", &breaker), &options, backend)
                    .await
                    .map_err(|err| with_sqlite_open_hint(err, &url))?;
                // Opened on demand, after the writer has made the file and put it in WAL mode.
                let reader = pool_options(
                    backend,
                    settings.max_connections,
                    "PRAGMA query_only = ON;",
                    &breaker,
                )
                .connect_lazy_with(options.clone());
                (
                    Gate::new(writer, Arc::clone(&breaker), "BEGIN IMMEDIATE"),
                    Gate::new(reader, breaker, "BEGIN"),
                )
            }
        };
        let store = Self {
            pool,
            reader,
            backend,
            clients: clients::ClientCache::new(clock),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Postgres => POSTGRES_MIGRATIONS
                .run(self.pool.pool())
                .await
                .context("cannot apply database migrations"),
            Backend::Sqlite => {
                // SQLite migrations take no lock: two processes starting on one new file both
                // try to apply them, and the loser fails once the winner has committed. Running
                // the migrator again then finds everything applied.
                let mut attempt = 0;
                loop {
                    match SQLITE_MIGRATIONS.run(self.pool.pool()).await {
                        Ok(()) => return Ok(()),
                        // Each retry may meet the other process one migration further on.
                        Err(err) if attempt < SQLITE_MIGRATIONS.iter().count() + 1 => {
                            attempt += 1;
                            tracing::debug!(error = %err, "migration raced another process; retrying");
                        }
                        Err(err) => return Err(err).context("cannot apply database migrations"),
                    }
                }
            }
        }
    }

    /// Open and idle connections, and the most the pools open: for the metrics.
    pub fn pool_stats(&self) -> (u32, u32, u32) {
        let pools = match self.backend {
            Backend::Postgres => vec![self.pool.pool()],
            Backend::Sqlite => vec![self.pool.pool(), self.reader.pool()],
        };
        pools.iter().fold((0, 0, 0), |(open, idle, max), pool| {
            (
                open + pool.size(),
                idle + u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                max + pool.options().get_max_connections(),
            )
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers; what `/readyz` asks. Connections that died while idle (the
    /// database restarted) fail once and are dropped by the pool, so a failure is retried over
    /// every pooled connection before the database is declared unavailable — all within
    /// `PING_DEADLINE`.
    pub async fn ping(&self) -> StorageResult<()> {
        tokio::time::timeout(PING_DEADLINE, self.ping_until_answered())
            .await
            .unwrap_or_else(|_| {
                Err(StorageError::Unavailable(
                    "the database did not answer in time".to_owned(),
                ))
            })
    }

    async fn ping_until_answered(&self) -> StorageResult<()> {
        let attempts = self.reader.pool().options().get_max_connections() + 1;
        let mut last = None;
        for _ in 0..attempts {
            match sqlx::query("SELECT 1").execute(&self.reader).await {
                Ok(_) => return Ok(()),
                Err(err) => match StorageError::from(err) {
                    StorageError::Unavailable(reason) => last = Some(reason),
                    other => return Err(other),
                },
            }
        }
        Err(StorageError::Unavailable(last.unwrap_or_default()))
    }

    /// Deletes what has expired; every replica may run it, the statements are idempotent. Rows
    /// go in batches of `PURGE_BATCH`, each its own short statement, so that a large backlog
    /// never holds SQLite's write lock long enough for a sign-in to time out behind it.
    pub async fn purge_expired(&self, now: UnixTime) -> StorageResult<u64> {
        let mut removed = 0;
        for table in [
            "auth_requests",
            "consumed_login_states",
            "sessions",
            "session_clients",
            "authorization_codes",
            "access_tokens",
            "refresh_tokens",
            "revoked_grants",
            "client_assertion_jtis",
            "device_grants",
        ] {
            removed += self
                .delete_in_batches(table, &format!("expires_at < {now}"))
                .await?;
        }
        removed += self
            .delete_in_batches(
                "wecom_events",
                &format!("received_at < {}", now - WECOM_EVENT_MEMORY_SECS),
            )
            .await?;
        Ok(removed)
    }

    /// `DELETE FROM table WHERE condition`, `PURGE_BATCH` rows per statement, yielding between
    /// statements so that other writers get the lock. `condition` is built from numbers only.
    pub(crate) async fn delete_in_batches(
        &self,
        table: &str,
        condition: &str,
    ) -> StorageResult<u64> {
        // The physical row id: every table has one, whatever its key.
        let row_id = match self.backend {
            Backend::Postgres => "ctid",
            Backend::Sqlite => "rowid",
        };
        let statement = format!(
            "DELETE FROM {table} WHERE {row_id} IN (SELECT {row_id} FROM {table} WHERE {condition} LIMIT {PURGE_BATCH})"
        );
        let mut removed = 0;
        loop {
            let batch = sqlx::query(&statement)
                .execute(&self.pool)
                .await?
                .rows_affected();
            removed += batch;
            if batch < PURGE_BATCH {
                return Ok(removed);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Records a WeCom event delivery by the digest of its decrypted message; `false` when it was
    /// seen before (a redelivery or a replay: answered, not processed again).
    pub async fn record_wecom_event(&self, digest: &str, now: UnixTime) -> StorageResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO wecom_events (digest, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Forgets a recorded WeCom event whose processing failed, so that a redelivery is processed.
    pub async fn forget_wecom_event(&self, digest: &str) -> StorageResult<()> {
        sqlx::query("DELETE FROM wecom_events WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.pool().close().await;
        self.reader.pool().close().await;
    }
}

/// A pool that waits `CONNECTION_WAIT` for a connection, running `extra` (SQL) on each new one
/// after the common settings, and closing idle connections `breaker` distrusts.
fn pool_options(
    backend: Backend,
    max_connections: u32,
    extra: &'static str,
    breaker: &Arc<Breaker>,
) -> AnyPoolOptions {
    let breaker = Arc::clone(breaker);
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(CONNECTION_WAIT)
        // A ping before every use doubles the round trips; a broken connection instead fails
        // its query (answered 503, and the breaker probes) and the pool replaces it.
        .test_before_acquire(false)
        .before_acquire(move |_, meta| {
            let reuse = breaker.may_reuse(meta.idle_for);
            Box::pin(async move { Ok(reuse) })
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the one writer; the busy timeout makes a writer
                    // wait for another process's lock instead of failing with SQLITE_BUSY.
                    conn.execute(format!("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA synchronous = NORMAL; {extra}").as_str())
                        .await?;
                }
                Ok(())
            })
        })
}

/// Opens `options`' first connection. Opening a SQLite file is local: when it takes longer than a
/// request may wait, the machine is busy (or another process holds the file a moment), not the
/// store gone, so start-up keeps trying for a while. A Postgres that does not answer fails at once.
async fn open_pool(
    pool_options: AnyPoolOptions,
    options: &AnyConnectOptions,
    backend: Backend,
) -> anyhow::Result<AnyPool> {
    let started = std::time::Instant::now();
    loop {
        match pool_options.clone().connect_with(options.clone()).await {
            Err(sqlx::Error::PoolTimedOut)
                if backend == Backend::Sqlite && started.elapsed() < SQLITE_STARTUP_PATIENCE => {}
            other => break other,
        }
    }
    .context("cannot connect to the database (DATABASE_URL)")
}

/// Reads a column; a missing or mistyped column is a bug in this module, reported as Unexpected.
fn column<'r, T>(row: &'r sqlx::any::AnyRow, name: &str) -> StorageResult<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name)
        .with_context(|| format!("reading column {name}"))
        .map_err(StorageError::Unexpected)
}

fn to_json<T: serde::Serialize>(value: &T) -> StorageResult<String> {
    serde_json::to_string(value)
        .context("serialising a stored document")
        .map_err(StorageError::Unexpected)
}

fn from_json<T: serde::de::DeserializeOwned>(raw: &str) -> StorageResult<T> {
    serde_json::from_str(raw)
        .context("parsing a stored document")
        .map_err(StorageError::Unexpected)
}
