//! Abuse limits: a source flooding wrong client secrets is slowed down with 429, while the same
//! client from another address is still served; forwarding headers count only from
//! `TRUSTED_PROXIES`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, TestClient};

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
