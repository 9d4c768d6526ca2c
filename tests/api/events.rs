//! WeCom event callbacks end a member's access within a second of the event, through the
//! simulator sending them exactly as WeCom does; forged, garbled and replayed deliveries change
//! nothing.

use serde_json::Value;

use crate::backchannel::{client_with_backchannel, verify_with_jwks, Answer, RelyingParty};
use crate::helpers::{TestApp, TestClient, AGENT_ID};
use crate::membership::{active, refresh, sign_in_with_refresh_as, Tokens};
use wecom_oidc::simulator::{Attempt, EventSource, Member};
use wecom_oidc::wecom::events::EVENT_WINDOW_SECS;

const EVENT_TOKEN: &str = "T0kenForOidcTests";
/// 43 characters whose last one carries non-zero trailing bits, like most real keys.
const EVENT_AES_KEY: &str = "Wq8vRkT3mXa9LzPq2NcY7dHf0JsB4uE6gKiO1tMnV5C";

/// The provider with the app's event URL configured and verified, as an administrator would.
pub(crate) async fn app_with_events() -> TestApp {
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

/// Moves both clocks, the provider's and WeCom's, forward together.
fn advance_both_clocks(app: &TestApp, seconds: i64) {
    app.clock.advance(seconds);
    app.simulator
        .control()
        .advance_clock(std::time::Duration::from_secs(seconds as u64));
}

fn disable_event(userid: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[wwsim0000000001]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1717171800</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[{userid}]]></UserID><Status>2</Status></xml>"
    )
}

#[tokio::test]
async fn a_delivery_replayed_after_the_timestamp_window_changes_nothing_and_a_fresh_one_works() {
    let app = app_with_events().await;
    let client = app.confidential_client().await;
    let held = sign_in(&app, &client, "wangwu").await;
    let control = app.simulator.control();
    let source = EventSource::app(AGENT_ID);
    // Captured on its way (a proxy log), never delivered, and sent by someone else later.
    let captured = control
        .seal_event(&source, &disable_event("wangwu"))
        .unwrap();
    // Past the window by a minute: the provider's test clock stands still between advances
    // while WeCom's follows the wall clock.
    advance_both_clocks(&app, EVENT_WINDOW_SECS + 60);

    let replay = control.deliver(captured).await;

    assert!(
        replay.accepted(),
        "answered as received: a retry would be as stale"
    );
    assert_eq!(app.userinfo(&held.access).await.status(), 200);
    assert!(active(&app, &client, &held.refresh).await);
    assert!(!app
        .audit()
        .await
        .iter()
        .any(|row| row.event == "member_revoked"));

    // The same message, signed now by WeCom, counts.
    let fresh = control
        .seal_event(&source, &disable_event("wangwu"))
        .unwrap();
    assert!(control.deliver(fresh).await.accepted());
    assert_gone(&app, &client, &held).await;
}

#[tokio::test]
async fn a_rename_replayed_a_day_later_cannot_move_a_sub_to_the_userids_new_holder() {
    let app = app_with_events().await;
    let client = app.confidential_client().await;
    let control = app.simulator.control();
    sign_in(&app, &client, "wangwu").await;
    let rename = control.rename_member("wangwu", "wangwu01").await.unwrap();
    assert!(all_accepted(&rename));
    // The freed userid goes to someone new, who gets a sub of their own.
    let newcomer = Member {
        userid: "wangwu".to_owned(),
        name: "新王五".to_owned(),
        ..control.directory().member("wangwu01").unwrap().clone()
    };
    control.add_member(newcomer).unwrap();
    let second = sign_in(&app, &client, "wangwu").await;
    let second_sub = crate::membership::claims(&second.id_token)["sub"].clone();
    assert_ne!(second_sub, "wangwu");
    advance_both_clocks(&app, 25 * 3600);
    app.store
        .purge_expired(wecom_oidc::clock::Clock::now(&app.clock))
        .await
        .unwrap();

    let replay = control.deliver(rename[0].request.clone()).await;

    assert!(replay.accepted());
    let renamed = sign_in(&app, &client, "wangwu01").await;
    assert_eq!(
        crate::membership::claims(&renamed.id_token)["sub"],
        "wangwu"
    );
    let again = sign_in(&app, &client, "wangwu").await;
    assert_eq!(
        crate::membership::claims(&again.id_token)["sub"],
        second_sub
    );
}

#[tokio::test]
async fn a_delete_user_event_that_cannot_be_processed_is_refused_so_that_wecom_delivers_it_again() {
    let app = app_with_events().await;
    let client = app.confidential_client().await;
    let lisi = sign_in(&app, &client, "lisi").await;
    let control = app.simulator.control();
    app.execute_sql("ALTER TABLE revoked_grants RENAME TO revoked_grants_away")
        .await;

    let deliveries = control.delete_member("lisi").await.unwrap();

    let delete = deliveries
        .iter()
        .find(|d| d.request.plaintext.contains("delete_user"))
        .expect("a delete_user delivery");
    assert!(!delete.accepted(), "{:?}", delete.attempts);
    assert!(delete
        .attempts
        .iter()
        .all(|attempt| *attempt == Attempt::Status(503)));
    app.execute_sql("ALTER TABLE revoked_grants_away RENAME TO revoked_grants")
        .await;
    // WeCom's next redelivery goes through and does what the first could not.
    assert!(control.deliver(delete.request.clone()).await.accepted());
    assert_gone(&app, &client, &lisi).await;
    let shown: Value = app
        .http
        .get(app.url("/admin/users/lisi"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["binding"]["state"], "ended");
    assert_eq!(shown["binding"]["reason"], "member_deleted");
}

#[tokio::test]
async fn a_rename_onto_a_userid_someone_here_held_ends_that_holders_access_before_the_move() {
    let app = app_with_events().await;
    let client = app.confidential_client().await;
    let control = app.simulator.control();
    let source = EventSource::app(AGENT_ID);
    sign_in(&app, &client, "wangwu").await;
    // lisi signed in here, then left WeCom without an event reaching us; an administrator then
    // renames wangwu to the freed userid, and that event does arrive.
    let held = sign_in(&app, &client, "lisi").await;
    let lisi_sub = crate::membership::claims(&held.id_token)["sub"].clone();
    let rename = "<xml><ToUserName><![CDATA[wwsim0000000001]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1717171800</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[wangwu]]></UserID><NewUserID><![CDATA[lisi]]></NewUserID></xml>";

    let delivered = control
        .deliver(control.seal_event(&source, rename).unwrap())
        .await;

    assert!(delivered.accepted());
    assert_gone(&app, &client, &held).await;
    let audit = app.audit().await;
    assert!(audit.iter().any(|row| row.event == "member_released"
        && row.sub.as_deref() == lisi_sub.as_str()
        && row.reason.as_deref() == Some("userid_given_to_another")));
}
