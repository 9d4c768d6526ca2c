//! Claims where relying parties look: the ID token by default, `groups` always present when
//! granted, per-client group release, and per-application access by `allowed_groups`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{query_param, TestApp, TestClient, ADMIN_TOKEN};

/// The payload of a JWT (the signature is checked by the relying-party tests).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// Signs `member` in and returns the token response.
pub async fn tokens_for(
    app: &TestApp,
    client: &TestClient,
    member: &str,
    extra: &[(&str, &str)],
) -> Value {
    let code = app
        .sign_in(client, member, extra)
        .await
        .code
        .expect("a code");
    let response = app.exchange(client, &code, None).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn userinfo_of(app: &TestApp, tokens: &Value) -> Value {
    app.userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_default_client_gets_profile_email_and_groups_in_the_id_token() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;

    let tokens = tokens_for(&app, &client, "ZhangSan", &[]).await;

    let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["name"], "张三");
    assert_eq!(id_token["preferred_username"], "ZhangSan");
    // A QR login to an app created after 2022-06-20 learns no mailbox: the synthetic address.
    assert_eq!(id_token["email"], "zhangsan@wecom.local");
    assert_eq!(id_token["email_verified"], false);
    assert_eq!(
        id_token["groups"],
        json!(["总部/研发部/平台组", "tag:管理员"])
    );
    let userinfo = userinfo_of(&app, &tokens).await;
    assert_eq!(userinfo["groups"], id_token["groups"]);
    assert_eq!(userinfo["email"], id_token["email"]);
}

#[tokio::test]
async fn the_id_token_carries_only_what_the_scopes_grant_and_a_client_may_ask_for_a_minimal_one() {
    let app = TestApp::spawn().await;
    let default = app.confidential_client().await;
    let minimal = app
        .register(json!({ "client_name": "minimal", "id_token_profile_claims": false }))
        .await;

    let narrow = tokens_for(&app, &default, "ZhangSan", &[("scope", "openid email")]).await;
    let id_token = jwt_claims(narrow["id_token"].as_str().unwrap());
    assert_eq!(id_token["email"], "zhangsan@wecom.local");
    for absent in ["name", "groups", "preferred_username"] {
        assert!(id_token.get(absent).is_none(), "{absent} was not granted");
    }

    let tokens = tokens_for(&app, &minimal, "ZhangSan", &[]).await;
    let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
    for absent in ["name", "email", "groups"] {
        assert!(
            id_token.get(absent).is_none(),
            "{absent} in a minimal ID token"
        );
    }
    assert_eq!(userinfo_of(&app, &tokens).await["name"], "张三");
}

#[tokio::test]
async fn a_member_without_groups_gets_an_empty_groups_claim() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;

    let tokens = tokens_for(&app, &client, "qianshi", &[]).await;

    let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["groups"], json!([]));
    assert_eq!(userinfo_of(&app, &tokens).await["groups"], json!([]));
}

#[tokio::test]
async fn each_client_gets_the_group_kinds_and_prefixes_it_registered() {
    let app = TestApp::spawn().await;
    let by_name = app
        .register(json!({ "client_name": "nextcloud", "groups_claim": ["names", "ids"] }))
        .await;
    let tags_only = app
        .register(json!({ "client_name": "oauth2-proxy", "groups_filter": ["tag:"] }))
        .await;

    let tokens = tokens_for(&app, &by_name, "ZhangSan", &[]).await;
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["groups"],
        json!(["dept:平台组", "deptid:3"])
    );
    assert_eq!(
        userinfo_of(&app, &tokens).await["groups"],
        json!(["dept:平台组", "deptid:3"])
    );
    let tokens = tokens_for(&app, &tags_only, "ZhangSan", &[]).await;
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["groups"],
        json!(["tag:管理员"])
    );
}

#[tokio::test]
async fn malformed_group_settings_are_refused_at_registration() {
    let app = TestApp::spawn().await;
    for (body, case) in [
        (
            json!({ "allowed_groups": ["研发部//平台组"] }),
            "empty segment",
        ),
        (json!({ "allowed_groups": ["a:b"] }), "bare colon in a path"),
        (json!({ "groups_claim": ["roles"] }), "unknown kind"),
        (json!({ "groups_filter": [""] }), "empty prefix"),
    ] {
        let mut body = body;
        body["client_name"] = json!("x");
        body["redirect_uris"] = json!(["https://app.example.com/cb"]);
        let response = app
            .http
            .post(app.url("/admin/clients"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{case}");
    }
}

async fn restricted_client(app: &TestApp, allowed: &[&str]) -> TestClient {
    app.register(json!({
        "client_name": "argocd",
        "allowed_groups": allowed,
        "scope": "openid profile groups offline_access",
    }))
    .await
}

/// Asserts the "no access to this application" page and its link back to the client.
async fn assert_refused(response: reqwest::Response) {
    assert_refused_with(response, "您没有访问此应用的权限").await;
}

/// Asserts a refusal page saying `message`, and its link back to the client.
async fn assert_refused_with(response: reqwest::Response, message: &str) {
    assert_eq!(response.status(), 403);
    let html = response.text().await.unwrap();
    assert!(html.contains(message), "{html}");
    let back = html
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link back")
        // The template escapes `/` and `&` in attributes; browsers decode them.
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("rp-state-123"));
}

#[tokio::test]
async fn allowed_groups_admit_a_subdepartment_member_and_refuse_an_outsider_with_the_page() {
    let app = TestApp::spawn().await;
    let client = restricted_client(&app, &["总部/研发部", "tag:SRE"]).await;

    let admitted = app.sign_in(&client, "ZhangSan", &[]).await;
    assert!(
        admitted.code.is_some(),
        "总部/研发部/平台组 is under 总部/研发部"
    );

    let outsider = app.with_fresh_browser();
    let wecom = outsider.follow(&outsider.authorize_url(&client, &[])).await;
    let callback = outsider.wecom_approves(&wecom, &[("userid", "lisi")]).await;
    let response = outsider.browser.get(&callback).send().await.unwrap();
    assert_refused(response).await;
    let audit = outsider.audit().await;
    assert_eq!(audit[0].reason.as_deref(), Some("not_in_allowed_groups"));
    assert_eq!(audit[0].sub.as_deref(), Some("lisi"));
    assert_eq!(audit[0].client_id.as_deref(), Some(client.id.as_str()));
}

#[tokio::test]
async fn allowed_groups_are_checked_when_an_sso_session_answers() {
    let app = TestApp::spawn().await;
    let open = app.confidential_client().await;
    let restricted = restricted_client(&app, &["总部/研发部"]).await;
    assert!(app.sign_in(&open, "lisi", &[]).await.code.is_some());

    let response = app
        .browser
        .get(app.authorize_url(&restricted, &[]))
        .send()
        .await
        .unwrap();

    assert_refused(response).await;
    assert_eq!(
        app.audit().await[0].reason.as_deref(),
        Some("not_in_allowed_groups")
    );

    // A silent request cannot show a page: the client hears access_denied.
    let back = app
        .follow(&app.authorize_url(&restricted, &[("prompt", "none")]))
        .await;
    assert!(back.starts_with(&restricted.redirect_uri), "{back}");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn allowed_groups_are_checked_at_every_refresh() {
    let app = TestApp::spawn().await;
    let client = restricted_client(&app, &["总部/研发部"]).await;
    let tokens = tokens_for(
        &app,
        &client,
        "ZhangSan",
        &[("scope", "openid offline_access")],
    )
    .await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = app
        .token_request(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(refreshed.status(), 200, "still a member");
    let refresh = refreshed.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The administrator narrows the application to another group.
    let response = app
        .http
        .put(app.url(&format!("/admin/clients/{}", client.id)))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "client_name": "argocd",
            "redirect_uris": [client.redirect_uri],
            "allowed_groups": ["tag:SRE"],
            "scope": "openid profile groups offline_access",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .token_request(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;

    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        app.audit().await[0].reason.as_deref(),
        Some("not_in_allowed_groups")
    );
}

#[tokio::test]
async fn the_claims_parameter_places_claims_in_a_minimal_id_token_within_the_scopes() {
    let app = TestApp::spawn().await;
    let minimal = app
        .register(json!({ "client_name": "minimal", "id_token_profile_claims": false }))
        .await;
    let requested = json!({
        "id_token": { "email": { "essential": true }, "groups": null, "phone_number": null },
        "userinfo": { "name": null }
    })
    .to_string();

    let tokens = tokens_for(
        &app,
        &minimal,
        "ZhangSan",
        &[
            ("scope", "openid profile email groups"),
            ("claims", &requested),
        ],
    )
    .await;

    let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["email"], "zhangsan@wecom.local");
    assert_eq!(
        id_token["groups"],
        json!(["总部/研发部/平台组", "tag:管理员"])
    );
    assert!(id_token.get("name").is_none(), "not asked for the ID token");
    assert!(
        id_token.get("phone_number").is_none(),
        "phone scope not granted"
    );
    assert_eq!(id_token["sub"], "zhangsan");
    let userinfo = userinfo_of(&app, &tokens).await;
    assert_eq!(userinfo["name"], "张三");
    assert!(
        userinfo.get("phone_number").is_none(),
        "phone scope not granted"
    );
}

#[tokio::test]
async fn a_sub_requested_by_value_gets_tokens_for_that_member_only() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    assert!(app.sign_in(&client, "lisi", &[]).await.code.is_some());
    let wants_zhangsan = json!({ "id_token": { "sub": { "value": "zhangsan" } } }).to_string();

    // lisi's session does not answer for zhangsan: silently, that is login_required…
    let back = app
        .follow(&app.authorize_url(&client, &[("claims", &wants_zhangsan), ("prompt", "none")]))
        .await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("login_required")
    );
    // …and otherwise WeCom's login, where zhangsan signs in.
    let tokens = tokens_for(&app, &client, "ZhangSan", &[("claims", &wants_zhangsan)]).await;
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["sub"],
        "zhangsan"
    );
    // zhangsan's own session now answers at once.
    let again = app
        .follow(&app.authorize_url(&client, &[("claims", &wants_zhangsan), ("prompt", "none")]))
        .await;
    assert!(query_param(&again, "code").is_some(), "{again}");

    // Someone else scanning gets a page, and the client no code.
    let other = app.with_fresh_browser();
    let wecom = other
        .follow(&other.authorize_url(&client, &[("claims", &wants_zhangsan)]))
        .await;
    let callback = other.wecom_approves(&wecom, &[("userid", "lisi")]).await;
    let response = other.browser.get(&callback).send().await.unwrap();
    assert_refused_with(response, "应用要求的是另一位成员的登录").await;
    let audit = other.audit().await;
    assert_eq!(audit[0].reason.as_deref(), Some("not_the_requested_sub"));
    assert_eq!(audit[0].sub.as_deref(), Some("lisi"));
}

#[tokio::test]
async fn an_essential_acr_that_cannot_be_met_fails_the_authentication() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let demands = json!({ "id_token": { "acr": { "essential": true, "values": ["urn:mace:incommon:iap:silver"] } } })
        .to_string();

    let back = app
        .follow(&app.authorize_url(&client, &[("claims", &demands)]))
        .await;

    assert!(back.starts_with(&client.redirect_uri), "{back}");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("rp-state-123"));
    // Asked for voluntarily, it changes nothing.
    let voluntary = json!({ "id_token": { "acr": { "values": ["silver"] } } }).to_string();
    assert!(app
        .sign_in(&client, "lisi", &[("claims", &voluntary)])
        .await
        .code
        .is_some());
}

#[tokio::test]
async fn a_malformed_claims_parameter_is_invalid_request_at_the_client() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;

    let back = app
        .follow(&app.authorize_url(&client, &[("claims", r#"{"id_token": ["email"]}"#)]))
        .await;

    assert!(back.starts_with(&client.redirect_uri), "{back}");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("rp-state-123"));
}

#[tokio::test]
async fn check_lists_a_members_group_values_for_writing_rules() {
    let app = TestApp::spawn().await;
    let sim = app.simulator.base_url().to_string();
    let config = wecom_oidc::config::Config::from_pairs([
        ("WECOM_CORP_ID", crate::helpers::CORP_ID),
        ("WECOM_CORP_SECRET", crate::helpers::AGENT_SECRET),
        ("WECOM_AGENT_ID", crate::helpers::AGENT_ID),
        ("WECOM_API_BASE", sim.trim_end_matches('/')),
    ])
    .unwrap();
    let mut out = Vec::new();

    let ok = wecom_oidc::check::run(&config, Some("ZhangSan"), &mut out)
        .await
        .unwrap();

    let report = String::from_utf8(out).unwrap();
    assert!(ok, "{report}");
    for value in [
        "总部/研发部/平台组",
        "dept:平台组",
        "deptid:3",
        "tag:管理员",
    ] {
        assert!(report.contains(value), "{value} in {report}");
    }
}

#[tokio::test]
async fn a_sub_requested_by_value_is_compared_with_the_stored_sub_not_the_userid() {
    let app = crate::events::app_with_events().await;
    let client = app.confidential_client().await;
    tokens_for(&app, &client, "wangwu", &[]).await;
    let renamed = app
        .simulator
        .control()
        .rename_member("wangwu", "wangwu01")
        .await
        .unwrap();
    assert!(renamed.iter().all(|d| d.accepted()));
    let by_value = |sub: &str| json!({ "id_token": { "sub": { "value": sub } } }).to_string();

    // The renamed member, asked for by the sub they have always had, is accepted…
    let tokens = tokens_for(
        &app,
        &client,
        "wangwu01",
        &[("claims", &by_value("wangwu")), ("prompt", "login")],
    )
    .await;
    let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], "wangwu");
    assert_eq!(id_token["preferred_username"], "wangwu01");

    // …and a request for the sub their userid would spell is another member's: refused.
    let wecom = app
        .follow(&app.authorize_url(
            &client,
            &[("claims", &by_value("wangwu01")), ("prompt", "login")],
        ))
        .await;
    let callback = app.wecom_approves(&wecom, &[("userid", "wangwu01")]).await;
    let response = app.browser.get(&callback).send().await.unwrap();
    assert_refused_with(response, "应用要求的是另一位成员的登录").await;
    let audit = app.audit().await;
    assert_eq!(audit[0].reason.as_deref(), Some("not_the_requested_sub"));
    assert_eq!(audit[0].sub.as_deref(), Some("wangwu"));
}
