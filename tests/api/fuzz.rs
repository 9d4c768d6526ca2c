//! Random requests at every endpoint: random methods, paths, query strings, bodies and headers,
//! NUL bytes and invalid UTF-8 included. No answer may be a 5xx, and every error must come in
//! its endpoint's shape (RFC 6749 §5.2 JSON, a Bearer challenge at userinfo, the admin API's
//! JSON, an HTML page at the browser endpoints) — never the framework's plain text.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::Method;

use crate::helpers::{TestApp, ADMIN_TOKEN};

/// How many random requests one run sends; enough to hit every endpoint with every kind of
/// input many times, few enough to finish in seconds.
const CASES: usize = 200;

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: String,
    query: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    authorization: Option<String>,
}

/// Values that have broken parsers and databases before, and some plain ones.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("%00".to_owned()),
        Just("a%00b".to_owned()),
        Just("%FF%FE".to_owned()),
        Just("%C3%28".to_owned()),
        Just("%".to_owned()),
        Just("".to_owned()),
        Just("openid".to_owned()),
        Just("code".to_owned()),
        Just("authorization_code".to_owned()),
        Just("refresh_token".to_owned()),
        Just("urn:ietf:params:oauth:grant-type:device_code".to_owned()),
        Just("BCDF-GHJK".to_owned()),
        Just("approve".to_owned()),
        Just("http://127.0.0.1:9/callback".to_owned()),
        Just("x".repeat(3000)),
        "[a-zA-Z0-9%_.~-]{0,40}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("client_id".to_owned()),
        Just("client_secret".to_owned()),
        Just("redirect_uri".to_owned()),
        Just("response_type".to_owned()),
        Just("scope".to_owned()),
        Just("state".to_owned()),
        Just("nonce".to_owned()),
        Just("code".to_owned()),
        Just("code_verifier".to_owned()),
        Just("code_challenge".to_owned()),
        Just("grant_type".to_owned()),
        Just("refresh_token".to_owned()),
        Just("token".to_owned()),
        Just("access_token".to_owned()),
        Just("id_token_hint".to_owned()),
        Just("post_logout_redirect_uri".to_owned()),
        Just("prompt".to_owned()),
        Just("max_age".to_owned()),
        Just("device_code".to_owned()),
        Just("user_code".to_owned()),
        Just("login_hint".to_owned()),
        Just("decision".to_owned()),
        Just("csrf_token".to_owned()),
        Just("%00".to_owned()),
        "[a-z_]{1,12}",
    ]
}

fn pairs() -> impl Strategy<Value = String> {
    prop::collection::vec((key(), value()), 0..6).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/authorize".to_owned()),
        Just("/token".to_owned()),
        Just("/userinfo".to_owned()),
        Just("/revoke".to_owned()),
        Just("/introspect".to_owned()),
        Just("/logout".to_owned()),
        Just("/device_authorization".to_owned()),
        Just("/device".to_owned()),
        Just("/jwks".to_owned()),
        Just("/.well-known/openid-configuration".to_owned()),
        Just("/auth/wecom/callback".to_owned()),
        Just("/healthz".to_owned()),
        Just("/readyz".to_owned()),
        Just("/admin/clients".to_owned()),
        value().prop_map(|v| format!("/admin/clients/{}", v.replace('/', "%2F"))),
        value().prop_map(|v| format!("/admin/clients/{}/secret", v.replace('/', "%2F"))),
        "/[a-z%0-9]{0,12}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        pairs().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(vec![0xff, 0xfe, 0x00, b'=', 0xc3, 0x28]),
        Just(b"{\"client_name\":\"a\\u0000b\",\"redirect_uris\":[\"https://x.example/cb\"]}".to_vec()),
        Just(b"{\"client_name\":\"x\",\"redirect_uris\":[\"https://x.example/cb\"],\"client_secret\":\"\\u0000\"}".to_vec()),
        Just(b"{not json".to_vec()),
        Just(vec![b'a'; 70 * 1024]),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(format!("Bearer {ADMIN_TOKEN}"))),
        Just(Some("Bearer nonsense".to_owned())),
        Just(Some(format!("Basic {}", STANDARD.encode("a\0b:c\0d")))),
        Just(Some(format!(
            "Basic {}",
            STANDARD.encode([0xffu8, b':', 0xfe])
        ))),
        Just(Some("Basic !!!".to_owned())),
        Just(Some("Bearer".to_owned())),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(Method::GET),
            Just(Method::POST),
            Just(Method::PUT),
            Just(Method::DELETE),
            Just(Method::PATCH),
            Just(Method::OPTIONS),
        ],
        path(),
        pairs(),
        body(),
        prop_oneof![
            Just(None),
            Just(Some("application/x-www-form-urlencoded")),
            Just(Some("application/json")),
            Just(Some("text/plain")),
            Just(Some("multipart/form-data; boundary=x")),
        ],
        authorization(),
    )
        .prop_map(
            |(method, path, query, body, content_type, authorization)| Case {
                method,
                path,
                query,
                body,
                content_type,
                authorization,
            },
        )
}

/// What a failing answer must look like at `path`; `None` when it does.
fn shape_problem(path: &str, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Option<String> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let json_error = || {
        content_type.starts_with("application/json")
            && serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .is_some_and(|v| v["error"].is_string())
    };
    let ok = match path {
        "/authorize" | "/logout" | "/auth/wecom/callback" | "/device" => {
            content_type.starts_with("text/html")
        }
        "/userinfo" => headers.contains_key(WWW_AUTHENTICATE) && (body.is_empty() || json_error()),
        _ => json_error(),
    };
    (!ok).then(|| {
        format!(
            "content-type {content_type:?}, body {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })
}

#[tokio::test]
async fn random_requests_at_every_endpoint_get_no_5xx_and_errors_in_the_endpoints_shape() {
    // Limits off: a flood from one address would otherwise end in 429s and explore less.
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("AUTH_FAILURE_LIMIT_PER_MINUTE", "0"),
    ])
    .await;
    // A real client, so that some requests get past client lookup.
    let client = app.confidential_client().await;
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let mut failures = Vec::new();

    for _ in 0..CASES {
        let mut case = strategy
            .new_tree(&mut runner)
            .expect("a case is generated")
            .current();
        // Now and then, the real client's id, so that deeper code runs.
        if case.query.len() % 3 == 0 {
            case.query.push_str(&format!("&client_id={}", client.id));
        }
        let url = format!("{}{}?{}", app.issuer, case.path, case.query);
        let mut request = app.http.request(case.method.clone(), &url);
        if let Some(content_type) = case.content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(authorization) = &case.authorization {
            request = request.header(AUTHORIZATION, authorization.as_str());
        }
        let response = request
            .body(case.body.clone())
            .send()
            .await
            .expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("a body");
        let path = case.path.split('?').next().unwrap_or("").to_owned();
        if status.is_server_error() {
            failures.push(format!("{status} for {case:?}"));
        } else if status.is_client_error() {
            let endpoint = if path.starts_with("/admin/") {
                "/admin"
            } else {
                path.as_str()
            };
            if let Some(problem) = shape_problem(endpoint, &headers, &body) {
                failures.push(format!("{status} {problem} for {case:?}"));
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {CASES} answers were wrong:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.chars().take(600).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
