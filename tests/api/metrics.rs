//! Prometheus metrics on their own listener: they move with sign-ins, refusals, token issuance
//! and WeCom errors. The recorder is process-wide, so the tests look for increases, not totals.

use crate::helpers::{TestApp, AGENT_SECRET};

pub(crate) async fn scrape(app: &TestApp) -> String {
    let port = app.metrics_port.expect("METRICS_ADDR is set");
    let response = app
        .http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the series whose name and labels contain every one of `parts`, 0 when absent.
pub(crate) fn value(text: &str, name: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| parts.iter().all(|p| line.contains(p)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_move_with_sign_ins_refusals_tokens_and_wecom_calls() {
    let app = TestApp::spawn_with(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let client = app.confidential_client().await;
    let before = scrape(&app).await;

    let code = app.sign_in(&client, "wangwu", &[]).await.code.unwrap();
    assert_eq!(app.exchange(&client, &code, None).await.status(), 200);
    let forged = app
        .http
        .get(app.url("/auth/wecom/callback?code=x&state=forged"))
        .send()
        .await
        .unwrap();
    assert!(forged.status().is_client_error());

    let after = scrape(&app).await;
    for (name, parts) in [
        ("wecom_oidc_logins_total", &["result=\"success\""][..]),
        (
            "wecom_oidc_logins_total",
            &["result=\"refused\"", "reason=\"state_unknown\""][..],
        ),
        (
            "wecom_oidc_tokens_issued_total",
            &["grant_type=\"authorization_code\""][..],
        ),
        ("wecom_oidc_wecom_requests_total", &["errcode=\"0\""][..]),
        (
            "wecom_oidc_http_requests_total",
            &["endpoint=\"/token\"", "status=\"200\""][..],
        ),
        (
            "wecom_oidc_http_request_duration_seconds_count",
            &["endpoint=\"/token\""][..],
        ),
    ] {
        assert!(
            value(&after, name, parts) > value(&before, name, parts),
            "{name} {parts:?} did not increase"
        );
    }
    assert_eq!(value(&after, "wecom_oidc_build_info", &[]), 1.0);
    assert!(value(&after, "wecom_oidc_db_pool_connections", &["state=\"max\""]) >= 1.0);
    assert!(!after.contains(&client.id), "no client ids in labels");
}

#[tokio::test]
async fn a_wecom_error_is_counted_with_its_errcode() {
    let wrong = format!("{AGENT_SECRET}-wrong");
    let app = TestApp::spawn_with(&[
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("WECOM_CORP_SECRET", &wrong),
    ])
    .await;
    let client = app.confidential_client().await;
    let before = scrape(&app).await;
    let parts = ["api=\"/cgi-bin/gettoken\"", "errcode=\"40001\""];

    let wecom = app.follow(&app.authorize_url(&client, &[])).await;
    let callback = app.wecom_approves(&wecom, &[("userid", "wangwu")]).await;
    let _ = app.browser.get(&callback).send().await.unwrap();

    let after = scrape(&app).await;
    assert!(
        value(&after, "wecom_oidc_wecom_requests_total", &parts)
            > value(&before, "wecom_oidc_wecom_requests_total", &parts),
        "{after}"
    );
}
