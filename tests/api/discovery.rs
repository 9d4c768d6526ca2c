//! Discovery, JWKS, health and issuer path prefixes.

use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test]
async fn discovery_document_parses_as_provider_metadata_and_names_every_endpoint() {
    let app = TestApp::spawn().await;

    let response = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let text = response.text().await.unwrap();
    let metadata: CoreProviderMetadata =
        serde_json::from_str(&text).expect("CoreProviderMetadata parses it");
    assert_eq!(metadata.issuer().as_str(), app.issuer);
    let doc: Value = serde_json::from_str(&text).unwrap();
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
        ("end_session_endpoint", "/logout"),
    ] {
        assert_eq!(doc[field], app.url(path), "{field}");
    }
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    for scope in [
        "openid",
        "profile",
        "email",
        "phone",
        "groups",
        "offline_access",
    ] {
        assert!(
            doc["scopes_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == scope),
            "{scope}"
        );
    }
}

#[tokio::test]
async fn jwks_parses_and_publishes_the_signing_key() {
    let app = TestApp::spawn().await;

    let response = app.http.get(app.url("/jwks")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let text = response.text().await.unwrap();
    let _: CoreJsonWebKeySet = serde_json::from_str(&text).expect("CoreJsonWebKeySet parses it");
    let jwks: Value = serde_json::from_str(&text).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["use"], "sig");
    assert!(
        keys[0].get("d").is_none(),
        "no private material in the JWKS"
    );
}

#[tokio::test]
async fn es256_is_available_as_an_option() {
    let app = TestApp::spawn_with(&[("SIGNING_ALG", "ES256")]).await;

    let jwks: Value = app
        .http
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let doc: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;

    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn html_and_json_responses_carry_anti_framing_headers() {
    let app = TestApp::spawn().await;

    let page = app
        .http
        .get(app.url("/authorize?client_id=nope"))
        .send()
        .await
        .unwrap();

    assert_eq!(page.status(), 400);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
}
