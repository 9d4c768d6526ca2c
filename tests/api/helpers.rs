//! `TestApp`: the real application on a free port with its own fresh database, its own WeCom
//! simulator and a clock the test moves; plus a browser (cookies on, redirects off) to drive it.

use std::net::TcpListener;
use std::sync::Arc;

use reqwest::header::LOCATION;
use serde_json::{json, Value};
use url::Url;

use wecom_oidc::clock::ManualClock;
use wecom_oidc::config::Config;
use wecom_oidc::crypto::{base64url, random_token, sha256};
use wecom_oidc::keys::KeyManager;
use wecom_oidc::oidc::backchannel::BackchannelSender;
use wecom_oidc::simulator::{Directory, Simulator};
use wecom_oidc::startup::{Application, BuildOptions, MemberSweep};
use wecom_oidc::storage::Store;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const CORP_ID: &str = "wwsim0000000001";
pub const AGENT_ID: &str = "1000002";
pub const AGENT_SECRET: &str = "sim-secret-1000002";
pub const RP_REDIRECT: &str = "http://127.0.0.1:9/callback";
pub const RP_LOGOUT_REDIRECT: &str = "http://127.0.0.1:9/signed-out";
/// A WeCom client's User-Agent (the in-client browser).
pub const WECOM_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh";

/// A database of its own: a temp SQLite file, or a new database on the Postgres server that
/// `DATABASE_URL` names. Postgres databases are dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
    owned: bool,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!(
            "wecom_oidc_test_{}",
            random_token(8)
                .to_ascii_lowercase()
                .replace(['-', '_'], "x")
        );
        match std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
        {
            Some(server_url) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&server_url)
                    .await
                    .expect("Postgres from DATABASE_URL is reachable");
                sqlx::Executor::execute(&mut conn, format!(r#"CREATE DATABASE "{name}""#).as_str())
                    .await
                    .expect("create test database");
                let mut url = Url::parse(&server_url).expect("DATABASE_URL is a URL");
                url.set_path(&name);
                TestDatabase {
                    url: url.to_string(),
                    postgres: Some((server_url, name)),
                    owned: true,
                }
            }
            None => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                TestDatabase {
                    url: format!("sqlite://{}", path.display()),
                    postgres: None,
                    owned: true,
                }
            }
        }
    }
}

impl TestDatabase {
    /// A handle on a database another `TestDatabase` owns and will clean up.
    pub fn borrowed(url: &str) -> Self {
        TestDatabase {
            url: url.to_owned(),
            postgres: None,
            owned: false,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        match self.postgres.take() {
            Some((server_url, name)) => {
                // Drop runs outside async; a short-lived runtime on its own thread does the work.
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async move {
                        use sqlx::Connection;
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&server_url).await {
                            let _ = sqlx::Executor::execute(
                                &mut conn,
                                format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)
                                    .as_str(),
                            )
                            .await;
                        }
                    });
                })
                .join();
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

pub struct TestApp {
    pub issuer: String,
    pub port: u16,
    /// The person's browser: keeps cookies, does not follow redirects.
    pub browser: reqwest::Client,
    /// A second client without cookies, for WeCom's pages and back-channel calls.
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub store: Store,
    pub simulator: Simulator,
    /// One pass of the background member sweep, on demand.
    pub sweep: MemberSweep,
    /// The provider's back-channel logout sender: `wait_idle()` awaits its deliveries.
    pub backchannel: BackchannelSender,
    /// Where `/metrics` answers, when the test set `METRICS_ADDR`.
    pub metrics_port: Option<u16>,
    /// The provider's signing keys: `reload(now)` is one tick of its background reloader.
    pub keys: Arc<KeyManager>,
    /// Held so that the database lives exactly as long as the application.
    db: TestDatabase,
}

/// A client registered for a test.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

/// What came back to the relying party after a sign-in.
#[derive(Debug)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("HTTP client")
}

pub fn pkce_pair() -> (String, String) {
    let verifier = random_token(32);
    let challenge = base64url(&sha256(verifier.as_bytes()));
    (verifier, challenge)
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// Starts the application with extra settings (`("ALLOWED_DOMAINS", "corp.example.com")`).
    pub async fn spawn_with(settings: &[(&str, &str)]) -> TestApp {
        Self::spawn_full(settings, "", TestDatabase::create().await).await
    }

    /// Starts the application with the issuer at `path_prefix` (`/sso`) on `db`.
    pub async fn spawn_full(
        settings: &[(&str, &str)],
        path_prefix: &str,
        db: TestDatabase,
    ) -> TestApp {
        let simulator = Simulator::start("127.0.0.1:0", Directory::sample())
            .await
            .expect("simulator starts");
        let sim = simulator
            .base_url()
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
        let port = listener.local_addr().expect("local address").port();
        let issuer = format!("http://127.0.0.1:{port}{path_prefix}");
        let listen = format!("127.0.0.1:{port}");
        let mut pairs: Vec<(&str, &str)> = vec![
            ("OIDC_ISSUER", &issuer),
            ("LISTEN_ADDR", &listen),
            ("DATABASE_URL", &db.url),
            ("DATABASE_MAX_CONNECTIONS", "5"),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("WECOM_CORP_ID", CORP_ID),
            ("WECOM_CORP_SECRET", AGENT_SECRET),
            ("WECOM_AGENT_ID", AGENT_ID),
            ("WECOM_API_BASE", &sim),
            ("WECOM_LOGIN_BASE", &sim),
            ("WECOM_OAUTH_BASE", &sim),
            ("WECOM_TIMEOUT_SECS", "2"),
        ];
        pairs.retain(|(k, _)| !settings.iter().any(|(s, _)| s == k));
        pairs.extend_from_slice(settings);
        let config = Config::from_pairs(pairs).expect("test configuration is valid");
        let clock = ManualClock::default();
        let store = Store::connect(&config.database).await.expect("store");
        let application = Application::build_with(
            config,
            Arc::new(clock.clone()),
            BuildOptions { workers: Some(2) },
            listener,
        )
        .await
        .expect("application builds");
        let sweep = application.member_sweep();
        let backchannel = application.backchannel();
        let metrics_port = application.metrics_port();
        let keys = application.signing_keys();
        tokio::spawn(application.run_until_stopped());
        TestApp {
            issuer,
            port,
            browser: browser(),
            http: browser_without_cookies(),
            clock,
            store,
            simulator,
            sweep,
            backchannel,
            metrics_port,
            keys,
            db,
        }
    }

    /// The same provider seen from another browser (no cookies, so no SSO session).
    pub fn with_fresh_browser(self) -> TestApp {
        TestApp {
            browser: browser(),
            ..self
        }
    }

    pub fn database_url(&self) -> String {
        self.db.url.clone()
    }

    /// Runs one statement on the application's database from outside, as an operator's session
    /// would (to break a table for a failure test, and mend it again).
    pub async fn execute_sql(&self, sql: &str) {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.db.url)
            .await
            .expect("a connection to the test database");
        sqlx::Executor::execute(&mut conn, sql)
            .await
            .expect("the statement runs");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// Registers a client through the admin API.
    pub async fn register(&self, mut body: Value) -> TestClient {
        if body.get("redirect_uris").is_none() {
            body["redirect_uris"] = json!([RP_REDIRECT]);
        }
        if body.get("post_logout_redirect_uris").is_none() {
            body["post_logout_redirect_uris"] = json!([RP_LOGOUT_REDIRECT]);
        }
        let response = self
            .http
            .post(self.url("/admin/clients"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("admin API answers");
        assert_eq!(response.status(), 201, "client registration failed");
        let created: Value = response.json().await.expect("JSON");
        TestClient {
            id: created["client_id"].as_str().expect("client_id").to_owned(),
            secret: created["client_secret"].as_str().map(str::to_owned),
            redirect_uri: body["redirect_uris"][0]
                .as_str()
                .unwrap_or(RP_REDIRECT)
                .to_owned(),
        }
    }

    /// A confidential client with every scope, authenticating with client_secret_basic.
    pub async fn confidential_client(&self) -> TestClient {
        self.register(json!({ "client_name": "test app" })).await
    }

    /// The authorization URL with `extra` parameters added to sensible defaults.
    pub fn authorize_url(&self, client: &TestClient, extra: &[(&str, &str)]) -> String {
        let mut url = Url::parse(&self.url("/authorize")).expect("URL");
        let mut defaults = vec![
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid profile email phone groups"),
            ("state", "rp-state-123"),
            ("nonce", "rp-nonce-456"),
        ];
        defaults.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        url.query_pairs_mut()
            .extend_pairs(defaults)
            .extend_pairs(extra.iter().filter(|(_, v)| !v.is_empty()));
        url.to_string()
    }

    /// GET `url` in the browser and return the redirect target.
    pub async fn follow(&self, url: &str) -> String {
        let response = self.browser.get(url).send().await.expect("request");
        assert!(
            response.status().is_redirection(),
            "expected a redirect from {url}, got {}",
            response.status()
        );
        location(&response)
    }

    /// At WeCom: the chosen member "scans" (or `openid=…` for a non-member, `deny=1` to cancel).
    /// Returns the provider callback URL WeCom redirects to.
    pub async fn wecom_approves(&self, wecom_url: &str, choice: &[(&str, &str)]) -> String {
        let mut url = Url::parse(wecom_url).expect("WeCom URL");
        let approve_path = format!("{}/approve", url.path());
        url.set_path(&approve_path);
        url.query_pairs_mut().extend_pairs(choice);
        let response = self
            .http
            .get(url.as_str())
            .send()
            .await
            .expect("simulator answers");
        assert!(
            response.status().is_redirection(),
            "simulator did not redirect: {}",
            response.status()
        );
        location(&response)
    }

    /// The whole browser round trip for `member` by QR login: authorize → WeCom → callback.
    /// With a live SSO session the provider answers at once, without WeCom.
    pub async fn sign_in(
        &self,
        client: &TestClient,
        member: &str,
        extra: &[(&str, &str)],
    ) -> Callback {
        let wecom = self.follow(&self.authorize_url(client, extra)).await;
        if wecom.starts_with(&client.redirect_uri) {
            return parse_callback(&wecom);
        }
        let callback = self.wecom_approves(&wecom, &[("userid", member)]).await;
        let back = self.follow(&callback).await;
        parse_callback(&back)
    }

    /// Redeems a code as the test client (Basic auth when it has a secret).
    pub async fn exchange(
        &self,
        client: &TestClient,
        code: &str,
        verifier: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", client.redirect_uri.as_str()),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier));
        }
        self.token_request(client, &form).await
    }

    pub async fn token_request(
        &self,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url("/token"));
        let mut form = form.to_vec();
        match &client.secret {
            Some(secret) => request = request.basic_auth(&client.id, Some(secret)),
            None => form.push(("client_id", client.id.as_str())),
        }
        request
            .form(&form)
            .send()
            .await
            .expect("token endpoint answers")
    }

    pub async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("userinfo answers")
    }

    /// Audit rows, newest first.
    pub async fn audit(&self) -> Vec<wecom_oidc::storage::AuditEvent> {
        self.store.recent_audit(50).await.expect("audit rows")
    }
}

fn browser_without_cookies() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("Location header")
        .to_owned()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn parse_callback(url: &str) -> Callback {
    Callback {
        code: query_param(url, "code"),
        state: query_param(url, "state"),
        iss: query_param(url, "iss"),
    }
}

/// Authorization parameters (`state`, `nonce`, `claims`) that together are too large for the
/// sign-in cookie, so the request is kept as a row.
pub fn too_large_for_a_cookie() -> Vec<(&'static str, String)> {
    let claims = json!({ "userinfo": (0..150)
        .map(|i| (format!("x_claim_{i:03}"), Value::Null))
        .collect::<serde_json::Map<_, _>>() });
    vec![
        ("state", "s".repeat(1024)),
        ("nonce", "n".repeat(1024)),
        ("claims", claims.to_string()),
    ]
}
