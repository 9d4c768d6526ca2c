//! Unit tests of the simulator, driven through the real actix handler with `actix_web::test::init_service`
//! (plus one test over a real socket for `Simulator::start`/`stop`).

// Tests may fail loudly: the workspace lints deny these only for production code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::{test as atest, App};
use serde_json::{json, Value};
use url::Url;

use super::control::SimulatorControl;
use super::state::Shared;
use super::*;

const CORP: &str = "wwsim0000000001";
const NEW_APP: &str = "1000002";
const OLD_APP: &str = "1000003";
const NEW_SECRET: &str = "sim-secret-1000002";
const OLD_SECRET: &str = "sim-secret-1000003";
const CALLBACK: &str = "https://rp.example/auth/wecom/callback";

/// The actix service behind a boxed call, so helpers need not name actix-http's request type.
type Call = Rc<dyn Fn(atest::TestRequest) -> Pin<Box<dyn Future<Output = ServiceResponse>>>>;

struct TestSim {
    call: Call,
    control: SimulatorControl,
}

async fn sim() -> TestSim {
    sim_with(Directory::sample()).await
}

async fn sim_with(directory: Directory) -> TestSim {
    let shared = Arc::new(Shared::new(directory));
    let control = SimulatorControl::new(Arc::clone(&shared));
    let service = Rc::new(atest::init_service(App::new().configure(http::configure(shared))).await);
    let call: Call = Rc::new(move |request: atest::TestRequest| {
        let service = Rc::clone(&service);
        Box::pin(async move { atest::call_service(&*service, request.to_request()).await })
    });
    TestSim { call, control }
}

impl TestSim {
    async fn send(&self, request: atest::TestRequest) -> ServiceResponse {
        (self.call)(request).await
    }

    async fn get(&self, uri: &str) -> ServiceResponse {
        self.send(atest::TestRequest::get().uri(uri)).await
    }

    async fn get_json(&self, uri: &str) -> Value {
        let response = self.get(uri).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {uri}");
        let body = atest::read_body(response).await;
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("GET {uri}: not JSON ({e}): {body:?}"))
    }

    async fn post_json(&self, uri: &str, body: Value) -> Value {
        let request = atest::TestRequest::post()
            .uri(uri)
            .insert_header(("content-type", "application/json"))
            .set_payload(body.to_string());
        let response = self.send(request).await;
        assert_eq!(response.status(), StatusCode::OK, "POST {uri}");
        serde_json::from_slice(&atest::read_body(response).await).unwrap()
    }

    async fn token(&self, secret: &str) -> String {
        let answer = self
            .get_json(&format!(
                "/cgi-bin/gettoken?corpid={CORP}&corpsecret={secret}"
            ))
            .await;
        assert_eq!(answer["errcode"], 0, "{answer}");
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// Follows an approve URL and returns the Location it redirects to.
    async fn approve(&self, uri: &str) -> Url {
        let response = self.get(uri).await;
        let error = response
            .headers()
            .get("x-sim-error")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(response.status(), StatusCode::FOUND, "{uri}: {error:?}");
        let location = response
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap();
        Url::parse(location).unwrap()
    }

    /// GETs a page that must be an error page; returns the X-Sim-Error code and the body.
    async fn error_page(&self, uri: &str) -> (String, String) {
        let response = self.get(uri).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let code = response
            .headers()
            .get("x-sim-error")
            .unwrap_or_else(|| panic!("{uri}: no error page"))
            .to_str()
            .unwrap()
            .to_owned();
        let body = String::from_utf8(atest::read_body(response).await.to_vec()).unwrap();
        (code, body)
    }

    /// Runs a login approve URL and returns the code it redirects with.
    async fn code_from(&self, approve_uri: &str) -> String {
        let location = self.approve(approve_uri).await;
        assert_eq!(query(&location, "state").as_deref(), Some("st8"));
        query(&location, "code").unwrap_or_else(|| panic!("no code in {location}"))
    }

    async fn getuserinfo(&self, token: &str, code: &str) -> Value {
        self.get_json(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={token}&code={code}"
        ))
        .await
    }
}

fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn query(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn web_login_query(agent: &str, redirect: &str) -> String {
    format!(
        "login_type=CorpApp&appid={CORP}&agentid={agent}&redirect_uri={}&state=st8",
        enc(redirect)
    )
}

fn web_login_approve(agent: &str, who: &str) -> String {
    format!(
        "/wwlogin/sso/login/approve?{}&{who}",
        web_login_query(agent, CALLBACK)
    )
}

fn oauth_approve(scope: &str, agent: Option<&str>, who: &str) -> String {
    let agent = agent.map(|a| format!("&agentid={a}")).unwrap_or_default();
    format!(
        "/connect/oauth2/authorize/approve?appid={CORP}&redirect_uri={}&response_type=code&scope={scope}&state=st8{agent}&{who}",
        enc(CALLBACK)
    )
}

fn assert_errcode(answer: &Value, errcode: i64, case: &str) {
    assert_eq!(answer["errcode"], errcode, "{case}: {answer}");
    let errmsg = answer["errmsg"].as_str().unwrap();
    assert!(
        errmsg.contains(", hint: [")
            && errmsg.contains("from ip: 127.0.0.1")
            && errmsg.ends_with(&format!(
                "more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
            )),
        "{case}: errmsg shape: {errmsg}"
    );
}

#[test]
fn sample_directory_is_valid_and_holds_the_agreed_ids() {
    let directory = Directory::from_toml(Directory::sample_toml()).unwrap();
    assert_eq!(directory, Directory::sample());
    assert_eq!(directory.corp_id, CORP);
    let new_app = directory.app(NEW_APP).unwrap();
    assert!(new_app.created_after_2022_06_20);
    assert_eq!(new_app.secret, NEW_SECRET);
    assert_eq!(new_app.sensitive_fields.len(), 7);
    assert!(!directory.app(OLD_APP).unwrap().created_after_2022_06_20);
    for (userid, status) in [
        ("ZhangSan", 1),
        ("lisi", 1),
        ("wangwu", 1),
        ("zhaoliu", 2),
        ("sunqi", 5),
        ("zhouba", 4),
        ("wujiu", 1),
    ] {
        assert_eq!(directory.member(userid).unwrap().status, status, "{userid}");
    }
    assert!(!directory.userid_visible(new_app, "wujiu"));
    assert!(directory.userid_visible(new_app, "zhouba"));
    assert!(directory.userid_visible(directory.app(OLD_APP).unwrap(), "wujiu"));
    assert!(directory.non_member("oSimNonMember01").is_some());
    assert!(format!("{new_app:?}").contains("[redacted]"));
}

#[test]
fn invalid_directories_are_refused_with_a_reason() {
    let cases = [
        ("corp_id = \"\"", "corp_id"),
        ("corp_id = \"x\"\n[[departments]]\nid = 2\nname = \"a\"\nparentid = 9", "parentid 9"),
        ("corp_id = \"x\"\n[[members]]\nuserid = \"A\"\nname = \"a\"\n[[members]]\nuserid = \"a\"\nname = \"b\"", "appears twice"),
        ("corp_id = \"x\"\ncorp_nmae = \"typo\"", "unknown field"),
    ];
    for (text, expected) in cases {
        let error = format!("{:#}", Directory::from_toml(text).unwrap_err());
        assert!(error.contains(expected), "{text:?} gave {error}");
    }
}

#[test]
fn from_file_reads_the_sample_format() {
    let path = std::env::temp_dir().join(format!("sim-dir-{}.toml", std::process::id()));
    std::fs::write(&path, Directory::sample_toml()).unwrap();
    let directory = Directory::from_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(directory, Directory::sample());
    assert!(Directory::from_file(std::path::Path::new("/nonexistent/dir.toml")).is_err());
}

#[actix_web::test]
async fn gettoken_returns_a_token_valid_for_7200_seconds_and_repeats_it() {
    let sim = sim().await;
    let first = sim
        .get_json(&format!(
            "/cgi-bin/gettoken?corpid={CORP}&corpsecret={NEW_SECRET}"
        ))
        .await;
    assert_eq!(first["errcode"], 0);
    assert_eq!(first["errmsg"], "ok");
    assert_eq!(first["expires_in"], 7200);
    let token_a = first["access_token"].as_str().unwrap();
    assert!(!token_a.is_empty() && token_a.len() <= 512);
    assert_eq!(
        sim.token(NEW_SECRET).await,
        token_a,
        "same token while valid"
    );
    assert_ne!(sim.token(OLD_SECRET).await, token_a, "per-app tokens");
}

#[actix_web::test]
async fn gettoken_can_mint_a_fresh_token_each_call() {
    let sim = sim().await;
    let control = &sim.control;
    control.set_fresh_token_each_call(true);
    let first = sim.token(NEW_SECRET).await;
    let second = sim.token(NEW_SECRET).await;
    assert_ne!(first, second);
    let answer = sim
        .get_json(&format!("/cgi-bin/tag/list?access_token={first}"))
        .await;
    assert_eq!(answer["errcode"], 0, "older token stays valid");
}

#[actix_web::test]
async fn gettoken_refuses_wrong_corpid_wrong_secret_and_disabled_apps() {
    let sim = sim().await;
    let control = &sim.control;
    let cases = [
        (
            format!("corpid=wwwrong&corpsecret={NEW_SECRET}"),
            40013,
            "wrong corpid",
        ),
        (
            format!("corpid={CORP}&corpsecret=nope"),
            40001,
            "wrong secret",
        ),
        (format!("corpsecret={NEW_SECRET}"), 41002, "missing corpid"),
        (format!("corpid={CORP}"), 41004, "missing secret"),
    ];
    for (query, errcode, case) in cases {
        let answer = sim.get_json(&format!("/cgi-bin/gettoken?{query}")).await;
        assert_errcode(&answer, errcode, case);
    }
    control.set_app_enabled(NEW_APP, false);
    let answer = sim
        .get_json(&format!(
            "/cgi-bin/gettoken?corpid={CORP}&corpsecret={NEW_SECRET}"
        ))
        .await;
    assert_errcode(&answer, 40001, "disabled app");
}

#[actix_web::test]
async fn tokens_expire_on_the_simulated_clock_with_42001_or_the_40014_variance() {
    let sim = sim().await;
    let control = &sim.control;
    let token = sim.token(NEW_SECRET).await;
    let tags = format!("/cgi-bin/tag/list?access_token={token}");
    assert_eq!(sim.get_json(&tags).await["errcode"], 0);

    // The simulated clock also follows the wall clock, so stay clear of the exact boundary.
    control.advance_clock(Duration::from_secs(7100));
    assert_eq!(sim.get_json(&tags).await["errcode"], 0, "100 s left");
    control.advance_clock(Duration::from_secs(100));
    let answer = sim.get_json(&tags).await;
    assert_errcode(&answer, 42001, "expired");
    assert!(answer["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("access_token expired"));

    control.expired_token_errcode(40014);
    assert_errcode(&sim.get_json(&tags).await, 40014, "variance");

    let fresh = sim.token(NEW_SECRET).await;
    assert_ne!(fresh, token, "a new token after expiry");
}

#[actix_web::test]
async fn missing_unknown_foreign_and_revoked_tokens_are_refused() {
    let sim = sim().await;
    let control = &sim.control;
    assert_errcode(&sim.get_json("/cgi-bin/tag/list").await, 41001, "missing");
    assert_errcode(
        &sim.get_json("/cgi-bin/tag/list?access_token=garbled").await,
        40014,
        "unknown",
    );
    let token = sim.token(NEW_SECRET).await;
    control.revoke_tokens();
    assert_errcode(
        &sim.get_json(&format!("/cgi-bin/tag/list?access_token={token}"))
            .await,
        42001,
        "revoked",
    );
    assert_ne!(sim.token(NEW_SECRET).await, token);
}

#[actix_web::test]
async fn web_login_code_gives_the_userid_only_and_is_single_use() {
    let sim = sim().await;
    let control = &sim.control;
    let code = sim
        .code_from(&web_login_approve(NEW_APP, "userid=ZhangSan"))
        .await;
    assert!(code.len() <= 512);
    let token = sim.token(NEW_SECRET).await;

    let answer = sim.getuserinfo(&token, &code).await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    assert_eq!(answer["userid"], "ZhangSan");
    assert!(
        answer.get("user_ticket").is_none(),
        "web login gives no ticket: {answer}"
    );
    assert!(answer.get("openid").is_none());

    assert_errcode(&sim.getuserinfo(&token, &code).await, 40029, "reused code");
    assert_errcode(
        &sim.getuserinfo(&token, "made-up").await,
        40029,
        "unknown code",
    );
    assert_eq!(control.calls("/cgi-bin/auth/getuserinfo"), 3);
}

#[actix_web::test]
async fn codes_expire_after_300_seconds() {
    let sim = sim().await;
    let control = &sim.control;
    let code = sim
        .code_from(&web_login_approve(NEW_APP, "userid=lisi"))
        .await;
    control.advance_clock(Duration::from_secs(300));
    let token = sim.token(NEW_SECRET).await;
    assert_errcode(&sim.getuserinfo(&token, &code).await, 40029, "expired code");
}

#[actix_web::test]
async fn a_code_of_another_app_gives_50001_and_stays_usable_by_its_own_app() {
    let sim = sim().await;
    let code = sim
        .code_from(&web_login_approve(OLD_APP, "userid=lisi"))
        .await;
    let foreign = sim.token(NEW_SECRET).await;
    assert_errcode(&sim.getuserinfo(&foreign, &code).await, 50001, "other app");
    let own = sim.token(OLD_SECRET).await;
    assert_eq!(sim.getuserinfo(&own, &code).await["userid"], "lisi");
}

#[actix_web::test]
async fn a_redirect_host_outside_the_apps_domain_gives_50001_at_exchange() {
    let sim = sim().await;
    let control = &sim.control;
    // No agentid: the code is not bound to an app, only the token's app domain applies.
    let code = sim
        .code_from(&oauth_approve("snsapi_base", None, "userid=lisi"))
        .await;
    control.set_redirect_domain(NEW_APP, Some("other.example".into()));
    let token = sim.token(NEW_SECRET).await;
    assert_errcode(&sim.getuserinfo(&token, &code).await, 50001, "domain");
}

#[actix_web::test]
async fn non_members_get_an_openid() {
    let sim = sim().await;
    let code = sim
        .code_from(&web_login_approve(NEW_APP, "openid=oSimNonMember01"))
        .await;
    let token = sim.token(NEW_SECRET).await;
    let answer = sim.getuserinfo(&token, &code).await;
    assert_eq!(answer["openid"], "oSimNonMember01", "{answer}");
    assert!(answer.get("userid").is_none());
}

#[actix_web::test]
async fn legacy_getuserinfo_uses_capitalised_keys() {
    let sim = sim().await;
    let token = sim.token(NEW_SECRET).await;
    let code = sim
        .code_from(&web_login_approve(NEW_APP, "userid=zhangsan"))
        .await;
    let answer = sim
        .get_json(&format!(
            "/cgi-bin/user/getuserinfo?access_token={token}&code={code}"
        ))
        .await;
    assert_eq!(answer["UserId"], "ZhangSan", "canonical spelling: {answer}");
    assert!(answer.get("DeviceId").is_some());
    assert!(answer.get("userid").is_none());
}

#[actix_web::test]
async fn in_client_privateinfo_with_consent_gives_a_ticket_and_the_detail() {
    let sim = sim().await;
    let code = sim
        .code_from(&oauth_approve(
            "snsapi_privateinfo",
            Some(NEW_APP),
            "userid=ZhangSan&consent=1",
        ))
        .await;
    let token = sim.token(NEW_SECRET).await;
    let answer = sim.getuserinfo(&token, &code).await;
    assert_eq!(answer["userid"], "ZhangSan");
    let ticket = answer["user_ticket"].as_str().unwrap();

    let detail = sim
        .post_json(
            &format!("/cgi-bin/auth/getuserdetail?access_token={token}"),
            json!({ "user_ticket": ticket }),
        )
        .await;
    assert_eq!(detail["errcode"], 0, "{detail}");
    assert_eq!(detail["userid"], "ZhangSan");
    assert_eq!(detail["gender"], "1");
    assert_eq!(detail["mobile"], "13800138000");
    assert_eq!(detail["email"], "zhangsan@gmail.example");
    assert_eq!(detail["biz_mail"], "zhangsan@corp.example.com");
    assert_eq!(detail["avatar"], "https://wework.qpic.cn/wwpic/zhangsan/0");
    assert!(detail["qr_code"].is_string() && detail["address"].is_string());
    assert!(detail.get("name").is_none(), "never name");

    // The ticket is bound to its app.
    let other = sim.token(OLD_SECRET).await;
    let foreign = sim
        .post_json(
            &format!("/cgi-bin/auth/getuserdetail?access_token={other}"),
            json!({ "user_ticket": ticket }),
        )
        .await;
    assert_errcode(&foreign, 40029, "ticket of another app");
}

#[actix_web::test]
async fn getuserdetail_releases_only_consented_fields_and_tickets_expire() {
    let sim = sim().await;
    let control = &sim.control;
    let code = sim
        .code_from(&oauth_approve(
            "snsapi_privateinfo",
            Some(NEW_APP),
            "userid=ZhangSan&consent=mobile",
        ))
        .await;
    let token = sim.token(NEW_SECRET).await;
    let ticket = sim.getuserinfo(&token, &code).await["user_ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("/cgi-bin/auth/getuserdetail?access_token={token}");
    let detail = sim.post_json(&uri, json!({ "user_ticket": ticket })).await;
    assert_eq!(detail["mobile"], "13800138000");
    assert_eq!(detail["gender"], "0", "withheld gender");
    assert_eq!(detail["avatar"], api::DEFAULT_AVATAR);
    assert!(
        detail.get("email").is_none() && detail.get("biz_mail").is_none(),
        "{detail}"
    );

    control.set_user_ticket_errcode(42009);
    control.advance_clock(Duration::from_secs(1800));
    let token = sim.token(NEW_SECRET).await;
    let uri = format!("/cgi-bin/auth/getuserdetail?access_token={token}");
    assert_errcode(
        &sim.post_json(&uri, json!({ "user_ticket": ticket })).await,
        42009,
        "expired ticket, configured errcode",
    );
    assert_errcode(
        &sim.post_json(&uri, json!("not an object")).await,
        42009,
        "no ticket",
    );
}

#[actix_web::test]
async fn no_ticket_without_consent_without_agentid_or_for_snsapi_base() {
    let sim = sim().await;
    let token = sim.token(NEW_SECRET).await;
    let cases = [
        (
            oauth_approve("snsapi_privateinfo", Some(NEW_APP), "userid=lisi"),
            "no consent",
        ),
        (
            oauth_approve("snsapi_privateinfo", None, "userid=lisi&consent=1"),
            "no agentid",
        ),
        (
            oauth_approve("snsapi_base", Some(NEW_APP), "userid=lisi&consent=1"),
            "base",
        ),
    ];
    for (uri, case) in cases {
        let code = sim.code_from(&uri).await;
        let answer = sim.getuserinfo(&token, &code).await;
        assert_eq!(answer["userid"], "lisi", "{case}: {answer}");
        assert!(answer.get("user_ticket").is_none(), "{case}: {answer}");
    }
}

#[actix_web::test]
async fn privateinfo_outside_the_visible_range_is_an_error_page_but_base_works() {
    let sim = sim().await;
    let (code, _) = sim
        .error_page(&oauth_approve(
            "snsapi_privateinfo",
            Some(NEW_APP),
            "userid=wujiu&consent=1",
        ))
        .await;
    assert_eq!(code, "no_permission");
    let code = sim
        .code_from(&oauth_approve("snsapi_base", Some(NEW_APP), "userid=wujiu"))
        .await;
    let token = sim.token(NEW_SECRET).await;
    assert_eq!(sim.getuserinfo(&token, &code).await["userid"], "wujiu");
}

#[actix_web::test]
async fn post_2022_apps_get_sensitive_fields_stripped_older_apps_get_them() {
    let sim = sim().await;
    let control = &sim.control;
    let new_token = sim.token(NEW_SECRET).await;
    let old_token = sim.token(OLD_SECRET).await;
    let sensitive = [
        "avatar", "gender", "mobile", "email", "biz_mail", "qr_code", "address",
    ];

    let stripped = sim
        .get_json(&format!(
            "/cgi-bin/user/get?access_token={new_token}&userid=ZhangSan"
        ))
        .await;
    assert_eq!(stripped["errcode"], 0, "{stripped}");
    assert_eq!(stripped["name"], "张三");
    assert_eq!(stripped["position"], "平台工程师");
    assert_eq!(stripped["department"], json!([3]));
    for key in sensitive {
        assert_eq!(stripped[key], "", "{key} stripped: {stripped}");
    }

    let full = sim
        .get_json(&format!(
            "/cgi-bin/user/get?access_token={old_token}&userid=ZhangSan"
        ))
        .await;
    assert_eq!(full["gender"], "1");
    assert_eq!(full["mobile"], "13800138000");
    assert_eq!(full["biz_mail"], "zhangsan@corp.example.com");
    assert_eq!(full["email"], "zhangsan@gmail.example");
    assert_eq!(full["avatar"], "https://wework.qpic.cn/wwpic/zhangsan/0");
    assert_eq!(full["status"], 1);
    assert_eq!(full["is_leader_in_dept"], json!([1]));
    assert_eq!(full["direct_leader"], json!(["wangwu"]));

    control.set_stripped_fields_absent(true);
    let absent = sim
        .get_json(&format!(
            "/cgi-bin/user/get?access_token={new_token}&userid=ZhangSan"
        ))
        .await;
    for key in sensitive {
        assert!(absent.get(key).is_none(), "{key} absent: {absent}");
    }

    control.set_created_after_2022(OLD_APP, true);
    let now_stripped = sim
        .get_json(&format!(
            "/cgi-bin/user/get?access_token={old_token}&userid=lisi"
        ))
        .await;
    assert!(now_stripped.get("mobile").is_none(), "{now_stripped}");
}

#[actix_web::test]
async fn user_get_applies_the_visible_range_and_case_insensitive_userids() {
    let sim = sim().await;
    let control = &sim.control;
    let token = sim.token(NEW_SECRET).await;
    let user = |userid: &str| format!("/cgi-bin/user/get?access_token={token}&userid={userid}");

    assert_errcode(&sim.get_json(&user("wujiu")).await, 60011, "outside range");
    let answer = sim.get_json(&user("nobody")).await;
    assert_errcode(&answer, 60111, "unknown");
    assert!(answer["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("userid not found"));
    assert_errcode(
        &sim.get_json("/cgi-bin/user/get?access_token=x").await,
        40014,
        "token first",
    );
    assert_eq!(sim.get_json(&user("zhangsan")).await["userid"], "ZhangSan");
    assert_eq!(sim.get_json(&user("ZHAOLIU")).await["status"], 2);

    control.set_out_of_range_errcode(NEW_APP, 60111);
    assert_errcode(&sim.get_json(&user("wujiu")).await, 60111, "switched");

    let old = sim.token(OLD_SECRET).await;
    let answer = sim
        .get_json(&format!(
            "/cgi-bin/user/get?access_token={old}&userid=wujiu"
        ))
        .await;
    assert_eq!(answer["department"], json!([5]), "{answer}");
}

#[actix_web::test]
async fn departments_and_tags_follow_the_visible_range() {
    let sim = sim().await;
    let token = sim.token(NEW_SECRET).await;
    let ids = |answer: &Value, key: &str| -> Vec<u64> {
        answer[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_u64().unwrap())
            .collect()
    };

    let all = sim
        .get_json(&format!("/cgi-bin/department/list?access_token={token}"))
        .await;
    assert_eq!(
        ids(&all, "department"),
        vec![1, 2, 3, 4],
        "dept 5 hidden: {all}"
    );
    assert_eq!(all["department"][0]["parentid"], 0);
    assert_eq!(all["department"][0]["name"], "总部");
    let sub = sim
        .get_json(&format!(
            "/cgi-bin/department/list?access_token={token}&id=2"
        ))
        .await;
    assert_eq!(ids(&sub, "department"), vec![2, 3]);
    let simple = sim
        .get_json(&format!(
            "/cgi-bin/department/simplelist?access_token={token}&id=1"
        ))
        .await;
    assert_eq!(ids(&simple, "department_id"), vec![1, 2, 3, 4]);
    let one = sim
        .get_json(&format!(
            "/cgi-bin/department/get?access_token={token}&id=3"
        ))
        .await;
    assert_eq!(one["department"]["name"], "平台组");
    assert_eq!(one["department"]["department_leader"], json!(["ZhangSan"]));

    for (id, errcode) in [("99", 60003), ("abc", 60123), ("0", 60123), ("5", 60011)] {
        let answer = sim
            .get_json(&format!(
                "/cgi-bin/department/get?access_token={token}&id={id}"
            ))
            .await;
        assert_errcode(&answer, errcode, &format!("department id {id}"));
    }

    let tags = sim
        .get_json(&format!("/cgi-bin/tag/list?access_token={token}"))
        .await;
    assert_eq!(
        tags["taglist"],
        json!([{"tagid":1,"tagname":"管理员"},{"tagid":2,"tagname":"研发"}])
    );
    let admins = sim
        .get_json(&format!("/cgi-bin/tag/get?access_token={token}&tagid=1"))
        .await;
    assert_eq!(
        admins["userlist"],
        json!([{"userid":"ZhangSan","name":"张三"}])
    );
    let rd = sim
        .get_json(&format!("/cgi-bin/tag/get?access_token={token}&tagid=2"))
        .await;
    assert_eq!(rd["partylist"], json!([2]));
    assert_errcode(
        &sim.get_json(&format!("/cgi-bin/tag/get?access_token={token}&tagid=9"))
            .await,
        40068,
        "tag",
    );
}

#[actix_web::test]
async fn trusted_ips_refuse_other_callers_with_60020_but_allow_gettoken() {
    let sim = sim().await;
    let control = &sim.control;
    control.set_trusted_ips(NEW_APP, Some(vec!["10.1.2.3".into()]));
    let token = sim.token(NEW_SECRET).await;
    let answer = sim
        .get_json(&format!(
            "/cgi-bin/user/get?access_token={token}&userid=lisi"
        ))
        .await;
    assert_errcode(&answer, 60020, "untrusted ip");
    assert!(answer["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("not allow to access from your ip"));
    control.set_trusted_ips(NEW_APP, Some(vec!["127.0.0.1".into()]));
    let answer = sim
        .get_json(&format!(
            "/cgi-bin/user/get?access_token={token}&userid=lisi"
        ))
        .await;
    assert_eq!(answer["errcode"], 0);
}

#[actix_web::test]
async fn the_rate_limit_answers_45009_until_the_next_minute() {
    let sim = sim().await;
    let control = &sim.control;
    control.set_rate_limit(2);
    let uri = format!("/cgi-bin/gettoken?corpid={CORP}&corpsecret={NEW_SECRET}");
    assert_eq!(sim.get_json(&uri).await["errcode"], 0);
    assert_eq!(sim.get_json(&uri).await["errcode"], 0);
    assert_errcode(&sim.get_json(&uri).await, 45009, "over the limit");
    control.advance_clock(Duration::from_secs(60));
    assert_eq!(sim.get_json(&uri).await["errcode"], 0);

    control.set_rate_limit(DEFAULT_RATE_LIMIT_PER_MINUTE);
    let debug = format!(
        "/cgi-bin/tag/list?debug=1&access_token={}",
        sim.token(NEW_SECRET).await
    );
    for _ in 0..5 {
        assert_eq!(sim.get_json(&debug).await["errcode"], 0);
    }
    assert_errcode(
        &sim.get_json(&debug).await,
        45009,
        "debug=1 over 5 a minute",
    );
}

#[actix_web::test]
async fn injected_faults_are_counted_down_and_calls_are_counted() {
    let sim = sim().await;
    let control = &sim.control;
    let uri = format!("/cgi-bin/gettoken?corpid={CORP}&corpsecret={NEW_SECRET}");
    control.inject(Fault::new("/cgi-bin/gettoken", FaultKind::Errcode(-1), 2));
    control.inject(Fault::new(
        "/cgi-bin/gettoken",
        FaultKind::HttpStatus(502),
        1,
    ));
    control.inject(Fault::new("/cgi-bin/gettoken", FaultKind::NonJson, 1));
    control.inject(Fault::new(
        "/cgi-bin/gettoken",
        FaultKind::Delay(Duration::from_millis(20)),
        1,
    ));

    assert_errcode(&sim.get_json(&uri).await, -1, "first");
    assert_errcode(&sim.get_json(&uri).await, -1, "second");
    let response = sim.get(&uri).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let response = sim.get(&uri).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = atest::read_body(response).await;
    assert!(
        serde_json::from_slice::<Value>(&body).is_err(),
        "non-JSON body"
    );
    let started = std::time::Instant::now();
    assert_eq!(
        sim.get_json(&uri).await["errcode"],
        0,
        "delayed, then normal"
    );
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(sim.get_json(&uri).await["errcode"], 0, "faults used up");

    assert_eq!(control.calls("/cgi-bin/gettoken"), 6);
    assert_eq!(control.calls("/cgi-bin/user/get"), 0);
    assert!(control.pending_faults().is_empty());
}

#[actix_web::test]
async fn the_sim_endpoints_mirror_the_control_api() {
    let sim = sim().await;
    let control = &sim.control;
    let answer = sim
        .post_json(
            "/_sim/faults",
            json!({ "path": "/cgi-bin/tag/list", "errcode": 45033, "times": 1 }),
        )
        .await;
    assert_eq!(answer["ok"], true);
    assert_eq!(control.pending_faults().len(), 1);
    sim.post_json("/_sim/settings", json!({ "expired_token_errcode": 40014 }))
        .await;
    assert_eq!(control.settings().expired_token_errcode, 40014);
    sim.post_json(
        "/_sim/apps/1000002",
        json!({ "redirect_domain": "rp.example" }),
    )
    .await;
    assert_eq!(
        control
            .directory()
            .app(NEW_APP)
            .unwrap()
            .redirect_domain
            .as_deref(),
        Some("rp.example")
    );
    sim.post_json("/_sim/apps/1000002", json!({ "redirect_domain": null }))
        .await;
    assert_eq!(
        control.directory().app(NEW_APP).unwrap().redirect_domain,
        None
    );
    let before = control.now();
    sim.post_json("/_sim/clock/advance", json!({ "seconds": 3600 }))
        .await;
    assert!(control.now() >= before + 3600);
    let calls = sim.get_json("/_sim/calls").await;
    assert_eq!(calls["calls"], json!({}), "control calls are not counted");

    let request = atest::TestRequest::post()
        .uri("/_sim/faults")
        .set_payload(r#"{"path":"/x","errcode":1,"non_json":true}"#);
    let response = sim.send(request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn the_web_login_page_lists_members_and_escapes_what_it_echoes() {
    let sim = sim().await;
    let uri = format!(
        "/wwlogin/sso/login?login_type=CorpApp&appid={CORP}&agentid={NEW_APP}&redirect_uri={}&state={}",
        enc(CALLBACK),
        enc("\"><script>alert(1)</script>")
    );
    let response = sim.get(&uri).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = String::from_utf8(atest::read_body(response).await.to_vec()).unwrap();
    assert!(!body.contains("<script>"), "escaped");
    assert!(body.contains("&lt;script&gt;"));
    for expected in [
        "张三",
        "ZhangSan",
        "平台组",
        "oSimNonMember01",
        "name=\"deny\"",
        "/wwlogin/sso/login/approve",
        "不在应用可见范围",
    ] {
        assert!(body.contains(expected), "page shows {expected}");
    }
    let english = sim.get(&format!("{uri}&lang=en")).await;
    let body = String::from_utf8(atest::read_body(english).await.to_vec()).unwrap();
    assert!(body.contains("Log in with WeCom") && body.contains("Platform"));
}

#[actix_web::test]
async fn web_login_validates_every_parameter_again_at_approve() {
    let sim = sim().await;
    let control = &sim.control;
    control.set_redirect_domain(NEW_APP, Some("rp.example".into()));
    let base = |q: String| format!("/wwlogin/sso/login/approve?{q}&userid=lisi");
    let cases = [
        (
            base(web_login_query(NEW_APP, CALLBACK).replace("CorpApp", "ServiceApp")),
            "wrong_login_type",
        ),
        (
            base(web_login_query(NEW_APP, CALLBACK).replace(CORP, "wwother")),
            "unknown_corp",
        ),
        (base(web_login_query("999", CALLBACK)), "unknown_app"),
        (
            base(web_login_query(NEW_APP, "https://evil.example/cb")),
            "redirect_domain_mismatch",
        ),
        (
            base(web_login_query(NEW_APP, "https://rp.example:8443/cb")),
            "redirect_domain_mismatch",
        ),
        (
            base(web_login_query(NEW_APP, "not a url")),
            "invalid_redirect_uri",
        ),
        (
            format!(
                "/wwlogin/sso/login/approve?{}&userid=wujiu",
                web_login_query(NEW_APP, CALLBACK)
            ),
            "no_permission",
        ),
        (
            format!(
                "/wwlogin/sso/login/approve?{}&userid=ghost",
                web_login_query(NEW_APP, CALLBACK)
            ),
            "unknown_member",
        ),
        (
            format!(
                "/wwlogin/sso/login/approve?{}",
                web_login_query(NEW_APP, CALLBACK)
            ),
            "missing_param",
        ),
    ];
    for (uri, expected) in cases {
        let (code, body) = sim.error_page(&uri).await;
        assert_eq!(code, expected, "{uri}");
        assert!(body.contains("<h1>"), "{uri}");
    }
    let (_, body) = sim
        .error_page(&base(web_login_query(NEW_APP, "https://evil.example/cb")))
        .await;
    assert!(body.contains("该链接无法访问"));
}

#[actix_web::test]
async fn approve_redirects_append_to_an_existing_query_and_denial_sends_state_only() {
    let sim = sim().await;
    let redirect = "https://rp.example/cb?tenant=a%20b#frag";
    let uri = format!(
        "/wwlogin/sso/login/approve?{}&userid=lisi",
        web_login_query(NEW_APP, redirect)
    );
    let location = sim.approve(&uri).await;
    assert_eq!(query(&location, "tenant").as_deref(), Some("a b"));
    assert!(query(&location, "code").is_some());
    assert_eq!(location.fragment(), Some("frag"));
    assert_eq!(location.path(), "/cb");

    let denied = sim.approve(&web_login_approve(NEW_APP, "deny=1")).await;
    assert_eq!(denied.query(), Some("state=st8"));

    let legacy = sim.approve(&format!(
            "/wwopen/sso/qrConnect/approve?appid={CORP}&agentid={NEW_APP}&redirect_uri={}&state=st8&userid=lisi",
            enc(CALLBACK)
        ),
    )
    .await;
    assert_eq!(query(&legacy, "appid").as_deref(), Some(CORP));
    assert!(query(&legacy, "code").is_some());
}

#[actix_web::test]
async fn the_oauth_page_offers_consent_and_the_ua_gate_refuses_other_browsers() {
    let sim = sim().await;
    let control = &sim.control;
    let page = format!(
        "/connect/oauth2/authorize?appid={CORP}&redirect_uri={}&response_type=code&scope=snsapi_privateinfo&state=st8&agentid={NEW_APP}",
        enc(CALLBACK)
    );
    let response = sim.get(&page).await;
    let body = String::from_utf8(atest::read_body(response).await.to_vec()).unwrap();
    assert!(body.contains("name=\"consent\""), "consent box");
    assert!(body.contains("/connect/oauth2/authorize/approve"));

    let (code, _) = sim
        .error_page(&page.replace("snsapi_privateinfo", "snsapi_userinfo"))
        .await;
    assert_eq!(code, "invalid_param");

    control.set_require_wxwork_ua(true);
    let (code, body) = sim.error_page(&page).await;
    assert_eq!(code, "not_in_wecom_client");
    assert!(body.contains("请在企业微信客户端打开链接"));
    let inside = atest::TestRequest::get().uri(&page).insert_header((
        "user-agent",
        "Mozilla/5.0 wxwork/4.1.0 MicroMessenger/7.0.1",
    ));
    let response = sim.send(inside).await;
    assert!(response.headers().get("x-sim-error").is_none());
}

/// Sends one raw HTTP/1.1 request, so this module needs no HTTP client crate.
async fn raw_get(base: &Url, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = format!("{}:{}", base.host_str().unwrap(), base.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn simulators_start_on_their_own_ports_serve_and_stop() {
    let first = Simulator::start("127.0.0.1:0", Directory::sample())
        .await
        .unwrap();
    let second = Simulator::start("127.0.0.1:0", Directory::sample())
        .await
        .unwrap();
    assert_ne!(first.base_url(), second.base_url());
    assert_eq!(first.base_url().path(), "/");
    assert!(first.base_url().as_str().starts_with("http://127.0.0.1:"));

    let response = raw_get(
        &first.base_url(),
        &format!("/cgi-bin/gettoken?corpid={CORP}&corpsecret={NEW_SECRET}"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"access_token\""), "{response}");
    assert_eq!(first.control().calls("/cgi-bin/gettoken"), 1);
    assert_eq!(second.control().calls("/cgi-bin/gettoken"), 0);

    let base = first.base_url();
    first.stop().await;
    assert!(
        tokio::net::TcpStream::connect(format!("127.0.0.1:{}", base.port().unwrap()))
            .await
            .is_err()
    );
    drop(second);
}

/// Event callbacks: the simulator as WeCom sending events to a receiver built on
/// `crate::wecom::events`, served over a real socket.
mod event_callbacks {
    use std::sync::Mutex;

    use actix_web::{web, HttpResponse, HttpServer};

    use super::*;
    use crate::wecom::events::{
        parse_envelope, Channel, EventCipher, EventQuery, EventReceiver, WeComEvent,
    };

    const TOKEN: &str = "T0kenForOidcTests";
    const KEY: &str = "Wq8vRkT3mXa9LzPq2NcY7dHf0JsB4uE6gKiO1tMnV5C";
    const CONTACT_TOKEN: &str = "ContactT0ken";
    const CONTACT_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";

    /// What the test receiver saw: opened events, refusals, and how many POSTs to fail first.
    #[derive(Default)]
    struct Inbox {
        events: Mutex<Vec<(Channel, Option<String>, WeComEvent)>>,
        refused: Mutex<Vec<String>>,
        fail_next: Mutex<usize>,
        /// Answer the URL check with a trailing newline, as some reference servers do.
        echo_newline: bool,
    }

    async fn verify(
        receiver: web::Data<EventReceiver>,
        inbox: web::Data<Inbox>,
        query: web::Query<EventQuery>,
    ) -> HttpResponse {
        match receiver.verify_url(&query) {
            Ok((_, mut echo)) => {
                if inbox.echo_newline {
                    echo.push(b'\n');
                }
                HttpResponse::Ok().body(echo)
            }
            Err(error) => HttpResponse::BadRequest().body(error.to_string()),
        }
    }

    async fn receive(
        receiver: web::Data<EventReceiver>,
        inbox: web::Data<Inbox>,
        query: web::Query<EventQuery>,
        body: web::Bytes,
    ) -> HttpResponse {
        {
            let mut fail = inbox.fail_next.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return HttpResponse::ServiceUnavailable().finish();
            }
        }
        match receiver.open(&query, &body) {
            Ok(opened) => {
                inbox.events.lock().unwrap().push((
                    opened.channel,
                    opened.message.agent_id,
                    opened.message.event,
                ));
                HttpResponse::Ok().finish()
            }
            Err(error) => {
                inbox.refused.lock().unwrap().push(error.to_string());
                HttpResponse::BadRequest().finish()
            }
        }
    }

    struct Receiver {
        url: String,
        inbox: web::Data<Inbox>,
        handle: actix_web::dev::ServerHandle,
    }

    impl Receiver {
        fn events(&self) -> Vec<(Channel, Option<String>, WeComEvent)> {
            std::mem::take(&mut *self.inbox.events.lock().unwrap())
        }

        async fn stop(self) {
            self.handle.stop(true).await;
        }
    }

    /// A receiver for both channels of the sample corporation, on its own port.
    async fn receiver(inbox: Inbox) -> Receiver {
        let receiver = web::Data::new(EventReceiver::new(vec![
            (Channel::App, EventCipher::new(TOKEN, KEY, CORP).unwrap()),
            (
                Channel::ContactSync,
                EventCipher::new(CONTACT_TOKEN, CONTACT_KEY, CORP).unwrap(),
            ),
        ]));
        let inbox = web::Data::new(inbox);
        let data = (receiver.clone(), inbox.clone());
        let server = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.0.clone())
                .app_data(data.1.clone())
                .route("/wecom/events", web::get().to(verify))
                .route("/wecom/events", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/wecom/events"),
            inbox,
            handle,
        }
    }

    /// The simulator with app 1000002 (and optionally the assistant) sending to `receiver`.
    async fn wired(receiver: &Receiver, contact: bool) -> TestSim {
        let sim = sim().await;
        sim.control
            .configure_events(NEW_APP, &receiver.url, TOKEN, KEY)
            .unwrap();
        if contact {
            sim.control
                .configure_contact_events(&receiver.url, CONTACT_TOKEN, CONTACT_KEY)
                .unwrap();
        }
        sim
    }

    fn delivery_query(delivery: &EventRequest) -> EventQuery {
        let pairs: std::collections::HashMap<String, String> =
            delivery.url.query_pairs().into_owned().collect();
        EventQuery {
            msg_signature: pairs.get("msg_signature").cloned(),
            timestamp: pairs.get("timestamp").cloned(),
            nonce: pairs.get("nonce").cloned(),
            echostr: None,
        }
    }

    #[test]
    fn simulator_sealing_reproduces_the_wechatpy_and_wxjava_vectors() {
        // wechatpy/wechatpy tests/test_crypto.py test_encrypt_message (T3 of wecom-events.md).
        let t3 = EventTarget {
            url: Url::parse("https://rp.example/wecom/events").unwrap(),
            cipher: EventCipher::new(
                "123456",
                "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
                "wx49f0ab532d5d035a",
            )
            .unwrap(),
            prefix: PrefixMode::Digits,
            change_contact: true,
        };
        let reply = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
        let sealed = events::seal(
            EventSource::app("1"),
            &t3,
            reply,
            events::Sealing {
                agent_id: Some("1"),
                timestamp: 1_411_525_903,
                nonce: "461056294",
                random: b"1234567890123456",
            },
        );
        assert_eq!(
            parse_envelope(sealed.body.as_bytes()).unwrap().encrypt,
            "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
        );
        let query = delivery_query(&sealed);
        assert_eq!(
            query.msg_signature.as_deref(),
            Some("407518b7649e86ef23978113f92d27afa9296533")
        );
        // The signature survives the URL's percent-encoding and the envelope opens.
        let receiver = EventReceiver::new(vec![(Channel::App, t3.cipher.clone())]);
        let opened = receiver.open(&query, sealed.body.as_bytes()).unwrap();
        assert_eq!(
            opened.message.event,
            WeComEvent::Other {
                event: "text".into(),
                change_type: None
            }
        );

        // binarywang/WxJava WxCryptUtilTest (T5).
        let t5 = EventCipher::new(
            "anyToken",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "wxb11529c136998cb6",
        )
        .unwrap();
        let sealed = events::seal(
            EventSource::ContactSync,
            &EventTarget {
                cipher: t5.clone(),
                ..t3
            },
            "我是中文abcd123",
            events::Sealing {
                agent_id: None,
                timestamp: 1,
                nonce: "2",
                random: b"aaaabbbbccccdddd",
            },
        );
        let encrypt = parse_envelope(sealed.body.as_bytes()).unwrap().encrypt;
        assert_eq!(
            encrypt,
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        );
        assert_eq!(t5.decrypt(&encrypt).unwrap(), "我是中文abcd123".as_bytes());
        assert!(!sealed.body.contains("AgentID"), "{}", sealed.body);
    }

    #[actix_web::test]
    async fn the_url_check_passes_only_for_the_exact_plaintext() {
        let good = receiver(Inbox::default()).await;
        let sim = wired(&good, true).await;
        assert!(sim
            .control
            .verify_event_url(&EventSource::app(NEW_APP))
            .await
            .unwrap());
        assert!(sim
            .control
            .verify_event_url(&EventSource::ContactSync)
            .await
            .unwrap());

        let newline = receiver(Inbox {
            echo_newline: true,
            ..Inbox::default()
        })
        .await;
        let sim2 = wired(&newline, false).await;
        assert!(!sim2
            .control
            .verify_event_url(&EventSource::app(NEW_APP))
            .await
            .unwrap());

        // Settings the receiver does not know: it refuses, the check fails.
        sim.control
            .configure_events(OLD_APP, &good.url, "OtherToken", KEY)
            .unwrap();
        assert!(!sim
            .control
            .verify_event_url(&EventSource::app(OLD_APP))
            .await
            .unwrap());
        assert!(sim
            .control
            .verify_event_url(&EventSource::app("999"))
            .await
            .is_err());
        assert!(sim
            .control
            .configure_events(NEW_APP, &good.url, TOKEN, &KEY[1..])
            .is_err());
        good.stop().await;
        newline.stop().await;
    }

    #[actix_web::test]
    async fn disabling_a_member_sends_update_and_unsubscribe_and_user_get_says_disabled() {
        let inbox = receiver(Inbox::default()).await;
        let sim = wired(&inbox, true).await;
        let deliveries = sim.control.disable_member("zhangsan").await.unwrap();
        assert!(deliveries.iter().all(Delivery::accepted), "{deliveries:?}");
        let disabled = WeComEvent::UserUpdated {
            userid: "ZhangSan".into(),
            new_userid: None,
            status: Some(2),
            departments_changed: false,
        };
        assert_eq!(
            inbox.events(),
            vec![
                (Channel::App, Some(NEW_APP.into()), disabled.clone()),
                (Channel::ContactSync, None, disabled),
                (
                    Channel::App,
                    Some(NEW_APP.into()),
                    WeComEvent::Unsubscribe {
                        userid: "ZhangSan".into()
                    }
                ),
            ]
        );
        let token = sim.token(NEW_SECRET).await;
        let member = sim
            .get_json(&format!(
                "/cgi-bin/user/get?access_token={token}&userid=ZhangSan"
            ))
            .await;
        assert_eq!(member["status"], 2, "{member}");

        sim.control.enable_member("ZhangSan").await.unwrap();
        let events: Vec<WeComEvent> = inbox.events().into_iter().map(|(_, _, e)| e).collect();
        assert_eq!(
            events.last(),
            Some(&WeComEvent::Subscribe {
                userid: "ZhangSan".into()
            })
        );
        let member = sim
            .get_json(&format!(
                "/cgi-bin/user/get?access_token={token}&userid=ZhangSan"
            ))
            .await;
        assert_eq!(member["status"], 1, "{member}");
        inbox.stop().await;
    }

    #[actix_web::test]
    async fn deleting_a_member_sends_delete_user_and_user_get_answers_60111() {
        let inbox = receiver(Inbox::default()).await;
        let sim = wired(&inbox, false).await;
        sim.control.delete_member("ZhangSan").await.unwrap();
        assert_eq!(
            inbox.events(),
            vec![
                (
                    Channel::App,
                    Some(NEW_APP.into()),
                    WeComEvent::UserDeleted {
                        userid: "ZhangSan".into()
                    }
                ),
                (
                    Channel::App,
                    Some(NEW_APP.into()),
                    WeComEvent::Unsubscribe {
                        userid: "ZhangSan".into()
                    }
                ),
            ]
        );
        let token = sim.token(NEW_SECRET).await;
        let answer = sim
            .get_json(&format!(
                "/cgi-bin/user/get?access_token={token}&userid=ZhangSan"
            ))
            .await;
        assert_eq!(answer["errcode"], 60111, "{answer}");
        // References went with the member: the directory is still valid.
        sim.control.directory().validate().unwrap();
        assert!(sim.control.delete_member("ZhangSan").await.is_err());
        inbox.stop().await;
    }

    #[actix_web::test]
    async fn renaming_a_member_sends_new_userid_and_user_get_follows_the_new_id() {
        let inbox = receiver(Inbox::default()).await;
        let sim = wired(&inbox, false).await;
        sim.control
            .rename_member("ZhangSan", "zhangsan01")
            .await
            .unwrap();
        assert_eq!(
            inbox.events(),
            vec![(
                Channel::App,
                Some(NEW_APP.into()),
                WeComEvent::UserUpdated {
                    userid: "ZhangSan".into(),
                    new_userid: Some("zhangsan01".into()),
                    status: None,
                    departments_changed: false
                }
            )]
        );
        let token = sim.token(NEW_SECRET).await;
        let old = sim
            .get_json(&format!(
                "/cgi-bin/user/get?access_token={token}&userid=ZhangSan"
            ))
            .await;
        assert_eq!(old["errcode"], 60111, "{old}");
        let new = sim
            .get_json(&format!(
                "/cgi-bin/user/get?access_token={token}&userid=zhangsan01"
            ))
            .await;
        assert_eq!(
            (new["errcode"].clone(), new["name"].clone()),
            (json!(0), json!("张三"))
        );
        let directory = sim.control.directory();
        directory.validate().unwrap();
        assert_eq!(
            directory.tag(1).unwrap().userlist,
            vec!["zhangsan01".to_owned()]
        );
        assert!(sim
            .control
            .rename_member("lisi", "ZHANGSAN01")
            .await
            .is_err());
        inbox.stop().await;
    }

    #[actix_web::test]
    async fn leaving_one_apps_range_unsubscribes_from_that_app_only() {
        let inbox = receiver(Inbox::default()).await;
        let sim = wired(&inbox, true).await;
        sim.control
            .remove_from_visible_range(NEW_APP, "ZhangSan")
            .await
            .unwrap();
        assert_eq!(
            inbox.events(),
            vec![(
                Channel::App,
                Some(NEW_APP.into()),
                WeComEvent::Unsubscribe {
                    userid: "ZhangSan".into()
                }
            )]
        );
        let new_token = sim.token(NEW_SECRET).await;
        let hidden = sim
            .get_json(&format!(
                "/cgi-bin/user/get?access_token={new_token}&userid=ZhangSan"
            ))
            .await;
        assert_eq!(hidden["errcode"], DEFAULT_OUT_OF_RANGE_ERRCODE, "{hidden}");
        let old_token = sim.token(OLD_SECRET).await;
        let visible = sim
            .get_json(&format!(
                "/cgi-bin/user/get?access_token={old_token}&userid=ZhangSan"
            ))
            .await;
        assert_eq!(visible["errcode"], 0, "{visible}");
        // Already out of range: nothing more to say.
        assert!(sim
            .control
            .remove_from_visible_range(NEW_APP, "ZhangSan")
            .await
            .unwrap()
            .is_empty());
        inbox.stop().await;
    }

    #[actix_web::test]
    async fn failed_deliveries_are_retried_three_times_and_can_be_replayed() {
        let inbox = receiver(Inbox {
            fail_next: Mutex::new(2),
            ..Inbox::default()
        })
        .await;
        let sim = wired(&inbox, false).await;
        let deliveries = sim
            .control
            .send_event(SimEvent::DeleteUser {
                userid: "lisi".into(),
            })
            .await;
        assert_eq!(deliveries.len(), 1);
        assert_eq!(
            deliveries[0].attempts,
            vec![
                Attempt::Status(503),
                Attempt::Status(503),
                Attempt::Status(200)
            ]
        );
        assert!(deliveries[0].accepted());

        *inbox.inbox.fail_next.lock().unwrap() = 10;
        let replay = sim.control.deliver(deliveries[0].request.clone()).await;
        assert_eq!(replay.attempts.len(), 1 + DELIVERY_RETRIES);
        assert!(!replay.accepted());
        *inbox.inbox.fail_next.lock().unwrap() = 0;
        let replay = sim.control.deliver(deliveries[0].request.clone()).await;
        assert!(replay.accepted());
        assert_eq!(replay.request, deliveries[0].request);
        let delete = (
            Channel::App,
            Some(NEW_APP.to_owned()),
            WeComEvent::UserDeleted {
                userid: "lisi".into(),
            },
        );
        assert_eq!(inbox.events(), vec![delete.clone(), delete]);

        // Nobody listening: every attempt fails.
        let closed = receiver(Inbox::default()).await;
        let url = closed.url.clone();
        closed.stop().await;
        sim.control
            .configure_events(NEW_APP, &url, TOKEN, KEY)
            .unwrap();
        let lost = sim
            .control
            .send_event(SimEvent::Subscribe {
                userid: "lisi".into(),
            })
            .await;
        assert_eq!(lost[0].attempts.len(), 1 + DELIVERY_RETRIES);
        assert!(lost[0]
            .attempts
            .iter()
            .all(|a| matches!(a, Attempt::Failed(_))));
        inbox.stop().await;
    }

    #[actix_web::test]
    async fn every_event_kind_and_prefix_mode_opens_as_sent() {
        let inbox = receiver(Inbox::default()).await;
        let sim = wired(&inbox, true).await;
        let user = || "lisi".to_owned();
        let cases = [
            (
                SimEvent::Subscribe { userid: user() },
                WeComEvent::Subscribe { userid: user() },
            ),
            (
                SimEvent::Unsubscribe { userid: user() },
                WeComEvent::Unsubscribe { userid: user() },
            ),
            (
                SimEvent::EnterAgent { userid: user() },
                WeComEvent::EnterAgent { userid: user() },
            ),
            (
                SimEvent::CreateUser { userid: user() },
                WeComEvent::UserCreated { userid: user() },
            ),
            (
                SimEvent::UpdateUser {
                    userid: user(),
                    new_userid: Some("lisi2".into()),
                    status: Some(5),
                    department: Some(vec![1, 2]),
                },
                WeComEvent::UserUpdated {
                    userid: user(),
                    new_userid: Some("lisi2".into()),
                    status: Some(5),
                    departments_changed: true,
                },
            ),
            (
                SimEvent::DeleteUser { userid: user() },
                WeComEvent::UserDeleted { userid: user() },
            ),
            (
                SimEvent::Party {
                    change: PartyChange::Delete,
                    id: 4,
                },
                WeComEvent::PartyChanged,
            ),
            (
                SimEvent::UpdateTag {
                    tag_id: 2,
                    add_users: vec![user()],
                    del_users: vec!["wangwu".into()],
                },
                WeComEvent::TagChanged { tag_id: 2 },
            ),
            (
                SimEvent::BatchJobResult {
                    job_type: "replace_user".into(),
                },
                WeComEvent::BatchJobResult {
                    job_type: "replace_user".into(),
                },
            ),
        ];
        for mode in [
            PrefixMode::Digits,
            PrefixMode::Alphanumeric,
            PrefixMode::Binary,
        ] {
            sim.control
                .set_event_prefix_mode(&EventSource::app(NEW_APP), mode);
            sim.control
                .set_event_prefix_mode(&EventSource::ContactSync, mode);
            for (sent, expected) in &cases {
                let deliveries = sim.control.send_event(sent.clone()).await;
                assert!(deliveries.iter().all(Delivery::accepted), "{sent:?}");
                let mut want = vec![(Channel::App, Some(NEW_APP.to_owned()), expected.clone())];
                if sent.is_change_contact() {
                    want.push((Channel::ContactSync, None, expected.clone()));
                }
                assert_eq!(inbox.events(), want, "{mode:?} {sent:?}");
            }
        }
        // Without change_contact on the app URL only the assistant hears of member changes.
        sim.control.set_app_change_contact(NEW_APP, false);
        sim.control
            .send_event(SimEvent::DeleteUser { userid: user() })
            .await;
        assert_eq!(
            inbox.events(),
            vec![(
                Channel::ContactSync,
                None,
                WeComEvent::UserDeleted { userid: user() }
            )]
        );
        inbox.stop().await;
    }

    #[actix_web::test]
    async fn forged_and_hostile_posts_are_refused_by_the_receiver() {
        let inbox = receiver(Inbox::default()).await;
        let sim = wired(&inbox, false).await;
        let app = EventSource::app(NEW_APP);
        let sealed = sim
            .control
            .seal_event(&app, "<xml><ToUserName>x</ToUserName><MsgType>event</MsgType><Event>subscribe</Event><FromUserName>lisi</FromUserName></xml>")
            .unwrap();
        let query = sealed.url.query().unwrap().to_owned();
        let forged = query.replace("msg_signature=", "msg_signature=0");
        let answer = sim
            .control
            .post_event_raw(&app, &forged, sealed.body.clone())
            .await
            .unwrap();
        assert_eq!(answer, Attempt::Status(400));
        let answer = sim
            .control
            .post_event_raw(&app, &query, "<!DOCTYPE xml><xml/>")
            .await
            .unwrap();
        assert_eq!(answer, Attempt::Status(400));
        let answer = sim
            .control
            .post_event_raw(&app, &query, sealed.body.clone())
            .await
            .unwrap();
        assert_eq!(answer, Attempt::Status(200));
        assert_eq!(
            *inbox.inbox.refused.lock().unwrap(),
            vec![
                "signature mismatch".to_owned(),
                "malformed XML: DOCTYPE refused".to_owned()
            ]
        );
        inbox.stop().await;
    }

    #[actix_web::test]
    async fn the_control_surface_configures_checks_sends_and_changes_members() {
        let inbox = receiver(Inbox::default()).await;
        let sim = sim().await;
        let ok = sim
            .post_json(
                "/_sim/events/config",
                json!({"agent_id": NEW_APP, "url": inbox.url, "token": TOKEN, "aes_key": KEY, "prefix": "binary"}),
            )
            .await;
        assert_eq!(ok["ok"], true, "{ok}");
        let verified = sim
            .post_json("/_sim/events/verify", json!({"agent_id": NEW_APP}))
            .await;
        assert_eq!(verified["passed"], true, "{verified}");

        let sent = sim
            .post_json(
                "/_sim/events/send",
                json!({"type": "update_user", "userid": "lisi", "status": 5}),
            )
            .await;
        assert_eq!(sent["deliveries"][0]["source"], "app:1000002", "{sent}");
        assert_eq!(sent["deliveries"][0]["accepted"], true, "{sent}");
        assert_eq!(sent["deliveries"][0]["attempts"], json!([200]), "{sent}");

        let disabled = sim
            .post_json("/_sim/members/ZhangSan/disable", json!({}))
            .await;
        assert_eq!(
            disabled["deliveries"].as_array().unwrap().len(),
            2,
            "{disabled}"
        );
        assert_eq!(
            inbox
                .events()
                .into_iter()
                .map(|(_, _, event)| event)
                .collect::<Vec<_>>(),
            vec![
                WeComEvent::UserUpdated {
                    userid: "lisi".into(),
                    new_userid: None,
                    status: Some(5),
                    departments_changed: false
                },
                WeComEvent::UserUpdated {
                    userid: "ZhangSan".into(),
                    new_userid: None,
                    status: Some(2),
                    departments_changed: false
                },
                WeComEvent::Unsubscribe {
                    userid: "ZhangSan".into()
                },
            ]
        );

        let response = sim
            .send(
                atest::TestRequest::post()
                    .uri("/_sim/members/nobody/delete")
                    .set_payload("{}"),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = sim
            .send(
                atest::TestRequest::post()
                    .uri("/_sim/events/config")
                    .set_payload(
                        json!({"url": inbox.url, "token": TOKEN, "aes_key": "short"}).to_string(),
                    ),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        inbox.stop().await;
    }
}

#[actix_web::test]
async fn message_send_delivers_to_reachable_members_and_reports_the_rest() {
    let sim = sim().await;
    let token = sim.token(NEW_SECRET).await;
    let uri = format!("/cgi-bin/message/send?access_token={token}");
    let card = |touser: &str, agentid: Value| {
        json!({
            "touser": touser, "msgtype": "textcard", "agentid": agentid,
            "textcard": { "title": "t", "description": "d", "url": "https://idp.example/device", "btntxt": "去批准" },
        })
    };

    let answer = sim
        .post_json(
            &uri,
            card(
                "lisi|wujiu|zhaoliu|nobody",
                json!(NEW_APP.parse::<i64>().unwrap()),
            ),
        )
        .await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    assert_eq!(
        answer["invaliduser"], "wujiu|zhaoliu|nobody",
        "out of range, disabled, unknown"
    );
    let sent = sim.control.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].touser, vec!["lisi".to_owned()]);
    assert_eq!(sent[0].content["url"], "https://idp.example/device");

    let none = sim.post_json(&uri, card("wujiu", json!(NEW_APP))).await;
    assert_errcode(&none, 81013, "no reachable recipient");
    let wrong_agent = sim.post_json(&uri, card("lisi", json!(1))).await;
    assert_errcode(&wrong_agent, 40056, "another app's agentid");
    assert_eq!(sim.control.messages().len(), 1);
}
