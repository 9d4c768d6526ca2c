//! The admin console: signed in with WeCom through the provider's own sign-in, for members in
//! ADMIN_GROUPS / ADMIN_USERS only; every POST needs the session's CSRF token and the console's
//! origin; destructive actions need a recent sign-in; every action is audited.

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

use wecom_oidc::clock::Clock;

use crate::helpers::{location, TestApp, ADMIN_TOKEN};

/// ZhangSan holds the tag 管理员; wangwu is named by userid; lisi is neither.
const ADMIN_SETTINGS: &[(&str, &str)] =
    &[("ADMIN_GROUPS", "tag:管理员"), ("ADMIN_USERS", "WangWu")];

async fn spawn_console() -> TestApp {
    TestApp::spawn_with(ADMIN_SETTINGS).await
}

/// An absolute URL for a `Location` that may be a path.
fn absolute(app: &TestApp, url: &str) -> String {
    if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("http://127.0.0.1:{}{url}", app.port)
    }
}

async fn get(app: &TestApp, path_or_url: &str) -> reqwest::Response {
    app.browser
        .get(absolute(app, path_or_url))
        .send()
        .await
        .expect("console answers")
}

/// A same-origin form post, as the console's own pages make it.
async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.browser
        .post(absolute(app, path))
        .header("Origin", format!("http://127.0.0.1:{}", app.port))
        .form(form)
        .send()
        .await
        .expect("console answers")
}

/// Signs `member` in to the console starting at `path`, through `/authorize` and (without a
/// live SSO session young enough) WeCom; returns the callback's answer.
async fn sign_in_at(app: &TestApp, path: &str, member: &str) -> reqwest::Response {
    let first = get(app, path).await;
    assert_eq!(first.status(), StatusCode::FOUND, "{path} asks to sign in");
    sign_in_from(app, &location(&first), member).await
}

/// Follows a `/console/login…` URL to the end of the sign-in.
async fn sign_in_from(app: &TestApp, login: &str, member: &str) -> reqwest::Response {
    assert!(login.contains("/console/login"), "to the sign-in: {login}");
    let authorize = location(&get(app, login).await);
    assert!(
        authorize.contains("client_id=wecom-oidc-console"),
        "{authorize}"
    );
    let mut next = location(&get(app, &authorize).await);
    if !next.contains("/console/callback") {
        let callback = app.wecom_approves(&next, &[("userid", member)]).await;
        next = location(&get(app, &callback).await);
    }
    assert!(
        next.contains("/console/callback"),
        "back to the console: {next}"
    );
    get(app, &next).await
}

/// Signs `member` in and returns the page they land on (`/console/clients`).
async fn signed_in(app: &TestApp, member: &str) -> String {
    let back = sign_in_at(app, "/console/clients", member).await;
    assert_eq!(back.status(), StatusCode::FOUND, "signed in");
    let page = get(app, &location(&back)).await;
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// The secret shown on a result page.
fn secret_of(html: &str) -> Option<String> {
    let at = html.find("id=\"client-secret\">")? + 19;
    Some(html[at..].split('<').next().unwrap().to_owned())
}

fn client_id_of(html: &str) -> String {
    let at = html.find("id=\"client-id\">").expect("a client_id") + 15;
    html[at..].split('<').next().unwrap().to_owned()
}

async fn audit_events(app: &TestApp, event: &str) -> Vec<wecom_oidc::storage::AuditEvent> {
    app.audit()
        .await
        .into_iter()
        .filter(|e| e.event == event)
        .collect()
}

const NEW_CLIENT: &[(&str, &str)] = &[
    ("client_name", "Grafana"),
    (
        "redirect_uris",
        "https://grafana.example.com/login/generic_oauth\r\nhttps://grafana2.example.com/login/generic_oauth",
    ),
    ("token_endpoint_auth_method", "client_secret_basic"),
    ("allowed_groups", "tag:管理员"),
    ("id_token_profile_claims", "true"),
    ("require_pkce", "true"),
    ("grant_authorization_code", "true"),
    ("grant_refresh_token", "true"),
];

/// Registers [`NEW_CLIENT`] in the console and returns (client_id, secret).
async fn register_in_console(app: &TestApp, csrf: &str) -> (String, String) {
    let mut form = NEW_CLIENT.to_vec();
    form.push(("csrf", csrf));
    let created = post(app, "/console/clients/new", &form).await;
    assert_eq!(created.status(), StatusCode::OK);
    let html = created.text().await.unwrap();
    (
        client_id_of(&html),
        secret_of(&html).expect("the secret, once"),
    )
}

#[tokio::test]
async fn without_admin_settings_every_console_path_is_404_and_the_admin_api_still_works() {
    let app = TestApp::spawn().await;

    for path in [
        "/console",
        "/console/login",
        "/console/clients",
        "/console/people/x",
        "/console/callback?code=x&state=y",
    ] {
        assert_eq!(
            get(&app, path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let post = post(&app, "/console/clients/new", &[("client_name", "x")]).await;
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    // The console's built-in client does not exist either.
    let authorize = get(
        &app,
        "/authorize?response_type=code&client_id=wecom-oidc-console&redirect_uri=http%3A%2F%2F127.0.0.1%2Fconsole%2Fcallback&scope=openid",
    )
    .await;
    assert_eq!(authorize.status(), StatusCode::BAD_REQUEST);
    let api = app
        .http
        .get(app.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_a_console_session_every_page_redirects_to_sign_in_and_shows_nothing() {
    let app = spawn_console().await;
    let client = app.confidential_client().await;

    for path in [
        "/console/clients",
        &format!("/console/clients/{}", client.id),
        "/console/people?q=zhang",
        "/console/audit",
        "/console/keys",
        "/console/status",
    ] {
        let response = get(&app, path).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{path}");
        let to = location(&response);
        assert!(
            to.starts_with("/console/login?next=%2Fconsole%2F"),
            "{path} → {to}"
        );
        assert!(
            !response.text().await.unwrap().contains(&client.id),
            "{path} shows nothing"
        );
    }
    // A forged console cookie is no session.
    let forged = app
        .browser
        .get(app.url("/console/clients"))
        .header("Cookie", "wecom_oidc_console=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn an_administrator_signs_in_with_wecom_and_sees_every_application() {
    let app = spawn_console().await;
    let client = app.confidential_client().await;

    let back = sign_in_at(&app, &format!("/console/clients/{}", client.id), "ZhangSan").await;

    assert_eq!(back.status(), StatusCode::FOUND);
    assert_eq!(
        location(&back),
        format!("/console/clients/{}", client.id),
        "back where they started"
    );
    let cookie = back
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("wecom_oidc_console="))
        .expect("a console session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let max_age: i64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|age| age.parse().ok())
        .expect("Max-Age");
    assert!(max_age > 0 && max_age <= 12 * 3600, "{max_age}");

    let list = get(&app, "/console/clients").await;
    assert_eq!(list.status(), StatusCode::OK);
    let csp = list.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "no script may run: {csp}");
    assert_eq!(list.headers()[CACHE_CONTROL], "no-store");
    let html = list.text().await.unwrap();
    assert!(
        html.contains(&client.id) && html.contains("test app"),
        "the application by name and id"
    );
    assert!(html.contains("张三"), "who is signed in");
    assert!(!html.contains("<script"), "no script");

    let signed_in = audit_events(&app, "console_sign_in").await;
    assert_eq!(signed_in[0].outcome, "success");
    assert_eq!(signed_in[0].sub.as_deref(), Some("zhangsan"));
}

#[tokio::test]
async fn signing_out_ends_the_console_session_and_offers_to_end_the_sso_session() {
    let app = spawn_console().await;
    let csrf = csrf_of(&signed_in(&app, "ZhangSan").await);

    let out = post(&app, "/console/logout", &[("csrf", &csrf)]).await;

    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&out),
        "/logout",
        "the provider's own logout page asks about the SSO session"
    );
    assert_eq!(
        get(&app, "/console/clients").await.status(),
        StatusCode::FOUND
    );
    let audited = audit_events(&app, "console_sign_out").await;
    assert_eq!(audited[0].sub.as_deref(), Some("zhangsan"));
}

#[tokio::test]
async fn members_named_in_admin_users_are_admitted_whatever_their_groups() {
    let app = spawn_console().await;

    let html = signed_in(&app, "wangwu").await;

    assert!(html.contains("王五"));
}

#[tokio::test]
async fn a_member_who_is_not_an_administrator_gets_a_403_page_and_no_data() {
    let app = spawn_console().await;
    let client = app.confidential_client().await;

    let back = sign_in_at(&app, "/console/clients", "lisi").await;

    assert_eq!(back.status(), StatusCode::FORBIDDEN);
    let html = back.text().await.unwrap();
    assert!(
        html.contains("没有管理权限") || html.contains("No access"),
        "{html}"
    );
    assert!(!html.contains(&client.id));
    let again = get(&app, "/console/clients").await;
    assert_eq!(
        again.status(),
        StatusCode::FOUND,
        "no console session was opened"
    );
    let refused = audit_events(&app, "console_sign_in").await;
    assert_eq!(refused[0].outcome, "refused");
    assert_eq!(refused[0].sub.as_deref(), Some("lisi"));
}

#[tokio::test]
async fn a_console_callback_without_this_browsers_sign_in_opens_nothing() {
    let app = spawn_console().await;
    // Someone else's sign-in: the code and state of another browser.
    let other = crate::helpers::browser();
    let first = other.get(app.url("/console/clients")).send().await.unwrap();
    let login = other
        .get(absolute(&app, &location(&first)))
        .send()
        .await
        .unwrap();
    let authorize = location(&login);
    let wecom = location(&other.get(&authorize).send().await.unwrap());
    let callback = app.wecom_approves(&wecom, &[("userid", "ZhangSan")]).await;
    let console_callback = location(&other.get(&callback).send().await.unwrap());

    let stolen = get(&app, &console_callback).await;

    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&app, "/console/clients").await.status(),
        StatusCode::FOUND
    );
    // Nor can the code be redeemed at the token endpoint: the console's client is not there.
    let code = crate::helpers::query_param(&absolute(&app, &console_callback), "code").unwrap();
    let token = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "wecom-oidc-console"),
            ("redirect_uri", &app.url("/console/callback")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn registering_an_application_shows_its_secret_once_with_settings_and_audits_the_administrator(
) {
    let app = spawn_console().await;
    let html = signed_in(&app, "ZhangSan").await;
    let csrf = csrf_of(&html);

    let mut form = NEW_CLIENT.to_vec();
    form.push(("csrf", &csrf));
    let created = post(&app, "/console/clients/new", &form).await;

    assert_eq!(created.status(), StatusCode::OK);
    assert_eq!(created.headers()[CACHE_CONTROL], "no-store");
    let html = created.text().await.unwrap();
    let client_id = client_id_of(&html);
    let secret = secret_of(&html).expect("the secret");
    assert!(
        html.contains("[auth.generic_oauth]") && html.contains(&format!("client_id = {client_id}")),
        "Grafana settings"
    );
    assert!(
        html.contains("gitlab_rails[&#x27;omniauth_providers&#x27;]")
            || html.contains("omniauth_providers"),
        "GitLab settings"
    );
    assert!(
        html.contains("oauth2-proxy --provider=oidc"),
        "oauth2-proxy settings"
    );
    let stored = stored(&app, &client_id).await.unwrap();
    assert_eq!(stored.metadata.client_name, "Grafana");
    assert_eq!(stored.metadata.redirect_uris.len(), 2);
    assert_eq!(stored.metadata.allowed_groups, ["tag:管理员"]);
    // The secret works, and is never shown again.
    let client = crate::helpers::TestClient {
        id: client_id.clone(),
        secret: Some(secret.clone()),
        redirect_uri: "https://grafana.example.com/login/generic_oauth".into(),
    };
    let bad_code = app.exchange(&client, "no-such-code", None).await;
    assert_eq!(
        bad_code.status(),
        StatusCode::BAD_REQUEST,
        "authenticated: invalid_grant, not invalid_client"
    );
    let page = get(&app, &format!("/console/clients/{client_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains(&secret));
    let audited = audit_events(&app, "console_client_created").await;
    assert_eq!(audited[0].sub.as_deref(), Some("zhangsan"));
    assert_eq!(audited[0].client_id.as_deref(), Some(client_id.as_str()));
}

#[tokio::test]
async fn forged_and_cross_site_posts_are_refused_and_change_nothing() {
    let app = spawn_console().await;
    let html = signed_in(&app, "ZhangSan").await;
    let csrf = csrf_of(&html);
    let origin = format!("http://127.0.0.1:{}", app.port);
    let mut with_token = NEW_CLIENT.to_vec();
    with_token.push(("csrf", &csrf));
    let mut wrong_token = NEW_CLIENT.to_vec();
    wrong_token.push(("csrf", "guessed"));

    // (case, Origin, Sec-Fetch-Site, form)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a [(&'a str, &'a str)],
    );
    let cases: [Case; 6] = [
        ("no CSRF token", Some(&origin), None, NEW_CLIENT),
        ("a wrong CSRF token", Some(&origin), None, &wrong_token),
        (
            "another origin",
            Some("https://evil.example"),
            None,
            &with_token,
        ),
        ("an opaque origin", Some("null"), None, &with_token),
        (
            "no Origin and cross-site",
            None,
            Some("cross-site"),
            &with_token,
        ),
        ("no Origin at all", None, None, &with_token),
    ];
    for (case, origin, fetch_site, form) in cases {
        let mut request = app.browser.post(app.url("/console/clients/new")).form(form);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("Sec-Fetch-Site", site);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{case}");
    }
    // Same-origin by Sec-Fetch-Site, with the token, goes through.
    let same_site = app
        .browser
        .post(app.url("/console/clients/new"))
        .header("Sec-Fetch-Site", "same-origin")
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(same_site.status(), StatusCode::OK);
    assert_eq!(
        app.store.list_clients().await.unwrap().len(),
        1,
        "only the genuine post registered"
    );
    // Another session's token is not this session's.
    let other = app.with_fresh_browser();
    let other_html = signed_in(&other, "wangwu").await;
    assert_ne!(csrf_of(&other_html), csrf);
}

#[tokio::test]
async fn a_client_is_edited_and_bad_input_is_shown_on_the_form_without_changing_anything() {
    let app = spawn_console().await;
    let csrf = csrf_of(&signed_in(&app, "ZhangSan").await);
    let (client_id, _) = register_in_console(&app, &csrf).await;
    let path = format!("/console/clients/{client_id}");

    let bad = post(
        &app,
        &path,
        &[
            ("csrf", &csrf),
            ("client_name", "Grafana"),
            ("redirect_uris", "http://grafana.example.com/cb#frag"),
            ("token_endpoint_auth_method", "client_secret_basic"),
            ("grant_authorization_code", "true"),
        ],
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("invalid_redirect_uri"));
    assert_eq!(
        stored(&app, &client_id)
            .await
            .unwrap()
            .metadata
            .redirect_uris
            .len(),
        2
    );

    let good = post(
        &app,
        &path,
        &[
            ("csrf", &csrf),
            ("client_name", "Grafana prod"),
            (
                "redirect_uris",
                "https://grafana.example.com/login/generic_oauth",
            ),
            ("token_endpoint_auth_method", "client_secret_post"),
            ("backchannel_logout_uri", "https://grafana.example.com/bcl"),
            ("grant_authorization_code", "true"),
        ],
    )
    .await;
    assert_eq!(good.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&good), format!("{path}?done=saved"));
    let stored = stored(&app, &client_id).await.unwrap().metadata;
    assert_eq!(stored.client_name, "Grafana prod");
    assert_eq!(
        stored.token_endpoint_auth_method.as_str(),
        "client_secret_post"
    );
    assert_eq!(
        stored.backchannel_logout_uri.as_deref(),
        Some("https://grafana.example.com/bcl")
    );
    assert!(stored.allowed_groups.is_empty());
    let audited = audit_events(&app, "console_client_updated").await;
    assert_eq!(audited[0].sub.as_deref(), Some("zhangsan"));
    assert_eq!(
        get(&app, "/console/clients/no-such-client").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_command_line_tool_is_registered_without_redirect_uris_and_keeps_its_grants_when_saved() {
    let app = spawn_console().await;
    let csrf = csrf_of(&signed_in(&app, "ZhangSan").await);
    let cli = [
        ("csrf", csrf.as_str()),
        ("client_name", "kubectl"),
        ("redirect_uris", ""),
        ("token_endpoint_auth_method", "none"),
        ("grant_device_code", "true"),
        ("grant_refresh_token", "true"),
    ];
    let created = post(&app, "/console/clients/new", &cli).await;
    assert_eq!(
        created.status(),
        StatusCode::OK,
        "a device-only CLI needs no redirect URI"
    );
    let client_id = client_id_of(&created.text().await.unwrap());
    let grants = |client: wecom_oidc::domain::RegisteredClient| {
        let mut grants: Vec<&str> = client
            .metadata
            .grant_types
            .iter()
            .map(|g| g.as_str())
            .collect();
        grants.sort_unstable();
        grants.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let expected = vec![
        "refresh_token".to_owned(),
        "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
    ];
    assert_eq!(grants(stored(&app, &client_id).await.unwrap()), expected);

    // The edit form shows the grants checked, so saving it unchanged keeps them.
    let path = format!("/console/clients/{client_id}");
    let form = get(&app, &path).await.text().await.unwrap();
    assert!(form.contains(r#"name="grant_device_code" value="true" checked"#));
    assert!(!form.contains(r#"name="grant_authorization_code" value="true" checked"#));
    let mut renamed = cli.to_vec();
    renamed[1] = ("client_name", "kubectl (prod)");
    let saved = post(&app, &path, &renamed).await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert_eq!(grants(stored(&app, &client_id).await.unwrap()), expected);

    // Unticking every grant is refused on the form, and nothing changes.
    let no_grant = [
        ("csrf", csrf.as_str()),
        ("client_name", "kubectl"),
        ("token_endpoint_auth_method", "none"),
    ];
    let refused = post(&app, &path, &no_grant).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("grant_types"));
    assert_eq!(grants(stored(&app, &client_id).await.unwrap()), expected);
}

#[tokio::test]
async fn rotating_a_secret_needs_a_recent_sign_in_and_shows_the_new_secret_once() {
    let app = spawn_console().await;
    let csrf = csrf_of(&signed_in(&app, "ZhangSan").await);
    let (client_id, old_secret) = register_in_console(&app, &csrf).await;
    let path = format!("/console/clients/{client_id}/secret");
    app.clock.advance(11 * 60);

    let stale = post(&app, &path, &[("csrf", &csrf)]).await;

    assert_eq!(stale.status(), StatusCode::SEE_OTHER);
    let again = location(&stale);
    assert!(
        again.contains("max_age=600"),
        "asks for a fresh sign-in: {again}"
    );
    assert!(
        audit_events(&app, "console_client_secret_rotated")
            .await
            .is_empty(),
        "nothing rotated"
    );
    // The SSO session is older than max_age: WeCom signs them in again.
    let back = sign_in_from(&app, &again, "ZhangSan").await;
    assert_eq!(location(&back), format!("/console/clients/{client_id}"));
    let csrf = csrf_of(&get(&app, &location(&back)).await.text().await.unwrap());

    let rotated = post(&app, &path, &[("csrf", &csrf)]).await;

    assert_eq!(rotated.status(), StatusCode::OK);
    let new_secret = secret_of(&rotated.text().await.unwrap()).expect("the new secret");
    assert_ne!(new_secret, old_secret);
    let audited = audit_events(&app, "console_client_secret_rotated").await;
    assert_eq!(audited[0].sub.as_deref(), Some("zhangsan"));
    assert_eq!(audited[0].client_id.as_deref(), Some(client_id.as_str()));
}

#[tokio::test]
async fn deleting_a_client_asks_for_its_name_first() {
    let app = spawn_console().await;
    let csrf = csrf_of(&signed_in(&app, "ZhangSan").await);
    let (client_id, _) = register_in_console(&app, &csrf).await;
    let path = format!("/console/clients/{client_id}/delete");
    let confirm = get(&app, &path).await;
    assert_eq!(confirm.status(), StatusCode::OK);

    let wrong = post(&app, &path, &[("csrf", &csrf), ("confirm_name", "Grafan")]).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(stored(&app, &client_id).await.is_some(), "not deleted");

    let deleted = post(&app, &path, &[("csrf", &csrf), ("confirm_name", "Grafana")]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&deleted), "/console/clients?done=deleted");
    assert!(stored(&app, &client_id).await.is_none());
    let audited = audit_events(&app, "console_client_deleted").await;
    assert_eq!(audited[0].client_id.as_deref(), Some(client_id.as_str()));
    assert_eq!(audited[0].sub.as_deref(), Some("zhangsan"));
}

#[tokio::test]
async fn an_administrator_whose_access_is_revoked_loses_the_console_at_once() {
    let app = spawn_console().await;
    signed_in(&app, "ZhangSan").await;

    let revoke = app
        .http
        .post(app.url("/admin/users/zhangsan/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::OK);

    let after = get(&app, "/console/clients").await;
    assert_eq!(
        after.status(),
        StatusCode::FOUND,
        "signed out of the console"
    );
    assert!(location(&after).contains("/console/login"));
}

#[tokio::test]
async fn an_administrator_moved_out_of_the_admin_department_gets_403_at_the_next_recheck() {
    let app = TestApp::spawn_with(&[("ADMIN_GROUPS", "总部/研发部/平台组")]).await;
    signed_in(&app, "ZhangSan").await;
    app.simulator
        .control()
        .edit_member("ZhangSan", |member| member.department = vec![4])
        .unwrap();
    app.clock.advance(301);

    let after = get(&app, "/console/clients").await;

    assert_eq!(after.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn people_are_found_by_userid_name_or_sub_and_shown_with_groups_sessions_and_grants() {
    let app = spawn_console().await;
    let grafana = app
        .register(json!({ "client_name": "grafana", "groups_filter": ["tag:"] }))
        .await;
    let callback = app.sign_in(&grafana, "ZhangSan", &[]).await;
    app.exchange(&grafana, &callback.code.unwrap(), None).await;
    let other = app.with_fresh_browser();
    signed_in(&other, "wangwu").await;

    for q in ["zhang", "张三", "ZHANGSAN"] {
        let html = get(&other, &format!("/console/people?q={}", urlencode(q)))
            .await
            .text()
            .await
            .unwrap();
        assert!(html.contains("/console/people/zhangsan"), "{q} finds 张三");
        assert!(
            !html.contains("/console/people/wangwu"),
            "{q} finds only 张三"
        );
    }
    let none = get(&other, "/console/people?q=%25")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !none.contains("/console/people/zhangsan"),
        "% matches itself only"
    );

    let person = get(&other, "/console/people/zhangsan").await;
    assert_eq!(person.status(), StatusCode::OK);
    let html = person.text().await.unwrap();
    assert!(html.contains("tag:管理员"), "groups");
    assert!(html.contains(&grafana.id), "the grant");
    assert!(html.contains("qr swk"), "the session's method");
    assert!(
        html.contains("sso_session") || html.contains("wecom"),
        "recent sign-ins"
    );
    assert_eq!(
        get(&other, "/console/people/nobody").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn revoke_in_the_console_ends_everything_like_the_admin_api_and_is_audited() {
    let app = spawn_console().await;
    let grafana = app.confidential_client().await;
    let callback = app.sign_in(&grafana, "lisi", &[]).await;
    let tokens: serde_json::Value = app
        .exchange(&grafana, &callback.code.unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    let admin = app.with_fresh_browser();
    let csrf = csrf_of(&signed_in(&admin, "ZhangSan").await);

    let revoked = post(&admin, "/console/people/lisi/revoke", &[("csrf", &csrf)]).await;

    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&revoked), "/console/people/lisi?done=revoked");
    let userinfo = admin
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(
        userinfo.status(),
        StatusCode::UNAUTHORIZED,
        "the access token is dead"
    );
    assert!(admin
        .store
        .sessions_of("lisi", admin.clock.now())
        .await
        .unwrap()
        .is_empty());
    let console = audit_events(&admin, "console_member_revoked").await;
    assert_eq!(console[0].sub.as_deref(), Some("zhangsan"), "by whom");
    assert_eq!(console[0].reason.as_deref(), Some("lisi"), "whom");
    let member = audit_events(&admin, "member_revoked").await;
    assert_eq!(
        member[0].reason.as_deref(),
        Some("admin_revoke"),
        "the admin API's own revoke"
    );
    assert_eq!(
        post(&admin, "/console/people/nobody/revoke", &[("csrf", &csrf)])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_audit_log_filters_pages_and_exports_csv() {
    let app = spawn_console().await;
    let grafana = app.confidential_client().await;
    signed_in(&app, "ZhangSan").await;
    // Another member in the same browser, each time at WeCom: the console session stays.
    for _ in 0..3 {
        app.sign_in(&grafana, "lisi", &[("prompt", "login")]).await;
    }

    let filtered = get(
        &app,
        &format!(
            "/console/audit?event=sign_in&client_id={}&sub=lisi",
            grafana.id
        ),
    )
    .await;
    assert_eq!(filtered.status(), StatusCode::OK);
    let html = filtered.text().await.unwrap();
    assert_eq!(
        html.matches("<code>sign_in</code>").count(),
        3,
        "three sign-ins of lisi to grafana"
    );
    assert!(!html.contains("<code>console_sign_in</code>"));

    let future = get(&app, "/console/audit?since=2999-01-01T00:00")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !future.contains("<code>sign_in</code>"),
        "nothing that late"
    );
    let bad = get(&app, "/console/audit?since=yesterday").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let csv = get(
        &app,
        &format!(
            "/console/audit?event=sign_in&client_id={}&format=csv",
            grafana.id
        ),
    )
    .await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = csv.text().await.unwrap();
    assert!(body.starts_with("at,time_utc,event,outcome,sub,client_id,reason\r\n"));
    assert_eq!(body.lines().count(), 1 + 3);
}

#[tokio::test]
async fn the_audit_log_pages_by_cursor() {
    let app = spawn_console().await;
    let now = app.clock.now();
    for i in 0..60 {
        app.store
            .record_audit(&wecom_oidc::storage::AuditEvent {
                at: now,
                event: "sign_in".into(),
                outcome: "success".into(),
                sub: Some(format!("member{i:02}")),
                client_id: None,
                reason: None,
            })
            .await
            .unwrap();
    }
    signed_in(&app, "ZhangSan").await;

    let first = get(&app, "/console/audit?event=sign_in")
        .await
        .text()
        .await
        .unwrap();
    assert!(first.contains("member59") && !first.contains("member09"));
    let at = first.find("cursor=").expect("an older page") + 7;
    let cursor: String = first[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let second = get(
        &app,
        &format!("/console/audit?event=sign_in&cursor={cursor}"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(second.contains("member09") && !second.contains("member59"));
}

#[tokio::test]
async fn the_keys_page_shows_the_signing_key_and_rotate_publishes_a_new_one() {
    let app = spawn_console().await;
    let csrf = csrf_of(&signed_in(&app, "ZhangSan").await);
    let before = app.store.signing_keys().await.unwrap();

    let page = get(&app, "/console/keys").await.text().await.unwrap();
    assert!(page.contains(&before[0].kid));

    let rotated = post(&app, "/console/keys/rotate", &[("csrf", &csrf)]).await;
    assert_eq!(rotated.status(), StatusCode::SEE_OTHER);
    let keys = app.store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let jwks: serde_json::Value = app
        .http
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "the new key is published at once"
    );
    let page = get(&app, &location(&rotated)).await.text().await.unwrap();
    assert!(page.contains(&keys[0].kid) && page.contains(&keys[1].kid));
    let audited = audit_events(&app, "console_keys_rotated").await;
    assert_eq!(audited[0].reason.as_deref(), Some(keys[0].kid.as_str()));
    assert_eq!(audited[0].sub.as_deref(), Some("zhangsan"));
}

#[tokio::test]
async fn the_status_page_shows_readiness_figures_and_the_wecom_checks() {
    let app = spawn_console().await;
    signed_in(&app, "ZhangSan").await;

    let page = get(&app, "/console/status").await.text().await.unwrap();
    assert!(page.contains("pill ok"), "ready");
    assert!(!page.contains("gettoken"), "checks run on demand only");

    let checked = get(&app, "/console/status?check=1&userid=ZhangSan")
        .await
        .text()
        .await
        .unwrap();
    assert!(checked.contains("gettoken: corp id and secret are accepted"));
    assert!(checked.contains("groups of ZhangSan"));
    assert!(!checked.contains("FAIL"));
}

#[tokio::test]
async fn pages_come_in_chinese_or_english() {
    let app = spawn_console().await;
    signed_in(&app, "ZhangSan").await;

    let zh = get(&app, "/console/clients").await.text().await.unwrap();
    assert!(zh.contains("注册应用") && zh.contains("lang=\"zh-CN\""));
    let en = get(&app, "/console/clients?lang=en")
        .await
        .text()
        .await
        .unwrap();
    assert!(en.contains("Register an application") && en.contains("lang=\"en\""));
    let remembered = get(&app, "/console/people").await.text().await.unwrap();
    assert!(
        remembered.contains("Search by userid, name or sub"),
        "the choice is remembered"
    );
}

/// The client as stored now (the test's store caches `get_client`; the list is read afresh).
async fn stored(app: &TestApp, client_id: &str) -> Option<wecom_oidc::domain::RegisteredClient> {
    app.store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.client_id == client_id)
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
