//! Benchmark of the provider as deployed: the release binary runs as its own process (beside the
//! WeCom simulator, another process), so its CPU time and peak memory are read from /proc and not
//! mixed with the load generator's.
//!
//! It measures, on the store `DATABASE_URL` names (SQLite when unset):
//! - readiness: spawn → first `200` from `/readyz`;
//! - CPU per complete login: authorize → WeCom (simulator) → callback → token → userinfo;
//! - token endpoint throughput: authorization-code exchanges per second by a confidential client
//!   with a correct secret, with the verified-secret cache and without it (argon2 every time);
//! - peak resident memory of the provider.
//!
//! Run: `cargo bench --bench token_endpoint` (add `DATABASE_URL=postgres://…/postgres` for Postgres;
//! a fresh database is created and dropped). `BENCH_CODES` and `BENCH_LOGINS` change the counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use url::Url;
use wecom_oidc::config::Config;
use wecom_oidc::crypto::{random_token, sha256_hex};
use wecom_oidc::oidc::CodeDetails;
use wecom_oidc::storage::Store;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const CONCURRENCY: usize = 32;

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

/// A child process that is killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// User + system CPU seconds so far (/proc/PID/stat fields 14 and 15, in clock ticks).
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
            .sum();
        ticks / 100.0
    }

    /// Peak resident set size (VmHWM) in MiB.
    fn peak_rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
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

/// A fresh database: a temp SQLite file, or a new database on the Postgres server.
async fn fresh_database() -> (String, Option<(String, String)>) {
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
            (url.to_string(), Some((server, name)))
        }
        None => (
            format!(
                "sqlite://{}",
                std::env::temp_dir().join(format!("{name}.db")).display()
            ),
            None,
        ),
    }
}

fn start_provider(
    port: u16,
    database_url: &str,
    simulator: &str,
    secret_cache_secs: &str,
) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_wecom-oidc"))
        .arg("serve")
        .env_clear()
        .env("OIDC_ISSUER", format!("http://127.0.0.1:{port}"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", database_url)
        .env("DATABASE_MAX_CONNECTIONS", "16")
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WECOM_CORP_ID", "wwsim0000000001")
        .env("WECOM_CORP_SECRET", "sim-secret-1000002")
        .env("WECOM_AGENT_ID", "1000002")
        .env("WECOM_API_BASE", simulator)
        .env("WECOM_LOGIN_BASE", simulator)
        .env("WECOM_OAUTH_BASE", simulator)
        .env("CLIENT_SECRET_CACHE_SECS", secret_cache_secs)
        // The load generator is one source sending far more than any real relying party.
        .env("RATE_LIMIT_PER_MINUTE", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("provider starts");
    Process(child)
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// One complete login by a fresh browser; returns whether userinfo answered.
async fn complete_login(issuer: &str, client_id: &str, secret: &str) -> bool {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client");
    let mut authorize = Url::parse(&format!("{issuer}/authorize")).expect("url");
    authorize.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid profile email groups"),
        ("state", "s"),
        ("nonce", "n"),
    ]);
    let Ok(response) = browser.get(authorize.as_str()).send().await else {
        return false;
    };
    let Ok(mut wecom) = Url::parse(&location(&response)) else {
        return false;
    };
    let approve = format!("{}/approve", wecom.path());
    wecom.set_path(&approve);
    wecom.query_pairs_mut().append_pair("userid", "wangwu");
    let Ok(response) = browser.get(wecom.as_str()).send().await else {
        return false;
    };
    let Ok(response) = browser.get(location(&response)).send().await else {
        return false;
    };
    let Some(code) = Url::parse(&location(&response)).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
    }) else {
        return false;
    };
    let Ok(tokens) = browser
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
    browser
        .get(format!("{issuer}/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

/// Runs `total` jobs with `CONCURRENCY` in flight; returns (successes, elapsed).
async fn drive<F, Fut>(total: usize, job: F) -> (usize, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY.min(total.max(1)))
        .map(|_| {
            let (job, next, ok) = (Arc::clone(&job), Arc::clone(&next), Arc::clone(&ok));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    if job(i).await {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    (ok.load(Ordering::SeqCst), started.elapsed())
}

/// Stores `count` codes for `client_id` directly, as `/authorize` + the callback would.
async fn mint_codes(store: &Store, client_id: &str, count: usize) -> Vec<String> {
    let now = wecom_oidc::clock::Clock::now(&wecom_oidc::clock::SystemClock);
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
                    .insert_code(
                        &sha256_hex(&code),
                        &random_token(16),
                        &client_id,
                        None,
                        &details,
                        now + 3600,
                    )
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
    let created: Value = http
        .post(format!("{issuer}/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "client_name": "bench", "redirect_uris": [REDIRECT_URI] }))
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON");
    (
        created["client_id"].as_str().unwrap_or_default().to_owned(),
        created["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn token_throughput(
    issuer: &str,
    codes: Vec<String>,
    client: &(String, String),
) -> (usize, Duration) {
    let count = codes.len();
    let codes = Arc::new(codes);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    let (issuer, client) = (issuer.to_owned(), client.clone());
    drive(count, move |i| {
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (database_url, postgres) = fresh_database().await;
    let store_kind = if postgres.is_some() {
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
    let config = Config::from_pairs([("DATABASE_URL", database_url.as_str())]).expect("config");

    println!(
        "wecom-oidc benchmark on {store_kind}, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let logins = env_count("BENCH_LOGINS", 400);
    let codes = env_count("BENCH_CODES", 20_000);
    for (label, cache_secs, count) in [
        ("with the verified-secret cache", "600", codes),
        (
            "without it (argon2 on every request)",
            "0",
            (codes / 50).max(50),
        ),
    ] {
        let port = free_port();
        let issuer = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let provider = start_provider(port, &database_url, &simulator_url, cache_secs);
        let ready = wait_ready(&http, &format!("{issuer}/readyz"), started).await;
        println!(
            "\n[{label}]\n  ready after               {:>8.1} ms",
            ready.as_secs_f64() * 1000.0
        );
        let store = Store::connect(&config.database).await.expect("store");
        let client = register(&http, &issuer).await;

        if cache_secs != "0" {
            let (client_id, secret) = client.clone();
            let warm = issuer.clone();
            drive(20, move |_| {
                let (warm, client_id, secret) = (warm.clone(), client_id.clone(), secret.clone());
                async move { complete_login(&warm, &client_id, &secret).await }
            })
            .await;
            let cpu_before = provider.cpu_seconds();
            let (client_id, secret, login_issuer) =
                (client.0.clone(), client.1.clone(), issuer.clone());
            let (ok, elapsed) = drive(logins, move |_| {
                let (issuer, client_id, secret) =
                    (login_issuer.clone(), client_id.clone(), secret.clone());
                async move { complete_login(&issuer, &client_id, &secret).await }
            })
            .await;
            let cpu = provider.cpu_seconds() - cpu_before;
            println!(
                "  complete logins           {ok:>8} of {logins} in {:.2} s",
                elapsed.as_secs_f64()
            );
            println!(
                "  provider CPU per login    {:>8.3} ms",
                cpu * 1000.0 / ok.max(1) as f64
            );
        }

        let codes = mint_codes(&store, &client.0, count).await;
        let cpu_before = provider.cpu_seconds();
        let (ok, elapsed) = token_throughput(&issuer, codes, &client).await;
        let cpu = provider.cpu_seconds() - cpu_before;
        println!(
            "  code exchanges            {ok:>8} of {count} in {:.2} s",
            elapsed.as_secs_f64()
        );
        println!(
            "  token endpoint            {:>8.0} exchanges/s",
            ok as f64 / elapsed.as_secs_f64()
        );
        println!(
            "  provider CPU per exchange {:>8.3} ms",
            cpu * 1000.0 / ok.max(1) as f64
        );
        println!(
            "  provider peak memory      {:>8.1} MiB",
            provider.peak_rss_mib()
        );
        store.close().await;
    }

    match postgres {
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
            let path = database_url.trim_start_matches("sqlite://").to_owned();
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}
