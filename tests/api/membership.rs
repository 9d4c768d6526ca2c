//! Access follows WeCom membership: rechecks at refresh and SSO reuse, the background sweep, the
//! absolute grant lifetime, revoking one member, and how the member authenticated (`amr`).

use serde_json::Value;

use crate::helpers::{
    location, parse_callback, TestApp, TestClient, ADMIN_TOKEN, AGENT_ID, WECOM_UA,
};
use wecom_oidc::simulator::{Fault, FaultKind};

/// What a relying party holds after one sign-in with `offline_access`.
pub(crate) struct Tokens {
    pub access: String,
    pub refresh: String,
    pub id_token: String,
}

async fn sign_in_with_refresh(app: &TestApp, client: &TestClient, member: &str) -> Tokens {
    sign_in_with_refresh_as(app, client, member, &[]).await
}

pub(crate) async fn sign_in_with_refresh_as(
    app: &TestApp,
    client: &TestClient,
    member: &str,
    extra: &[(&str, &str)],
) -> Tokens {
    let mut params = vec![("scope", "openid profile groups offline_access")];
    params.extend_from_slice(extra);
    let code = app
        .sign_in(client, member, &params)
        .await
        .code
        .expect("a code");
    let body: Value = app
        .exchange(client, &code, None)
        .await
        .json()
        .await
        .unwrap();
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        id_token: body["id_token"].as_str().unwrap().to_owned(),
    }
}

pub(crate) async fn refresh(app: &TestApp, client: &TestClient, token: &str) -> (u16, Value) {
    let response = app
        .token_request(
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

pub(crate) async fn active(app: &TestApp, client: &TestClient, token: &str) -> bool {
    let body: Value = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["active"].as_bool().unwrap()
}

/// The claims of a JWT, unverified (the relying-party tests verify signatures).
pub(crate) fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Takes 王五 (研发部, department 2) out of the app's visible range; 张三 (平台组) stays in.
fn remove_wangwu_from_range(app: &TestApp) {
    app.simulator
        .control()
        .set_visible_range(AGENT_ID, vec![3, 4], vec![], vec![]);
}

/// Every kind of access the member had is dead: the access token at userinfo and introspection,
/// the refresh token at the token endpoint.
async fn assert_access_ended(app: &TestApp, client: &TestClient, tokens: &Tokens) {
    assert_eq!(app.userinfo(&tokens.access).await.status(), 401);
    assert!(!active(app, client, &tokens.access).await);
    assert!(!active(app, client, &tokens.refresh).await);
    let (status, body) = refresh(app, client, &tokens.refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_refresh_after_the_recheck_interval_asks_wecom_and_a_member_gone_loses_everything() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let tokens = sign_in_with_refresh(&app, &client, "wangwu").await;

    remove_wangwu_from_range(&app);
    // Within MEMBER_RECHECK_SECS the stored confirmation stands: no WeCom call.
    let calls_before = app.simulator.control().calls("/cgi-bin/user/get");
    let (status, fresh) = refresh(&app, &client, &tokens.refresh).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.simulator.control().calls("/cgi-bin/user/get"),
        calls_before
    );

    app.clock.advance(301);
    let (status, body) = refresh(&app, &client, fresh["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let fresh = Tokens {
        access: fresh["access_token"].as_str().unwrap().to_owned(),
        refresh: fresh["refresh_token"].as_str().unwrap().to_owned(),
        id_token: String::new(),
    };
    assert_access_ended(&app, &client, &fresh).await;
    let audit = app.audit().await;
    assert!(audit.iter().any(|row| row.event == "member_revoked"
        && row.sub.as_deref() == Some("wangwu")
        && row.reason.as_deref() == Some("outside_visible_range")));

    // The SSO session ended too: the next sign-in goes to WeCom, which refuses the member.
    let next = app.follow(&app.authorize_url(&client, &[])).await;
    assert!(
        !next.starts_with(&client.redirect_uri),
        "no code from the ended session: {next}"
    );
}

#[tokio::test]
async fn when_wecom_cannot_be_reached_a_refresh_is_retryable_and_nothing_is_revoked() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let tokens = sign_in_with_refresh(&app, &client, "wangwu").await;
    app.clock.advance(301);
    app.simulator.control().inject(Fault::new(
        "/cgi-bin/user/get",
        FaultKind::HttpStatus(502),
        1,
    ));

    let (status, body) = refresh(&app, &client, &tokens.refresh).await;

    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    assert_eq!(app.userinfo(&tokens.access).await.status(), 200);
    let (status, _) = refresh(&app, &client, &tokens.refresh).await;
    assert_eq!(
        status, 200,
        "the same refresh token works once WeCom answers"
    );
}

#[tokio::test]
async fn refreshed_tokens_carry_the_groups_as_of_the_recheck_and_keep_auth_time_and_amr() {
    // No directory cache, so the recheck reads the departments as they are now.
    let app = TestApp::spawn_with(&[("GROUPS_CACHE_SECS", "0")]).await;
    let client = app
        .register(serde_json::json!({ "client_name": "grafana", "id_token_profile_claims": true }))
        .await;
    let tokens = sign_in_with_refresh(&app, &client, "zhangsan").await;
    let first = claims(&tokens.id_token);
    assert_eq!(first["amr"], serde_json::json!(["qr", "swk"]));

    // The app's visible range shrinks to 平台组 and 销售部: 张三's department path now starts at
    // 平台组, the top-most department the app can see.
    remove_wangwu_from_range(&app);
    app.clock.advance(301);

    let (status, body) = refresh(&app, &client, &tokens.refresh).await;

    assert_eq!(status, 200);
    let refreshed = claims(body["id_token"].as_str().unwrap());
    assert_eq!(refreshed["auth_time"], first["auth_time"]);
    assert_eq!(refreshed["amr"], first["amr"]);
    let groups = refreshed["groups"].to_string();
    assert!(!groups.contains("总部"), "{groups}");
    assert!(groups.contains("平台组"), "{groups}");
    let info: Value = app
        .userinfo(body["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["groups"], refreshed["groups"]);
}

#[tokio::test]
async fn an_sso_reuse_after_the_recheck_interval_asks_wecom_first() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let other = app.confidential_client().await;
    app.sign_in(&client, "wangwu", &[])
        .await
        .code
        .expect("a code");

    app.clock.advance(301);
    remove_wangwu_from_range(&app);
    let next = app.follow(&app.authorize_url(&other, &[])).await;

    assert!(
        !next.starts_with(&other.redirect_uri),
        "the session must not issue a code for a member WeCom no longer admits: {next}"
    );
    let page = app
        .browser
        .get(app.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", other.id.as_str()),
            ("redirect_uri", other.redirect_uri.as_str()),
            ("scope", "openid"),
            ("prompt", "none"),
        ])
        .send()
        .await
        .unwrap();
    let location = crate::helpers::location(&page);
    assert_eq!(
        crate::helpers::query_param(&location, "error").as_deref(),
        Some("login_required")
    );
}

#[tokio::test]
async fn the_background_sweep_ends_access_without_a_refresh_or_an_event() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let zhangsan = sign_in_with_refresh(&app, &client, "zhangsan").await;
    let wangwu = sign_in_with_refresh_as(&app, &client, "wangwu", &[("prompt", "login")]).await;
    remove_wangwu_from_range(&app);

    assert_eq!(app.sweep.run_once().await.unwrap(), 0, "nobody is due yet");
    app.clock.advance(301);
    assert_eq!(app.sweep.run_once().await.unwrap(), 2);

    assert_eq!(app.userinfo(&wangwu.access).await.status(), 401);
    assert!(!active(&app, &client, &wangwu.refresh).await);
    assert_eq!(app.userinfo(&zhangsan.access).await.status(), 200);
    assert_eq!(
        app.sweep.run_once().await.unwrap(),
        0,
        "a member just confirmed is not checked again"
    );
}

#[tokio::test]
async fn a_grant_ends_at_grant_max_ttl_whatever_the_rotations() {
    let app = TestApp::spawn_with(&[
        ("GRANT_MAX_TTL_SECS", "1000"),
        ("MEMBER_RECHECK_SECS", "100000"),
    ])
    .await;
    let client = app.confidential_client().await;
    let mut token = sign_in_with_refresh(&app, &client, "wangwu").await.refresh;
    for _ in 0..3 {
        app.clock.advance(300);
        let (status, body) = refresh(&app, &client, &token).await;
        assert_eq!(status, 200);
        token = body["refresh_token"].as_str().unwrap().to_owned();
    }
    app.clock.advance(101);

    let (status, body) = refresh(&app, &client, &token).await;

    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn an_administrator_revokes_one_member_and_everything_they_hold_ends() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let tokens = sign_in_with_refresh(&app, &client, "wangwu").await;
    // A code issued from the session but not yet redeemed must die with it.
    let pending_code = app
        .sign_in(&client, "wangwu", &[])
        .await
        .code
        .expect("an SSO code");

    let shown: Value = app
        .http
        .get(app.url("/admin/users/wangwu"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["userid"], "wangwu");
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(shown["grants"][0]["client_id"], client.id.as_str());
    assert!(shown["checked_at"].is_i64());

    let revoked = app
        .http
        .post(app.url("/admin/users/wangwu/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let after: Value = revoked.json().await.unwrap();
    assert_eq!(after["sessions"], serde_json::json!([]));
    assert_eq!(after["grants"], serde_json::json!([]));

    assert_access_ended(&app, &client, &tokens).await;
    let exchanged = app.exchange(&client, &pending_code, None).await;
    assert_eq!(
        exchanged.status(),
        400,
        "a code of an ended session is dead"
    );
    assert!(app
        .audit()
        .await
        .iter()
        .any(|row| row.event == "member_revoked" && row.reason.as_deref() == Some("admin_revoke")));

    for path in ["/admin/users/nobody", "/admin/users/nobody/revoke"] {
        let request = if path.ends_with("revoke") {
            app.http.post(app.url(path))
        } else {
            app.http.get(app.url(path))
        };
        let response = request.bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let unauthorized = app
        .http
        .post(app.url("/admin/users/wangwu/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
}

#[tokio::test]
async fn in_client_sign_in_is_told_apart_in_amr() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
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
            &[("userid", "wangwu"), ("consent", "1")],
        )
        .await;
    let code = parse_callback(&app.follow(&callback).await)
        .code
        .expect("a code");
    let body: Value = app
        .exchange(&client, &code, None)
        .await
        .json()
        .await
        .unwrap();
    let id_token = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id_token["amr"], serde_json::json!(["wecom_client", "swk"]));
}

/// Signs `member` in by QR while WeCom's tag API fails, and returns the callback's answer.
async fn sign_in_while_tags_fail(
    app: &TestApp,
    client: &TestClient,
    member: &str,
) -> reqwest::Response {
    let wecom = app
        .follow(&app.authorize_url(client, &[("prompt", "login")]))
        .await;
    let callback = app.wecom_approves(&wecom, &[("userid", member)]).await;
    app.simulator.control().inject(Fault::new(
        "/cgi-bin/tag/list",
        FaultKind::HttpStatus(502),
        10,
    ));
    let response = app.browser.get(&callback).send().await.unwrap();
    app.simulator.control().clear_faults();
    response
}

#[tokio::test]
async fn groups_that_cannot_be_read_are_never_asserted_from_an_old_sign_in() {
    let app = TestApp::spawn_with(&[("GROUPS_CACHE_SECS", "0")]).await;
    let client = app.confidential_client().await;
    app.sign_in(&client, "wangwu", &[])
        .await
        .code
        .expect("a code");
    app.clock.advance(301);

    let refused = sign_in_while_tags_fail(&app, &client, "wangwu").await;

    assert_eq!(refused.status(), 502, "the WeCom-unavailable page");
    assert_eq!(
        app.audit().await[0].reason.as_deref(),
        Some("wecom_groups_unavailable")
    );
}

#[tokio::test]
async fn with_groups_on_failure_omit_the_sign_in_goes_on_without_a_groups_claim() {
    let app =
        TestApp::spawn_with(&[("GROUPS_CACHE_SECS", "0"), ("GROUPS_ON_FAILURE", "omit")]).await;
    let client = app.confidential_client().await;

    let response = sign_in_while_tags_fail(&app, &client, "wangwu").await;

    assert!(response.status().is_redirection());
    let code = parse_callback(&location(&response)).code.expect("a code");
    let body: Value = app
        .exchange(&client, &code, None)
        .await
        .json()
        .await
        .unwrap();
    let info: Value = app
        .userinfo(body["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["preferred_username"], "wangwu");
    assert!(info.get("groups").is_none(), "{info}");
}

#[tokio::test]
async fn two_replicas_sweeping_at_once_never_check_the_same_member_twice() {
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_full(
        &[],
        "",
        crate::helpers::TestDatabase::borrowed(&first.database_url()),
    )
    .await;
    let client = first.confidential_client().await;
    for (n, member) in ["wangwu", "zhangsan", "lisi"].into_iter().enumerate() {
        let extra: &[(&str, &str)] = if n == 0 { &[] } else { &[("prompt", "login")] };
        sign_in_with_refresh_as(&first, &client, member, extra).await;
    }
    first.clock.advance(301);
    second.clock.advance(301);
    let calls = |app: &TestApp| app.simulator.control().calls("/cgi-bin/user/get");
    let before = calls(&first) + calls(&second);

    let (a, b) = tokio::join!(first.sweep.run_once(), second.sweep.run_once());

    assert_eq!(a.unwrap() + b.unwrap(), 3);
    assert_eq!(calls(&first) + calls(&second) - before, 3);
}

/// Signs `member` in inside the WeCom client with consent (a fresh `user_ticket`): the ID token's
/// claims.
async fn in_client_sign_in(app: &TestApp, client: &TestClient, member: &str) -> Value {
    let response = app
        .browser
        .get(app.authorize_url(client, &[("prompt", "login")]))
        .header("User-Agent", WECOM_UA)
        .send()
        .await
        .unwrap();
    let callback = app
        .wecom_approves(
            &location(&response),
            &[("userid", member), ("consent", "1")],
        )
        .await;
    let code = parse_callback(&app.follow(&callback).await)
        .code
        .expect("a code");
    let body: Value = app
        .exchange(client, &code, None)
        .await
        .json()
        .await
        .unwrap();
    claims(body["id_token"].as_str().unwrap())
}

#[tokio::test]
async fn a_field_getuserdetail_returns_empty_is_cleared_not_kept_from_before() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let first = in_client_sign_in(&app, &client, "zhangsan").await;
    assert_eq!(first["email_verified"], true, "{first}");
    let mailbox = first["email"].as_str().unwrap().to_owned();

    app.simulator
        .control()
        .edit_member("ZhangSan", |member| member.biz_mail.clear())
        .unwrap();
    let second = in_client_sign_in(&app, &client, "zhangsan").await;

    assert_ne!(second["email"].as_str().unwrap(), mailbox, "{second}");
    assert_eq!(second["email_verified"], false);
}

#[tokio::test]
async fn relying_parties_hear_of_an_admin_revoke_and_of_a_failed_recheck() {
    use crate::backchannel::{client_with_backchannel, verify_with_jwks, Answer, RelyingParty};
    let app = TestApp::spawn().await;
    let mut rp = RelyingParty::start(Answer::Ok).await;
    let client = client_with_backchannel(&app, &rp).await;
    let zhangsan = sign_in_with_refresh(&app, &client, "zhangsan").await;
    let wangwu = sign_in_with_refresh_as(&app, &client, "wangwu", &[("prompt", "login")]).await;

    let revoked = app
        .http
        .post(app.url("/admin/users/zhangsan/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (_, logout) = verify_with_jwks(&app, &rp.next().await.logout_token).await;
    assert_eq!(logout["sub"], "zhangsan");
    assert_eq!(logout["sid"], claims(&zhangsan.id_token)["sid"]);

    remove_wangwu_from_range(&app);
    app.clock.advance(301);
    let (status, _) = refresh(&app, &client, &wangwu.refresh).await;
    assert_eq!(status, 400);
    let (_, logout) = verify_with_jwks(&app, &rp.next().await.logout_token).await;
    assert_eq!(logout["sub"], "wangwu");
    assert_eq!(logout["aud"], client.id.as_str());
    assert!(logout.get("nonce").is_none());
}

#[tokio::test]
async fn the_cli_shows_and_revokes_a_member() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let tokens = sign_in_with_refresh(&app, &client, "wangwu").await;
    let run = |args: &[&str]| {
        crate::operations::binary()
            .args(args)
            .env("DATABASE_URL", app.database_url())
            .env("OIDC_ISSUER", &app.issuer)
            .output()
            .unwrap()
    };

    let shown = run(&["user", "show", "wangwu"]);
    assert!(shown.status.success());
    let document: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(document["grants"][0]["client_id"], client.id.as_str());

    let unknown = run(&["user", "revoke", "nobody"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));

    let revoked = run(&["user", "revoke", "wangwu"]);
    assert!(revoked.status.success());
    let document: Value = serde_json::from_slice(&revoked.stdout).unwrap();
    assert_eq!(document["grants"], serde_json::json!([]));
    assert_eq!(app.userinfo(&tokens.access).await.status(), 401);
    let (status, _) = refresh(&app, &client, &tokens.refresh).await;
    assert_eq!(status, 400);
}

/// What the admin API tells of `sub`.
async fn member_document(app: &TestApp, sub: &str) -> Value {
    let response = app
        .http
        .get(app.url(&format!("/admin/users/{sub}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET /admin/users/{sub}");
    response.json().await.unwrap()
}

/// An administrator deletes `userid` in the console (no event reaches this provider: none is
/// configured) and returns the deleted member, to hand the userid to someone new later.
async fn delete_without_event(app: &TestApp, userid: &str) -> wecom_oidc::simulator::Member {
    let control = app.simulator.control();
    let member = control.directory().member(userid).unwrap().clone();
    assert!(control.delete_member(userid).await.unwrap().is_empty());
    member
}

/// WeCom gives the userid of `deleted` to someone new.
fn give_userid_to_a_newcomer(app: &TestApp, deleted: wecom_oidc::simulator::Member) {
    let newcomer = wecom_oidc::simulator::Member {
        name: "新来的同事".to_owned(),
        ..deleted
    };
    app.simulator.control().add_member(newcomer).unwrap();
}

#[tokio::test]
async fn a_userid_the_sweep_found_deleted_and_given_to_someone_new_gets_a_new_sub() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let leaver = sign_in_with_refresh(&app, &client, "wangwu").await;
    assert_eq!(claims(&leaver.id_token)["sub"], "wangwu");

    let deleted = delete_without_event(&app, "wangwu").await;
    app.clock.advance(301);
    assert_eq!(
        app.sweep.run_once().await.unwrap(),
        1,
        "user/get answers 60111"
    );
    give_userid_to_a_newcomer(&app, deleted);
    let newcomer = sign_in_with_refresh_as(&app, &client, "wangwu", &[("prompt", "login")]).await;

    let newcomer_claims = claims(&newcomer.id_token);
    assert_eq!(
        newcomer_claims["sub"], "wangwu~2",
        "a new sub for the new holder"
    );
    assert_eq!(newcomer_claims["preferred_username"], "wangwu");
    assert_eq!(newcomer_claims["name"], "新来的同事");
    assert_access_ended(&app, &client, &leaver).await;
    let info: Value = app.userinfo(&newcomer.access).await.json().await.unwrap();
    assert_eq!(info["sub"], "wangwu~2");
    // The story, as an administrator reads it.
    let old = member_document(&app, "wangwu").await;
    assert_eq!(old["binding"]["state"], "ended");
    assert_eq!(old["binding"]["reason"], "member_not_found");
    assert_eq!(
        old["binding"]["ended_at"],
        wecom_oidc::clock::Clock::now(&app.clock)
    );
    assert_eq!(old["sessions"].as_array().unwrap().len(), 0);
    assert_eq!(
        member_document(&app, "wangwu~2").await["binding"]["state"],
        "active"
    );
    // The old sub never comes back: not at a refresh, not at the next sign-in.
    app.clock.advance(301);
    let (status, _) = refresh(&app, &client, &leaver.refresh).await;
    assert_eq!(status, 400);
    let again = sign_in_with_refresh_as(&app, &client, "wangwu", &[("prompt", "login")]).await;
    assert_eq!(claims(&again.id_token)["sub"], "wangwu~2");
}

#[tokio::test]
async fn sixty_one_eleven_at_sign_in_ends_the_binding_and_the_next_holder_gets_a_new_sub() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let first = sign_in_with_refresh(&app, &client, "lisi").await;
    assert_eq!(claims(&first.id_token)["sub"], "lisi");
    // WeCom says the userid does not exist while someone signs in with it (deleted between
    // auth/getuserinfo and user/get); a moment later the userid is someone else's.
    app.simulator.control().inject(Fault::new(
        "/cgi-bin/user/get",
        FaultKind::Errcode(60111),
        1,
    ));
    let wecom = app
        .follow(&app.authorize_url(&client, &[("prompt", "login")]))
        .await;
    let callback = app.wecom_approves(&wecom, &[("userid", "lisi")]).await;
    let refused = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(
        refused.status(),
        403,
        "no code for a userid WeCom says does not exist"
    );
    assert_access_ended(&app, &client, &first).await;

    let next = sign_in_with_refresh_as(&app, &client, "lisi", &[("prompt", "login")]).await;

    assert_eq!(claims(&next.id_token)["sub"], "lisi~2");
    assert_eq!(claims(&next.id_token)["preferred_username"], "lisi");
    let old = member_document(&app, "lisi").await;
    assert_eq!(
        (&old["binding"]["state"], &old["binding"]["reason"]),
        (&Value::from("ended"), &Value::from("member_not_found"))
    );
}

/// A code redeemed just before the member's access is revoked (or the session logged out), whose
/// tokens are stored just after: the interleaving a busy server can produce, forced here by
/// driving the store directly between the two steps of the token endpoint.
#[tokio::test]
async fn tokens_stored_after_a_revocation_by_a_redemption_that_raced_it_are_dead() {
    use wecom_oidc::clock::Clock;
    use wecom_oidc::crypto::{new_secret_token, sha256_hex};
    use wecom_oidc::storage::{AccessTokenRecord, CodeRedemption, RefreshTokenRecord};

    for ending in ["admin_revoke", "logout"] {
        let app = TestApp::spawn().await;
        let client = app.confidential_client().await;
        let code = app
            .sign_in(&client, "wangwu", &[("scope", "openid offline_access")])
            .await
            .code
            .expect("a code");
        let now = app.clock.now();
        // The token endpoint redeems the code…
        let CodeRedemption::Redeemed(grant) = app
            .store
            .redeem_code::<Value>(&sha256_hex(&code), &client.id, now)
            .await
            .unwrap()
        else {
            panic!("{ending}: the code is redeemed");
        };
        let session_id = grant.details["session_id"].as_str().map(str::to_owned);
        // …the member's access ends meanwhile…
        match ending {
            "admin_revoke" => {
                let response = app
                    .http
                    .post(app.url("/admin/users/wangwu/revoke"))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{ending}");
            }
            _ => app
                .store
                .end_session(session_id.as_deref().unwrap(), now + 86_400)
                .await
                .unwrap(),
        }
        // …and only then does the redemption store its tokens.
        let access = new_secret_token();
        let refresh_token = new_secret_token();
        app.store
            .insert_access_token(&AccessTokenRecord {
                token_hash: sha256_hex(&access),
                grant_id: grant.grant_id.clone(),
                client_id: client.id.clone(),
                sub: "wangwu".to_owned(),
                scope: "openid offline_access".to_owned(),
                session_id: session_id.clone(),
                issued_at: now,
                expires_at: now + 3600,
            })
            .await
            .unwrap();
        app.store
            .insert_refresh_token(&RefreshTokenRecord {
                token_hash: sha256_hex(&refresh_token),
                grant_id: grant.grant_id.clone(),
                client_id: client.id.clone(),
                sub: "wangwu".to_owned(),
                scope: "openid offline_access".to_owned(),
                session_id,
                auth_time: now,
                amr: String::new(),
                issued_at: now,
                expires_at: now + 86_400,
            })
            .await
            .unwrap();

        assert_eq!(app.userinfo(&access).await.status(), 401, "{ending}");
        assert!(!active(&app, &client, &access).await, "{ending}");
        assert!(!active(&app, &client, &refresh_token).await, "{ending}");
        let (status, body) = refresh(&app, &client, &refresh_token).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{ending}"
        );
    }
}

#[tokio::test]
async fn the_sweep_also_finds_a_deleted_userid_whose_holder_is_signed_in_nowhere() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let code = app.sign_in(&client, "zhangsan", &[]).await.code.unwrap();
    assert_eq!(app.exchange(&client, &code, None).await.status(), 200);
    // Long gone from every application: the session (8 h) and the access token have expired.
    app.clock.advance(9 * 3600);
    let deleted = delete_without_event(&app, "zhangsan").await;

    assert_eq!(app.sweep.run_once().await.unwrap(), 1);
    give_userid_to_a_newcomer(&app, deleted);
    let newcomer = sign_in_with_refresh(&app, &client, "zhangsan").await;

    assert_eq!(claims(&newcomer.id_token)["sub"], "zhangsan~2");
    assert_eq!(
        member_document(&app, "zhangsan").await["binding"]["reason"],
        "member_not_found"
    );
    assert_eq!(
        app.sweep.run_once().await.unwrap(),
        0,
        "a retired sub is never asked about again, and the newcomer was just confirmed"
    );
}
