//! Benchmark of the provider as deployed: the release binary runs as its own process (beside the
//! WeCom simulator, another process), so its CPU time and peak memory are read from /proc and not
//! mixed with the load generator's. On Postgres the database server's CPU is read from /proc too
//! (the backends serving the benchmark's database, and the server's shared background writers),
//! so a figure per login is what the deployment pays, not only the provider's part.
//!
//! It measures, on the store `DATABASE_URL` names (SQLite when unset), for each signing algorithm
//! in `BENCH_ALGS` (default `RS256,ES256`), each on a fresh database:
//! - readiness: spawn → first `200` from `/readyz`, on a first start (migrations, key generation)
//!   and on a restart;
//! - complete logins (authorize → WeCom simulator → callback → token → userinfo, fresh browser
//!   each) by `BENCH_USERS` concurrent users: logins/s, p50/p99 latency, CPU per login;
//! - authorization-code exchanges by a confidential client (`client_secret_basic`): exchanges/s,
//!   CPU per exchange, with the verified-secret cache and without it (argon2 every time);
//! - statements per login and per exchange (the provider's own sqlx statement log, counted in a
//!   separate run so logging costs nothing above), and on Postgres the commits and rows written
//!   (`pg_stat_database` of the benchmark's database, read when no backend holds unflushed stats);
//! - peak resident memory of the provider.
//!
//! With `BENCH_SCENARIO=flood` (unset: both), instead: a correct confidential client's code
//! exchanges from 127.0.0.2, p50/p99 and exchanges/s, without and then during a flood of wrong
//! secrets for the same client id from another loopback address, with the default failure limit
//! on; for a generated (digest) secret and an administrator's (argon2id) one. It prints how the
//! flood was answered (401/429/503) and the CPU of the provider and of this load driver.
//! `BENCH_FLOOD_CODES`, `BENCH_FLOOD_CONCURRENCY`, `BENCH_FLOODERS` and `BENCH_FLOOD_RATE_LIMIT`
//! change the counts and `RATE_LIMIT_PER_MINUTE`.
//!
//! Run: `cargo bench --bench token_endpoint` (add `DATABASE_URL=postgres://…/postgres` for Postgres;
//! a fresh database is created and dropped per algorithm). `BENCH_LOGINS`, `BENCH_CODES`,
//! `BENCH_USERS` and `BENCH_ALGS` change the counts, the concurrency and the algorithms;
//! `BENCH_DB_CONNECTIONS` the provider's pool size (default: the provider's own default).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use url::Url;
use wecom_oidc::config::Config;
use wecom_oidc::crypto::{random_token, sha256_hex};
use wecom_oidc::oidc::profile::UserProfile;
use wecom_oidc::oidc::CodeDetails;
use wecom_oidc::storage::{NewCode, Store};

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The 1-, 5- and 15-minute load averages: how busy the machine was while a figure was taken.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// User + system CPU seconds a process has used so far (/proc/PID/stat fields 14 and 15).
fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// A child process that is killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.0.id())
    }

    /// Peak resident set size (VmHWM) in MiB.
    fn peak_rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }
}

async fn wait_ready(http: &reqwest::Client, url: &str, started: Instant) -> Duration {
    loop {
        if let Ok(response) = http.get(url).send().await {
            if response.status().is_success() {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{url} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The database one algorithm's runs use: a temp SQLite file, or a new database on the Postgres
/// server (`server` is the URL the benchmark was given, `name` the new database).
struct Database {
    url: String,
    postgres: Option<(String, String)>,
}

impl Database {
    async fn fresh() -> Self {
        let name = format!(
            "wecom_oidc_bench_{}",
            random_token(6)
                .to_ascii_lowercase()
                .replace(['-', '_'], "x")
        );
        match std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
        {
            Some(server) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&server)
                    .await
                    .expect("Postgres reachable");
                sqlx::Executor::execute(&mut conn, format!(r#"CREATE DATABASE "{name}""#).as_str())
                    .await
                    .expect("create database");
                let mut url = Url::parse(&server).expect("DATABASE_URL");
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    postgres: Some((server, name)),
                }
            }
            None => Self {
                url: format!(
                    "sqlite://{}",
                    std::env::temp_dir().join(format!("{name}.db")).display()
                ),
                postgres: None,
            },
        }
    }

    async fn drop_it(self) {
        match self.postgres {
            Some((server, name)) => {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::Executor::execute(
                        &mut conn,
                        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str(),
                    )
                    .await;
                }
            }
            None => {
                let path = self.url.trim_start_matches("sqlite://").to_owned();
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
}

/// What one provider process is started with.
struct Launch<'a> {
    database_url: &'a str,
    simulator: &'a str,
    secret_cache_secs: &'a str,
    signing_alg: &'a str,
    /// `RATE_LIMIT_PER_MINUTE`: "0" (off) except in the flood scenario.
    rate_limit_per_minute: &'a str,
    /// Where the provider's log goes; the statement-counting run logs every statement.
    log: Option<&'a std::path::Path>,
}

fn start_provider(port: u16, launch: &Launch<'_>) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wecom-oidc"));
    command
        .arg("serve")
        .env_clear()
        .env("OIDC_ISSUER", format!("http://127.0.0.1:{port}"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", launch.database_url)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WECOM_CORP_ID", "wwsim0000000001")
        .env("WECOM_CORP_SECRET", "sim-secret-1000002")
        .env("WECOM_AGENT_ID", "1000002")
        .env("WECOM_API_BASE", launch.simulator)
        .env("WECOM_LOGIN_BASE", launch.simulator)
        .env("WECOM_OAUTH_BASE", launch.simulator)
        .env("CLIENT_SECRET_CACHE_SECS", launch.secret_cache_secs)
        .env("SIGNING_ALG", launch.signing_alg)
        // The load driver is one source sending far more than any real relying party.
        .env("RATE_LIMIT_PER_MINUTE", launch.rate_limit_per_minute)
        .stdout(Stdio::null());
    // Unset: the provider's own default pool size, as deployed.
    if let Ok(connections) = std::env::var("BENCH_DB_CONNECTIONS") {
        command.env("DATABASE_MAX_CONNECTIONS", connections);
    }
    match launch.log {
        Some(path) => {
            let file = std::fs::File::create(path).expect("log file");
            command
                .env("RUST_LOG", "warn,sqlx::query=debug")
                .env("LOG_FORMAT", "json")
                .stderr(file);
        }
        None => {
            command.env("RUST_LOG", "warn");
        }
    }
    Process(command.spawn().expect("provider starts"))
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A fresh browser's cookie jar over a shared HTTP client. Building a reqwest client per login
/// loads the system's CA certificates each time, which cost the driver more CPU than the provider
/// spends on the login; connections are reused, the cookies are not.
struct Browser<'a> {
    http: &'a reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl Browser<'_> {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> Option<reqwest::Response> {
        let cookie = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = if cookie.is_empty() {
            request
        } else {
            request.header("cookie", cookie)
        };
        let response = request.send().await.ok()?;
        for set in response.headers().get_all("set-cookie") {
            let Some((name, value)) = set
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            self.cookies.retain(|(n, _)| n != name.trim());
            if !value.is_empty() {
                self.cookies
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Some(response)
    }

    async fn get(&mut self, url: &str) -> Option<reqwest::Response> {
        let request = self.http.get(url);
        self.send(request).await
    }
}

/// One complete login by a fresh browser; returns whether userinfo answered.
async fn complete_login(
    http: &reqwest::Client,
    issuer: &str,
    client_id: &str,
    secret: &str,
) -> bool {
    let mut browser = Browser {
        http,
        cookies: Vec::new(),
    };
    let mut authorize = Url::parse(&format!("{issuer}/authorize")).expect("url");
    authorize.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid profile email groups"),
        ("state", "s"),
        ("nonce", "n"),
    ]);
    let Some(response) = browser.get(authorize.as_str()).await else {
        return false;
    };
    let Ok(mut wecom) = Url::parse(&location(&response)) else {
        return false;
    };
    let approve = format!("{}/approve", wecom.path());
    wecom.set_path(&approve);
    wecom.query_pairs_mut().append_pair("userid", "wangwu");
    let Some(response) = browser.get(wecom.as_str()).await else {
        return false;
    };
    let Some(response) = browser.get(&location(&response)).await else {
        return false;
    };
    let Some(code) = Url::parse(&location(&response)).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
    }) else {
        return false;
    };
    let Ok(tokens) = http
        .post(format!("{issuer}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
    else {
        return false;
    };
    let Ok(tokens) = tokens.json::<Value>().await else {
        return false;
    };
    let access = tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    http.get(format!("{issuer}/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

/// Stores `count` codes for `client_id` directly, as `/authorize` + the callback would: each
/// carries the member's stored profile (wangwu signed in during the login phase, when there was
/// one), as the callback's codes do.
async fn mint_codes(store: &Store, client_id: &str, count: usize) -> Vec<String> {
    let now = wecom_oidc::clock::Clock::now(&wecom_oidc::clock::SystemClock);
    let profile = store.get_user::<UserProfile>("wangwu").await.ok();
    let codes: Vec<String> = (0..count).map(|_| random_token(32)).collect();
    let details = CodeDetails {
        sub: "wangwu".into(),
        redirect_uri: REDIRECT_URI.into(),
        scope: "openid profile email".into(),
        nonce: Some("n".into()),
        code_challenge: None,
        auth_time: now,
        session_id: None,
        amr: "qr swk".into(),
        claims: None,
        profile,
    };
    let chunks: Vec<Vec<String>> = codes
        .chunks(count.div_ceil(16).max(1))
        .map(|c| c.to_vec())
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let (store, client_id, details) = (store.clone(), client_id.to_owned(), details.clone());
        tasks.push(tokio::spawn(async move {
            for code in chunk {
                store
                    .insert_code(&NewCode {
                        code_hash: sha256_hex(&code),
                        grant_id: random_token(16),
                        client_id: client_id.clone(),
                        session_id: None,
                        details: details.clone(),
                        expires_at: now + 3600,
                    })
                    .await
                    .expect("insert code");
            }
        }));
    }
    for task in tasks {
        task.await.expect("minting task");
    }
    codes
}

async fn register(http: &reqwest::Client, issuer: &str) -> (String, String) {
    register_with(http, issuer, None).await
}

/// Registers a confidential client with a generated secret (stored as a digest), or with
/// `chosen`, an administrator's secret (stored as argon2id; not echoed back).
async fn register_with(
    http: &reqwest::Client,
    issuer: &str,
    chosen: Option<&str>,
) -> (String, String) {
    let mut document = json!({ "client_name": "bench", "redirect_uris": [REDIRECT_URI] });
    if let Some(secret) = chosen {
        document["client_secret"] = json!(secret);
    }
    let created: Value = http
        .post(format!("{issuer}/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&document)
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON");
    let secret = match chosen {
        Some(secret) => secret.to_owned(),
        None => created["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    (
        created["client_id"].as_str().unwrap_or_default().to_owned(),
        secret,
    )
}

/// The outcome of `total` jobs: how many succeeded, in what time, and each success's latency.
struct Run {
    ok: usize,
    total: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency below which `p` (0..1) of the successful jobs finished, in ms.
    fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
        sorted
            .get(index.min(sorted.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    }
}

/// Runs `total` jobs with `concurrency` in flight.
async fn drive<F, Fut>(total: usize, concurrency: usize, job: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.min(total.max(1)))
        .map(|_| {
            let (job, next, latencies) =
                (Arc::clone(&job), Arc::clone(&next), Arc::clone(&latencies));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    let began = Instant::now();
                    if job(i).await {
                        latencies.lock().unwrap().push(began.elapsed());
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    Run {
        ok: latencies.len(),
        total,
        elapsed,
        latencies,
    }
}

async fn logins(issuer: &str, client: &(String, String), total: usize, users: usize) -> Run {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(users)
        .build()
        .expect("client");
    let (issuer, client) = (issuer.to_owned(), client.clone());
    drive(total, users, move |_| {
        let (http, issuer, client) = (http.clone(), issuer.clone(), client.clone());
        async move { complete_login(&http, &issuer, &client.0, &client.1).await }
    })
    .await
}

/// Code exchanges by `client` (`client_secret_basic`), `users` at a time, from the source
/// address `from` (any loopback address works on Linux) or the default one.
async fn exchanges(
    issuer: &str,
    codes: Vec<String>,
    client: &(String, String),
    users: usize,
    from: Option<IpAddr>,
) -> Run {
    let count = codes.len();
    let codes = Arc::new(codes);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(users)
        .local_address(from)
        .build()
        .expect("client");
    let (issuer, client) = (issuer.to_owned(), client.clone());
    drive(count, users, move |i| {
        let (http, codes, issuer, client) = (
            http.clone(),
            Arc::clone(&codes),
            issuer.clone(),
            client.clone(),
        );
        async move {
            http.post(format!("{issuer}/token"))
                .basic_auth(&client.0, Some(&client.1))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", codes[i].as_str()),
                    ("redirect_uri", REDIRECT_URI),
                ])
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await
}

/// How a flood of wrong secrets was answered.
#[derive(Default)]
struct FloodTally {
    unauthorized: AtomicUsize,
    too_many: AtomicUsize,
    unavailable: AtomicUsize,
    other: AtomicUsize,
}

impl FloodTally {
    fn total(&self) -> usize {
        [
            &self.unauthorized,
            &self.too_many,
            &self.unavailable,
            &self.other,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    fn summary(&self, seconds: f64) -> String {
        format!(
            "{} requests ({:.0}/s): 401 {}, 429 {}, 503 {}, other {}",
            self.total(),
            self.total() as f64 / seconds.max(1e-9),
            self.unauthorized.load(Ordering::Relaxed),
            self.too_many.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed)
        )
    }
}

/// `flooders` tasks, each sending code exchanges for `client_id` with a new wrong secret back to
/// back from the source address `from`, not waiting for `Retry-After`, until `stop` is set.
fn start_flood(
    issuer: &str,
    client_id: &str,
    from: IpAddr,
    flooders: usize,
    stop: &Arc<AtomicBool>,
    tally: &Arc<FloodTally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(flooders)
        .local_address(from)
        .build()
        .expect("client");
    (0..flooders)
        .map(|n| {
            let (http, stop, tally) = (http.clone(), Arc::clone(stop), Arc::clone(tally));
            let (url, client_id) = (format!("{issuer}/token"), client_id.to_owned());
            tokio::spawn(async move {
                let mut guess = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    guess += 1;
                    let response = http
                        .post(&url)
                        .basic_auth(&client_id, Some(format!("wrong-secret-{n}-{guess}")))
                        .form(&[
                            ("grant_type", "authorization_code"),
                            ("code", "not-a-code"),
                            ("redirect_uri", REDIRECT_URI),
                        ])
                        .send()
                        .await;
                    let status = match response {
                        // The body is read so the connection goes back to the pool.
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let _ = r.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    let counter = match status {
                        401 => &tally.unauthorized,
                        429 => &tally.too_many,
                        503 => &tally.unavailable,
                        _ => &tally.other,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

/// Watches the Postgres server: the CPU of the backends serving the benchmark's database and of
/// the server's background writers, and that database's transaction and row counters.
struct PgMonitor {
    conn: sqlx::PgConnection,
    database: String,
}

/// `pg_stat_database` counters, in this order.
const PG_COUNTERS: [&str; 7] = [
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
];

struct PgSample {
    /// CPU seconds of each backend serving the benchmark's database, by pid.
    backends: HashMap<i32, f64>,
    /// CPU seconds of the background writer, WAL writer and checkpointer (shared by every
    /// database on the server: other users' load shows up here too).
    background: f64,
    counters: [i64; 7],
}

/// Postgres CPU between two samples: (backends, background), in seconds.
fn pg_cpu(before: &PgSample, after: &PgSample) -> (f64, f64) {
    let backends = after
        .backends
        .iter()
        .map(|(pid, cpu)| cpu - before.backends.get(pid).copied().unwrap_or(0.0))
        .sum();
    (backends, after.background - before.background)
}

impl PgMonitor {
    /// Connects to the server's maintenance database (not the benchmark's, whose counters it reads).
    async fn connect(server: &str, database: &str) -> Self {
        use sqlx::Connection;
        Self {
            conn: sqlx::PgConnection::connect(server)
                .await
                .expect("Postgres reachable"),
            database: database.to_owned(),
        }
    }

    async fn sample(&mut self) -> PgSample {
        let processes: Vec<(i32, bool)> = sqlx::query_as(
            "SELECT pid, COALESCE(datname = $1::name, false) FROM pg_stat_activity
             WHERE datname = $1::name
                OR backend_type IN ('background writer', 'walwriter', 'checkpointer')",
        )
        .bind(&self.database)
        .fetch_all(&mut self.conn)
        .await
        .expect("pg_stat_activity");
        let mut backends = HashMap::new();
        let mut background = 0.0;
        for (pid, ours) in processes {
            let cpu = cpu_seconds_of(pid as u32);
            if ours {
                backends.insert(pid, cpu);
            } else {
                background += cpu;
            }
        }
        let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted,
                    tup_updated, tup_deleted
             FROM pg_stat_database WHERE datname = $1::name",
        )
        .bind(&self.database)
        .fetch_one(&mut self.conn)
        .await
        .expect("pg_stat_database");
        PgSample {
            backends,
            background,
            counters: [row.0, row.1, row.2, row.3, row.4, row.5, row.6],
        }
    }

    /// Waits until no backend serves the benchmark's database: a backend publishes its last
    /// counters when it exits, so only then are `pg_stat_database`'s figures complete.
    async fn wait_disconnected(&mut self) {
        let started = Instant::now();
        loop {
            let (left,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM pg_stat_activity WHERE datname = $1::name")
                    .bind(&self.database)
                    .fetch_one(&mut self.conn)
                    .await
                    .expect("pg_stat_activity");
            if left == 0 || started.elapsed() > Duration::from_secs(10) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Statements the provider sent, by kind (first word), counted from its JSON log lines.
fn statements_in(log: &std::path::Path, skip_lines: usize) -> (usize, BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut kinds = BTreeMap::new();
    let mut total = 0;
    for line in text.lines().skip(skip_lines) {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        // sqlx's statement events (target `sqlx::query`, not printed) carry `db.statement`.
        let fields = &event["fields"];
        let Some(summary) = fields["summary"].as_str() else {
            continue;
        };
        if fields.get("db.statement").is_none() {
            continue;
        }
        let kind = summary
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_ascii_uppercase();
        *kinds.entry(kind).or_insert(0) += 1;
        total += 1;
    }
    (total, kinds)
}

fn log_lines(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn ms_per(seconds: f64, count: usize) -> f64 {
    seconds * 1000.0 / count.max(1) as f64
}

/// Everything one algorithm's runs need.
struct Bench<'a> {
    http: reqwest::Client,
    simulator: &'a str,
    alg: &'a str,
    users: usize,
    logins: usize,
    codes: usize,
}

impl Bench<'_> {
    fn launch<'b>(&'b self, database: &'b Database, cache: &'b str) -> Launch<'b> {
        Launch {
            database_url: &database.url,
            simulator: self.simulator,
            secret_cache_secs: cache,
            signing_alg: self.alg,
            rate_limit_per_minute: "0",
            log: None,
        }
    }

    async fn start(&self, launch: &Launch<'_>) -> (Process, String, Duration) {
        let port = free_port();
        let issuer = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let provider = start_provider(port, launch);
        let ready = wait_ready(&self.http, &format!("{issuer}/readyz"), started).await;
        (provider, issuer, ready)
    }

    async fn mint(&self, database: &Database, client_id: &str, count: usize) -> Vec<String> {
        let config = Config::from_pairs([("DATABASE_URL", database.url.as_str())]).expect("config");
        let store = Store::connect(&config.database).await.expect("store");
        let codes = mint_codes(&store, client_id, count).await;
        // Closed before anything is measured: its backends are not the provider's.
        store.close().await;
        codes
    }

    /// The scenarios asked for, on a fresh database.
    async fn run(&self, throughput: bool, flood: bool) {
        let database = Database::fresh().await;
        let mut pg = match &database.postgres {
            Some((server, name)) => Some(PgMonitor::connect(server, name).await),
            None => None,
        };
        if throughput {
            self.throughput(&database, pg.as_mut()).await;
        }
        if flood {
            self.flood(pg.as_mut(), &database).await;
        }
        drop(pg);
        database.drop_it().await;
    }

    /// Readiness, logins, exchanges, statements, memory.
    async fn throughput(&self, database: &Database, mut pg: Option<&mut PgMonitor>) {
        println!("\n== {} ==", self.alg);

        // First start: migrations and key generation included.
        let (provider, issuer, ready) = self.start(&self.launch(database, "600")).await;
        println!(
            "  ready, first start          {:>9.1} ms",
            ready.as_secs_f64() * 1000.0
        );
        let client = register(&self.http, &issuer).await;
        logins(&issuer, &client, 2 * self.users, self.users).await;
        let codes = self.mint(database, &client.0, self.codes).await;

        let measure = |label: &'static str, run: &Run, cpu: f64, pg: Option<(f64, f64)>| {
            println!(
                "  {label:<27} {:>9} of {} in {:.2} s: {:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms",
                run.ok,
                run.total,
                run.elapsed.as_secs_f64(),
                run.per_second(),
                run.percentile_ms(0.50),
                run.percentile_ms(0.99)
            );
            let mut line = format!("    CPU each: provider {:.3} ms", ms_per(cpu, run.ok));
            if let Some((backends, background)) = pg {
                line.push_str(&format!(
                    " + Postgres backends {:.3} ms = {:.3} ms (+ server background {:.3} ms)",
                    ms_per(backends, run.ok),
                    ms_per(cpu + backends, run.ok),
                    ms_per(background, run.ok)
                ));
            }
            println!("{line}; loadavg {}", loadavg());
        };

        for (label, phase) in [("complete logins", 0), ("code exchanges", 1)] {
            let cpu_before = provider.cpu_seconds();
            let pg_before = match pg.as_mut() {
                Some(pg) => Some(pg.sample().await),
                None => None,
            };
            let run = if phase == 0 {
                logins(&issuer, &client, self.logins, self.users).await
            } else {
                exchanges(&issuer, codes.clone(), &client, self.users, None).await
            };
            let cpu = provider.cpu_seconds() - cpu_before;
            let pg_cost = match (pg.as_mut(), pg_before) {
                (Some(pg), Some(before)) => Some(pg_cpu(&before, &pg.sample().await)),
                _ => None,
            };
            measure(label, &run, cpu, pg_cost);
        }
        println!(
            "  peak memory                 {:>9.1} MiB",
            provider.peak_rss_mib()
        );
        drop(provider);

        // A restart on the existing database, without the verified-secret cache.
        let (provider, issuer, ready) = self.start(&self.launch(database, "0")).await;
        println!(
            "  ready, restart              {:>9.1} ms",
            ready.as_secs_f64() * 1000.0
        );
        let few = (self.codes / 50).max(50);
        let codes = self.mint(database, &client.0, few).await;
        let cpu_before = provider.cpu_seconds();
        let run = exchanges(&issuer, codes, &client, self.users, None).await;
        measure(
            "exchanges, argon2 each",
            &run,
            provider.cpu_seconds() - cpu_before,
            None,
        );
        println!(
            "  peak memory (argon2)        {:>9.1} MiB",
            provider.peak_rss_mib()
        );
        drop(provider);

        self.count_statements(database, pg, &client).await;
    }

    /// Statements (and on Postgres commits and rows) per login and per exchange, from three runs
    /// of a provider that logs every statement: start only, start + logins, start + exchanges.
    /// Each run ends with the provider killed, so its backends exit and publish their counters.
    async fn count_statements(
        &self,
        database: &Database,
        mut pg: Option<&mut PgMonitor>,
        client: &(String, String),
    ) {
        let logins_n = (self.logins / 4).max(20);
        let codes_n = (self.codes / 20).max(100);
        let codes = self.mint(database, &client.0, codes_n).await;
        let log = std::env::temp_dir().join(format!("wecom-oidc-bench-{}.log", random_token(6)));
        let mut samples = Vec::new();
        if let Some(pg) = pg.as_deref_mut() {
            pg.wait_disconnected().await;
            samples.push(pg.sample().await.counters);
        }
        let mut statements = Vec::new();
        for phase in 0..3 {
            let mut launch = self.launch(database, "600");
            launch.log = Some(&log);
            let (provider, issuer, _) = self.start(&launch).await;
            let skip = log_lines(&log);
            match phase {
                1 => {
                    logins(&issuer, client, logins_n, self.users).await;
                }
                2 => {
                    exchanges(&issuer, codes.clone(), client, self.users, None).await;
                }
                _ => {}
            }
            statements.push(statements_in(&log, skip));
            drop(provider);
            if let Some(pg) = pg.as_deref_mut() {
                pg.wait_disconnected().await;
                samples.push(pg.sample().await.counters);
            }
        }
        let _ = std::fs::remove_file(&log);
        for (phase, label, n) in [(1, "login", logins_n), (2, "exchange", codes_n)] {
            let (total, kinds) = &statements[phase];
            let kinds: Vec<String> = kinds
                .iter()
                .map(|(kind, count)| format!("{kind} {:.1}", *count as f64 / n as f64))
                .collect();
            println!(
                "  statements per {label:<9}    {:>9.1}  ({})",
                *total as f64 / n as f64,
                kinds.join(", ")
            );
            if samples.len() == 4 {
                // The run's counters less those of a start alone.
                let per: Vec<String> = PG_COUNTERS
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let run = samples[phase + 1][i] - samples[phase][i];
                        let start = samples[1][i] - samples[0][i];
                        format!("{name} {:.1}", (run - start) as f64 / n as f64)
                    })
                    .collect();
                println!("    Postgres per {label}: {}", per.join(", "));
            }
        }
    }

    /// The flood scenario: a correct confidential client's code exchanges (`client_secret_basic`,
    /// from 127.0.0.2), without and then during a flood of wrong secrets for the same client id
    /// from another address, with the default failure limit on. Once for a client with a
    /// generated secret (digest) and once for one with an administrator's secret (argon2id).
    async fn flood(&self, mut pg: Option<&mut PgMonitor>, database: &Database) {
        let codes_n = env_count("BENCH_FLOOD_CODES", 3000);
        let concurrency = env_count("BENCH_FLOOD_CONCURRENCY", 4);
        let flooders = env_count("BENCH_FLOODERS", 8);
        // A closed-loop client from one address far exceeds the default 1200 requests a minute;
        // AUTH_FAILURE_LIMIT_PER_MINUTE keeps its default.
        let rate_limit =
            std::env::var("BENCH_FLOOD_RATE_LIMIT").unwrap_or_else(|_| "1000000".into());
        let mut launch = self.launch(database, "600");
        launch.rate_limit_per_minute = &rate_limit;
        let (provider, issuer, _) = self.start(&launch).await;
        println!(
            "\n== flood of wrong secrets ({}): correct client {concurrency} at a time from \
             127.0.0.2, {flooders} flooders; RATE_LIMIT_PER_MINUTE={rate_limit}, \
             AUTH_FAILURE_LIMIT_PER_MINUTE default ==",
            self.alg
        );
        let kinds = [
            (
                "generated secret (digest)",
                None,
                Ipv4Addr::new(127, 0, 0, 3),
            ),
            (
                "admin secret (argon2id)",
                Some("bench-chosen-secret-0123456789"),
                // A fresh flooding address: the first one's failure allowance is spent.
                Ipv4Addr::new(127, 0, 0, 4),
            ),
        ];
        let correct = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        for (kind, chosen, flood_from) in kinds {
            let client = register_with(&self.http, &issuer, chosen).await;
            // Warm-up: connections, and the argon2id secret verified once and remembered.
            let warm = self.mint(database, &client.0, 100).await;
            exchanges(&issuer, warm, &client, concurrency, correct).await;
            for flooding in [false, true] {
                let codes = self.mint(database, &client.0, codes_n).await;
                let stop = Arc::new(AtomicBool::new(false));
                let tally = Arc::new(FloodTally::default());
                let cpu_before = provider.cpu_seconds();
                // The load driver (this process: correct client and flooders) shares the cores.
                let driver_before = cpu_seconds_of(std::process::id());
                let pg_before = match pg.as_deref_mut() {
                    Some(pg) => Some(pg.sample().await),
                    None => None,
                };
                let started = Instant::now();
                let flood = if flooding {
                    start_flood(
                        &issuer,
                        &client.0,
                        IpAddr::V4(flood_from),
                        flooders,
                        &stop,
                        &tally,
                    )
                } else {
                    Vec::new()
                };
                let run = exchanges(&issuer, codes, &client, concurrency, correct).await;
                stop.store(true, Ordering::Relaxed);
                for task in flood {
                    let _ = task.await;
                }
                let window = started.elapsed().as_secs_f64();
                let cpu = provider.cpu_seconds() - cpu_before;
                let driver = cpu_seconds_of(std::process::id()) - driver_before;
                let pg_line = match (pg.as_deref_mut(), pg_before) {
                    (Some(pg), Some(before)) => {
                        let (backends, _) = pg_cpu(&before, &pg.sample().await);
                        format!(", Postgres backends {backends:.2} s")
                    }
                    _ => String::new(),
                };
                println!(
                    "  {kind}, {:<9} {} of {} in {:.2} s: {:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms",
                    if flooding { "flood:" } else { "no flood:" },
                    run.ok,
                    run.total,
                    run.elapsed.as_secs_f64(),
                    run.per_second(),
                    run.percentile_ms(0.50),
                    run.percentile_ms(0.99)
                );
                println!(
                    "    provider CPU {cpu:.2} s in {window:.2} s ({:.2} cores; {:.3} ms per correct exchange){pg_line}; load driver {driver:.2} s; loadavg {}",
                    cpu / window.max(1e-9),
                    ms_per(cpu, run.ok),
                    loadavg()
                );
                if flooding {
                    println!("    flood from {flood_from}: {}", tally.summary(window));
                }
            }
        }
        drop(provider);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let store_kind = if std::env::var("DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        "Postgres"
    } else {
        "SQLite"
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let sim_port = free_port();
    let simulator_url = format!("http://127.0.0.1:{sim_port}");
    let _simulator = Process(
        Command::new(env!("CARGO_BIN_EXE_wecom-oidc"))
            .args(["simulator", "--listen", &format!("127.0.0.1:{sim_port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("simulator starts"),
    );
    wait_ready(
        &http,
        &format!("{simulator_url}/cgi-bin/gettoken"),
        Instant::now(),
    )
    .await;
    let algs = std::env::var("BENCH_ALGS").unwrap_or_else(|_| "RS256,ES256".into());
    let users = env_count("BENCH_USERS", 16);
    println!(
        "wecom-oidc benchmark on {store_kind}, {} cores, {users} concurrent users; loadavg {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        loadavg()
    );
    // BENCH_SCENARIO: `throughput` (readiness, logins, exchanges), `flood` (the correct client's
    // latency under a flood of wrong secrets) or, by default, both.
    let scenario = std::env::var("BENCH_SCENARIO").unwrap_or_default();
    let throughput = scenario.is_empty() || scenario == "all" || scenario == "throughput";
    let flood = scenario.is_empty() || scenario == "all" || scenario == "flood";
    assert!(
        throughput || flood,
        "BENCH_SCENARIO must be throughput, flood or all, not {scenario:?}"
    );
    for alg in algs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        Bench {
            http: http.clone(),
            simulator: &simulator_url,
            alg,
            users,
            logins: env_count("BENCH_LOGINS", 1000),
            codes: env_count("BENCH_CODES", 20_000),
        }
        .run(throughput, flood)
        .await;
    }
}
