//! The client against a wiremock stand-in for WeCom: token caching and renewal, retries, error
//! mapping, profile parsing and groups, each counted in requests.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::config::Config;

const SECRET: &str = "corp-secret-value-123";

fn settings(server: &MockServer, cache_secs: &str) -> (WeComSettings, WeComCredentials) {
    let config = Config::from_pairs([
        ("OIDC_ISSUER", "https://sso.example.com"),
        ("WECOM_CORP_ID", "ww-corp"),
        ("WECOM_CORP_SECRET", SECRET),
        ("WECOM_AGENT_ID", "1000002"),
        ("WECOM_API_BASE", &server.uri()),
        ("GROUPS_CACHE_SECS", cache_secs),
    ])
    .unwrap();
    let credentials = config.wecom.credentials.clone().unwrap();
    (config.wecom, credentials)
}

fn client_with(server: &MockServer, cache_secs: &str) -> WeComClient {
    let (settings, credentials) = settings(server, cache_secs);
    WeComClient::new(&settings, &credentials).unwrap()
}

fn client(server: &MockServer) -> WeComClient {
    client_with(server, "300")
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn wecom_error(errcode: i64, text: &str) -> ResponseTemplate {
    ok(json!({
        "errcode": errcode,
        "errmsg": format!("{text}, hint: [1700000000_12_abc], from ip: 203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"),
    }))
}

/// A `gettoken` request for our corp and secret.
fn gettoken_request() -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .and(query_param("corpid", "ww-corp"))
        .and(query_param("corpsecret", SECRET))
}

/// `gettoken` answering `token`.
fn gettoken(token: &str) -> Mock {
    gettoken_request().respond_with(ok(
        json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}),
    ))
}

/// `user/get` called with `token`.
fn user_get(token: &str) -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path("/cgi-bin/user/get"))
        .and(query_param("access_token", token))
}

fn zhangsan() -> Value {
    json!({
        "errcode": 0, "errmsg": "ok", "userid": "zhangsan", "name": "张三",
        "department": [3, 4], "main_department": 3, "position": "工程师", "status": 1,
        "email": "zhangsan@example.com", "biz_mail": "", "mobile": "", "gender": "1",
        "avatar": "https://wework.qpic.cn/x/0"
    })
}

#[tokio::test]
async fn the_access_token_is_fetched_once_and_reused_across_calls() {
    let server = MockServer::start().await;
    gettoken("tok1").expect(1).mount(&server).await;
    user_get("tok1")
        .respond_with(ok(zhangsan()))
        .expect(3)
        .mount(&server)
        .await;
    let client = client(&server);

    for _ in 0..3 {
        client.member("zhangsan").await.unwrap();
    }

    server.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_calls_on_a_cold_cache_make_exactly_one_gettoken() {
    let server = MockServer::start().await;
    gettoken_request()
        .respond_with(
            ok(json!({"errcode": 0, "access_token": "tok1", "expires_in": 7200}))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&server)
        .await;
    user_get("tok1")
        .respond_with(ok(zhangsan()))
        .expect(20)
        .mount(&server)
        .await;
    let client = client(&server);

    let calls = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.member("zhangsan").await })
    });
    for result in join_all(calls).await {
        assert_eq!(result.unwrap().unwrap().userid, "zhangsan");
    }

    server.verify().await;
}

#[tokio::test]
async fn a_burst_with_a_wrong_secret_makes_one_failing_gettoken_not_twenty() {
    let server = MockServer::start().await;
    gettoken_request()
        .respond_with(
            wecom_error(40001, "invalid credential").set_delay(Duration::from_millis(100)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);

    let results = join_all((0..20).map(|_| client.member("zhangsan"))).await;

    for result in results {
        let err = result.unwrap_err();
        assert_eq!(err.errcode(), Some(40001));
        assert_eq!(err.category(), FailureCategory::Misconfigured);
    }
    server.verify().await;
}

#[tokio::test]
async fn a_rejected_token_is_refetched_once_and_the_call_retried_once() {
    for errcode in [42001, 40014] {
        let server = MockServer::start().await;
        gettoken("tok1")
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        gettoken("tok2").expect(1).mount(&server).await;
        user_get("tok1")
            .respond_with(wecom_error(errcode, "access_token expired"))
            .expect(1)
            .mount(&server)
            .await;
        user_get("tok2")
            .respond_with(ok(zhangsan()))
            .expect(2)
            .mount(&server)
            .await;
        let client = client(&server);

        let member = client.member("zhangsan").await;
        assert!(member.is_ok(), "errcode {errcode}: {member:?}");
        client.member("zhangsan").await.unwrap();

        server.verify().await;
    }
}

#[tokio::test]
async fn a_burst_of_calls_rejecting_the_same_token_makes_one_refetch() {
    let server = MockServer::start().await;
    gettoken("tok1")
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    gettoken_request()
        .respond_with(
            ok(json!({"access_token": "tok2", "expires_in": 7200}))
                .set_delay(Duration::from_millis(100)),
        )
        .expect(1)
        .mount(&server)
        .await;
    user_get("tok1")
        .respond_with(wecom_error(42001, "access_token expired"))
        .expect(20)
        .mount(&server)
        .await;
    user_get("tok2")
        .respond_with(ok(zhangsan()))
        .expect(20)
        .mount(&server)
        .await;
    let client = client(&server);

    let results = join_all((0..20).map(|_| client.member("zhangsan"))).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    server.verify().await;
}

#[tokio::test]
async fn a_token_rejected_again_after_renewal_is_an_error_not_a_loop() {
    let server = MockServer::start().await;
    gettoken("tok1").expect(2).mount(&server).await;
    Mock::given(path("/cgi-bin/user/get"))
        .respond_with(wecom_error(42001, "access_token expired"))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);

    let err = client.member("zhangsan").await.unwrap_err();

    assert_eq!(err.errcode(), Some(42001));
    assert_eq!(err.category(), FailureCategory::Misconfigured);
    server.verify().await;
}

#[tokio::test]
async fn busy_answers_are_retried_with_backoff_until_success() {
    let server = MockServer::start().await;
    gettoken("tok1").expect(1).mount(&server).await;
    user_get("tok1")
        .respond_with(wecom_error(-1, "system busy"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    user_get("tok1")
        .respond_with(ok(zhangsan()))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);

    let started = Instant::now();
    client.member("zhangsan").await.unwrap();

    assert!(started.elapsed() >= Duration::from_millis(300));
    server.verify().await;
}

#[tokio::test]
async fn busy_answers_are_retried_at_most_three_times() {
    let server = MockServer::start().await;
    gettoken("tok1").expect(1).mount(&server).await;
    user_get("tok1")
        .respond_with(wecom_error(45033, "api concurrent out of limit"))
        .expect(4)
        .mount(&server)
        .await;
    let client = client(&server);

    let started = Instant::now();
    let err = client.member("zhangsan").await.unwrap_err();

    assert_eq!(err.errcode(), Some(45033));
    assert_eq!(err.category(), FailureCategory::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(2));
    server.verify().await;
}

#[tokio::test]
async fn an_untrusted_ip_is_not_a_token_problem_and_the_explanation_names_the_ip() {
    let server = MockServer::start().await;
    gettoken("tok1").expect(1).mount(&server).await;
    user_get("tok1")
        .respond_with(wecom_error(60020, "not allow to access from your ip"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);

    let err = client.member("zhangsan").await.unwrap_err();

    assert_eq!(err.errcode(), Some(60020));
    assert_eq!(err.category(), FailureCategory::Misconfigured);
    let explanation = err.admin_explanation();
    assert!(
        explanation.contains("203.0.113.7") && explanation.contains("企业可信IP"),
        "{explanation}"
    );
    server.verify().await;
}

#[tokio::test]
async fn transport_failures_become_typed_errors_without_retries() {
    type IsExpected = fn(&WeComError) -> bool;
    let cases: [(ResponseTemplate, IsExpected); 3] = [
        (
            ResponseTemplate::new(200).set_body_string("<html>gateway</html>"),
            |e| matches!(e, WeComError::InvalidResponse(_)),
        ),
        (ResponseTemplate::new(502), |e| {
            matches!(e, WeComError::HttpStatus(502))
        }),
        (
            ResponseTemplate::new(302).insert_header("location", "https://elsewhere.example/"),
            |e| matches!(e, WeComError::HttpStatus(302)),
        ),
    ];
    for (template, expected) in cases {
        let server = MockServer::start().await;
        gettoken("tok1").expect(1).mount(&server).await;
        user_get("tok1")
            .respond_with(template)
            .expect(1)
            .mount(&server)
            .await;
        let client = client(&server);

        let err = client.member("zhangsan").await.unwrap_err();

        assert!(expected(&err), "{err:?}");
        assert_eq!(err.category(), FailureCategory::Unavailable);
        server.verify().await;
    }
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    gettoken_request()
        .respond_with(
            ok(json!({"access_token": "tok1", "expires_in": 7200}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let (mut settings, credentials) = settings(&server, "300");
    settings.timeout = Duration::from_millis(300);
    let client = WeComClient::new(&settings, &credentials).unwrap();

    let err = client.member("zhangsan").await.unwrap_err();

    assert_eq!(err, WeComError::Timeout(Duration::from_millis(300)));
}

#[tokio::test]
async fn an_unreachable_api_is_unreachable_and_says_nothing_secret() {
    let config = Config::from_pairs([
        ("WECOM_CORP_ID", "ww-corp"),
        ("WECOM_CORP_SECRET", SECRET),
        ("WECOM_AGENT_ID", "1000002"),
        // Port 9 (discard) on loopback: nothing listens in a test environment.
        ("WECOM_API_BASE", "http://127.0.0.1:9"),
    ])
    .unwrap();
    let credentials = config.wecom.credentials.clone().unwrap();
    let client = WeComClient::new(&config.wecom, &credentials).unwrap();

    let err = client.check_credentials().await.unwrap_err();

    assert!(matches!(err, WeComError::Unreachable(_)), "{err:?}");
    for printed in [err.to_string(), format!("{err:?}"), err.admin_explanation()] {
        assert!(!printed.contains(SECRET), "{printed}");
    }
}

#[tokio::test]
async fn identify_accepts_every_spelling_of_userid_and_openid() {
    let member = |userid: &str| Identity::Member {
        userid: userid.into(),
        user_ticket: None,
    };
    let cases = [
        (
            json!({"errcode": 0, "errmsg": "ok", "userid": "zhangsan"}),
            member("zhangsan"),
        ),
        (
            json!({"errcode": 0, "UserId": "ZhangSan", "DeviceId": ""}),
            member("ZhangSan"),
        ),
        (
            json!({"errcode": 0, "openid": "o-1", "external_userid": "wm-1"}),
            Identity::NonMember {
                openid: "o-1".into(),
            },
        ),
        (
            json!({"errcode": 0, "OpenId": "o-2", "DeviceId": ""}),
            Identity::NonMember {
                openid: "o-2".into(),
            },
        ),
        (
            json!({"userid": "lisi", "user_ticket": "ticket-1"}),
            Identity::Member {
                userid: "lisi".into(),
                user_ticket: Some("ticket-1".into()),
            },
        ),
    ];
    let server = MockServer::start().await;
    gettoken("tok1").expect(1).mount(&server).await;
    let client = client(&server);
    for (index, (body, expected)) in cases.into_iter().enumerate() {
        let code = format!("code-{index}");
        Mock::given(method("GET"))
            .and(path("/cgi-bin/auth/getuserinfo"))
            .and(query_param("access_token", "tok1"))
            .and(query_param("code", code.as_str()))
            .respond_with(ok(body.clone()))
            .expect(1)
            .mount(&server)
            .await;

        assert_eq!(client.identify(&code).await.unwrap(), expected, "{body}");
    }
    server.verify().await;
}

#[tokio::test]
async fn identify_refuses_an_answer_naming_nobody() {
    let server = MockServer::start().await;
    gettoken("tok1").mount(&server).await;
    Mock::given(path("/cgi-bin/auth/getuserinfo"))
        .respond_with(ok(json!({"errcode": 0, "errmsg": "ok"})))
        .mount(&server)
        .await;

    let err = client(&server).identify("code-1").await.unwrap_err();

    assert!(matches!(err, WeComError::InvalidResponse(_)), "{err:?}");
}

#[tokio::test]
async fn stripped_sensitive_fields_become_none() {
    let server = MockServer::start().await;
    gettoken("tok1").mount(&server).await;
    user_get("tok1")
        .and(query_param("userid", "wangwu"))
        .respond_with(ok(json!({
            "errcode": 0, "errmsg": "ok", "userid": "wangwu", "name": "王五",
            "department": [2, "5"], "status": 1, "position": "",
            "email": "", "biz_mail": "", "mobile": "", "gender": "0", "avatar": "",
            "thumb_avatar": "", "address": ""
        })))
        .mount(&server)
        .await;

    let member = client(&server).member("wangwu").await.unwrap();

    assert_eq!(
        member,
        Member {
            userid: "wangwu".into(),
            name: Some("王五".into()),
            departments: vec![2, 5],
            main_department: None,
            position: None,
            status: MemberStatus::Active,
            email: None,
            biz_mail: None,
            mobile: None,
            avatar: None,
            gender: None,
        }
    );
}

#[tokio::test]
async fn a_full_member_is_read_whole() {
    let server = MockServer::start().await;
    gettoken("tok1").mount(&server).await;
    user_get("tok1")
        .respond_with(ok(zhangsan()))
        .mount(&server)
        .await;

    let member = client(&server).member("ZhangSan").await.unwrap();

    assert_eq!(member.departments, vec![3, 4]);
    assert_eq!(member.main_department, Some(3));
    assert_eq!(member.position.as_deref(), Some("工程师"));
    assert_eq!(member.email.as_deref(), Some("zhangsan@example.com"));
    assert_eq!(member.biz_mail, None);
    assert_eq!(member.gender, Some(Gender::Male));
}

#[tokio::test]
async fn member_detail_posts_the_ticket_and_reads_the_consented_fields() {
    let server = MockServer::start().await;
    gettoken("tok1").mount(&server).await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/auth/getuserdetail"))
        .and(query_param("access_token", "tok1"))
        .and(body_json(json!({"user_ticket": "ticket-1"})))
        .respond_with(ok(json!({
            "errcode": 0, "errmsg": "ok", "userid": "lisi", "gender": "2",
            "avatar": "https://wework.qpic.cn/y/0", "qr_code": "", "mobile": "13800000000",
            "email": "", "biz_mail": "lisi@corp.example", "address": ""
        })))
        .expect(1)
        .mount(&server)
        .await;

    let detail = client(&server).member_detail("ticket-1").await.unwrap();

    assert_eq!(
        detail,
        MemberDetail {
            userid: "lisi".into(),
            email: None,
            biz_mail: Some("lisi@corp.example".into()),
            mobile: Some("13800000000".into()),
            avatar: Some("https://wework.qpic.cn/y/0".into()),
            gender: Some(Gender::Female),
        }
    );
    server.verify().await;
}

#[tokio::test]
async fn check_credentials_fetches_a_token_even_when_one_is_cached() {
    let server = MockServer::start().await;
    gettoken("tok1").expect(2).mount(&server).await;
    user_get("tok1")
        .respond_with(ok(zhangsan()))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);

    client.member("zhangsan").await.unwrap();
    client.check_credentials().await.unwrap();
    client.member("zhangsan").await.unwrap();

    server.verify().await;
}

/// The directory of the groups tests: 总部 > 研发部 > 平台组, 总部 > 销售部; tags on a user, on a
/// department, and on neither.
async fn mount_directory(server: &MockServer, times: u64) {
    gettoken("tok1").mount(server).await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/department/list"))
        .and(query_param("access_token", "tok1"))
        .respond_with(ok(json!({"errcode": 0, "errmsg": "ok", "department": [
            {"id": 1, "name": "总部", "parentid": 0, "order": 1},
            {"id": 2, "name": "研发部", "parentid": 1, "order": 1},
            {"id": 3, "name": "平台组", "parentid": 2, "order": 1},
            {"id": 4, "name": "销售部", "parentid": 1, "order": 2}
        ]})))
        .expect(times)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/tag/list"))
        .respond_with(ok(json!({"errcode": 0, "errmsg": "ok", "taglist": [
            {"tagid": 1, "tagname": "管理员"},
            {"tagid": 2, "tagname": "研发"},
            {"tagid": 3, "tagname": "无关"}
        ]})))
        .expect(times)
        .mount(server)
        .await;
    for (tagid, body) in [
        (
            "1",
            json!({"tagname": "管理员", "userlist": [{"userid": "ZhangSan", "name": "张三"}], "partylist": []}),
        ),
        (
            "2",
            json!({"tagname": "研发", "userlist": [], "partylist": [2, 3]}),
        ),
        (
            "3",
            json!({"tagname": "无关", "userlist": [{"userid": "lisi"}], "partylist": [4]}),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path("/cgi-bin/tag/get"))
            .and(query_param("tagid", tagid))
            .respond_with(ok(body))
            .expect(times)
            .mount(server)
            .await;
    }
}

fn member_in(userid: &str, departments: Vec<i64>) -> Member {
    Member {
        userid: userid.into(),
        name: None,
        departments,
        main_department: None,
        position: None,
        status: MemberStatus::Active,
        email: None,
        biz_mail: None,
        mobile: None,
        avatar: None,
        gender: None,
    }
}

const ALL_KINDS: GroupKinds = GroupKinds {
    paths: true,
    names: true,
    ids: true,
    tags: true,
};

#[tokio::test]
async fn groups_are_paths_names_ids_and_tags_by_userlist_or_partylist() {
    let server = MockServer::start().await;
    mount_directory(&server, 1).await;
    let client = client(&server);

    // 99 is a department the app cannot see (or that was deleted): skipped.
    let groups = client
        .groups(&member_in("zhangsan", vec![3, 99]), ALL_KINDS)
        .await
        .unwrap();

    assert_eq!(
        groups,
        vec![
            "总部/研发部/平台组",
            "dept:平台组",
            "deptid:3",
            "tag:管理员",
            "tag:研发"
        ]
    );
    server.verify().await;
}

#[tokio::test]
async fn groups_are_cached_so_a_second_call_makes_no_request() {
    let server = MockServer::start().await;
    mount_directory(&server, 1).await;
    let client = client(&server);
    let kinds = GroupKinds {
        paths: true,
        tags: true,
        ..GroupKinds::default()
    };

    let first = client
        .groups(&member_in("wangwu", vec![4, 2]), kinds)
        .await
        .unwrap();
    let second = client
        .groups(&member_in("lisi", vec![4]), kinds)
        .await
        .unwrap();

    assert_eq!(
        first,
        vec!["总部/销售部", "总部/研发部", "tag:研发", "tag:无关"]
    );
    assert_eq!(second, vec!["总部/销售部", "tag:无关"]);
    server.verify().await;
}

#[tokio::test]
async fn with_a_zero_cache_ttl_every_groups_call_reads_wecom() {
    let server = MockServer::start().await;
    mount_directory(&server, 2).await;
    let client = client_with(&server, "0");
    let member = member_in("zhangsan", vec![3]);

    for _ in 0..2 {
        client.groups(&member, ALL_KINDS).await.unwrap();
    }

    server.verify().await;
}

#[tokio::test]
async fn groups_read_only_what_the_kinds_need_and_deduplicate() {
    let server = MockServer::start().await;
    gettoken("tok1").mount(&server).await;
    Mock::given(path("/cgi-bin/department/list"))
        .respond_with(ok(json!({"department": [
            {"id": 2, "name": "平台组", "parentid": 1},
            {"id": 3, "name": "平台组", "parentid": 1}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/tag/list"))
        .respond_with(ok(json!({"taglist": []})))
        .expect(0)
        .mount(&server)
        .await;
    let client = client(&server);
    let names = GroupKinds {
        names: true,
        ..GroupKinds::default()
    };

    let groups = client
        .groups(&member_in("u", vec![2, 3]), names)
        .await
        .unwrap();

    assert_eq!(groups, vec!["dept:平台组"]);
    server.verify().await;
}

#[tokio::test]
async fn a_department_list_wecom_refuses_leaves_departments_out_but_keeps_tags() {
    let server = MockServer::start().await;
    gettoken("tok1").mount(&server).await;
    Mock::given(path("/cgi-bin/department/list"))
        .respond_with(wecom_error(
            60011,
            "no privilege to access/modify contact/party/agent",
        ))
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/tag/list"))
        .respond_with(ok(json!({"taglist": [{"tagid": "7", "tagname": "值班"}, {"tagid": 8, "tagname": "已删"}]})))
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/tag/get"))
        .and(query_param("tagid", "7"))
        .respond_with(ok(json!({"userlist": [{"userid": "u"}]})))
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/tag/get"))
        .and(query_param("tagid", "8"))
        .respond_with(wecom_error(40068, "invalid tagid"))
        .mount(&server)
        .await;

    let groups = client(&server)
        .groups(&member_in("u", vec![2]), ALL_KINDS)
        .await
        .unwrap();

    assert_eq!(groups, vec!["tag:值班"]);
}

#[tokio::test]
async fn a_groups_failure_is_not_cached() {
    let server = MockServer::start().await;
    gettoken("tok1").mount(&server).await;
    Mock::given(path("/cgi-bin/tag/list"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/tag/list"))
        .respond_with(ok(json!({"taglist": []})))
        .mount(&server)
        .await;
    let client = client(&server);
    let tags = GroupKinds {
        tags: true,
        ..GroupKinds::default()
    };
    let member = member_in("u", vec![]);

    assert_eq!(
        client.groups(&member, tags).await,
        Err(WeComError::HttpStatus(503))
    );
    assert_eq!(client.groups(&member, tags).await, Ok(vec![]));
}

#[tokio::test]
async fn explain_names_the_redirect_host_for_50001() {
    let server = MockServer::start().await;
    let client = client(&server);
    let err = WeComError::Api {
        errcode: 50001,
        errmsg: "redirect_uri unauthorized".into(),
    };

    let text = client.explain(&err);

    assert!(text.contains("exactly sso.example.com"), "{text}");
}

/// A log writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const TOKEN: &str = "token-value-xyz";
const CODE: &str = "code-value-abc";
const TICKET: &str = "ticket-value-def";

/// Every path that handles a secret value: gettoken, a code, a renewed token, a ticket, each
/// failing with an errmsg that echoes what was sent. Answers what the caller could print.
async fn exercise_every_secret(server: &MockServer) -> Vec<String> {
    let client = client(server);
    let errors = [
        client.identify(CODE).await.unwrap_err(),
        client.member("zhangsan").await.unwrap_err(),
        client.member_detail(TICKET).await.unwrap_err(),
    ];
    assert_eq!(errors[0].errcode(), Some(40029));
    let mut printed: Vec<String> = errors
        .iter()
        .flat_map(|err| [err.to_string(), format!("{err:?}"), err.admin_explanation()])
        .collect();
    printed.push(format!("{client:?}"));
    printed.push(format!("{:?}", client.identify("ticketed").await.unwrap()));
    printed
}

#[tokio::test]
async fn no_error_or_log_line_shows_the_secret_a_token_a_code_or_a_ticket() {
    let server = MockServer::start().await;
    gettoken(TOKEN).mount(&server).await;
    // A gateway that echoes what it was sent: the error must still not show it.
    Mock::given(path("/cgi-bin/auth/getuserinfo"))
        .respond_with(ok(json!({
            "errcode": 40029,
            "errmsg": format!("invalid code {CODE} with token {TOKEN}, from ip: 203.0.113.7")
        })))
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/auth/getuserinfo"))
        .and(query_param("code", "ticketed"))
        .respond_with(ok(json!({"userid": "u", "user_ticket": TICKET})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/user/get"))
        .respond_with(wecom_error(42001, "access_token expired"))
        .mount(&server)
        .await;
    Mock::given(path("/cgi-bin/auth/getuserdetail"))
        .respond_with(ok(
            json!({"errcode": 48002, "errmsg": format!("api forbidden {TICKET}")}),
        ))
        .mount(&server)
        .await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // tracing caches per call site whether anyone listens. With a single dispatcher registered,
    // a call site first reached on another test's thread is cached as "nobody listens" for this
    // thread too; a second registered dispatcher makes every thread consult all of them.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());

    let mut printed = exercise_every_secret(&server).await;
    printed.push(String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned());

    assert!(
        printed[0].contains("invalid code [redacted] with token [redacted]"),
        "{}",
        printed[0]
    );
    let all = printed.join("\n");
    for expected in [
        "fetched a WeCom access token",
        "fetching a new one",
        "wecom.member_detail",
    ] {
        assert!(all.contains(expected), "{expected:?} was not logged: {all}");
    }
    for secret in [SECRET, TOKEN, CODE, TICKET] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
}

#[tokio::test]
async fn a_huge_expires_in_is_clamped_and_the_token_still_works() {
    let server = MockServer::start().await;
    gettoken_request()
        .respond_with(ok(
            json!({"errcode": 0, "access_token": "tok1", "expires_in": 9_223_372_036_854_775_807_i64}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    user_get("tok1")
        .respond_with(ok(zhangsan()))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);

    for _ in 0..2 {
        assert_eq!(client.member("zhangsan").await.unwrap().userid, "zhangsan");
    }

    server.verify().await;
}
