//! Replicas sharing one database: an administrator's change made through one replica reaches
//! every other within 5 s of their clocks (a rotated secret, a deleted client, new redirect URIs).

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestClient, TestDatabase, ADMIN_TOKEN};

/// How long a change may take to reach another replica, as documented.
const PROPAGATION_SECS: i64 = 5;

/// `a`, where the administrator works, and `b`, another replica on the same database.
async fn two_replicas() -> (TestApp, TestApp) {
    let db = TestDatabase::create().await;
    let url = db.url.clone();
    let a = TestApp::spawn_full(&[], "", db).await;
    let b = TestApp::spawn_full(&[], "", TestDatabase::borrowed(&url)).await;
    (a, b)
}

fn admin(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN)
}

/// The token endpoint's verdict on the client's credentials: `invalid_grant` for the made-up
/// code when they are good, `invalid_client` when they are not.
async fn token_error(app: &TestApp, client: &TestClient) -> String {
    let response = app
        .token_request(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", "no-such-code"),
                ("redirect_uri", &client.redirect_uri),
            ],
        )
        .await;
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

/// The status of an authorization request: a redirect to WeCom, or 400 with the error page (an
/// unknown client or redirect URI is never redirected to, RFC 6749 §4.1.2.1).
async fn authorize_status(app: &TestApp, client: &TestClient) -> reqwest::StatusCode {
    app.browser
        .get(app.authorize_url(client, &[]))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_secret_rotated_on_one_replica_stops_working_on_another_within_5_seconds() {
    let (a, b) = two_replicas().await;
    // A generated secret, and one an administrator chose (argon2id, whose verifications are
    // cached), rotated to a generated and a chosen one.
    let generated = a.confidential_client().await;
    let mut chosen = a
        .register(
            json!({ "client_name": "chosen", "client_secret": "chosen-by-the-administrator-1" }),
        )
        .await;
    chosen.secret = Some("chosen-by-the-administrator-1".to_owned());
    for (old, new_secret) in [
        (generated, None),
        (chosen, Some("chosen-by-the-administrator-2")),
    ] {
        assert_eq!(
            token_error(&b, &old).await,
            "invalid_grant",
            "b knows {}",
            old.id
        );

        let mut rotate = admin(
            &a,
            Method::POST,
            &format!("/admin/clients/{}/secret", old.id),
        );
        if let Some(secret) = new_secret {
            rotate = rotate.json(&json!({ "client_secret": secret }));
        }
        let rotated = rotate.send().await.unwrap();
        assert_eq!(rotated.status(), 200);
        let rotated: Value = rotated.json().await.unwrap();
        let new = TestClient {
            secret: Some(new_secret.map_or_else(
                || rotated["client_secret"].as_str().unwrap().to_owned(),
                str::to_owned,
            )),
            ..old.clone()
        };
        b.clock.advance(PROPAGATION_SECS);

        assert_eq!(
            token_error(&b, &old).await,
            "invalid_client",
            "the old secret of {} is refused",
            old.id
        );
        assert_eq!(
            token_error(&b, &new).await,
            "invalid_grant",
            "the new secret of {} works",
            old.id
        );
    }
}

#[tokio::test]
async fn a_client_deleted_on_one_replica_is_refused_by_another_within_5_seconds() {
    let (a, b) = two_replicas().await;
    let client = a.confidential_client().await;
    assert_eq!(token_error(&b, &client).await, "invalid_grant");
    assert!(authorize_status(&b, &client).await.is_redirection());

    let deleted = admin(&a, Method::DELETE, &format!("/admin/clients/{}", client.id))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    b.clock.advance(PROPAGATION_SECS);

    assert_eq!(token_error(&b, &client).await, "invalid_client");
    let authorize = authorize_status(&b, &client).await;
    assert_eq!(
        authorize, 400,
        "an unknown client gets the error page, no redirect"
    );
}

#[tokio::test]
async fn a_redirect_uri_added_on_one_replica_is_accepted_by_another_within_5_seconds() {
    let (a, b) = two_replicas().await;
    let client = a.confidential_client().await;
    let added = TestClient {
        redirect_uri: "https://app.example.com/new-callback".to_owned(),
        ..client.clone()
    };
    let refused = authorize_status(&b, &added).await;
    assert_eq!(refused, 400, "not registered yet");

    let updated = admin(&a, Method::PUT, &format!("/admin/clients/{}", client.id))
        .json(&json!({
            "client_name": "test app",
            "redirect_uris": [client.redirect_uri, added.redirect_uri],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    b.clock.advance(PROPAGATION_SECS);

    let accepted = authorize_status(&b, &added).await;
    assert!(
        accepted.is_redirection(),
        "the new redirect URI is accepted: {accepted}"
    );
}
