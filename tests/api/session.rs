//! Single sign-on sessions, prompt and max_age, response modes, request objects, logout.

use serde_json::Value;

use crate::helpers::{location, parse_callback, query_param, TestApp, RP_LOGOUT_REDIRECT};

fn id_token_claims(id_token: &str) -> Value {
    use base64::Engine;
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_second_application_signs_in_without_another_wecom_round_trip() {
    let app = TestApp::spawn().await;
    let grafana = app.confidential_client().await;
    let gitlab = app.confidential_client().await;
    let first = app.sign_in(&grafana, "ZhangSan", &[]).await;
    let first_tokens: Value = app
        .exchange(&grafana, &first.code.unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    let calls_after_first = app.simulator.control().calls("/cgi-bin/auth/getuserinfo");
    app.clock.advance(600);

    let direct = app.follow(&app.authorize_url(&gitlab, &[])).await;

    assert!(
        direct.starts_with(&gitlab.redirect_uri),
        "straight back to the client: {direct}"
    );
    let back = parse_callback(&direct);
    assert_eq!(back.state.as_deref(), Some("rp-state-123"));
    let tokens: Value = app
        .exchange(&gitlab, &back.code.unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.simulator.control().calls("/cgi-bin/auth/getuserinfo"),
        calls_after_first,
        "no WeCom call"
    );
    let first_claims = id_token_claims(first_tokens["id_token"].as_str().unwrap());
    let second_claims = id_token_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(second_claims["sub"], "zhangsan");
    assert_eq!(
        second_claims["auth_time"], first_claims["auth_time"],
        "auth_time is the WeCom sign-in"
    );
    assert_eq!(
        second_claims["iat"].as_i64().unwrap() - second_claims["auth_time"].as_i64().unwrap(),
        600
    );
}

#[tokio::test]
async fn prompt_none_answers_login_required_without_a_session_and_a_code_with_one() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;

    let without = app
        .follow(&app.authorize_url(&client, &[("prompt", "none")]))
        .await;
    assert!(
        without.starts_with(&client.redirect_uri),
        "never a page: {without}"
    );
    assert_eq!(
        query_param(&without, "error").as_deref(),
        Some("login_required")
    );
    assert_eq!(
        query_param(&without, "state").as_deref(),
        Some("rp-state-123")
    );

    app.sign_in(&client, "wangwu", &[]).await.code.unwrap();
    let with = app
        .follow(&app.authorize_url(&client, &[("prompt", "none")]))
        .await;
    assert!(query_param(&with, "code").is_some(), "{with}");
}

#[tokio::test]
async fn max_age_zero_and_prompt_login_force_wecom_again() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    app.sign_in(&client, "wangwu", &[]).await.code.unwrap();

    for extra in [("max_age", "0"), ("prompt", "login")] {
        app.clock.advance(5);
        let next = app.follow(&app.authorize_url(&client, &[extra])).await;
        assert!(
            next.contains("/wwlogin/sso/login"),
            "{extra:?} goes to WeCom: {next}"
        );
    }
}

#[tokio::test]
async fn form_post_response_mode_returns_an_auto_submitting_form() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    app.sign_in(&client, "wangwu", &[]).await.code.unwrap();

    let response = app
        .browser
        .get(app.authorize_url(&client, &[("response_mode", "form_post")]))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'sha256-"));
    // The template escapes `/` in attributes as `&#x2f;`; browsers decode it.
    let html = response.text().await.unwrap().replace("&#x2f;", "/");
    assert!(html.contains(&format!("action=\"{}\"", client.redirect_uri)));
    assert!(html.contains("name=\"code\""));
    assert!(html.contains("value=\"rp-state-123\""));
}

#[tokio::test]
async fn authorization_errors_go_back_to_the_verified_redirect_uri() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let cases = [
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "profile")], "invalid_scope"),
        (
            vec![("request", "eyJhbGciOiJub25lIn0.e30.")],
            "request_not_supported",
        ),
        (
            vec![("request_uri", "https://x.example/r")],
            "request_uri_not_supported",
        ),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("max_age", "-1")], "invalid_request"),
        (vec![("response_mode", "fragment")], "invalid_request"),
    ];
    for (extra, error) in cases {
        let target = app.follow(&app.authorize_url(&client, &extra)).await;
        assert!(
            target.starts_with(&client.redirect_uri),
            "{error}: {target}"
        );
        assert_eq!(
            query_param(&target, "error").as_deref(),
            Some(error),
            "{extra:?}"
        );
        assert_eq!(
            query_param(&target, "state").as_deref(),
            Some("rp-state-123")
        );
        assert_eq!(
            query_param(&target, "iss").as_deref(),
            Some(app.issuer.as_str())
        );
    }
}

#[tokio::test]
async fn logout_ends_the_session_revokes_its_tokens_and_returns_to_a_registered_uri() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = app.sign_in(&client, "wangwu", &[]).await.code.unwrap();
    let tokens: Value = app
        .exchange(&client, &code, None)
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();

    let logout = format!(
        "{}?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
        app.url("/logout"),
        urlencoding(RP_LOGOUT_REDIRECT)
    );
    let response = app.browser.get(&logout).send().await.unwrap();

    assert_eq!(response.status(), 302);
    assert_eq!(
        location(&response),
        format!("{RP_LOGOUT_REDIRECT}?state=bye")
    );
    assert_eq!(
        app.userinfo(access).await.status(),
        401,
        "the session's tokens are revoked"
    );
    let next = app
        .follow(&app.authorize_url(&client, &[("prompt", "none")]))
        .await;
    assert_eq!(
        query_param(&next, "error").as_deref(),
        Some("login_required"),
        "the session is over"
    );
}

#[tokio::test]
async fn logout_with_a_foreign_post_logout_redirect_uri_is_refused_without_redirecting() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = app.sign_in(&client, "wangwu", &[]).await.code.unwrap();
    let tokens: Value = app
        .exchange(&client, &code, None)
        .await
        .json()
        .await
        .unwrap();

    let logout = format!(
        "{}?client_id={}&post_logout_redirect_uri={}",
        app.url("/logout"),
        client.id,
        urlencoding("https://evil.example/")
    );
    let response = app.browser.get(&logout).send().await.unwrap();

    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    assert_eq!(
        app.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        200,
        "nothing was ended"
    );
}

#[tokio::test]
async fn logout_without_a_hint_asks_first_and_signs_out_when_the_person_confirms() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    app.sign_in(&client, "wangwu", &[]).await.code.unwrap();

    let asked = app.browser.get(app.url("/logout")).send().await.unwrap();

    assert_eq!(asked.status(), 200);
    let html = asked.text().await.unwrap();
    assert!(html.contains("退出登录？"), "{html}");
    let csrf = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let confirmed = app
        .browser
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    assert!(confirmed.text().await.unwrap().contains("已经退出登录"));
    let next = app
        .follow(&app.authorize_url(&client, &[("prompt", "none")]))
        .await;
    assert_eq!(
        query_param(&next, "error").as_deref(),
        Some("login_required")
    );
}

fn urlencoding(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
