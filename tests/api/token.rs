//! The token endpoint, refresh, revocation and introspection, with the exact RFC errors.

use serde_json::{json, Value};

use crate::helpers::{pkce_pair, TestApp, TestClient};

async fn code_for(app: &TestApp, client: &TestClient, extra: &[(&str, &str)]) -> String {
    app.sign_in(client, "wangwu", extra)
        .await
        .code
        .expect("a code")
}

async fn error_of(response: reqwest::Response) -> (u16, String, reqwest::header::HeaderMap) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("JSON error body");
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
        headers,
    )
}

#[tokio::test]
async fn code_exchange_answers_tokens_with_no_store() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &client, &[]).await;

    let response = app.exchange(&client, &code, None).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["id_token"].as_str().unwrap().split('.').count() == 3);
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client_401_with_basic_and_post() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &client, &[]).await;
    let wrong = TestClient {
        secret: Some("wrong".into()),
        ..client.clone()
    };

    let (status, error, headers) = error_of(app.exchange(&wrong, &code, None).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));

    let post = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("client_id", client.id.as_str()),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    let (status, error, _) = error_of(post).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));

    // The code was not spent by the failed attempts.
    assert_eq!(app.exchange(&client, &code, None).await.status(), 200);
}

#[tokio::test]
async fn client_secret_post_works_too() {
    let app = TestApp::spawn().await;
    let client = app
        .register(
            json!({ "client_name": "post", "token_endpoint_auth_method": "client_secret_post" }),
        )
        .await;
    let code = code_for(&app, &client, &[]).await;

    let response = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn public_clients_must_use_pkce_s256() {
    let app = TestApp::spawn().await;
    let client = app
        .register(json!({ "client_name": "spa", "token_endpoint_auth_method": "none" }))
        .await;

    let without = app.follow(&app.authorize_url(&client, &[])).await;
    assert!(without.starts_with(&client.redirect_uri));
    assert_eq!(
        crate::helpers::query_param(&without, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(
        crate::helpers::query_param(&without, "state").as_deref(),
        Some("rp-state-123")
    );

    let (_, challenge) = pkce_pair();
    let plain = app
        .follow(&app.authorize_url(
            &client,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ],
        ))
        .await;
    assert_eq!(
        crate::helpers::query_param(&plain, "error").as_deref(),
        Some("invalid_request")
    );

    let (verifier, challenge) = pkce_pair();
    let code = code_for(
        &app,
        &client,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let (status, error, _) =
        error_of(app.exchange(&client, &code, Some(&pkce_pair().0)).await).await;
    assert_eq!(
        (status, error.as_str()),
        (400, "invalid_grant"),
        "wrong verifier"
    );
    let code = code_for(
        &app,
        &client,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(
        app.exchange(&client, &code, Some(&verifier)).await.status(),
        200
    );
}

#[tokio::test]
async fn a_verifier_without_a_challenge_is_refused() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &client, &[]).await;

    let (status, error, _) =
        error_of(app.exchange(&client, &code, Some(&pkce_pair().0)).await).await;

    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
}

#[tokio::test]
async fn reusing_a_code_fails_and_revokes_what_it_issued() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &client, &[("scope", "openid profile offline_access")]).await;
    let tokens: Value = app
        .exchange(&client, &code, None)
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo(access).await.status(), 200);

    let (status, error, _) = error_of(app.exchange(&client, &code, None).await).await;

    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert_eq!(
        app.userinfo(access).await.status(),
        401,
        "the first access token is revoked"
    );
    let introspection: Value = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspection, json!({ "active": false }));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (_, error, _) = error_of(
        app.token_request(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await,
    )
    .await;
    assert_eq!(
        error, "invalid_grant",
        "the refresh token died with the grant"
    );
}

#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &client, &[]).await;

    app.clock.advance(61);
    let (status, error, _) = error_of(app.exchange(&client, &code, None).await).await;

    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
}

#[tokio::test]
async fn a_different_redirect_uri_at_the_token_endpoint_is_invalid_grant() {
    let app = TestApp::spawn().await;
    let client = app
        .register(json!({ "client_name": "two uris", "redirect_uris": ["http://127.0.0.1:9/callback", "http://127.0.0.1:9/other"] }))
        .await;
    let code = code_for(&app, &client, &[]).await;
    let other = TestClient {
        redirect_uri: "http://127.0.0.1:9/other".into(),
        ..client
    };

    let (status, error, _) = error_of(app.exchange(&other, &code, None).await).await;

    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_kills_the_grant() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &client, &[("scope", "openid profile offline_access")]).await;
    let first: Value = app
        .exchange(&client, &code, None)
        .await
        .json()
        .await
        .unwrap();
    let first_refresh = first["refresh_token"]
        .as_str()
        .expect("offline_access gives a refresh token");

    let second: Value = app
        .token_request(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first_refresh),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let second_refresh = second["refresh_token"]
        .as_str()
        .expect("a rotated refresh token");
    assert_ne!(second_refresh, first_refresh);
    assert!(
        second["id_token"].is_string(),
        "a refresh returns a new ID token"
    );
    assert_eq!(
        app.userinfo(second["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    // Past REFRESH_REUSE_GRACE_SECS (3): a replay, not a concurrent refresh.
    app.clock.advance(4);
    let (status, error, _) = error_of(
        app.token_request(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first_refresh),
            ],
        )
        .await,
    )
    .await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert_eq!(
        app.userinfo(second["access_token"].as_str().unwrap())
            .await
            .status(),
        401,
        "whole grant revoked"
    );
    let (_, error, _) = error_of(
        app.token_request(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", second_refresh),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(error, "invalid_grant");
}

#[tokio::test]
async fn refresh_cannot_widen_the_scope() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &client, &[("scope", "openid offline_access")]).await;
    let tokens: Value = app
        .exchange(&client, &code, None)
        .await
        .json()
        .await
        .unwrap();

    let (status, error, _) = error_of(
        app.token_request(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("scope", "openid email"),
            ],
        )
        .await,
    )
    .await;

    assert_eq!((status, error.as_str()), (400, "invalid_scope"));
}

#[tokio::test]
async fn revoked_access_tokens_stop_working_and_foreign_tokens_are_left_alone() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let other = app.register(json!({ "client_name": "other" })).await;
    let code = code_for(&app, &client, &[]).await;
    let tokens: Value = app
        .exchange(&client, &code, None)
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    let foreign = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&other.id, other.secret.as_deref())
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        foreign.status(),
        200,
        "RFC 7009: answered like any other token"
    );
    assert_eq!(
        app.userinfo(access).await.status(),
        200,
        "another client cannot revoke it"
    );
    let peek: Value = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&other.id, other.secret.as_deref())
        .form(&[("token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        peek,
        json!({ "active": false }),
        "another client cannot introspect it"
    );
    let own: Value = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(own["active"], true);
    assert_eq!(own["sub"], "wangwu");
    assert_eq!(own["client_id"], client.id.as_str());

    let revoke = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let response = app.userinfo(access).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}

#[tokio::test]
async fn unknown_grant_type_and_malformed_requests_get_their_rfc_errors() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;

    let (status, error, _) = error_of(
        app.token_request(&client, &[("grant_type", "password")])
            .await,
    )
    .await;
    assert_eq!((status, error.as_str()), (400, "unsupported_grant_type"));
    let (status, error, _) = error_of(
        app.token_request(&client, &[("grant_type", "authorization_code")])
            .await,
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (400, "invalid_request"),
        "code missing"
    );
    let (status, error, _) = error_of(app.token_request(&client, &[("code", "x")]).await).await;
    assert_eq!(
        (status, error.as_str()),
        (400, "invalid_request"),
        "grant_type missing"
    );
    let json_body = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    let (status, error, _) = error_of(json_body).await;
    assert_eq!(
        (status, error.as_str()),
        (400, "invalid_request"),
        "JSON body"
    );
    let get = app.http.get(app.url("/token")).send().await.unwrap();
    assert_eq!(get.status(), 405);
    let (status, error, _) = error_of(
        app.http
            .post(app.url("/token"))
            .form(&[("grant_type", "authorization_code"), ("code", "x")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (401, "invalid_client"),
        "no client authentication"
    );
}

#[tokio::test]
async fn of_two_concurrent_redemptions_of_one_code_exactly_one_succeeds() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    for round in 0..15 {
        let code = code_for(&app, &client, &[]).await;

        let (a, b) = tokio::join!(
            app.exchange(&client, &code, None),
            app.exchange(&client, &code, None)
        );

        let statuses = [a.status().as_u16(), b.status().as_u16()];
        assert!(
            statuses.contains(&200) && statuses.contains(&400),
            "round {round}: {statuses:?}"
        );
        // The replay revoked the grant: the winner's access token does not work either.
        let winner = if a.status() == 200 { a } else { b };
        let tokens: Value = winner.json().await.unwrap();
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(app.userinfo(access).await.status(), 401, "round {round}");
    }
}
