//! The client registry (admin API and CLI), key rotation, restarts, replicas, path prefixes,
//! start-up failures and warnings, and the `health` probe a container runs.

use std::process::Command;

use serde_json::{json, Value};
use wecom_oidc::clock::{Clock, ManualClock};
use wecom_oidc::config::Config;
use wecom_oidc::keys::KeyManager;
use wecom_oidc::storage::Store;

use crate::helpers::{TestApp, TestDatabase, ADMIN_TOKEN};

fn admin(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN)
}

async fn client_count(app: &TestApp) -> usize {
    let list: Value = admin(app, reqwest::Method::GET, "/admin/clients")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["clients"].as_array().unwrap().len()
}

#[tokio::test]
async fn admin_api_create_list_get_update_rotate_delete() {
    let app = TestApp::spawn().await;

    let created = admin(&app, reqwest::Method::POST, "/admin/clients")
        .json(&json!({ "client_name": "grafana", "redirect_uris": ["https://grafana.example.com/login/generic_oauth"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");

    let list: Value = admin(&app, reqwest::Method::GET, "/admin/clients")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["clients"][0]["client_id"], id.as_str());
    assert!(
        list["clients"][0].get("client_secret").is_none(),
        "the secret is shown once"
    );

    let got: Value = admin(&app, reqwest::Method::GET, &format!("/admin/clients/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["client_name"], "grafana");

    let updated = admin(&app, reqwest::Method::PUT, &format!("/admin/clients/{id}"))
        .json(&json!({ "client_name": "grafana-prod", "redirect_uris": ["https://grafana.example.com/login/generic_oauth"], "id_token_profile_claims": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["client_name"], "grafana-prod");
    assert_eq!(updated["id_token_profile_claims"], true);

    let rotated: Value = admin(
        &app,
        reqwest::Method::POST,
        &format!("/admin/clients/{id}/secret"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let stored = app.store.get_client(&id).await.unwrap();
    assert!(wecom_oidc::crypto::verify_secret(
        new_secret,
        stored.secret_hash.as_deref().unwrap()
    ));
    assert!(!wecom_oidc::crypto::verify_secret(
        &secret,
        stored.secret_hash.as_deref().unwrap()
    ));

    let deleted = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/clients/{id}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = admin(&app, reqwest::Method::GET, &format!("/admin/clients/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn bad_admin_input_gets_a_4xx_json_error_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "malformed JSON",
            admin(&app, reqwest::Method::POST, "/admin/clients")
                .header("content-type", "application/json")
                .body("{not json"),
            400,
        ),
        (
            "wrong type",
            admin(&app, reqwest::Method::POST, "/admin/clients")
                .json(&json!({ "client_name": 5, "redirect_uris": [] })),
            400,
        ),
        (
            "fragment",
            admin(&app, reqwest::Method::POST, "/admin/clients")
                .json(&json!({ "client_name": "a", "redirect_uris": ["https://a.example/cb#x"] })),
            400,
        ),
        (
            "wildcard",
            admin(&app, reqwest::Method::POST, "/admin/clients")
                .json(&json!({ "client_name": "a", "redirect_uris": ["https://*.a.example/cb"] })),
            400,
        ),
        (
            "plain http",
            admin(&app, reqwest::Method::POST, "/admin/clients")
                .json(&json!({ "client_name": "a", "redirect_uris": ["http://a.example/cb"] })),
            400,
        ),
        (
            "relative",
            admin(&app, reqwest::Method::POST, "/admin/clients")
                .json(&json!({ "client_name": "a", "redirect_uris": ["/cb"] })),
            400,
        ),
        (
            "no token",
            app.http
                .post(app.url("/admin/clients"))
                .json(&json!({ "client_name": "a", "redirect_uris": ["https://a.example/cb"] })),
            401,
        ),
        (
            "wrong token",
            app.http
                .post(app.url("/admin/clients"))
                .bearer_auth("wrong-token-0123456789")
                .json(&json!({ "client_name": "a", "redirect_uris": ["https://a.example/cb"] })),
            401,
        ),
        (
            "unknown client",
            admin(&app, reqwest::Method::PUT, "/admin/clients/nope")
                .json(&json!({ "client_name": "a", "redirect_uris": ["https://a.example/cb"] })),
            404,
        ),
        (
            "unknown client rotate",
            admin(&app, reqwest::Method::POST, "/admin/clients/nope/secret"),
            404,
        ),
    ];
    for (case, request, status) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{case}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|_| panic!("{case}: JSON body"));
        assert!(
            body["error"].is_string() && body["error_description"].is_string()
                || body["error"] == "not_found",
            "{case}: {body}"
        );
    }
    assert_eq!(client_count(&app).await, 0, "nothing was written");
}

#[tokio::test]
async fn the_admin_api_refuses_everything_without_an_admin_token() {
    let app = TestApp::spawn_with(&[("ADMIN_TOKEN", "")]).await;

    let response = app
        .http
        .get(app.url("/admin/clients"))
        .bearer_auth("anything-at-all-long")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("ADMIN_TOKEN"));
}

#[tokio::test]
async fn clients_and_keys_survive_a_restart() {
    let db = TestDatabase::create().await;
    let db_url = db.url.clone();
    let first = TestApp::spawn_full(&[], "", db).await;
    let client = first.confidential_client().await;
    let jwks_before: Value = first
        .http
        .get(first.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let second = TestApp::spawn_full(&[], "", shared(&db_url)).await;

    let jwks_after: Value = second
        .http
        .get(second.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_before, jwks_after);
    assert_eq!(
        second.store.get_client(&client.id).await.unwrap().client_id,
        client.id
    );
    drop(first);
}

/// The same database again, without taking over its clean-up.
fn shared(url: &str) -> TestDatabase {
    TestDatabase::borrowed(url)
}

#[tokio::test]
async fn two_replicas_starting_together_on_an_empty_database_share_one_key() {
    let db = TestDatabase::create().await;
    let config = Config::from_pairs([("DATABASE_URL", db.url.as_str())]).unwrap();
    let (a, b) = tokio::join!(
        Store::connect(&config.database),
        Store::connect(&config.database)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let now = ManualClock::default().now();

    let (first, second) = tokio::join!(
        KeyManager::load_or_create(a.clone(), &config, now),
        KeyManager::load_or_create(b, &config, now)
    );

    assert_eq!(first.unwrap().current_kid(), second.unwrap().current_kid());
    assert_eq!(a.signing_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn every_route_works_under_an_issuer_path_prefix() {
    let app = TestApp::spawn_full(&[], "/sso", TestDatabase::create().await).await;
    assert!(app.issuer.ends_with("/sso"));
    let doc: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], app.issuer.as_str());
    assert_eq!(doc["token_endpoint"], format!("{}/token", app.issuer));
    let client = app.confidential_client().await;

    let back = app.sign_in(&client, "wangwu", &[]).await;

    let wecom_redirect = app.simulator.control().calls("/cgi-bin/auth/getuserinfo");
    assert_eq!(wecom_redirect, 1);
    assert_eq!(
        app.exchange(&client, &back.code.unwrap(), None)
            .await
            .status(),
        200
    );
    let unprefixed = app
        .http
        .get(format!("http://127.0.0.1:{}/token", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(unprefixed.status(), 404);
}

pub(crate) fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wecom-oidc"));
    for key in [
        "DATABASE_URL",
        "OIDC_ISSUER",
        "ADMIN_TOKEN",
        "WECOM_CORP_ID",
        "WECOM_CORP_SECRET",
        "WECOM_AGENT_ID",
        "KEY_ENCRYPTION_KEY",
        "LISTEN_ADDR",
        "RUST_LOG",
    ] {
        command.env_remove(key);
    }
    command
}

#[test]
fn an_unreachable_database_at_start_up_is_a_clear_error_and_a_failing_exit() {
    let output = binary()
        .args(["keys", "rotate"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn an_invalid_setting_stops_the_program_naming_the_variable() {
    let output = binary()
        .env("LISTEN_ADDR", "not-an-address")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("LISTEN_ADDR"));
}

#[tokio::test]
async fn the_cli_creates_lists_and_deletes_clients() {
    let db = TestDatabase::create().await;
    let run = |args: &[&str]| {
        let output = binary()
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let created = run(&[
        "client",
        "create",
        "--name",
        "grafana",
        "--redirect-uri",
        "https://grafana.example.com/login/generic_oauth",
        "--backchannel-logout-uri",
        "https://grafana.example.com/backchannel",
        "--backchannel-logout-session-required",
    ]);
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("client_id:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(created.contains("client_secret:"));
    assert!(run(&["client", "list"]).contains(&id));
    let config = Config::from_pairs([("DATABASE_URL", db.url.as_str())]).unwrap();
    let stored = Store::connect(&config.database)
        .await
        .unwrap()
        .get_client(&id)
        .await
        .unwrap();
    assert_eq!(
        stored.metadata.backchannel_logout_uri.as_deref(),
        Some("https://grafana.example.com/backchannel")
    );
    assert!(stored.metadata.backchannel_logout_session_required);
    run(&["client", "rotate-secret", &id]);
    run(&["client", "delete", &id]);
    assert!(!run(&["client", "list"]).contains(&id));
}

/// Postgres only: the database goes away while the provider runs, then comes back.
#[tokio::test]
async fn a_database_outage_answers_503_and_recovers_without_a_restart() {
    let Some(server) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    else {
        return; // an embedded SQLite file cannot go away underneath the process
    };
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let name = url::Url::parse(&app.database_url())
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    let admin_sql = |sql: String| {
        let server = server.clone();
        async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
            sqlx::Executor::execute(&mut conn, sql.as_str())
                .await
                .unwrap();
        }
    };

    admin_sql(format!(
        r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS false"#
    ))
    .await;
    admin_sql(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;

    let started = std::time::Instant::now();
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "/readyz answers within a second: {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let token = app
        .token_request(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", &client.redirect_uri),
            ],
        )
        .await;
    assert_eq!(token.status(), 503);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "requests fail fast: {:?}",
        started.elapsed()
    );
    let body: Value = token.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        app.http
            .get(app.url("/jwks"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "JWKS needs no database"
    );

    admin_sql(format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS true"#)).await;

    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        app.sign_in(&client, "wangwu", &[]).await.code.is_some(),
        "sign-in works again"
    );
}

/// `wecom-oidc check` against the simulator, as an operator would run it.
async fn run_check(app: &TestApp, secret: &str) -> (bool, String) {
    let sim = app.simulator.base_url().to_string();
    let sim = sim.trim_end_matches('/');
    let config = Config::from_pairs([
        ("WECOM_CORP_ID", crate::helpers::CORP_ID),
        ("WECOM_CORP_SECRET", secret),
        ("WECOM_AGENT_ID", crate::helpers::AGENT_ID),
        ("WECOM_API_BASE", sim),
    ])
    .unwrap();
    let mut out = Vec::new();
    let ok = wecom_oidc::check::run(&config, Some("wujiu"), &mut out)
        .await
        .unwrap();
    (ok, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn check_explains_a_wrong_secret_an_untrusted_ip_and_the_visible_range() {
    let app = TestApp::spawn().await;

    let (ok, report) = run_check(&app, "wrong-secret").await;
    assert!(!ok);
    assert!(
        report.contains("40001") && report.contains("WECOM_CORP_SECRET"),
        "{report}"
    );

    let (ok, report) = run_check(&app, crate::helpers::AGENT_SECRET).await;
    assert!(!ok, "wujiu is outside the visible range");
    assert!(report.contains("gettoken"), "{report}");
    assert!(report.contains("可见范围"), "{report}");

    app.simulator
        .control()
        .set_trusted_ips(crate::helpers::AGENT_ID, Some(vec!["203.0.113.9".into()]));
    let (ok, report) = run_check(&app, crate::helpers::AGENT_SECRET).await;
    assert!(!ok);
    assert!(
        report.contains("60020") && report.contains("127.0.0.1") && report.contains("企业可信IP"),
        "{report}"
    );
}

#[tokio::test]
async fn signing_keys_are_encrypted_at_rest_when_a_key_encryption_key_is_set() {
    let db = TestDatabase::create().await;
    let kek = "k".repeat(40);
    let sealed = Config::from_pairs([
        ("DATABASE_URL", db.url.as_str()),
        ("KEY_ENCRYPTION_KEY", kek.as_str()),
    ])
    .unwrap();
    let store = Store::connect(&sealed.database).await.unwrap();
    let now = ManualClock::default().now();
    let keys = KeyManager::load_or_create(store.clone(), &sealed, now)
        .await
        .unwrap();

    let stored = store.signing_keys().await.unwrap();
    assert!(
        stored[0].private_jwk.starts_with("enc:v1:"),
        "no plaintext private key in the database"
    );
    assert!(!stored[0].private_jwk.contains("\"d\""));
    let kid = keys.current_kid();
    let again = KeyManager::load_or_create(store.clone(), &sealed, now)
        .await
        .unwrap();
    assert_eq!(
        again.current_kid(),
        kid,
        "the same key opens after a restart"
    );

    let without = Config::from_pairs([("DATABASE_URL", db.url.as_str())]).unwrap();
    let err = KeyManager::load_or_create(store, &without, now)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("KEY_ENCRYPTION_KEY"), "{err:#}");
}

/// Runs the binary off the async runtime, which the application under test shares.
async fn run_binary(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn health_exits_0_when_the_provider_is_ready_found_from_its_settings_or_a_url() {
    let app = TestApp::spawn_full(&[], "/sso", TestDatabase::create().await).await;
    // As in the container: LISTEN_ADDR is the unspecified address, the issuer has a path prefix.
    let mut from_settings = binary();
    from_settings
        .arg("health")
        .env("LISTEN_ADDR", format!("0.0.0.0:{}", app.port))
        .env("OIDC_ISSUER", &app.issuer);
    let mut from_url = binary();
    from_url.args(["health", "--url", &app.url("/readyz")]);

    for (case, command) in [("settings", from_settings), ("--url", from_url)] {
        let output = run_binary(command).await;

        let stdout = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{case}: {stdout}{}",
            text(&output.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "{case}: one line: {stdout}");
        assert!(
            stdout.contains(&app.url("/readyz")),
            "{case}: names the URL it asked: {stdout}"
        );
    }
}

#[tokio::test]
async fn health_exits_1_with_one_line_when_nothing_listens_or_the_answer_is_not_200() {
    let app = TestApp::spawn().await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };

    for (case, url, says) in [
        (
            "closed port",
            format!("http://127.0.0.1:{closed_port}/readyz"),
            "nothing answers",
        ),
        ("not 200", app.url("/no-such-page"), "answered 404"),
    ] {
        let mut command = binary();
        command.args(["health", "--url", &url]);
        let output = run_binary(command).await;

        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{case}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{case}: one line: {stderr}");
        assert!(stderr.contains(says), "{case}: {stderr}");
    }
}

#[tokio::test]
async fn start_up_warns_while_signing_keys_are_stored_unencrypted() {
    let db = TestDatabase::create().await;
    let warning = "KEY_ENCRYPTION_KEY is not set";

    let mut without = binary();
    without
        .args(["keys", "rotate"])
        .env("DATABASE_URL", &db.url);
    let output = run_binary(without).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(warning),
        "{}",
        text(&output.stderr)
    );

    let mut with = binary();
    with.args(["keys", "rotate"])
        .env("DATABASE_URL", &db.url)
        .env(
            "KEY_ENCRYPTION_KEY",
            "a-key-encryption-key-of-32-characters",
        );
    let output = run_binary(with).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        !text(&output.stderr).contains(warning),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_sqlite_store_whose_directory_cannot_be_written_fails_saying_what_to_do() {
    // chmod does not stop root, as whom CI runs; a regular file where the directory should be stops
    // everyone, and SQLite answers it as it answers a directory it may not write: "unable to open
    // database file".
    let not_a_directory = std::env::temp_dir().join(format!(
        "wecom-oidc-not-a-directory-{}",
        wecom_oidc::crypto::random_hex(8)
    ));
    std::fs::write(&not_a_directory, b"").unwrap();
    let database = not_a_directory.join("wecom-oidc.db");

    let output = binary()
        .args(["keys", "rotate"])
        .env("DATABASE_URL", format!("sqlite://{}", database.display()))
        .output()
        .unwrap();
    std::fs::remove_file(&not_a_directory).unwrap();

    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    for expected in [
        database.display().to_string(),
        format!(
            "the directory {} must exist and be writable",
            not_a_directory.display()
        ),
        "uid 10001".to_owned(),
        "chown 10001".to_owned(),
        "DATABASE_URL".to_owned(),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
    }
}
