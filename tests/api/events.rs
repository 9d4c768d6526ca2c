//! WeCom event callbacks end a member's access within a second of the event, through the
//! simulator sending them exactly as WeCom does; forged, garbled and replayed deliveries change
//! nothing.

use serde_json::Value;

use crate::backchannel::{client_with_backchannel, verify_with_jwks, Answer, RelyingParty};
use crate::helpers::{TestApp, TestClient, AGENT_ID};
use crate::membership::{active, refresh, sign_in_with_refresh_as, Tokens};
use wecom_oidc::simulator::{Attempt, EventSource};

const EVENT_TOKEN: &str = "T0kenForOidcTests";
/// 43 characters whose last one carries non-zero trailing bits, like most real keys.
const EVENT_AES_KEY: &str = "Wq8vRkT3mXa9LzPq2NcY7dHf0JsB4uE6gKiO1tMnV5C";

/// The provider with the app's event URL configured and verified, as an administrator would.
async fn app_with_events() -> TestApp {
    let app = TestApp::spawn_with(&[
        ("WECOM_EVENT_TOKEN", EVENT_TOKEN),
        ("WECOM_EVENT_AES_KEY", EVENT_AES_KEY),
    ])
    .await;
    let control = app.simulator.control();
    control
        .configure_events(
            AGENT_ID,
            &app.url("/wecom/events"),
            EVENT_TOKEN,
            EVENT_AES_KEY,
        )
        .unwrap();
    assert!(
        control
            .verify_event_url(&EventSource::app(AGENT_ID))
            .await
            .unwrap(),
        "the URL check WeCom runs when the administrator saves the settings passes"
    );
    app
}

async fn sign_in(app: &TestApp, client: &TestClient, member: &str) -> Tokens {
    sign_in_with_refresh_as(app, client, member, &[("prompt", "login")]).await
}

fn all_accepted(deliveries: &[wecom_oidc::simulator::Delivery]) -> bool {
    !deliveries.is_empty() && deliveries.iter().all(|d| d.accepted())
}

/// Access is gone the moment the event has been answered: no recheck interval, no sweep.
async fn assert_gone(app: &TestApp, client: &TestClient, held: &Tokens) {
    assert_eq!(app.userinfo(&held.access).await.status(), 401);
    assert!(!active(app, client, &held.access).await);
    let (status, body) = refresh(app, client, &held.refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn disabling_a_member_in_wecom_ends_their_access_and_tells_the_relying_party() {
    let app = app_with_events().await;
    let mut rp = RelyingParty::start(Answer::Ok).await;
    let client = client_with_backchannel(&app, &rp).await;
    let wangwu = sign_in(&app, &client, "wangwu").await;
    let zhangsan = sign_in(&app, &client, "zhangsan").await;

    let deliveries = app
        .simulator
        .control()
        .disable_member("wangwu")
        .await
        .unwrap();

    assert!(all_accepted(&deliveries));
    assert_gone(&app, &client, &wangwu).await;
    assert_eq!(app.userinfo(&zhangsan.access).await.status(), 200);
    let logout = rp.next().await;
    let (_, claims) = verify_with_jwks(&app, &logout.logout_token).await;
    assert_eq!(claims["sub"], "wangwu");
    assert_eq!(claims["aud"], client.id.as_str());
    assert!(claims["events"]
        .get("http://schemas.openid.net/event/backchannel-logout")
        .is_some());
    let id_claims = crate::membership::claims(&wangwu.id_token);
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert!(app.audit().await.iter().any(
        |row| row.event == "member_revoked" && row.reason.as_deref() == Some("member_disabled")
    ));
}

#[tokio::test]
async fn deleting_a_member_or_taking_them_out_of_the_visible_range_ends_their_access() {
    let app = app_with_events().await;
    let client = app.confidential_client().await;
    let wangwu = sign_in(&app, &client, "wangwu").await;
    let lisi = sign_in(&app, &client, "lisi").await;
    let control = app.simulator.control();

    assert!(all_accepted(&control.delete_member("lisi").await.unwrap()));
    assert_gone(&app, &client, &lisi).await;

    // unsubscribe says less than "gone": the provider asks user/get, which refuses.
    assert!(all_accepted(
        &control
            .remove_from_visible_range(AGENT_ID, "wangwu")
            .await
            .unwrap()
    ));
    assert_gone(&app, &client, &wangwu).await;
}

#[tokio::test]
async fn a_renamed_member_keeps_their_sub_and_their_access() {
    let app = app_with_events().await;
    let client = app.confidential_client().await;
    let before = sign_in(&app, &client, "wangwu").await;

    let deliveries = app
        .simulator
        .control()
        .rename_member("wangwu", "wangwu01")
        .await
        .unwrap();
    assert!(all_accepted(&deliveries));
    app.clock.advance(301);

    let (status, body) = refresh(&app, &client, &before.refresh).await;
    assert_eq!(status, 200, "{body}");
    let info: Value = app
        .userinfo(body["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], "wangwu");
    assert_eq!(info["preferred_username"], "wangwu01");
    let again = sign_in(&app, &client, "wangwu01").await;
    assert_eq!(
        crate::membership::claims(&again.id_token)["sub"],
        "wangwu",
        "a new sign-in under the new userid finds the same subject"
    );
}

#[tokio::test]
async fn a_redelivered_or_replayed_event_is_answered_and_has_no_second_effect() {
    let app = app_with_events().await;
    let client = app.confidential_client().await;
    sign_in(&app, &client, "wangwu").await;
    let control = app.simulator.control();
    let deliveries = control
        .remove_from_visible_range(AGENT_ID, "wangwu")
        .await
        .unwrap();
    let user_get_calls = control.calls("/cgi-bin/user/get");
    let revocations = |rows: &[wecom_oidc::storage::AuditEvent]| {
        rows.iter().filter(|r| r.event == "member_revoked").count()
    };
    assert_eq!(revocations(&app.audit().await), 1);

    let replay = control.deliver(deliveries[0].request.clone()).await;

    assert!(replay.accepted());
    assert_eq!(control.calls("/cgi-bin/user/get"), user_get_calls);
    assert_eq!(revocations(&app.audit().await), 1);
}

#[tokio::test]
async fn forged_garbled_and_foreign_deliveries_are_refused_and_change_nothing() {
    let app = app_with_events().await;
    let client = app.confidential_client().await;
    let held = sign_in(&app, &client, "wangwu").await;
    let control = app.simulator.control();
    let source = EventSource::app(AGENT_ID);
    let disable = control
        .seal_event(
            &source,
            "<xml><ToUserName><![CDATA[wwsim0000000001]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1717171800</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[wangwu]]></UserID><Status>2</Status></xml>",
        )
        .unwrap();
    let query = disable.url.query().unwrap().to_owned();
    let forged_query = query.replace("msg_signature=", "msg_signature=0");
    let status = |attempt: Attempt| match attempt {
        Attempt::Status(status) => status,
        Attempt::Failed(reason) => panic!("no answer: {reason}"),
    };

    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        (
            "forged signature",
            forged_query,
            disable.body.clone().into_bytes(),
            403,
        ),
        ("garbage", query.clone(), b"not xml at all".to_vec(), 400),
        (
            "truncated",
            query.clone(),
            disable.body.as_bytes()[..disable.body.len() / 2].to_vec(),
            400,
        ),
        (
            "a DTD",
            query.clone(),
            format!("<!DOCTYPE xml [<!ENTITY x \"y\">]>{}", disable.body).into_bytes(),
            400,
        ),
    ];
    for (what, query, body, expected) in cases {
        let answer = control.post_event_raw(&source, &query, body).await.unwrap();
        assert_eq!(status(answer), expected, "{what}");
    }
    // Another corporation's message, signed with our token: the receiveid gives it away.
    let foreign = wecom_oidc::wecom::events::EventCipher::new(
        EVENT_TOKEN,
        EVENT_AES_KEY,
        "wwffffffffffffffff",
    )
    .unwrap();
    let encrypted = foreign.encrypt(b"<xml><MsgType>event</MsgType></xml>", &[7; 16]);
    let signature = foreign.signature("1717171801", "563321707", &encrypted);
    let answer = control
        .post_event_raw(
            &source,
            &format!("msg_signature={signature}&timestamp=1717171801&nonce=563321707"),
            format!("<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"),
        )
        .await
        .unwrap();
    assert_eq!(status(answer), 403, "wrong receiveid");
    let bad_verify = app
        .http
        .get(app.url("/wecom/events?msg_signature=0000&timestamp=1&nonce=2&echostr=AAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_verify.status(), 403);

    assert_eq!(app.userinfo(&held.access).await.status(), 200);
    assert!(active(&app, &client, &held.refresh).await);
}

#[tokio::test]
async fn without_the_event_settings_the_endpoint_does_not_exist() {
    let app = TestApp::spawn().await;
    for response in [
        app.http.get(app.url("/wecom/events")).send().await.unwrap(),
        app.http
            .post(app.url("/wecom/events"))
            .body("<xml/>")
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(response.status(), 404);
    }
}
