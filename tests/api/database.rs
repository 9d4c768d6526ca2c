//! A busy database is waited for, a lost one is failed fast: concurrent writes on a small pool,
//! a pool held busy, and a database that stops answering (behind a proxy the test controls).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use url::Url;

use crate::helpers::{browser, location, parse_callback, TestApp, TestClient, TestDatabase};

/// No request or failure limits: these tests send many requests from one address.
const NO_LIMITS: [(&str, &str); 2] = [
    ("RATE_LIMIT_PER_MINUTE", "0"),
    ("AUTH_FAILURE_LIMIT_PER_MINUTE", "0"),
];

/// One person's whole sign-in in `browser`, then the code exchange: the status of the first step
/// that failed, or of the token response.
async fn sign_in_and_exchange(
    app: &TestApp,
    client: &TestClient,
    browser: reqwest::Client,
    member: &str,
) -> u16 {
    let authorize = browser
        .get(app.authorize_url(client, &[]))
        .send()
        .await
        .unwrap();
    if !authorize.status().is_redirection() {
        return authorize.status().as_u16();
    }
    let callback = app
        .wecom_approves(&location(&authorize), &[("userid", member)])
        .await;
    let back = browser.get(&callback).send().await.unwrap();
    if !back.status().is_redirection() {
        return back.status().as_u16();
    }
    let Some(code) = parse_callback(&location(&back)).code else {
        return 0;
    };
    app.exchange(client, &code, None).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_sign_ins_and_code_exchanges_on_a_one_connection_pool_all_succeed() {
    let mut settings = NO_LIMITS.to_vec();
    settings.push(("DATABASE_MAX_CONNECTIONS", "1"));
    let app = TestApp::spawn_with(&settings).await;
    let client = app.confidential_client().await;
    let members = ["zhangsan", "lisi", "wangwu"];
    let browsers: Vec<_> = (0..16).map(|_| browser()).collect();

    let outcomes = futures_util::future::join_all(
        browsers
            .into_iter()
            .zip(members.iter().cycle())
            .map(|(browser, member)| sign_in_and_exchange(&app, &client, browser, member)),
    )
    .await;

    let failed: Vec<_> = outcomes.iter().filter(|status| **status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        outcomes.len()
    );
}

/// A token request with a made-up code: it authenticates the client, then redeems the code,
/// which writes to `authorization_codes`.
async fn redeem_unknown_code(app: &TestApp, client: &TestClient) -> reqwest::Response {
    app.token_request(
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", "no-such-code"),
            ("redirect_uri", &client.redirect_uri),
        ],
    )
    .await
}

#[tokio::test]
async fn requests_wait_for_a_connection_held_busy_and_then_succeed() {
    let mut settings = NO_LIMITS.to_vec();
    settings.push(("DATABASE_MAX_CONNECTIONS", "1"));
    let app = TestApp::spawn_with(&settings).await;
    let client = app.confidential_client().await;
    let url = app.database_url();

    // Another session holds what the redemption needs. On Postgres the first request then holds
    // the pool's one connection, waiting for the table, and the others wait for that connection.
    // On SQLite the one writer waits for the lock, and the others for the writer.
    use sqlx::Connection;
    let mut holder = sqlx::AnyConnection::connect(&url).await.unwrap();
    let (lock, held_for) = if url.starts_with("postgres") {
        (
            "BEGIN; LOCK TABLE authorization_codes IN ACCESS EXCLUSIVE MODE",
            // Longer than the 500 ms a request used to wait for a connection.
            Duration::from_millis(1500),
        )
    } else {
        // Shorter than SQLite's busy timeout: another process's lock is waited for that long.
        ("BEGIN IMMEDIATE", Duration::from_millis(300))
    };
    sqlx::raw_sql(lock).execute(&mut holder).await.unwrap();

    let requests =
        futures_util::future::join_all((0..6).map(|_| redeem_unknown_code(&app, &client)));
    // Time passing is what this test is about: the lock outlasts the old wait for a connection.
    let release = async {
        tokio::time::sleep(held_for).await;
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut holder)
            .await
            .unwrap();
    };
    let (responses, ()) = tokio::join!(requests, release);

    for response in responses {
        assert_eq!(response.status(), 400, "waited, then answered");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");
    }
}

/// A TCP proxy in front of the test's Postgres that counts connections and can be cut: while
/// down it accepts and closes at once (the database is gone), and it drops every connection it
/// was forwarding.
struct Proxy {
    port: u16,
    accepted: Arc<AtomicUsize>,
    up: Arc<AtomicBool>,
    forwarding: Arc<Mutex<Vec<JoinHandle<()>>>>,
    listener: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let up = Arc::new(AtomicBool::new(true));
        let forwarding = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::spawn({
            let (accepted, up, forwarding) = (accepted.clone(), up.clone(), forwarding.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if !up.load(Ordering::SeqCst) {
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    forwarding.lock().unwrap().push(task);
                }
            }
        });
        Proxy {
            port,
            accepted,
            up,
            forwarding,
            listener,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.forwarding.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.listener.abort();
    }
}

/// Postgres only: a SQLite file is opened, not connected to, and does not go away.
#[tokio::test]
async fn a_database_that_cannot_be_reached_fails_requests_at_once_until_a_probe_connects() {
    let db = TestDatabase::create().await;
    if !db.url.starts_with("postgres") {
        return;
    }
    let mut proxied = Url::parse(&db.url).unwrap();
    let upstream = format!(
        "{}:{}",
        proxied.host_str().unwrap(),
        proxied.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    proxied.set_port(Some(proxy.port)).unwrap();
    let mut settings = NO_LIMITS.to_vec();
    settings.push(("DATABASE_URL", proxied.as_str()));
    let app = TestApp::spawn_full(&settings, "", db).await;
    let client = app.confidential_client().await;
    assert_eq!(redeem_unknown_code(&app, &client).await.status(), 400);

    proxy.cut();
    let first = redeem_unknown_code(&app, &client).await;
    assert_eq!(first.status(), 503, "the connection was lost");
    let after_first = proxy.accepted();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = redeem_unknown_code(&app, &client).await;
        statuses.push(response.status().as_u16());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    let readiness = app.http.get(app.url("/readyz")).send().await.unwrap();

    assert_eq!(statuses, vec![503; 10]);
    assert_eq!(readiness.status(), 503);
    assert_eq!(
        proxy.accepted(),
        after_first,
        "once the first failure was confirmed, no request tried to connect"
    );

    // The database is back; the breaker does not know until its next probe is due.
    proxy.restore();
    let still_open = redeem_unknown_code(&app, &client).await;
    assert_eq!(still_open.status(), 503, "no probe before the retry is due");
    app.clock.advance(2);

    let response = redeem_unknown_code(&app, &client).await;
    assert_eq!(
        response.status(),
        400,
        "the probe connected and closed the breaker"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}
