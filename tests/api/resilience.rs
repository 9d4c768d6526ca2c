//! Start-up order, outages, a busy database, hostile input and transport hardening.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, SET_COOKIE, STRICT_TRANSPORT_SECURITY, WWW_AUTHENTICATE};
use serde_json::{json, Value};
use wecom_oidc::clock::{Clock, ManualClock};
use wecom_oidc::config::Config;
use wecom_oidc::startup::Application;

use crate::helpers::{location, too_large_for_a_cookie, TestApp, TestDatabase, ADMIN_TOKEN};

#[tokio::test]
async fn the_port_is_not_bound_until_the_database_is_ready() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let config = Config::from_pairs([
        ("LISTEN_ADDR", listen.as_str()),
        // A directory that does not exist: the database cannot be opened.
        (
            "DATABASE_URL",
            "sqlite:///nonexistent-dir/for/wecom-oidc.db",
        ),
    ])
    .unwrap();

    let built = Application::build(config, Arc::new(ManualClock::default())).await;

    assert!(built.is_err(), "no database, no application");
    assert!(
        std::net::TcpStream::connect(&listen).is_err(),
        "nothing listened on the port meanwhile"
    );
}

/// SQLite only: another process holds the write lock (a backup, a manual session).
#[tokio::test]
async fn a_long_held_sqlite_write_lock_answers_503_quickly_and_passes() {
    let app = TestApp::spawn().await;
    let Some(path) = app
        .database_url()
        .strip_prefix("sqlite://")
        .map(str::to_owned)
    else {
        return; // Postgres has no database-wide write lock
    };
    let client = app.confidential_client().await;
    use sqlx::Connection;
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    sqlx::Executor::execute(&mut holder, "BEGIN EXCLUSIVE")
        .await
        .unwrap();

    let started = Instant::now();
    let response = app
        .token_request(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", "some-code"),
                ("redirect_uri", &client.redirect_uri),
            ],
        )
        .await;
    let elapsed = started.elapsed();

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");

    sqlx::Executor::execute(&mut holder, "ROLLBACK")
        .await
        .unwrap();
    assert!(
        app.sign_in(&client, "wangwu", &[]).await.code.is_some(),
        "sign-in works once the lock is gone"
    );
}

/// Postgres rejects a NUL byte in text; SQLite stores it. Either way: a 4xx in the endpoint's
/// shape, never a 500.
#[tokio::test]
async fn a_nul_byte_in_a_client_id_is_a_4xx_at_every_endpoint() {
    let app = TestApp::spawn().await;
    let nul_basic = ("a\0b", "secret");
    let form = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let post_form = |path: &str, body: String| {
        app.http
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let cases = [
        (
            "authorize",
            app.http.get(app.url(
                "/authorize?response_type=code&scope=openid&client_id=a%00b&redirect_uri=http://127.0.0.1:9/callback",
            )),
            "text/html",
        ),
        (
            "token (post)",
            post_form(
                "/token",
                form(&[
                    ("grant_type", "authorization_code"),
                    ("code", "x"),
                    ("client_id", "a%00b"),
                    ("client_secret", "s"),
                ]),
            ),
            "application/json",
        ),
        (
            "token (basic)",
            post_form("/token", form(&[("grant_type", "authorization_code"), ("code", "x")]))
                .basic_auth(nul_basic.0, Some(nul_basic.1)),
            "application/json",
        ),
        (
            "revoke",
            post_form("/revoke", form(&[("token", "x"), ("client_id", "a%00b")])),
            "application/json",
        ),
        (
            "introspect",
            post_form(
                "/introspect",
                form(&[("token", "x"), ("client_id", "a%00b"), ("client_secret", "s")]),
            ),
            "application/json",
        ),
        (
            "logout",
            app.http
                .get(app.url("/logout?client_id=a%00b&post_logout_redirect_uri=http://127.0.0.1:9/x")),
            "text/html",
        ),
        (
            "admin get",
            app.http
                .get(app.url("/admin/clients/a%00b"))
                .bearer_auth(ADMIN_TOKEN),
            "application/json",
        ),
        (
            "admin put",
            app.http
                .put(app.url("/admin/clients/a%00b"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"client_name": "x", "redirect_uris": ["https://x.example/cb"]})),
            "application/json",
        ),
        (
            "admin create with NUL metadata",
            app.http
                .post(app.url("/admin/clients"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"client_name": "a\u{0}b", "redirect_uris": ["https://x.example/cb"]})),
            "application/json",
        ),
        (
            "admin delete",
            app.http
                .delete(app.url("/admin/clients/a%00b"))
                .bearer_auth(ADMIN_TOKEN),
            "application/json",
        ),
        (
            "admin rotate",
            app.http
                .post(app.url("/admin/clients/a%00b/secret"))
                .bearer_auth(ADMIN_TOKEN),
            "application/json",
        ),
    ];
    for (case, request, content_type) in cases {
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_client_error(),
            "{case}: {}",
            response.status()
        );
        let got = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(got.starts_with(content_type), "{case}: {got}");
    }
}

#[tokio::test]
async fn oversized_bodies_get_the_endpoints_own_error_shape() {
    let app = TestApp::spawn().await;
    let big = "a=".to_owned() + &"x".repeat(100 * 1024);

    for path in ["/token", "/revoke", "/introspect"] {
        let response = app
            .http
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
    }
    let admin = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 413);
    let body: Value = admin.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn userinfo_refuses_other_methods_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;

    let response = app
        .http
        .put(app.url("/userinfo"))
        .bearer_auth("whatever")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 405);
    assert!(response.headers().contains_key("allow"));
    assert!(response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer "));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

/// The `Set-Cookie` the authorization endpoint sends: the sealed sign-in, for the callback only.
async fn sign_in_cookie(app: &TestApp, authorize_base: &str) -> String {
    authorize_cookie(app, authorize_base, &[]).await
}

/// The `Set-Cookie` the authorization endpoint sends for a request with `extra` parameters.
async fn authorize_cookie(app: &TestApp, authorize_base: &str, extra: &[(&str, &str)]) -> String {
    let client = app.confidential_client().await;
    let url = app
        .authorize_url(&client, extra)
        .replacen(&app.url("/authorize"), authorize_base, 1);
    let response = app.http.get(url).send().await.unwrap();
    assert!(response.status().is_redirection());
    response.headers()[SET_COOKIE].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_https_issuer_gets_prefixed_secure_cookies_and_hsts() {
    // Capitals on purpose: the scheme is case-insensitive.
    let app = TestApp::spawn_with(&[("OIDC_ISSUER", "HTTPS://sso.example.com")]).await;

    let cookie = sign_in_cookie(&app, &app.url("/authorize")).await;

    // `__Host-`: no sibling subdomain can plant one (login CSRF).
    assert!(cookie.starts_with("__Host-wecom_oidc_login_"), "{cookie}");
    let attributes: Vec<&str> = cookie.split("; ").collect();
    assert!(
        attributes.contains(&"Secure")
            && attributes.contains(&"HttpOnly")
            && attributes.contains(&"SameSite=Lax")
            && attributes.contains(&"Path=/")
            && !attributes.iter().any(|a| a.starts_with("Domain=")),
        "{cookie}"
    );
    // A request too large for a cookie is kept as a row, bound by a cookie for the whole site.
    let large = too_large_for_a_cookie();
    let large: Vec<(&str, &str)> = large.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let binding = authorize_cookie(&app, &app.url("/authorize"), &large).await;
    assert!(
        binding.starts_with("__Host-wecom_oidc_browser="),
        "{binding}"
    );
    assert!(
        binding.contains("; Path=/;") || binding.ends_with("; Path=/"),
        "{binding}"
    );
    let discovery = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert!(discovery.headers()[STRICT_TRANSPORT_SECURITY]
        .to_str()
        .unwrap()
        .starts_with("max-age="));
}

#[tokio::test]
async fn on_an_https_issuer_only_the_host_cookie_completes_a_sign_in_not_one_planted_from_a_sibling_subdomain(
) {
    let app = TestApp::spawn_with(&[("OIDC_ISSUER", "https://sso.example.com")]).await;
    let client = app.confidential_client().await;
    let response = app
        .http
        .get(app.authorize_url(&client, &[]))
        .send()
        .await
        .unwrap();
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let (name, value) = set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap();
    let callback = app
        .wecom_approves(&location(&response), &[("userid", "wangwu")])
        .await
        .replacen("https://sso.example.com", &app.issuer, 1);
    let callback_with = |cookie: String| app.http.get(&callback).header(COOKIE, cookie).send();

    // A sibling subdomain may set `__Secure-` cookies for the parent domain with any path (say,
    // one from a sign-in of the attacker's own); it cannot set `__Host-` ones.
    let planted = name.replacen("__Host-", "__Secure-", 1);
    let refused = callback_with(format!("{planted}={value}")).await.unwrap();
    assert!(
        !refused.status().is_redirection(),
        "a __Secure- cookie completes no sign-in: {}",
        refused.status()
    );
    let accepted = callback_with(format!("{name}={value}")).await.unwrap();

    assert!(accepted.status().is_redirection(), "{}", accepted.status());
    let back = location(&accepted);
    assert!(
        back.starts_with(&client.redirect_uri) && back.contains("code="),
        "{back}"
    );
}

#[tokio::test]
async fn a_path_prefixed_https_issuer_gets_secure_prefixed_cookies_on_its_path() {
    let app = TestApp::spawn_full(
        &[("OIDC_ISSUER", "https://example.com/sso")],
        "/sso",
        TestDatabase::create().await,
    )
    .await;

    let cookie = sign_in_cookie(&app, &app.url("/authorize")).await;

    assert!(cookie.starts_with("__Secure-wecom_oidc_login_"), "{cookie}");
    assert!(
        cookie.contains("Path=/sso/auth/wecom/callback") && cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_plain_http_issuer_gets_no_hsts_and_unprefixed_cookies() {
    let app = TestApp::spawn().await;

    let cookie = sign_in_cookie(&app, &app.url("/authorize")).await;

    assert!(cookie.starts_with("wecom_oidc_login_"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    let jwks = app.http.get(app.url("/jwks")).send().await.unwrap();
    assert!(!jwks.headers().contains_key(STRICT_TRANSPORT_SECURITY));
}

#[tokio::test]
async fn expired_rows_are_purged_in_batches() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    assert!(app.sign_in(&client, "wangwu", &[]).await.code.is_some());
    let next_year = app.clock.now() + 365 * 86_400;

    let removed = app.store.purge_expired(next_year).await.unwrap();

    assert!(removed >= 2, "the session and the code expired: {removed}");
    assert_eq!(app.store.purge_expired(next_year).await.unwrap(), 0);
}
