//! Refresh tokens in practice: concurrent refreshes within REFRESH_REUSE_GRACE_SECS, replay after
//! it, and a narrower scope that does not narrow the grant (RFC 6749 §6).

use serde_json::Value;

use crate::claims::tokens_for;
use crate::helpers::{TestApp, TestClient};

async fn refresh(
    app: &TestApp,
    client: &TestClient,
    token: &str,
    scope: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let response = app.token_request(client, &form).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

fn refresh_token_of(tokens: &Value) -> String {
    tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

#[tokio::test]
async fn two_concurrent_refreshes_with_one_token_both_succeed_and_the_grant_survives() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let tokens = tokens_for(
        &app,
        &client,
        "wangwu",
        &[("scope", "openid profile offline_access")],
    )
    .await;
    let token = refresh_token_of(&tokens);

    let (first, second) = tokio::join!(
        refresh(&app, &client, &token, None),
        refresh(&app, &client, &token, None)
    );

    assert_eq!((first.0, second.0), (200, 200), "{first:?} {second:?}");
    for answer in [&first.1, &second.1] {
        let access = answer["access_token"].as_str().unwrap();
        assert_eq!(app.userinfo(access).await.status(), 200);
    }
    let (status, _) = refresh(&app, &client, &refresh_token_of(&second.1), None).await;
    assert_eq!(status, 200, "the grant is alive");
    assert_eq!(
        app.userinfo(first.1["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_grant() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let tokens = tokens_for(
        &app,
        &client,
        "wangwu",
        &[("scope", "openid offline_access")],
    )
    .await;
    let token = refresh_token_of(&tokens);
    let (_, rotated) = refresh(&app, &client, &token, None).await;

    app.clock.advance(2);
    let (status, _) = refresh(&app, &client, &token, None).await;
    assert_eq!(status, 200, "2 s after rotation is within the 3 s window");
    app.clock.advance(2);
    let (status, body) = refresh(&app, &client, &token, None).await;

    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        app.userinfo(rotated["access_token"].as_str().unwrap())
            .await
            .status(),
        401,
        "the grant is dead"
    );
    let (status, _) = refresh(&app, &client, &refresh_token_of(&rotated), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_reuse_grace_is_exact_to_the_millisecond() {
    let app = TestApp::spawn_with(&[("REFRESH_REUSE_GRACE_SECS", "2")]).await;
    let client = app.confidential_client().await;
    let tokens = tokens_for(
        &app,
        &client,
        "wangwu",
        &[("scope", "openid offline_access")],
    )
    .await;
    let token = refresh_token_of(&tokens);
    // The rotation happens at the start of a second: whole seconds would read 2.5 s as 2.
    let (status, rotated) = refresh(&app, &client, &token, None).await;
    assert_eq!(status, 200);

    app.clock.advance_millis(2_000);
    let (status, _) = refresh(&app, &client, &token, None).await;
    assert_eq!(
        status, 200,
        "2.000 s after the rotation is within a 2 s grace"
    );
    app.clock.advance_millis(500);
    let (status, body) = refresh(&app, &client, &token, None).await;

    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "2.5 s after the rotation is outside a 2 s grace"
    );
    assert_eq!(
        app.userinfo(rotated["access_token"].as_str().unwrap())
            .await
            .status(),
        401,
        "a reuse outside the grace kills the grant"
    );
}

#[tokio::test]
async fn a_grace_of_zero_keeps_strict_rotation() {
    let app = TestApp::spawn_with(&[("REFRESH_REUSE_GRACE_SECS", "0")]).await;
    let client = app.confidential_client().await;
    let tokens = tokens_for(
        &app,
        &client,
        "wangwu",
        &[("scope", "openid offline_access")],
    )
    .await;
    let token = refresh_token_of(&tokens);
    refresh(&app, &client, &token, None).await;

    let (status, _) = refresh(&app, &client, &token, None).await;

    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_narrower_refresh_does_not_narrow_the_grant() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let tokens = tokens_for(
        &app,
        &client,
        "wangwu",
        &[("scope", "openid profile email offline_access")],
    )
    .await;

    let (status, narrow) = refresh(
        &app,
        &client,
        &refresh_token_of(&tokens),
        Some("openid profile"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(narrow["scope"], "openid profile");
    let userinfo: Value = app
        .userinfo(narrow["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert!(userinfo.get("email").is_none(), "{userinfo}");
    assert_eq!(userinfo["name"], "王五");

    let (status, full) = refresh(&app, &client, &refresh_token_of(&narrow), None).await;
    assert_eq!(status, 200);
    let scope = full["scope"].as_str().unwrap();
    for granted in ["openid", "profile", "email", "offline_access"] {
        assert!(
            scope.split(' ').any(|s| s == granted),
            "{granted} in {scope}"
        );
    }
    let userinfo: Value = app
        .userinfo(full["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["email"], "wangwu@wecom.local");
}
