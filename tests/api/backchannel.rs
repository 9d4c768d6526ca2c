//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0) and the logout confirmation that
//! keeps a third-party site from signing the person out (RP-Initiated Logout 1.0 §4). The relying
//! parties here are small HTTP servers that hand every logout token they receive to the test.

use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use wecom_oidc::clock::Clock;
use wecom_oidc::oidc::backchannel::{sid_of, LogoutNotice};

use crate::helpers::{location, query_param, TestApp, TestClient, ADMIN_TOKEN, RP_LOGOUT_REDIRECT};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A bound on waiting for something that should happen at once, so a broken build fails instead
/// of hanging. Never reached when things work.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
pub(crate) enum Answer {
    Ok,
    ServerError,
    /// Takes the request and never answers.
    Hang,
}

/// What a relying party received.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub content_type: String,
    pub logout_token: String,
}

pub(crate) struct RelyingParty {
    pub url: String,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl RelyingParty {
    pub(crate) async fn start(answer: Answer) -> RelyingParty {
        let (tx, deliveries) = mpsc::unbounded_channel();
        let server = HttpServer::new(move || {
            let tx = tx.clone();
            App::new().route(
                "/backchannel-logout",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let tx = tx.clone();
                    async move {
                        let content_type = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let logout_token = url::form_urlencoded::parse(&body)
                            .find(|(k, _)| k == "logout_token")
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default();
                        let _ = tx.send(Delivery {
                            content_type,
                            logout_token,
                        });
                        match answer {
                            Answer::Ok => HttpResponse::Ok().finish(),
                            Answer::ServerError => HttpResponse::InternalServerError().finish(),
                            Answer::Hang => std::future::pending::<HttpResponse>().await,
                        }
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        tokio::spawn(server.run());
        RelyingParty {
            url: format!("http://{addr}/backchannel-logout"),
            deliveries,
        }
    }

    pub(crate) async fn next(&mut self) -> Delivery {
        tokio::time::timeout(PATIENCE, self.deliveries.recv())
            .await
            .expect("a logout token arrives")
            .expect("the relying party is running")
    }

    fn nothing_more(&mut self) -> bool {
        self.deliveries.try_recv().is_err()
    }
}

pub(crate) async fn client_with_backchannel(app: &TestApp, rp: &RelyingParty) -> TestClient {
    app.register(json!({ "client_name": "bcl app", "backchannel_logout_uri": rp.url }))
        .await
}

/// Signs in (or reuses the session) and redeems the code: the token response.
async fn tokens(app: &TestApp, client: &TestClient, extra: &[(&str, &str)]) -> Value {
    let code = app.sign_in(client, "wangwu", extra).await.code.unwrap();
    app.exchange(client, &code, None)
        .await
        .json()
        .await
        .unwrap()
}

fn unverified_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Verifies `jwt` with the provider's published JWKS; its header and claims.
pub(crate) async fn verify_with_jwks(
    app: &TestApp,
    jwt: &str,
) -> (Map<String, Value>, Map<String, Value>) {
    let jwks = app
        .http
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let set = josekit::jwk::JwkSet::from_bytes(jwks.as_bytes()).unwrap();
    let header = josekit::jwt::decode_header(jwt).unwrap();
    let kid = header.claim("kid").and_then(Value::as_str).unwrap();
    let jwk = set.get(kid).first().copied().expect("kid is in the JWKS");
    let verifier = josekit::jws::RS256.verifier_from_jwk(jwk).unwrap();
    let (payload, header) = josekit::jwt::decode_with_verifier(jwt, &verifier).expect("signature");
    (header.claims_set().clone(), payload.claims_set().clone())
}

fn logout_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

/// The hidden fields of the confirmation page's form.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let unescape = |v: &str| {
        v.replace("&#x2f;", "/")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once('"').unwrap();
            let value = rest
                .split_once("value=\"")
                .unwrap()
                .1
                .split_once('"')
                .unwrap()
                .0;
            (unescape(name), unescape(value))
        })
        .collect()
}

async fn sso_still_works(app: &TestApp, client: &TestClient) -> bool {
    let next = app
        .follow(&app.authorize_url(client, &[("prompt", "none")]))
        .await;
    query_param(&next, "code").is_some()
}

#[tokio::test]
async fn clients_register_a_backchannel_logout_uri_and_discovery_says_it_is_supported() {
    let app = TestApp::spawn().await;
    let created: Value = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "client_name": "bcl app",
            "redirect_uris": ["https://app.example.com/cb"],
            "backchannel_logout_uri": "https://app.example.com/bcl?tenant=1",
            "backchannel_logout_session_required": true,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        created["backchannel_logout_uri"],
        "https://app.example.com/bcl?tenant=1"
    );
    assert_eq!(created["backchannel_logout_session_required"], true);

    for bad in [
        "http://app.example.com/bcl",
        "https://app.example.com/bcl#x",
        "/bcl",
    ] {
        let response = app
            .http
            .post(app.url("/admin/clients"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({
                "client_name": "bad",
                "redirect_uris": ["https://app.example.com/cb"],
                "backchannel_logout_uri": bad,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client_metadata", "{bad}");
    }

    let discovery: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
}

#[tokio::test]
async fn logout_with_a_matching_hint_ends_the_session_and_sends_a_verifiable_logout_token() {
    let app = TestApp::spawn().await;
    let mut rp = RelyingParty::start(Answer::Ok).await;
    let client = client_with_backchannel(&app, &rp).await;
    let without_uri = app.confidential_client().await;
    let first = tokens(&app, &client, &[("scope", "openid offline_access")]).await;
    tokens(&app, &without_uri, &[]).await;
    let id_token = first["id_token"].as_str().unwrap();
    let id_claims = unverified_claims(id_token);
    let sid = id_claims["sid"].as_str().expect("the ID token carries sid");
    let refreshed: Value = app
        .token_request(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        unverified_claims(refreshed["id_token"].as_str().unwrap())["sid"],
        sid,
        "a refreshed ID token keeps the session's sid"
    );

    let member_grants = app
        .store
        .grants_of(id_claims["sub"].as_str().unwrap(), app.clock.now())
        .await
        .unwrap();
    assert!(
        member_grants.iter().any(|g| g.client_id == client.id
            && g.session_id.as_deref().map(sid_of).as_deref() == Some(sid)),
        "the member's grants name the session: {member_grants:?}"
    );

    let response = app
        .browser
        .get(logout_url(
            &app,
            &[
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", RP_LOGOUT_REDIRECT),
                ("state", "bye"),
            ],
        ))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 302);
    assert_eq!(
        location(&response),
        format!("{RP_LOGOUT_REDIRECT}?state=bye")
    );
    let delivery = rp.next().await;
    assert_eq!(delivery.content_type, "application/x-www-form-urlencoded");
    let (header, claims) = verify_with_jwks(&app, &delivery.logout_token).await;
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert_eq!(claims["sid"], sid);
    assert_eq!(claims["events"], json!({ EVENT: {} }));
    assert!(claims.get("nonce").is_none(), "never a nonce (BCL §2.4)");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((1..=300).contains(&lifetime), "short-lived: {lifetime}");

    app.backchannel.wait_idle().await;
    assert!(
        rp.nothing_more(),
        "one token, and none for the client without a URI"
    );
    let audit = app.audit().await;
    assert!(
        audit.iter().any(|row| row.event == "backchannel_logout"
            && row.outcome == "delivered"
            && row.client_id.as_deref() == Some(client.id.as_str())
            && row.reason.as_deref() == Some("logout")),
        "{audit:?}"
    );
    assert!(!sso_still_works(&app, &client).await, "the session is over");
    assert_eq!(
        app.userinfo(refreshed["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_cross_site_logout_without_a_hint_ends_nothing_until_the_person_confirms() {
    let app = TestApp::spawn().await;
    let mut rp = RelyingParty::start(Answer::Ok).await;
    let client = client_with_backchannel(&app, &rp).await;
    let issued = tokens(&app, &client, &[]).await;
    let access = issued["access_token"].as_str().unwrap();

    // What a third-party page can make the browser do: a top-level GET (the Lax cookie comes).
    let page = app
        .browser
        .get(logout_url(
            &app,
            &[
                ("client_id", client.id.as_str()),
                ("post_logout_redirect_uri", RP_LOGOUT_REDIRECT),
                ("state", "bye"),
            ],
        ))
        .send()
        .await
        .unwrap();

    assert_eq!(page.status(), 200);
    assert!(page.headers().get("location").is_none());
    let html = page.text().await.unwrap();
    assert!(html.contains("退出登录？"), "asks first: {html}");
    assert!(
        sso_still_works(&app, &client).await,
        "the session still signs in"
    );
    assert_eq!(app.userinfo(access).await.status(), 200);

    let mut fields = hidden_fields(&html);
    assert!(fields
        .iter()
        .any(|(k, v)| k == "post_logout_redirect_uri" && v == RP_LOGOUT_REDIRECT));
    let forged: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| match k.as_str() {
            "csrf_token" => (k.clone(), "forged".to_owned()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let refused = app
        .browser
        .post(app.url("/logout"))
        .form(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 200);
    assert!(refused.text().await.unwrap().contains("退出登录？"));
    assert!(
        sso_still_works(&app, &client).await,
        "a forged confirmation ends nothing"
    );

    fields.retain(|(k, _)| k != "ui_locales");
    let confirmed = app
        .browser
        .post(app.url("/logout"))
        .form(&fields)
        .send()
        .await
        .unwrap();

    assert_eq!(confirmed.status(), 303);
    assert_eq!(
        location(&confirmed),
        format!("{RP_LOGOUT_REDIRECT}?state=bye")
    );
    assert_eq!(app.userinfo(access).await.status(), 401);
    assert!(!sso_still_works(&app, &client).await);
    let (_, claims) = verify_with_jwks(&app, &rp.next().await.logout_token).await;
    assert_eq!(claims["aud"], client.id.as_str());
    app.backchannel.wait_idle().await;
}

#[tokio::test]
async fn a_hint_for_someone_else_only_asks_for_confirmation() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let zhangsan = app.sign_in(&client, "zhangsan", &[]).await.code.unwrap();
    let zhangsan: Value = app
        .exchange(&client, &zhangsan, None)
        .await
        .json()
        .await
        .unwrap();
    let hint = zhangsan["id_token"].as_str().unwrap();
    let ended = app
        .browser
        .get(logout_url(&app, &[("id_token_hint", hint)]))
        .send()
        .await
        .unwrap();
    assert!(ended.text().await.unwrap().contains("已经退出登录"));
    tokens(&app, &client, &[]).await; // wangwu now signs in in the same browser

    let response = app
        .browser
        .get(logout_url(&app, &[("id_token_hint", hint)]))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("退出登录？"), "{html}");
    assert!(
        hidden_fields(&html)
            .iter()
            .any(|(k, v)| k == "client_id" && v == &client.id),
        "the hint's client is kept for the confirmation"
    );
    assert!(
        sso_still_works(&app, &client).await,
        "wangwu's session lives on"
    );
}

#[tokio::test]
async fn a_relying_party_that_answers_500_gets_three_attempts_then_a_failed_audit_row() {
    let app = TestApp::spawn().await;
    let mut rp = RelyingParty::start(Answer::ServerError).await;
    let client = client_with_backchannel(&app, &rp).await;
    let issued = tokens(&app, &client, &[]).await;

    let response = app
        .browser
        .get(logout_url(
            &app,
            &[("id_token_hint", issued["id_token"].as_str().unwrap())],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let mut jtis = Vec::new();
    for _ in 0..3 {
        let token = rp.next().await.logout_token;
        jtis.push(unverified_claims(&token)["jti"].clone());
    }
    app.backchannel.wait_idle().await;
    assert!(rp.nothing_more(), "three attempts, no more");
    assert!(
        jtis.iter().all(|j| j == &jtis[0]),
        "a retry resends the same token"
    );
    let audit = app.audit().await;
    assert!(
        audit.iter().any(|row| row.event == "backchannel_logout"
            && row.outcome == "failed"
            && row.client_id.as_deref() == Some(client.id.as_str())),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_hanging_relying_party_delays_neither_the_logout_nor_the_other_relying_parties() {
    // Long enough that the hanging delivery is certainly still waiting while the test checks.
    let app = TestApp::spawn_with(&[("BACKCHANNEL_LOGOUT_TIMEOUT_SECS", "60")]).await;
    let mut slow = RelyingParty::start(Answer::Hang).await;
    let mut fast = RelyingParty::start(Answer::Ok).await;
    let slow_client = client_with_backchannel(&app, &slow).await;
    let fast_client = client_with_backchannel(&app, &fast).await;
    let issued = tokens(&app, &slow_client, &[]).await;
    tokens(&app, &fast_client, &[]).await;

    tokio::time::timeout(PATIENCE, async {
        let response = app
            .browser
            .get(logout_url(
                &app,
                &[("id_token_hint", issued["id_token"].as_str().unwrap())],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the person is not kept waiting");
        slow.next().await;
        let token = fast.next().await.logout_token;
        assert_eq!(unverified_claims(&token)["aud"], fast_client.id.as_str());
    })
    .await
    .expect("the logout and the fast relying party's token arrive while the slow one hangs");

    let audit = app.audit().await;
    assert!(
        !audit
            .iter()
            .any(|row| row.event == "backchannel_logout" && row.outcome == "failed"),
        "the slow delivery has not even timed out yet: {audit:?}"
    );
}

#[tokio::test]
async fn each_notice_is_sent_once_and_a_client_requiring_sid_gets_none_without_one() {
    let app = TestApp::spawn().await;
    let mut rp = RelyingParty::start(Answer::Ok).await;
    let plain = client_with_backchannel(&app, &rp).await;
    let strict = app
        .register(json!({
            "client_name": "strict",
            "backchannel_logout_uri": rp.url,
            "backchannel_logout_session_required": true,
        }))
        .await;
    let without_uri = app.confidential_client().await;
    let notice = |client: &TestClient, sid: Option<&str>| LogoutNotice {
        client_id: client.id.clone(),
        sub: "wangwu".to_owned(),
        sid: sid.map(str::to_owned),
    };

    app.backchannel.send(
        vec![
            notice(&plain, None),
            notice(&plain, None),
            notice(&strict, None),
            notice(&strict, Some("session-1")),
            notice(&without_uri, None),
        ],
        "revoked",
        app.clock.now(),
    );
    app.backchannel.wait_idle().await;

    let mut received = Vec::new();
    while let Ok(delivery) = rp.deliveries.try_recv() {
        received.push(verify_with_jwks(&app, &delivery.logout_token).await.1);
    }
    received.sort_by_key(|claims| claims["aud"] == strict.id.as_str());
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0]["aud"], plain.id.as_str());
    assert!(received[0].get("sid").is_none());
    assert_eq!(received[0]["sub"], "wangwu");
    assert_eq!(received[1]["aud"], strict.id.as_str());
    assert_eq!(received[1]["sid"], "session-1");
    let audit = app.audit().await;
    let delivered = audit
        .iter()
        .filter(|row| {
            row.event == "backchannel_logout"
                && row.outcome == "delivered"
                && row.reason.as_deref() == Some("revoked")
        })
        .count();
    assert_eq!(delivered, 2, "{audit:?}");
}

#[tokio::test]
async fn a_client_whose_access_token_expired_still_hears_when_the_session_ends() {
    for ending in ["logout", "admin_revoke"] {
        let app = TestApp::spawn().await;
        let mut rp = RelyingParty::start(Answer::Ok).await;
        let client = client_with_backchannel(&app, &rp).await;
        // No offline_access: once the access token expires, the client holds no live token.
        let issued = tokens(&app, &client, &[("scope", "openid")]).await;
        assert!(issued.get("refresh_token").is_none(), "{ending}");
        let id_token = issued["id_token"].as_str().unwrap();
        let sid = unverified_claims(id_token)["sid"].clone();
        app.clock.advance(3601);
        assert_eq!(
            app.userinfo(issued["access_token"].as_str().unwrap())
                .await
                .status(),
            401,
            "{ending}: the access token has expired, the session (8 h) has not"
        );

        match ending {
            "logout" => {
                let response = app
                    .browser
                    .get(logout_url(&app, &[("id_token_hint", id_token)]))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success() || response.status().is_redirection());
            }
            _ => {
                let response = app
                    .http
                    .post(app.url("/admin/users/wangwu/revoke"))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{ending}");
            }
        }

        let delivery = rp.next().await;
        let (_, claims) = verify_with_jwks(&app, &delivery.logout_token).await;
        assert_eq!(claims["aud"], client.id.as_str(), "{ending}");
        assert_eq!(claims["sub"], "wangwu", "{ending}");
        assert_eq!(claims["sid"], sid, "{ending}");
        app.backchannel.wait_idle().await;
        assert!(rp.nothing_more(), "{ending}: one logout token");
        assert!(!sso_still_works(&app, &client).await, "{ending}");
    }
}
