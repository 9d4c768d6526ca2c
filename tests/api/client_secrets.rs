//! Client secrets: generated ones stored as digests, administrator-chosen ones and secrets from
//! older versions stored as argon2id, all verified at the token-side endpoints.

use serde_json::{json, Value};
use wecom_oidc::clock::Clock;

use crate::helpers::{TestApp, TestClient, ADMIN_TOKEN};

/// Authenticates at `/revoke` (RFC 7009 §2.1: client authentication first, then 200 for any
/// token) and returns the status and the JSON error code, if any.
async fn authenticate(app: &TestApp, client_id: &str, secret: &str) -> (u16, Option<String>) {
    let response = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().map(str::to_owned))
}

async fn stored_hash(app: &TestApp, client: &TestClient) -> String {
    app.store
        .get_client(&client.id)
        .await
        .unwrap()
        .secret_hash
        .unwrap()
}

#[tokio::test]
async fn generated_secret_is_stored_as_a_digest_and_verifies() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;

    assert!(stored_hash(&app, &client).await.starts_with("sha256$"));
    let secret = client.secret.clone().unwrap();
    assert_eq!(authenticate(&app, &client.id, &secret).await, (200, None));
}

#[tokio::test]
async fn wrong_or_unknown_credentials_are_invalid_client() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let secret = client.secret.clone().unwrap();

    for (id, presented, case) in [
        (client.id.as_str(), "wrong-secret", "wrong secret"),
        (client.id.as_str(), "", "empty secret"),
        ("no-such-client", secret.as_str(), "unknown client"),
    ] {
        assert_eq!(
            authenticate(&app, id, presented).await,
            (401, Some("invalid_client".to_owned())),
            "{case}"
        );
    }
}

#[tokio::test]
async fn secret_hashed_with_argon2id_by_an_older_version_still_verifies() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let legacy = wecom_oidc::crypto::hash_secret("legacy-secret-from-v0").unwrap();
    assert!(legacy.starts_with("$argon2id$"));
    app.store
        .set_client_secret(&client.id, &legacy, app.clock.now())
        .await
        .unwrap();

    assert_eq!(
        authenticate(&app, &client.id, "legacy-secret-from-v0").await,
        (200, None)
    );
    // Twice: the second time from the verified-secret cache.
    assert_eq!(
        authenticate(&app, &client.id, "legacy-secret-from-v0").await,
        (200, None)
    );
    assert_eq!(
        authenticate(&app, &client.id, "legacy-secret-from-v1").await,
        (401, Some("invalid_client".to_owned()))
    );
}

#[tokio::test]
async fn administrator_can_set_a_secret_on_create_and_on_rotation() {
    let app = TestApp::spawn().await;
    let created = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "client_name": "migrated from keycloak",
            "redirect_uris": ["https://app.example.com/cb"],
            "client_secret": "kept-from-the-old-provider",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert!(
        created.get("client_secret").is_none(),
        "a chosen secret is not echoed"
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    let stored = app
        .store
        .get_client(&id)
        .await
        .unwrap()
        .secret_hash
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$"),
        "chosen secrets use argon2id"
    );
    assert_eq!(
        authenticate(&app, &id, "kept-from-the-old-provider").await,
        (200, None)
    );

    let rotate = |body: Value| {
        app.http
            .post(app.url(&format!("/admin/clients/{id}/secret")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let rotated = rotate(json!({ "client_secret": "another-chosen-secret" }))
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    assert_eq!(
        authenticate(&app, &id, "another-chosen-secret").await,
        (200, None)
    );
    assert_eq!(
        authenticate(&app, &id, "kept-from-the-old-provider").await,
        (401, Some("invalid_client".to_owned())),
        "the old secret stops working"
    );

    let too_short = rotate(json!({ "client_secret": "short" })).await.unwrap();
    assert_eq!(too_short.status(), 400);
    let body: Value = too_short.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
}

#[tokio::test]
async fn public_clients_refuse_a_chosen_secret() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "client_name": "spa",
            "redirect_uris": ["https://spa.example.com/cb"],
            "token_endpoint_auth_method": "none",
            "client_secret": "a-secret-for-nothing",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
