//! Abuse limits: a source flooding wrong client secrets is slowed down with 429, while the same
//! client from another address is still served; forwarding headers count only from
//! `TRUSTED_PROXIES`; every spelling of an endpoint's path counts under that endpoint's limits.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, TestClient, TestDatabase, ADMIN_TOKEN};

/// A revocation call (client authentication, then 200) as `client` with `secret`, from `source`.
async fn revoke_from(
    app: &TestApp,
    client: &TestClient,
    secret: &str,
    source: &str,
) -> reqwest::Response {
    app.http
        .post(app.url("/revoke"))
        .header("x-forwarded-for", source)
        .basic_auth(&client.id, Some(secret))
        .form(&[("token", "whatever")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flood_of_wrong_secrets_from_one_source_gets_429_while_the_client_elsewhere_is_served() {
    let app = TestApp::spawn_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("AUTH_FAILURE_LIMIT_PER_MINUTE", "10"),
    ])
    .await;
    let client = app.confidential_client().await;
    let secret = client.secret.clone().unwrap();

    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(
            revoke_from(&app, &client, "wrong", "203.0.113.9")
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(statuses[..10].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let limited = revoke_from(&app, &client, &secret, "203.0.113.9").await;
    assert_eq!(
        limited.status(),
        429,
        "the flooding source is refused even with the right secret"
    );
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");

    let started = Instant::now();
    let served = revoke_from(&app, &client, &secret, "198.51.100.7").await;
    assert_eq!(
        served.status(),
        200,
        "the client from its own address is served"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = TestApp::spawn_with(&[("AUTH_FAILURE_LIMIT_PER_MINUTE", "5")]).await;
    let client = app.confidential_client().await;
    let secret = client.secret.clone().unwrap();

    for i in 0..10 {
        revoke_from(&app, &client, "wrong", &format!("203.0.113.{i}")).await;
    }

    // Without TRUSTED_PROXIES every request came from 127.0.0.1, whatever it claimed.
    let response = revoke_from(&app, &client, &secret, "198.51.100.7").await;
    assert_eq!(response.status(), 429);
}

#[tokio::test]
async fn the_request_rate_limit_answers_429_in_each_endpoints_shape() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_MINUTE", "3")]).await;
    let client = app.confidential_client().await;

    let mut last = None;
    for _ in 0..5 {
        last = Some(
            app.http
                .get(app.authorize_url(&client, &[]))
                .send()
                .await
                .unwrap(),
        );
    }
    let page = last.unwrap();
    assert_eq!(page.status(), 429);
    assert!(page.headers().contains_key("retry-after"));
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test]
async fn failed_userinfo_calls_are_limited_apart_from_client_authentication() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_MINUTE", "10")]).await;
    let client = app.confidential_client().await;
    let secret = client.secret.clone().unwrap();

    let mut last = 0;
    for _ in 0..15 {
        last = app.userinfo("expired-or-forged").await.status().as_u16();
    }
    assert_eq!(
        last, 429,
        "expired tokens past the allowance are slowed down"
    );

    let response = revoke_from(&app, &client, &secret, "ignored").await;
    assert_eq!(
        response.status(),
        200,
        "the same source still authenticates its client"
    );
}

/// One request from `source` (through the trusted proxy at 127.0.0.1) to `path` under the issuer:
/// a `GET` unless `form` is given. Bearer `token` when given; anything else it sends is valid
/// enough to reach the handler.
async fn request_from(
    app: &TestApp,
    path: &str,
    source: &str,
    token: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> u16 {
    let mut request = match form {
        Some(form) => app.http.post(app.url(path)).form(form),
        None => app.http.get(app.url(path)),
    };
    request = request.header("x-forwarded-for", source);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

/// The canonical path of each rate-limited endpoint, a percent-encoded spelling the router sends to
/// the same handler, how to call it, and the source this case floods from.
const SPELLINGS: &[(&str, &str, Option<&str>, bool, &str)] = &[
    ("/authorize", "/%61uthoriz%65", None, false, "192.0.2.1"),
    (
        "/auth/wecom/callback",
        "/auth/wecom/callbac%6B",
        None,
        false,
        "192.0.2.2",
    ),
    ("/token", "/tok%65n", None, true, "192.0.2.3"),
    ("/revoke", "/r%65voke", None, true, "192.0.2.4"),
    ("/introspect", "/introsp%65ct", None, true, "192.0.2.5"),
    (
        "/admin/clients",
        "/%61dmin/clients",
        Some(ADMIN_TOKEN),
        false,
        "192.0.2.6",
    ),
    (
        "/admin/audit",
        "/admin/%61udit",
        Some(ADMIN_TOKEN),
        false,
        "192.0.2.7",
    ),
];

/// Requests to every spelling of one endpoint share its request limit: `limit` requests in any
/// spelling use the allowance up, and then both spellings get 429.
async fn each_spelling_shares_the_request_limit(app: &TestApp, limit: usize) {
    for (canonical, spelled, token, post, source) in SPELLINGS {
        let form: Option<&[(&str, &str)]> = post.then_some(&[("token", "whatever")]);
        for i in 0..limit {
            let status = request_from(app, spelled, source, *token, form).await;
            assert_ne!(status, 404, "{spelled} reaches the handler of {canonical}");
            assert_ne!(status, 429, "{spelled}: request {i} is within the limit");
        }

        assert_eq!(
            request_from(app, canonical, source, *token, form).await,
            429,
            "{canonical} after {limit} requests spelled {spelled}"
        );
        assert_eq!(
            request_from(app, spelled, source, *token, form).await,
            429,
            "{spelled} past the limit"
        );
    }
}

#[tokio::test]
async fn every_spelling_of_an_endpoint_counts_under_its_request_limit() {
    let app = TestApp::spawn_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("RATE_LIMIT_PER_MINUTE", "4"),
        ("AUTH_FAILURE_LIMIT_PER_MINUTE", "1000"),
    ])
    .await;

    each_spelling_shares_the_request_limit(&app, 4).await;
}

#[tokio::test]
async fn every_spelling_counts_under_an_issuer_path_prefix_too() {
    let app = TestApp::spawn_full(
        &[
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
            ("RATE_LIMIT_PER_MINUTE", "4"),
            ("AUTH_FAILURE_LIMIT_PER_MINUTE", "1000"),
        ],
        "/sso",
        TestDatabase::create().await,
    )
    .await;

    each_spelling_shares_the_request_limit(&app, 4).await;
}

#[tokio::test]
async fn a_429_at_a_spelled_path_has_the_shape_of_the_endpoint_it_reached() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_MINUTE", "1")]).await;

    for (path, content_type) in [
        ("/auth/wecom/callbac%6B", "text/html"),
        ("/tok%65n", "application/json"),
    ] {
        let mut last = None;
        for _ in 0..3 {
            last = Some(
                app.http
                    .request(
                        if path.contains("tok") {
                            reqwest::Method::POST
                        } else {
                            reqwest::Method::GET
                        },
                        app.url(path),
                    )
                    .send()
                    .await
                    .unwrap(),
            );
        }
        let refused = last.unwrap();
        assert_eq!(refused.status(), 429, "{path}");
        assert!(
            refused.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}: {:?}",
            refused.headers()["content-type"]
        );
    }
}

/// A code exchange (a made-up code) by `client_id` with `secret` at `path`, from `source`: 401 with a
/// wrong secret, 400 with the right one.
async fn token_from(app: &TestApp, client_id: &str, secret: &str, path: &str, source: &str) -> u16 {
    app.http
        .post(app.url(path))
        .header("x-forwarded-for", source)
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "made-up"),
            ("redirect_uri", crate::helpers::RP_REDIRECT),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_source_blocked_for_failed_client_authentication_is_refused_at_every_spelling() {
    let app = TestApp::spawn_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("AUTH_FAILURE_LIMIT_PER_MINUTE", "3"),
    ])
    .await;
    let client = app.confidential_client().await;
    let secret = client.secret.clone().unwrap();
    // Failures at the canonical path block the spelled one…
    for _ in 0..5 {
        token_from(&app, &client.id, "wrong", "/token", "192.0.2.10").await;
    }
    assert_eq!(
        token_from(&app, &client.id, &secret, "/tok%65n", "192.0.2.10").await,
        429,
        "a blocked source is refused at /tok%65n even with the right secret"
    );

    // …and failures at a spelled path count, and block the canonical one.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(token_from(&app, &client.id, "wrong", "/tok%65n", "192.0.2.11").await);
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(
        token_from(&app, &client.id, &secret, "/token", "192.0.2.11").await,
        429,
        "failures spelled /tok%65n block /token"
    );
}

#[tokio::test]
async fn failed_userinfo_calls_count_under_every_spelling() {
    let app = TestApp::spawn_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("RATE_LIMIT_PER_MINUTE", "4"),
    ])
    .await;

    for (fail_at, then_at, source) in [
        ("/userinf%6F", "/userinfo", "192.0.2.20"),
        ("/userinfo", "/userinf%6F", "192.0.2.21"),
    ] {
        for _ in 0..5 {
            request_from(&app, fail_at, source, Some("expired-or-forged"), None).await;
        }
        assert_eq!(
            request_from(&app, then_at, source, Some("expired-or-forged"), None).await,
            429,
            "failures at {fail_at} block {then_at}"
        );
    }
}

/// `count` requests to `/authorize` through the trusted proxy at 127.0.0.1, the i-th carrying the
/// headers `headers(i)`; the statuses.
async fn authorize_through_proxy(
    app: &TestApp,
    count: usize,
    headers: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..count {
        let mut request = app.http.get(app.url("/authorize"));
        for (name, value) in headers(i) {
            request = request.header(name, value);
        }
        statuses.push(request.send().await.unwrap().status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn a_client_rotating_forwarded_values_through_a_trusted_proxy_stays_in_one_bucket() {
    let app = TestApp::spawn_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("RATE_LIMIT_PER_MINUTE", "3"),
    ])
    .await;

    // What nginx forwards: the client's own Forwarded untouched, its address appended to XFF.
    let statuses = authorize_through_proxy(&app, 5, |i| {
        vec![
            ("forwarded", format!("for=203.0.113.{i}")),
            ("x-forwarded-for", "198.51.100.7".to_owned()),
        ]
    })
    .await;

    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn with_forwarded_header_set_to_forwarded_it_decides_and_x_forwarded_for_is_ignored() {
    let app = TestApp::spawn_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("RATE_LIMIT_PER_MINUTE", "3"),
        ("FORWARDED_HEADER", "forwarded"),
    ])
    .await;

    let rotating_forwarded = authorize_through_proxy(&app, 5, |i| {
        vec![
            ("forwarded", format!("for=203.0.113.{i};proto=https")),
            ("x-forwarded-for", "198.51.100.7".to_owned()),
        ]
    })
    .await;
    assert!(
        !rotating_forwarded.contains(&429),
        "each Forwarded address is its own source: {rotating_forwarded:?}"
    );

    let rotating_xff = authorize_through_proxy(&app, 5, |i| {
        vec![
            ("forwarded", "for=\"[2001:db8::7]\"".to_owned()),
            ("x-forwarded-for", format!("198.51.100.{i}")),
        ]
    })
    .await;
    assert_eq!(
        rotating_xff.last(),
        Some(&429),
        "X-Forwarded-For is ignored: {rotating_xff:?}"
    );
}
