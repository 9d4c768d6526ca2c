//! The device authorization grant (RFC 8628): a CLI asks for a code, a member approves it after a
//! WeCom sign-in, the CLI polls for its tokens.

use serde_json::{json, Value};
use wecom_oidc::clock::Clock;
use wecom_oidc::crypto::sha256_hex;

use crate::claims::jwt_claims;
use crate::helpers::{location, TestApp, TestClient, ADMIN_TOKEN, WECOM_UA};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A CLI: a public client registered with just a name and the grant.
async fn cli_client(app: &TestApp) -> TestClient {
    app.register(json!({
        "client_name": "kubectl",
        "token_endpoint_auth_method": "none",
        "grant_types": ["device_code", "refresh_token"],
        "redirect_uris": [],
        "post_logout_redirect_uris": [],
    }))
    .await
}

/// A CLI client and a device request of its with the defaults.
async fn cli_with_device(app: &TestApp) -> (TestClient, Value) {
    let client = cli_client(app).await;
    let device = start(app, &client, &[]).await;
    (client, device)
}

/// POST /device_authorization as `client` (Basic when it has a secret).
async fn device_request(
    app: &TestApp,
    client: &TestClient,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app.http.post(app.url("/device_authorization"));
    let mut form = form.to_vec();
    match &client.secret {
        Some(secret) => request = request.basic_auth(&client.id, Some(secret)),
        None => form.push(("client_id", client.id.as_str())),
    }
    request.form(&form).send().await.unwrap()
}

/// A device request that succeeded: its JSON.
async fn start(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> Value {
    let response = device_request(app, client, form).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn poll(app: &TestApp, client: &TestClient, device_code: &str) -> (u16, Value) {
    let response = app
        .token_request(
            client,
            &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {body}"))
}

/// GET a device page in the browser: (status, body, Location if any).
async fn open(app: &TestApp, url: &str) -> (u16, String, Option<String>) {
    let response = app.browser.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .status()
        .is_redirection()
        .then(|| location(&response));
    (status, response.text().await.unwrap(), location)
}

/// The approval page for `verification_uri_complete`, signing `member` in at WeCom when the
/// browser has no session.
async fn approval_page(app: &TestApp, complete: &str, member: &str) -> String {
    let (status, body, wecom) = open(app, complete).await;
    let Some(wecom) = wecom else {
        assert_eq!(status, 200, "{body}");
        return body;
    };
    let callback = app.wecom_approves(&wecom, &[("userid", member)]).await;
    let back = app.follow(&callback).await;
    assert_eq!(back, complete, "the sign-in returns to the approval page");
    let (status, body, _) = open(app, &back).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Posts an approval form from `browser`: (status, page).
async fn post_decision(
    app: &TestApp,
    browser: &reqwest::Client,
    user_code: &str,
    csrf_token: &str,
    decision: &str,
) -> (u16, String) {
    let response = browser
        .post(app.url("/device"))
        .form(&[
            ("user_code", user_code),
            ("csrf_token", csrf_token),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Presses Approve or Deny on an approval page.
async fn decide(app: &TestApp, page: &str, decision: &str) -> (u16, String) {
    let (user_code, csrf) = (hidden(page, "user_code"), hidden(page, "csrf_token"));
    post_decision(app, &app.browser, &user_code, &csrf, decision).await
}

/// The whole person's side: sign in as `member` and approve.
async fn approve(app: &TestApp, device: &Value, member: &str) {
    let page = approval_page(app, field(device, "verification_uri_complete"), member).await;
    let (status, body) = decide(app, &page, "approve").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn discovery_advertises_the_device_endpoint_and_grant() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["device_authorization_endpoint"],
        app.url("/device_authorization")
    );
    assert!(doc["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(DEVICE_GRANT)));
}

#[tokio::test]
async fn a_cli_registered_with_a_name_and_the_grant_gets_a_device_and_user_code() {
    let app = TestApp::spawn().await;
    let client = cli_client(&app).await;
    assert!(client.secret.is_none(), "a public client has no secret");

    let response = device_request(&app, &client, &[("scope", "openid profile")]).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(field(&body, "device_code").len() >= 43, "at least 256 bits");
    let user_code = field(&body, "user_code");
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(user_code
        .chars()
        .filter(|c| *c != '-')
        .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)));
    assert_eq!(field(&body, "verification_uri"), app.url("/device"));
    assert_eq!(
        field(&body, "verification_uri_complete"),
        format!("{}?user_code={user_code}", app.url("/device"))
    );
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["interval"], 5);
    // Only the digest is kept.
    let device_code = field(&body, "device_code");
    let stored = app
        .store
        .device_grant_by_device_code::<Value>(&sha256_hex(device_code))
        .await
        .unwrap()
        .expect("stored by its digest");
    assert_eq!(stored.scope, "openid profile");
    assert!(app
        .store
        .device_grant_by_device_code::<Value>(device_code)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn lifetime_and_interval_follow_their_settings() {
    let app = TestApp::spawn_with(&[
        ("DEVICE_CODE_TTL_SECS", "120"),
        ("DEVICE_POLL_INTERVAL_SECS", "9"),
    ])
    .await;
    let client = cli_client(&app).await;

    let body = start(&app, &client, &[]).await;

    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["interval"], 9);
}

#[tokio::test]
async fn device_requests_are_refused_as_rfc_8628_says() {
    let app = TestApp::spawn().await;
    let cli = cli_client(&app).await;
    let web_app = app.confidential_client().await;
    let confidential_cli = app
        .register(json!({ "client_name": "argocd", "grant_types": ["authorization_code", "device_code"] }))
        .await;

    // A client without the grant.
    let response = device_request(&app, &web_app, &[]).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");

    // A confidential client that does not authenticate.
    let response = app
        .http
        .post(app.url("/device_authorization"))
        .form(&[("client_id", confidential_cli.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // ... and the same client with its secret.
    start(&app, &confidential_cli, &[]).await;

    // No client at all, an unknown client.
    for form in [vec![], vec![("client_id", "nobody")]] {
        let response = app
            .http
            .post(app.url("/device_authorization"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{form:?}");
    }

    // A scope without openid.
    let response = device_request(&app, &cli, &[("scope", "profile")]).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");

    // GET is not the way.
    let response = app
        .http
        .get(app.url("/device_authorization"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn scope_defaults_to_openid_and_pkce_parameters_are_ignored() {
    let app = TestApp::spawn().await;
    let client = cli_client(&app).await;

    let body = start(
        &app,
        &client,
        &[
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;

    let stored = app
        .store
        .device_grant_by_device_code::<Value>(&sha256_hex(field(&body, "device_code")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.scope, "openid");
}

#[tokio::test]
async fn an_approved_device_gets_the_code_flows_tokens_once() {
    let app = TestApp::spawn().await;
    let client = cli_client(&app).await;
    let device = start(
        &app,
        &client,
        &[("scope", "openid profile groups offline_access")],
    )
    .await;
    let device_code = field(&device, "device_code");

    let (status, body) = poll(&app, &client, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );

    approve(&app, &device, "zhangsan").await;
    app.clock.advance(5);
    let response = app
        .token_request(
            &client,
            &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.unwrap();

    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile groups offline_access");
    assert!(tokens["refresh_token"].is_string(), "offline_access");
    let id_token = jwt_claims(field(&tokens, "id_token"));
    assert_eq!(id_token["aud"], client.id.as_str());
    assert!(id_token.get("nonce").is_none(), "{id_token}");
    assert_eq!(id_token["amr"], json!(["qr", "swk"]));
    assert!(id_token["name"].is_string(), "profile claims: {id_token}");
    assert!(id_token["groups"].is_array(), "groups: {id_token}");
    let userinfo = app.userinfo(field(&tokens, "access_token")).await;
    assert_eq!(userinfo.status(), 200);

    // One grant per device code.
    app.clock.advance(5);
    let (status, body) = poll(&app, &client, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The refresh token works like any other.
    let response = app
        .token_request(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", field(&tokens, "refresh_token")),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);

    let audit = app.audit().await;
    assert!(audit
        .iter()
        .any(|e| e.event == "device_grant" && e.outcome == "authorized"));
}

#[tokio::test]
async fn without_offline_access_there_is_no_refresh_token() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;

    approve(&app, &device, "lisi").await;
    let (status, tokens) = poll(&app, &client, field(&device, "device_code")).await;

    assert_eq!(status, 200, "{tokens}");
    assert!(tokens.get("refresh_token").is_none());
    assert_eq!(tokens["scope"], "openid");
}

#[tokio::test]
async fn polling_faster_than_the_interval_slows_the_device_down_by_five_seconds() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;
    let code = field(&device, "device_code");

    let (_, first) = poll(&app, &client, code).await;
    assert_eq!(first["error"], "authorization_pending");
    let (status, fast) = poll(&app, &client, code).await;
    assert_eq!((status, fast["error"].as_str()), (400, Some("slow_down")));
    // The interval is now 10 s: 5 s later is still too soon.
    app.clock.advance(5);
    let (_, still_fast) = poll(&app, &client, code).await;
    assert_eq!(still_fast["error"], "slow_down");
    // 15 s from now: the interval has grown to 15 s after that second slow_down.
    app.clock.advance(15);
    let (_, paced) = poll(&app, &client, code).await;
    assert_eq!(paced["error"], "authorization_pending");
}

#[tokio::test]
async fn a_denied_request_answers_access_denied() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;

    let page = approval_page(&app, field(&device, "verification_uri_complete"), "wangwu").await;
    let (status, body) = decide(&app, &page, "deny").await;
    assert_eq!(status, 200);
    assert!(body.contains("终端"), "return to the terminal: {body}");
    let (status, answer) = poll(&app, &client, field(&device, "device_code")).await;

    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("access_denied"))
    );
    assert!(app
        .audit()
        .await
        .iter()
        .any(|e| e.event == "device_grant" && e.outcome == "denied" && e.sub.is_some()));
    // The code offers nothing to approve any more.
    let (status, body, _) = open(&app, field(&device, "verification_uri_complete")).await;
    assert_eq!(status, 400);
    assert!(!body.contains("csrf_token"));
}

#[tokio::test]
async fn an_expired_device_code_answers_expired_token_and_offers_nothing_to_approve() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;

    app.clock.advance(600);
    let (status, answer) = poll(&app, &client, field(&device, "device_code")).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("expired_token"))
    );
    let (status, body, location) = open(&app, field(&device, "verification_uri_complete")).await;

    assert_eq!(status, 400);
    assert!(location.is_none(), "no sign-in for a dead code");
    assert!(body.contains("没有待批准的请求"), "{body}");
    assert!(!body.contains("csrf_token"));
    let expired = app
        .audit()
        .await
        .iter()
        .filter(|e| e.event == "device_grant" && e.outcome == "expired")
        .count();
    assert_eq!(expired, 1, "audited once");
}

#[tokio::test]
async fn the_verification_page_asks_for_the_code_and_takes_it_typed_loosely() {
    let app = TestApp::spawn().await;
    let (_, device) = cli_with_device(&app).await;

    let (status, form, _) = open(&app, &app.url("/device")).await;
    assert_eq!(status, 200);
    assert!(form.contains("name=\"user_code\""));
    let response = app
        .browser
        .get(app.url("/device"))
        .header("Accept-Language", "en")
        .send()
        .await
        .unwrap();
    assert!(response.text().await.unwrap().contains("Enter the code"));

    let typed = field(&device, "user_code").replace('-', " ").to_lowercase();
    let (_, _, wecom) = open(
        &app,
        &format!(
            "{}?user_code={}",
            app.url("/device"),
            typed.replace(' ', "+")
        ),
    )
    .await;
    assert!(wecom.is_some(), "a valid code leads to the WeCom sign-in");
}

#[tokio::test]
async fn the_approval_page_shows_what_is_asked_by_whom_and_cannot_be_framed() {
    let app = TestApp::spawn().await;
    let client = cli_client(&app).await;
    let device = start(&app, &client, &[("scope", "openid email")]).await;
    let complete = field(&device, "verification_uri_complete");
    approval_page(&app, complete, "zhangsan").await;

    let response = app
        .browser
        .get(complete)
        .header("Accept-Language", "en")
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert!(response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let page = response.text().await.unwrap();
    assert!(page.contains("kubectl"), "the application's name");
    assert!(page.contains("your email address"), "scopes in words");
    assert!(page.contains("127.0.0.1"), "the requesting address");
    assert!(page.contains(" UTC"), "when");
    assert!(page.contains(field(&device, "user_code")), "the code");
    assert!(page.contains("value=\"approve\"") && page.contains("value=\"deny\""));
}

#[tokio::test]
async fn an_existing_sso_session_goes_straight_to_the_approval() {
    let app = TestApp::spawn().await;
    let web_app = app.confidential_client().await;
    app.sign_in(&web_app, "zhangsan", &[]).await;
    let cli = cli_client(&app).await;
    let device = start(&app, &cli, &[]).await;

    let (status, page, wecom) = open(&app, field(&device, "verification_uri_complete")).await;

    assert_eq!(status, 200);
    assert!(wecom.is_none());
    assert!(page.contains("csrf_token"));
}

#[tokio::test]
async fn inside_the_wecom_client_the_sign_in_is_the_silent_oauth() {
    let app = TestApp::spawn().await;
    let (_, device) = cli_with_device(&app).await;

    let response = app
        .browser
        .get(field(&device, "verification_uri_complete"))
        .header("User-Agent", WECOM_UA)
        .send()
        .await
        .unwrap();

    assert!(location(&response).contains("/connect/oauth2/authorize?"));
}

#[tokio::test]
async fn people_wecom_refuses_see_the_usual_pages_and_nothing_is_approved() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;
    let (_, _, wecom) = open(&app, field(&device, "verification_uri_complete")).await;

    let callback = app
        .wecom_approves(&wecom.unwrap(), &[("openid", "oSimNonMember01")])
        .await;
    let response = app.browser.get(&callback).send().await.unwrap();

    assert_eq!(response.status(), 403);
    assert!(
        !response.text().await.unwrap().contains("href="),
        "no link back"
    );
    let (_, answer) = poll(&app, &client, field(&device, "device_code")).await;
    assert_eq!(answer["error"], "authorization_pending");
}

#[tokio::test]
async fn the_approval_needs_the_sessions_csrf_token() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;
    let page = approval_page(
        &app,
        field(&device, "verification_uri_complete"),
        "zhangsan",
    )
    .await;
    let user_code = hidden(&page, "user_code");

    for (csrf, case) in [("", "missing"), ("0123456789abcdef", "forged")] {
        let (status, _) = post_decision(&app, &app.browser, &user_code, csrf, "approve").await;
        assert_eq!(status, 400, "{case}");
    }
    // Another browser (no session) with the right token.
    let csrf = hidden(&page, "csrf_token");
    let (status, _) = post_decision(&app, &app.http, &user_code, &csrf, "approve").await;
    assert_eq!(status, 400, "another browser");

    let (_, answer) = poll(&app, &client, field(&device, "device_code")).await;
    assert_eq!(answer["error"], "authorization_pending", "nothing approved");
}

#[tokio::test]
async fn a_code_is_approved_once() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;
    let page = approval_page(
        &app,
        field(&device, "verification_uri_complete"),
        "zhangsan",
    )
    .await;

    assert_eq!(decide(&app, &page, "approve").await.0, 200);
    let (status, body) = decide(&app, &page, "deny").await;

    assert_eq!(status, 400);
    assert!(body.contains("没有待批准的请求"));
    let (status, _) = poll(&app, &client, field(&device, "device_code")).await;
    assert_eq!(status, 200, "the first answer stands");
}

#[tokio::test]
async fn wrong_user_codes_count_against_the_failure_limit() {
    let app = TestApp::spawn_with(&[("AUTH_FAILURE_LIMIT_PER_MINUTE", "3")]).await;

    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, body, _) = open(&app, &app.url("/device?user_code=BCDF-GHJK")).await;
        if status == 400 {
            assert!(body.contains("name=\"user_code\""), "the form again");
        }
        statuses.push(status);
    }
    assert!(statuses[..3].iter().all(|s| *s == 400), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let malformed = app
        .browser
        .get(app.url("/device?user_code=nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 429, "past the limit, every try waits");
}

#[tokio::test]
async fn revoking_the_member_ends_an_approved_grant_and_its_tokens() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;
    approve(&app, &device, "wangwu").await;

    let revoked = app
        .http
        .post(app.url("/admin/users/wangwu/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    let (status, answer) = poll(&app, &client, field(&device, "device_code")).await;

    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn tokens_from_a_device_end_with_the_members_access() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;
    approve(&app, &device, "wangwu").await;
    let (_, tokens) = poll(&app, &client, field(&device, "device_code")).await;
    let access = field(&tokens, "access_token");
    assert_eq!(app.userinfo(access).await.status(), 200);

    app.http
        .post(app.url("/admin/users/wangwu/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();

    assert_eq!(app.userinfo(access).await.status(), 401);
}

#[tokio::test]
async fn a_device_code_works_only_for_its_own_client() {
    let app = TestApp::spawn().await;
    let client = cli_client(&app).await;
    let other = cli_client(&app).await;
    let device = start(&app, &client, &[]).await;
    approve(&app, &device, "zhangsan").await;

    let (status, answer) = poll(&app, &other, field(&device, "device_code")).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, answer) = poll(&app, &client, "not-a-device-code").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let response = app
        .token_request(&client, &[("grant_type", DEVICE_GRANT)])
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "device_code is missing");
    let (status, _) = poll(&app, &client, field(&device, "device_code")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_client_without_the_grant_cannot_poll() {
    let app = TestApp::spawn().await;
    let web_app = app.confidential_client().await;

    let (status, answer) = poll(&app, &web_app, "whatever").await;

    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn expired_device_grants_are_purged() {
    let app = TestApp::spawn().await;
    let (_, device) = cli_with_device(&app).await;
    let hash = sha256_hex(field(&device, "device_code"));

    app.store
        .purge_expired(app.clock.now() + 601)
        .await
        .unwrap();

    assert!(app
        .store
        .device_grant_by_device_code::<Value>(&hash)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_login_hint_pushes_the_approval_to_the_members_wecom() {
    let app = TestApp::spawn().await;
    let client = cli_client(&app).await;

    let device = start(&app, &client, &[("login_hint", "lisi")]).await;

    let messages = app.simulator.control().messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message.touser, vec!["lisi".to_owned()]);
    assert_eq!(message.msgtype, "textcard");
    assert_eq!(
        message.content["url"],
        field(&device, "verification_uri_complete")
    );
    assert!(message.content["title"]
        .as_str()
        .unwrap()
        .contains("kubectl"));
    let description = message.content["description"].as_str().unwrap();
    assert!(description.contains("127.0.0.1"), "{description}");
    assert!(description.contains(field(&device, "user_code")));
    // Opening the link in the WeCom client is the silent sign-in, then the approval.
    approve(&app, &device, "lisi").await;
    let (status, _) = poll(&app, &client, field(&device, "device_code")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn pushes_are_limited_per_member_and_can_be_turned_off() {
    let app = TestApp::spawn().await;
    let client = cli_client(&app).await;
    start(&app, &client, &[("login_hint", "wangwu")]).await;

    start(&app, &client, &[("login_hint", "wangwu")]).await;

    assert_eq!(
        app.simulator.control().messages().len(),
        1,
        "one message per member per 30 s"
    );

    let quiet = TestApp::spawn_with(&[("DEVICE_PUSH", "false")]).await;
    let client = cli_client(&quiet).await;
    start(&quiet, &client, &[("login_hint", "wangwu")]).await;
    assert!(quiet.simulator.control().messages().is_empty());
}

#[tokio::test]
async fn members_outside_the_visible_range_get_no_message_and_the_code_still_works() {
    let app = TestApp::spawn().await;
    let client = cli_client(&app).await;

    for hint in ["wujiu", "nobody-at-all"] {
        let response = device_request(&app, &client, &[("login_hint", hint)]).await;
        assert_eq!(response.status(), 200, "{hint}");
    }

    assert!(app.simulator.control().messages().is_empty());
}

#[tokio::test]
async fn device_tokens_and_pending_requests_show_in_the_metrics() {
    use crate::metrics::{scrape, value};
    let app = TestApp::spawn_with(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let client = cli_client(&app).await;
    let before = scrape(&app).await;
    let device = start(&app, &client, &[]).await;

    let waiting = scrape(&app).await;
    assert_eq!(
        value(&waiting, "wecom_oidc_device_grants_pending", &[]),
        1.0
    );
    approve(&app, &device, "zhangsan").await;
    let (status, _) = poll(&app, &client, field(&device, "device_code")).await;
    assert_eq!(status, 200);

    let after = scrape(&app).await;
    let issued = |text: &str| {
        value(
            text,
            "wecom_oidc_tokens_issued_total",
            &["grant_type=\"device_code\""],
        )
    };
    assert!(issued(&after) >= issued(&before) + 1.0, "{after}");
    assert_eq!(value(&after, "wecom_oidc_device_grants_pending", &[]), 0.0);
}

#[tokio::test]
async fn a_cli_restricted_to_groups_refuses_members_outside_them() {
    let app = TestApp::spawn().await;
    let client = app
        .register(json!({
            "client_name": "prod kubectl",
            "token_endpoint_auth_method": "none",
            "grant_types": ["device_code"],
            "redirect_uris": [],
            "post_logout_redirect_uris": [],
            "allowed_groups": ["tag:管理员"],
        }))
        .await;
    let device = start(&app, &client, &[]).await;
    let (_, _, wecom) = open(&app, field(&device, "verification_uri_complete")).await;

    let callback = app
        .wecom_approves(&wecom.unwrap(), &[("userid", "lisi")])
        .await;
    let response = app.browser.get(&callback).send().await.unwrap();

    assert_eq!(response.status(), 403);
    let (_, answer) = poll(&app, &client, field(&device, "device_code")).await;
    assert_eq!(answer["error"], "authorization_pending");
    // ZhangSan holds the tag.
    let other = app.with_fresh_browser();
    approve(&other, &device, "ZhangSan").await;
    let (status, _) = poll(&other, &client, field(&device, "device_code")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn signing_out_of_the_approving_session_ends_the_devices_tokens() {
    let app = TestApp::spawn().await;
    let (client, device) = cli_with_device(&app).await;
    approve(&app, &device, "zhangsan").await;
    let (_, tokens) = poll(&app, &client, field(&device, "device_code")).await;
    let access = field(&tokens, "access_token");
    assert!(jwt_claims(field(&tokens, "id_token"))["sid"].is_string());

    let mut logout = url::Url::parse(&app.url("/logout")).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", field(&tokens, "id_token"));
    let response = app.browser.get(logout.as_str()).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    assert_eq!(app.userinfo(access).await.status(), 401);
}

#[tokio::test]
async fn a_session_whose_member_was_disabled_since_is_not_enough_to_approve() {
    let app = TestApp::spawn().await;
    let web_app = app.confidential_client().await;
    app.sign_in(&web_app, "wangwu", &[]).await;
    let (client, device) = cli_with_device(&app).await;
    app.simulator
        .control()
        .disable_member("wangwu")
        .await
        .unwrap();
    app.clock.advance(301);

    let (_, page, wecom) = open(&app, field(&device, "verification_uri_complete")).await;

    assert!(
        wecom.is_some(),
        "signed in again at WeCom, which refuses: {page}"
    );
    let (_, answer) = poll(&app, &client, field(&device, "device_code")).await;
    assert_eq!(answer["error"], "authorization_pending");
}

#[tokio::test]
async fn a_public_client_may_present_an_empty_secret_as_oidc_agent_does() {
    let app = TestApp::spawn().await;
    let cli = cli_client(&app).await;
    let confidential = app
        .register(json!({ "client_name": "argocd", "grant_types": ["authorization_code", "device_code"] }))
        .await;
    let empty_basic = |client: &TestClient| {
        app.http
            .post(app.url("/device_authorization"))
            .basic_auth(&client.id, Some(""))
            .form(&[("scope", "openid")])
            .send()
    };

    assert_eq!(empty_basic(&cli).await.unwrap().status(), 200);
    assert_eq!(empty_basic(&confidential).await.unwrap().status(), 401);
}
