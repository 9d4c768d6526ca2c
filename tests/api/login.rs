//! The WeCom round trip: refusals, bad and replayed callbacks, WeCom faults, the token cache.

use std::time::Duration;

use serde_json::{json, Value};
use wecom_oidc::clock::Clock;
use wecom_oidc::simulator::{Fault, FaultKind};
use wecom_oidc::storage::{AuditEvent, ConsumedState, NewCode, Session, SignIn, StorageError};

use crate::helpers::{
    location, parse_callback, query_param, too_large_for_a_cookie, TestApp, TestClient, WECOM_UA,
};

/// Starts a login and returns WeCom's URL (the browser now holds the binding cookie).
async fn start_login(app: &TestApp, client: &TestClient) -> String {
    app.follow(&app.authorize_url(client, &[])).await
}

async fn users_count(app: &TestApp, sub: &str) -> bool {
    app.store.get_user::<Value>(sub).await.is_ok()
}

#[tokio::test]
async fn qr_login_redirects_to_the_new_wecom_web_login() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;

    let wecom = start_login(&app, &client).await;

    let url = url::Url::parse(&wecom).unwrap();
    assert_eq!(url.path(), "/wwlogin/sso/login");
    assert_eq!(
        query_param(&wecom, "login_type").as_deref(),
        Some("CorpApp")
    );
    assert_eq!(
        query_param(&wecom, "appid").as_deref(),
        Some("wwsim0000000001")
    );
    assert_eq!(query_param(&wecom, "agentid").as_deref(), Some("1000002"));
    assert_eq!(
        query_param(&wecom, "redirect_uri").unwrap(),
        app.url("/auth/wecom/callback")
    );
    assert!(
        query_param(&wecom, "state").unwrap().len() >= 32,
        "an unguessable state"
    );
}

#[tokio::test]
async fn wecom_client_user_agent_goes_to_silent_in_client_oauth() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;

    let response = app
        .browser
        .get(app.authorize_url(&client, &[]))
        .header("User-Agent", WECOM_UA)
        .send()
        .await
        .unwrap();

    let wecom = location(&response);
    assert!(wecom.contains("/connect/oauth2/authorize?"), "{wecom}");
    assert!(wecom.ends_with("#wechat_redirect"), "{wecom}");
    assert_eq!(
        query_param(&wecom, "scope").as_deref(),
        Some("snsapi_privateinfo")
    );
    assert_eq!(
        query_param(&wecom, "response_type").as_deref(),
        Some("code")
    );
}

#[tokio::test]
async fn sensitive_fields_from_an_in_client_login_carry_over_to_later_qr_logins() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    // First inside the WeCom client, with consent: the user_ticket brings the mailbox and phone.
    let response = app
        .browser
        .get(app.authorize_url(&client, &[]))
        .header("User-Agent", WECOM_UA)
        .send()
        .await
        .unwrap();
    let callback = app
        .wecom_approves(
            &location(&response),
            &[("userid", "ZhangSan"), ("consent", "1")],
        )
        .await;
    parse_callback(&app.follow(&callback).await)
        .code
        .expect("first login succeeds");

    // Later by QR code in a fresh browser (no SSO session): no user_ticket this time.
    let later = app.with_fresh_browser();
    let back = later
        .sign_in(&client, "ZhangSan", &[("prompt", "login")])
        .await;
    let tokens: Value = later
        .exchange(&client, &back.code.unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    let userinfo: Value = later
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(userinfo["email"], "zhangsan@corp.example.com");
    assert_eq!(userinfo["email_verified"], true);
    assert_eq!(userinfo["phone_number"], "+8613800138000");
}

#[tokio::test]
async fn refused_members_get_a_page_an_audit_row_and_no_code() {
    /// (what the person picks at WeCom, the audit reason, what the page says)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 4] = [
        (
            &[("openid", "oSimNonMember01")],
            "non_member",
            "只有本企业的成员",
        ),
        (&[("userid", "zhaoliu")], "member_disabled", "停用"),
        (&[("userid", "sunqi")], "member_left", "不在本企业"),
        (&[("userid", "zhouba")], "member_not_activated", "未激活"),
    ];
    for (choice, reason, text) in cases {
        let app = TestApp::spawn().await;
        let client = app.confidential_client().await;
        let wecom = start_login(&app, &client).await;
        let callback = app.wecom_approves(&wecom, choice).await;

        let response = app.browser.get(&callback).send().await.unwrap();

        assert_eq!(response.status(), 403, "{reason}");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        let page = response.text().await.unwrap();
        assert!(page.contains(text), "{reason}: page should say {text}");
        assert!(
            page.contains("error=access_denied"),
            "{reason}: link back with access_denied"
        );
        assert!(
            page.contains("state=rp-state-123"),
            "{reason}: link back with state"
        );
        let audit = app.audit().await;
        assert_eq!(audit[0].outcome, "refused", "{reason}");
        assert_eq!(audit[0].reason.as_deref(), Some(reason));
        assert_eq!(audit[0].client_id.as_deref(), Some(client.id.as_str()));
        assert!(
            !users_count(&app, "zhaoliu").await && !users_count(&app, "wujiu").await,
            "nothing stored"
        );
    }
}

#[tokio::test]
async fn a_member_outside_the_visible_range_is_refused_with_that_explanation() {
    // WeCom stops such members at its QR page, but the silent in-client snsapi_base login lets
    // them through: auth/getuserinfo answers their userid and only user/get refuses (60011).
    let app = TestApp::spawn_with(&[("WECOM_IN_CLIENT_SCOPE", "snsapi_base")]).await;
    let client = app.confidential_client().await;
    let response = app
        .browser
        .get(app.authorize_url(&client, &[]))
        .header("User-Agent", WECOM_UA)
        .send()
        .await
        .unwrap();
    let callback = app
        .wecom_approves(&location(&response), &[("userid", "wujiu")])
        .await;

    let response = app
        .browser
        .get(&callback)
        .header("User-Agent", WECOM_UA)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(page.contains("可见范围"), "{page}");
    assert!(page.contains("error=access_denied"));
    assert_eq!(
        app.audit().await[0].reason.as_deref(),
        Some("wecom_user_get_errcode_60011")
    );
    assert!(!users_count(&app, "wujiu").await);
}

#[tokio::test]
async fn page_language_follows_accept_language() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let wecom = start_login(&app, &client).await;
    let callback = app.wecom_approves(&wecom, &[("userid", "zhaoliu")]).await;

    let page = app
        .browser
        .get(&callback)
        .header("Accept-Language", "en-US,en;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert!(page.contains("Account disabled"), "{page}");
}

#[tokio::test]
async fn a_disallowed_mail_domain_is_refused_but_synthetic_addresses_pass() {
    // Agent 1000003 predates 2022-06-20, so user/get still returns lisi's personal address.
    let app = TestApp::spawn_with(&[
        ("ALLOWED_DOMAINS", "corp.example.com"),
        ("WECOM_AGENT_ID", "1000003"),
        ("WECOM_CORP_SECRET", "sim-secret-1000003"),
    ])
    .await;
    let client = app.confidential_client().await;

    let wecom = start_login(&app, &client).await;
    let callback = app.wecom_approves(&wecom, &[("userid", "lisi")]).await;
    let refused = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        app.audit().await[0].reason.as_deref(),
        Some("email_domain_not_allowed")
    );

    let wangwu = app.sign_in(&client, "wangwu", &[]).await;
    assert!(
        wangwu.code.is_some(),
        "wangwu has no mailbox: the synthetic address bypasses ALLOWED_DOMAINS"
    );
}

#[tokio::test]
async fn forged_missing_and_replayed_state_never_issue_a_code() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let wecom = start_login(&app, &client).await;
    let callback = app.wecom_approves(&wecom, &[("userid", "wangwu")]).await;
    let code = query_param(&callback, "code").unwrap();

    let forged = app
        .browser
        .get(app.url(&format!("/auth/wecom/callback?code={code}&state=forged")))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let missing = app
        .browser
        .get(app.url(&format!("/auth/wecom/callback?code={code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);

    let first = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), 302, "the real callback succeeds");
    let second = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(
        second.status(),
        400,
        "a second delivery of the same callback issues nothing"
    );
    assert!(second.text().await.unwrap().contains("已经使用过或已过期"));
}

#[tokio::test]
async fn a_callback_in_another_browser_is_refused_and_the_sign_in_stays_its_own_browsers() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let wecom = start_login(&app, &client).await;
    let callback = app.wecom_approves(&wecom, &[("userid", "wangwu")]).await;

    let victim = crate::helpers::browser();
    let response = victim.get(&callback).send().await.unwrap();
    assert_eq!(
        response.status(),
        400,
        "login CSRF: the sign-in is bound to the browser that started it"
    );
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("已经使用过或已过期"));

    let own = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(
        own.status(),
        302,
        "the browser that started it completes it"
    );
    assert!(query_param(&location(&own), "code").is_some());
}

#[tokio::test]
async fn a_callback_replayed_with_its_sign_in_cookie_issues_no_second_code() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let authorize = app
        .browser
        .get(app.authorize_url(&client, &[]))
        .send()
        .await
        .unwrap();
    let login_cookie = sign_in_cookie(&authorize).expect("the sign-in travels in a cookie");
    let callback = app
        .wecom_approves(&location(&authorize), &[("userid", "wangwu")])
        .await;
    let first = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), 302);
    assert!(
        first.headers().get_all("set-cookie").iter().any(|c| c
            .to_str()
            .unwrap()
            .starts_with(&format!("{}=;", login_cookie.0))),
        "the browser is told to forget the finished sign-in"
    );

    let replay = crate::helpers::browser()
        .get(&callback)
        .header("Cookie", format!("{}={}", login_cookie.0, login_cookie.1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        400,
        "a replay, cookie and all, issues nothing"
    );
    let signed_in = app
        .audit()
        .await
        .iter()
        .filter(|e| e.event == "sign_in" && e.outcome == "success")
        .count();
    assert_eq!(signed_in, 1);
}

/// The name and value of the sign-in cookie a response sets.
fn sign_in_cookie(response: &reqwest::Response) -> Option<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|c| {
            let (pair, _) = c.to_str().ok()?.split_once(';')?;
            let (name, value) = pair.split_once('=')?;
            name.starts_with("wecom_oidc_login_")
                .then(|| (name.to_owned(), value.to_owned()))
        })
}

#[tokio::test]
async fn a_wecom_state_opens_one_session_only() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let first = app.sign_in(&client, "wangwu", &[]).await;
    assert!(first.code.is_some());
    let now = app.clock.now();
    let consumed = ConsumedState {
        state_hash: "a-state-hash",
        expires_at: now + 600,
    };
    let attempt = |n: u8| {
        let session = Session {
            id_hash: format!("session-{n}"),
            sub: "wangwu".into(),
            auth_time: now,
            expires_at: now + 3600,
            amr: "qr swk".into(),
        };
        let code = NewCode {
            code_hash: format!("code-{n}"),
            grant_id: format!("grant-{n}"),
            client_id: client.id.clone(),
            session_id: Some(session.id_hash.clone()),
            details: json!({}),
            expires_at: now + 60,
        };
        let audit = wecom_oidc::oidc::audit_event(now, "sign_in", "success", None, None, None);
        (session, code, audit)
    };

    fn sign_in<'a>(
        state: ConsumedState<'a>,
        (session, code, audit): &'a (Session, NewCode<Value>, AuditEvent),
    ) -> SignIn<'a, Value, Value> {
        SignIn {
            state,
            profile_update: None,
            session,
            code: Some(code),
            audit,
        }
    }

    let first = attempt(1);
    app.store
        .start_session(&sign_in(consumed, &first))
        .await
        .unwrap();
    let second = attempt(2);
    let again = app.store.start_session(&sign_in(consumed, &second)).await;

    assert!(matches!(again, Err(StorageError::Conflict)), "{again:?}");
    assert!(
        app.store
            .find_session("session-2", now)
            .await
            .unwrap()
            .is_none(),
        "nothing of the second attempt was written"
    );
    assert!(app
        .store
        .find_session("session-1", now)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn sign_ins_started_in_two_tabs_both_complete() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let first = start_login(&app, &client).await;
    let second = start_login(&app, &client).await;

    for (wecom, member) in [(second, "lisi"), (first, "wangwu")] {
        let callback = app.wecom_approves(&wecom, &[("userid", member)]).await;
        let response = app.browser.get(&callback).send().await.unwrap();
        assert_eq!(response.status(), 302, "{member}'s tab completes");
        assert!(query_param(&location(&response), "code").is_some());
    }
}

#[tokio::test]
async fn a_request_too_large_for_a_cookie_waits_in_the_store_bound_to_its_browser() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let large = too_large_for_a_cookie();
    let large: Vec<(&str, &str)> = large.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let state = large[0].1.to_owned();

    let authorize = app
        .browser
        .get(app.authorize_url(&client, &large))
        .send()
        .await
        .unwrap();
    assert!(
        sign_in_cookie(&authorize).is_none(),
        "too large for a cookie"
    );
    let callback = app
        .wecom_approves(&location(&authorize), &[("userid", "wangwu")])
        .await;
    let response = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        query_param(&location(&response), "state"),
        Some(state.clone())
    );

    let again = [&large[..], &[("prompt", "login")]].concat();
    let wecom = app.follow(&app.authorize_url(&client, &again)).await;
    let callback = app.wecom_approves(&wecom, &[("userid", "wangwu")]).await;
    let victim = crate::helpers::browser();
    assert_eq!(victim.get(&callback).send().await.unwrap().status(), 400);
    assert_eq!(
        app.audit()
            .await
            .iter()
            .filter(|e| e.reason.as_deref() == Some("browser_mismatch"))
            .count(),
        1
    );
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let wecom = start_login(&app, &client).await;
    let callback = app.wecom_approves(&wecom, &[("userid", "wangwu")]).await;

    app.clock.advance(11 * 60);
    let response = app.browser.get(&callback).send().await.unwrap();

    assert_eq!(response.status(), 400);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("已经使用过或已过期"));
    assert!(
        app.audit().await.is_empty(),
        "nothing written for a sign-in that anyone holding it can send again"
    );
}

#[tokio::test]
async fn cancelling_at_wecom_shows_a_page_with_a_way_back() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let wecom = start_login(&app, &client).await;
    let callback = app.wecom_approves(&wecom, &[("deny", "1")]).await;
    assert!(query_param(&callback, "code").is_none());

    let response = app.browser.get(&callback).send().await.unwrap();

    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(page.contains("取消"));
    assert!(page.contains("error=access_denied"));
}

#[tokio::test]
async fn a_wecom_code_used_twice_is_refused_by_wecom_and_issues_nothing() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let first_wecom = start_login(&app, &client).await;
    let first_callback = app
        .wecom_approves(&first_wecom, &[("userid", "wangwu")])
        .await;
    let second_wecom = start_login(&app, &client).await;
    let code = query_param(&first_callback, "code").unwrap();
    let second_state = query_param(&second_wecom, "state").unwrap();
    assert_eq!(
        app.browser
            .get(&first_callback)
            .send()
            .await
            .unwrap()
            .status(),
        302
    );

    let replay = app.url(&format!(
        "/auth/wecom/callback?code={code}&state={second_state}"
    ));
    let response = app.browser.get(&replay).send().await.unwrap();

    assert_eq!(response.status(), 400);
    assert_eq!(
        app.audit().await[0].reason.as_deref(),
        Some("wecom_getuserinfo_errcode_40029")
    );
}

#[tokio::test]
async fn wecom_faults_show_a_page_and_issue_nothing() {
    let faults = [
        (
            FaultKind::HttpStatus(502),
            502,
            "wecom_getuserinfo_unavailable",
        ),
        (FaultKind::NonJson, 502, "wecom_getuserinfo_unavailable"),
        (
            FaultKind::Errcode(60020),
            502,
            "wecom_getuserinfo_errcode_60020",
        ),
        (
            FaultKind::Errcode(45009),
            502,
            "wecom_getuserinfo_errcode_45009",
        ),
        (
            FaultKind::Delay(Duration::from_millis(2500)),
            502,
            "wecom_getuserinfo_unavailable",
        ),
    ];
    for (kind, status, reason) in faults {
        let app = TestApp::spawn_with(&[("WECOM_TIMEOUT_SECS", "1")]).await;
        let client = app.confidential_client().await;
        let wecom = start_login(&app, &client).await;
        let callback = app.wecom_approves(&wecom, &[("userid", "wangwu")]).await;
        app.simulator.control().inject(Fault {
            path: "/cgi-bin/auth/getuserinfo".into(),
            kind,
            times: 10,
        });

        let response = app.browser.get(&callback).send().await.unwrap();

        assert_eq!(response.status(), status, "{reason}");
        assert_eq!(app.audit().await[0].reason.as_deref(), Some(reason));
        assert!(
            !users_count(&app, "wangwu").await,
            "{reason}: nothing stored"
        );
    }
}

#[tokio::test]
async fn wecom_unreachable_shows_a_page() {
    let app = TestApp::spawn_with(&[("WECOM_API_BASE", "http://127.0.0.1:9")]).await;
    let client = app.confidential_client().await;
    let wecom = start_login(&app, &client).await;
    let callback = app.wecom_approves(&wecom, &[("userid", "wangwu")]).await;

    let response = app.browser.get(&callback).send().await.unwrap();

    assert_eq!(response.status(), 502);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("暂时无法连接企业微信"));
}

#[tokio::test]
async fn twenty_concurrent_logins_on_a_cold_cache_make_one_gettoken_call() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let mut callbacks = Vec::new();
    for _ in 0..20 {
        let wecom = start_login(&app, &client).await;
        callbacks.push(app.wecom_approves(&wecom, &[("userid", "wangwu")]).await);
    }

    let responses =
        futures_util::future::join_all(callbacks.iter().map(|c| app.browser.get(c).send())).await;

    for response in responses {
        assert_eq!(response.unwrap().status(), 302);
    }
    assert_eq!(app.simulator.control().calls("/cgi-bin/gettoken"), 1);
}

#[tokio::test]
async fn an_expired_corp_token_is_refetched_once_and_the_call_retried() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    assert!(app.sign_in(&client, "wangwu", &[]).await.code.is_some());
    assert_eq!(app.simulator.control().calls("/cgi-bin/gettoken"), 1);

    // WeCom's clock passes the token's expiry; ours has not, so the cached token is sent: 42001.
    app.simulator
        .control()
        .advance_clock(Duration::from_secs(7300));
    let fresh = app.with_fresh_browser();
    let back = fresh.sign_in(&client, "wangwu", &[]).await;

    assert!(
        back.code.is_some(),
        "the login succeeds after one refresh and retry"
    );
    assert_eq!(fresh.simulator.control().calls("/cgi-bin/gettoken"), 2);
}

#[tokio::test]
async fn unknown_client_or_redirect_uri_shows_a_page_and_never_redirects() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let evil = TestClient {
        redirect_uri: "https://evil.example/cb".into(),
        ..client.clone()
    };
    let unknown = TestClient {
        id: "no-such-client".into(),
        ..client.clone()
    };

    for (case, url) in [
        ("redirect_uri", app.authorize_url(&evil, &[])),
        ("client_id", app.authorize_url(&unknown, &[])),
    ] {
        let response = app.browser.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{case}");
        assert!(
            response.headers().get("location").is_none(),
            "{case}: no redirect"
        );
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    let _ = json!(null);
}
