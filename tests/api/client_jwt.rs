//! JWT client authentication (RFC 7523, OIDC Core §9): `private_key_jwt` with inline keys and
//! with a `jwks_uri`, `client_secret_jwt`, and every way an assertion is refused.

use josekit::jwk::alg::ec::EcCurve;
use josekit::jws::{JwsHeader, JwsSigner, ES256, HS256, RS256};
use josekit::jwt::{self, JwtPayload};
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthType, AuthenticationFlow, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{json, Map, Value};
use wecom_oidc::clock::Clock;
use wecom_oidc::crypto::random_token;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{parse_callback, TestApp, TestDatabase};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An assertion for `client_id` at `app`, with `changes` applied to sound claims (`null` removes).
fn claims(app: &TestApp, client_id: &str, changes: Value) -> Value {
    let now = app.clock.now();
    let mut claims = json!({
        "iss": client_id, "sub": client_id, "aud": app.url("/token"),
        "iat": now, "exp": now + 60, "jti": random_token(16),
    });
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn sign(signer: &dyn JwsSigner, kid: Option<&str>, claims: &Value) -> String {
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    if let Some(kid) = kid {
        header.set_key_id(kid);
    }
    jwt::encode_with_signer(&payload, &header, signer).unwrap()
}

/// A client key pair: the signer and the public JWK (with `kid`).
fn rsa_key(kid: &str) -> (Box<dyn JwsSigner>, Value) {
    let pair = RS256.generate_key_pair(2048).unwrap();
    let signer = RS256.signer_from_jwk(&pair.to_jwk_private_key()).unwrap();
    public_jwk(Box::new(signer), pair.to_jwk_public_key(), kid)
}

fn ec_key(kid: &str) -> (Box<dyn JwsSigner>, Value) {
    let pair = ES256.generate_key_pair().unwrap();
    assert_eq!(pair.curve(), EcCurve::P256);
    let signer = ES256.signer_from_jwk(&pair.to_jwk_private_key()).unwrap();
    public_jwk(Box::new(signer), pair.to_jwk_public_key(), kid)
}

fn public_jwk(
    signer: Box<dyn JwsSigner>,
    mut jwk: josekit::jwk::Jwk,
    kid: &str,
) -> (Box<dyn JwsSigner>, Value) {
    jwk.set_key_id(kid);
    let map: Map<String, Value> = jwk.as_ref().clone();
    (signer, Value::Object(map))
}

async fn register_jwt_client(app: &TestApp, body: Value) -> String {
    let mut body = body;
    body["client_name"] = json!("jwt client");
    app.register(body).await.id
}

/// Introspection authenticated by `assertion`: 200 when the client is authenticated.
async fn introspect_with(app: &TestApp, client_id: &str, assertion: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/introspect"))
        .form(&[
            ("token", "not-a-token"),
            ("client_id", client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_openidconnect_crate_signs_in_with_private_key_jwt() {
    let app = TestApp::spawn().await;
    let (signer, public) = rsa_key("rp-key-1");
    let client_id = register_jwt_client(
        &app,
        json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [public] } }),
    )
    .await;
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone()).unwrap(), &http)
            .await
            .unwrap();
    let advertised = serde_json::to_value(&metadata).unwrap();
    assert!(advertised["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("private_key_jwt")));
    assert_eq!(
        advertised["token_endpoint_auth_signing_alg_values_supported"],
        json!(["HS256", "RS256", "ES256"])
    );
    assert_eq!(advertised["claims_parameter_supported"], true);
    // No secret: the crate sends client_id in the body and the assertion as extra parameters.
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.clone()), None)
            .set_auth_type(AuthType::RequestBody)
            .set_redirect_uri(RedirectUrl::new(crate::helpers::RP_REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let wecom = app.follow(auth_url.as_str()).await;
    let callback = app.wecom_approves(&wecom, &[("userid", "wangwu")]).await;
    let code = parse_callback(&app.follow(&callback).await).code.unwrap();

    let assertion = sign(
        signer.as_ref(),
        Some("rp-key-1"),
        &claims(&app, &client_id, json!({})),
    );
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .add_extra_param("client_assertion_type", JWT_BEARER)
        .add_extra_param("client_assertion", assertion)
        .request_async(&http)
        .await
        .expect("code exchange with private_key_jwt");

    let id_claims = tokens
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &nonce)
        .expect("ID token verifies");
    assert_eq!(id_claims.subject().as_str(), "wangwu");
}

#[tokio::test]
async fn private_key_jwt_with_a_jwks_uri_follows_the_clients_key_rotation() {
    let app = TestApp::spawn().await;
    let jwks_server = MockServer::start().await;
    let (old_signer, old_public) = ec_key("2026-a");
    let (new_signer, new_public) = ec_key("2026-b");
    Mock::given(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "keys": [old_public] })))
        .up_to_n_times(1)
        .mount(&jwks_server)
        .await;
    Mock::given(path("/jwks"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "keys": [old_public, new_public] })),
        )
        .mount(&jwks_server)
        .await;
    let client_id = register_jwt_client(
        &app,
        json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": format!("{}/jwks", jwks_server.uri()) }),
    )
    .await;

    let first = sign(
        old_signer.as_ref(),
        Some("2026-a"),
        &claims(&app, &client_id, json!({})),
    );
    assert_eq!(introspect_with(&app, &client_id, &first).await.0, 200);
    app.clock.advance(11);
    let rotated = sign(
        new_signer.as_ref(),
        Some("2026-b"),
        &claims(&app, &client_id, json!({})),
    );

    let (status, body) = introspect_with(&app, &client_id, &rotated).await;

    assert_eq!(status, 200, "an unknown kid refetches the jwks_uri: {body}");
    assert_eq!(body["active"], false);
}

#[tokio::test]
async fn client_secret_jwt_is_accepted_at_the_token_and_revocation_endpoints() {
    let app = TestApp::spawn().await;
    let client = app
        .register(json!({ "client_name": "hs", "token_endpoint_auth_method": "client_secret_jwt" }))
        .await;
    let secret = client
        .secret
        .clone()
        .expect("client_secret_jwt clients get a secret");
    let signer = HS256.signer_from_bytes(secret.as_bytes()).unwrap();
    let code = app.sign_in(&client, "wangwu", &[]).await.code.unwrap();

    let assertion = sign(&signer, None, &claims(&app, &client.id, json!({})));
    let response = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    let assertion = sign(
        &signer,
        None,
        &claims(&app, &client.id, json!({ "aud": app.issuer })),
    );
    let response = app
        .http
        .post(app.url("/revoke"))
        .form(&[
            ("token", "x"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "aud may be the issuer; client_id may be left out"
    );

    // A rotated secret is the new HS256 key.
    let rotated: Value = app
        .http
        .post(app.url(&format!("/admin/clients/{}/secret", client.id)))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old = sign(&signer, None, &claims(&app, &client.id, json!({})));
    assert_eq!(introspect_with(&app, &client.id, &old).await.0, 401);
    let new_signer = HS256
        .signer_from_bytes(rotated["client_secret"].as_str().unwrap().as_bytes())
        .unwrap();
    let new = sign(&new_signer, None, &claims(&app, &client.id, json!({})));
    assert_eq!(introspect_with(&app, &client.id, &new).await.0, 200);
}

#[tokio::test]
async fn bad_assertions_are_invalid_client() {
    let app = TestApp::spawn().await;
    let (signer, public) = ec_key("k");
    let (stranger, _) = ec_key("k");
    let client_id = register_jwt_client(
        &app,
        json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [public] } }),
    )
    .await;
    let now = app.clock.now();
    let hs = HS256.signer_from_bytes([1u8; 32]).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            sign(
                stranger.as_ref(),
                Some("k"),
                &claims(&app, &client_id, json!({})),
            ),
            "wrong key",
        ),
        (
            sign(&hs, None, &claims(&app, &client_id, json!({}))),
            "HS256 for a private_key_jwt client",
        ),
        (
            sign(
                signer.as_ref(),
                Some("k"),
                &claims(
                    &app,
                    &client_id,
                    json!({ "aud": "https://elsewhere/token" }),
                ),
            ),
            "wrong aud",
        ),
        (
            sign(
                signer.as_ref(),
                Some("k"),
                &claims(&app, &client_id, json!({ "exp": now - 1 })),
            ),
            "expired",
        ),
        (
            sign(
                signer.as_ref(),
                Some("k"),
                &claims(&app, &client_id, json!({ "exp": now + 3600 })),
            ),
            "exp too far ahead",
        ),
        (
            sign(
                signer.as_ref(),
                Some("k"),
                &claims(&app, &client_id, json!({ "exp": null })),
            ),
            "no exp",
        ),
        (
            sign(
                signer.as_ref(),
                Some("k"),
                &claims(&app, &client_id, json!({ "jti": null })),
            ),
            "no jti",
        ),
        (
            sign(
                signer.as_ref(),
                Some("k"),
                &claims(&app, &client_id, json!({ "iss": "someone" })),
            ),
            "iss",
        ),
        ("not.a.jwt".to_owned(), "garbage"),
    ];
    for (assertion, case) in cases {
        let (status, body) = introspect_with(&app, &client_id, &assertion).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{case}"
        );
    }

    let once = sign(
        signer.as_ref(),
        Some("k"),
        &claims(&app, &client_id, json!({})),
    );
    assert_eq!(introspect_with(&app, &client_id, &once).await.0, 200);
    let (status, body) = introspect_with(&app, &client_id, &once).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "replayed jti"
    );
}

#[tokio::test]
async fn a_jti_is_single_use_across_replicas_on_one_database() {
    let db = TestDatabase::create().await;
    let url = db.url.clone();
    let first = TestApp::spawn_full(&[], "", db).await;
    let second = TestApp::spawn_full(&[], "", TestDatabase::borrowed(&url)).await;
    let (signer, public) = rsa_key("k");
    let client_id = register_jwt_client(
        &first,
        json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [public] } }),
    )
    .await;
    let both = json!({ "aud": [first.url("/token"), second.url("/token")] });
    let assertion = sign(
        signer.as_ref(),
        Some("k"),
        &claims(&first, &client_id, both),
    );

    assert_eq!(introspect_with(&first, &client_id, &assertion).await.0, 200);
    let (status, body) = introspect_with(&second, &client_id, &assertion).await;

    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    drop(second);
}

#[tokio::test]
async fn a_client_secret_jwt_secret_is_sealed_at_rest_with_the_key_encryption_key() {
    let app = TestApp::spawn_with(&[("KEY_ENCRYPTION_KEY", "k".repeat(40).as_str())]).await;
    let client = app
        .register(json!({ "client_name": "hs", "token_endpoint_auth_method": "client_secret_jwt" }))
        .await;
    let secret = client.secret.clone().unwrap();

    let stored = app
        .store
        .client_jwt_secret(&client.id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.starts_with("enc:v1:") && !stored.contains(&secret));
    let signer = HS256.signer_from_bytes(secret.as_bytes()).unwrap();
    let assertion = sign(&signer, None, &claims(&app, &client.id, json!({})));
    assert_eq!(introspect_with(&app, &client.id, &assertion).await.0, 200);
}

#[tokio::test]
async fn a_client_secret_jwt_client_cannot_authenticate_by_sending_its_secret() {
    let app = TestApp::spawn().await;
    let client = app
        .register(json!({ "client_name": "hs", "token_endpoint_auth_method": "client_secret_jwt" }))
        .await;
    let secret = client.secret.clone().unwrap();
    let introspect = || app.http.post(app.url("/introspect"));

    let basic = introspect()
        .basic_auth(&client.id, Some(&secret))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401, "client_secret_basic");
    assert!(basic.headers().contains_key("www-authenticate"));
    let body: Value = basic.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let post = introspect()
        .form(&[
            ("token", "not-a-token"),
            ("client_id", client.id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 401, "client_secret_post");
    let body: Value = post.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    // The assertion it is registered for still works; basic and post clients keep both.
    let signer = HS256.signer_from_bytes(secret.as_bytes()).unwrap();
    let assertion = sign(&signer, None, &claims(&app, &client.id, json!({})));
    assert_eq!(introspect_with(&app, &client.id, &assertion).await.0, 200);
    let basic_client = app.confidential_client().await;
    let post = introspect()
        .form(&[
            ("token", "not-a-token"),
            ("client_id", basic_client.id.as_str()),
            ("client_secret", basic_client.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200, "basic and post are interchangeable");
}

#[tokio::test]
async fn a_chosen_secret_is_refused_for_a_client_secret_jwt_client_and_its_key_is_unchanged() {
    let app = TestApp::spawn().await;
    let client = app
        .register(json!({ "client_name": "hs", "token_endpoint_auth_method": "client_secret_jwt" }))
        .await;
    let admin = |method: reqwest::Method, path: String, body: Value| {
        app.http
            .request(method, app.url(&path))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    // Long enough for an HS256 key (josekit refuses fewer than 32 bytes), to show it is not one.
    let chosen = "a-secret-a-person-chose-long-enough-for-hs256";

    let rotated = admin(
        reqwest::Method::POST,
        format!("/admin/clients/{}/secret", client.id),
        json!({ "client_secret": chosen }),
    )
    .await
    .unwrap();
    let updated = admin(
        reqwest::Method::PUT,
        format!("/admin/clients/{}", client.id),
        json!({
            "client_name": "hs", "redirect_uris": [client.redirect_uri],
            "token_endpoint_auth_method": "client_secret_jwt", "client_secret": chosen,
        }),
    )
    .await
    .unwrap();
    let created = admin(
        reqwest::Method::POST,
        "/admin/clients".to_owned(),
        json!({
            "client_name": "hs2", "redirect_uris": [client.redirect_uri],
            "token_endpoint_auth_method": "client_secret_jwt", "client_secret": chosen,
        }),
    )
    .await
    .unwrap();

    for (response, case) in [
        (rotated, "rotate"),
        (updated, "update"),
        (created, "create"),
    ] {
        assert_eq!(response.status(), 400, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client_metadata", "{case}");
    }
    let old = HS256
        .signer_from_bytes(client.secret.as_deref().unwrap().as_bytes())
        .unwrap();
    let assertion = sign(&old, None, &claims(&app, &client.id, json!({})));
    assert_eq!(
        introspect_with(&app, &client.id, &assertion).await.0,
        200,
        "nothing changed"
    );
    let with_chosen = HS256.signer_from_bytes(chosen.as_bytes()).unwrap();
    let assertion = sign(&with_chosen, None, &claims(&app, &client.id, json!({})));
    assert_eq!(introspect_with(&app, &client.id, &assertion).await.0, 401);
}

/// A `private_key_jwt` client whose keys are at `jwks_uri`.
async fn register_jwks_uri_client(app: &TestApp, jwks_uri: &str) -> String {
    register_jwt_client(
        app,
        json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_uri }),
    )
    .await
}

/// Introspects once per assertion, all at once; the statuses.
async fn introspect_all(app: &TestApp, client_id: &str, assertions: &[String]) -> Vec<u16> {
    futures_util::future::join_all(
        assertions
            .iter()
            .map(|assertion| introspect_with(app, client_id, assertion)),
    )
    .await
    .into_iter()
    .map(|(status, _)| status)
    .collect()
}

#[tokio::test]
async fn unknown_kids_fetch_a_jwks_uri_once_per_interval_however_many_assertions_carry_them() {
    let app = TestApp::spawn().await;
    let jwks_server = MockServer::start().await;
    let (signer, public) = ec_key("known");
    // A slow answer: the assertions of a batch all arrive while the first fetch is in flight.
    Mock::given(path("/jwks"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "keys": [public] }))
                .set_delay(std::time::Duration::from_millis(300)),
        )
        .mount(&jwks_server)
        .await;
    let client_id = register_jwks_uri_client(&app, &format!("{}/jwks", jwks_server.uri())).await;
    let made_up = |batch: &str| -> Vec<String> {
        (0..8)
            .map(|i| {
                sign(
                    signer.as_ref(),
                    Some(&format!("{batch}-{i}")),
                    &claims(&app, &client_id, json!({})),
                )
            })
            .collect()
    };
    let fetches = || async { jwks_server.received_requests().await.unwrap().len() };

    let statuses = introspect_all(&app, &client_id, &made_up("first")).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(
        fetches().await,
        1,
        "one fetch in flight for the whole batch"
    );

    app.clock.advance(9);
    let statuses = introspect_all(&app, &client_id, &made_up("second")).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(fetches().await, 1, "no refetch within the interval");
    let known = sign(
        signer.as_ref(),
        Some("known"),
        &claims(&app, &client_id, json!({})),
    );
    assert_eq!(introspect_with(&app, &client_id, &known).await.0, 200);

    app.clock.advance(1);
    let statuses = introspect_all(&app, &client_id, &made_up("third")).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(fetches().await, 2, "one refetch once the interval is over");
}

#[tokio::test]
async fn a_jwks_uri_document_over_64_kib_is_refused_without_reading_it_to_the_end() {
    let app = TestApp::spawn().await;
    let (signer, public) = ec_key("k");
    let document = json!({ "keys": [public], "padding": " ".repeat(70 * 1024) });
    let jwks_server = MockServer::start().await;
    Mock::given(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&document))
        .mount(&jwks_server)
        .await;
    let sized = register_jwks_uri_client(&app, &format!("{}/jwks", jwks_server.uri())).await;
    // A server that sends 70 KiB of a document with no length, then neither finishes nor closes.
    let endless = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endless_uri = format!("http://{}/jwks", endless.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = endless.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
        let body = document.to_string();
        let _ = socket.write_all(head.as_bytes()).await;
        let _ = socket.write_all(&body.as_bytes()[..body.len() - 10]).await;
        std::future::pending::<()>().await;
    });
    let unending = register_jwks_uri_client(&app, &endless_uri).await;

    let assertion = |client_id: &str| {
        sign(
            signer.as_ref(),
            Some("k"),
            &claims(&app, client_id, json!({})),
        )
    };
    let (status, body) = introspect_with(&app, &sized, &assertion(&sized)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // The provider waits up to 5 s for a jwks_uri; stopping at the cap answers well before.
    let (status, body) = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        introspect_with(&app, &unending, &assertion(&unending)),
    )
    .await
    .expect("reading stops at 64 KiB, not at the end of the document");
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}
