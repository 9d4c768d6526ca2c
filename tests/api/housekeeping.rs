//! The audit log: read through the admin API, purged past its retention, not grown by noise.

use serde_json::Value;
use wecom_oidc::clock::Clock;
use wecom_oidc::storage::AuditEvent;

use crate::helpers::{TestApp, ADMIN_TOKEN};

fn event(at: i64, event: &str, sub: &str) -> AuditEvent {
    AuditEvent {
        at,
        event: event.to_owned(),
        outcome: "success".to_owned(),
        sub: Some(sub.to_owned()),
        client_id: Some("c1".to_owned()),
        reason: None,
    }
}

async fn audit(app: &TestApp, query: &str) -> (u16, Value) {
    let response = app
        .http
        .get(app.url(&format!("/admin/audit?{query}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_admin_api_pages_through_the_audit_log_newest_first_with_filters() {
    let app = TestApp::spawn().await;
    let now = app.clock.now();
    for i in 0..5 {
        let who = if i % 2 == 0 { "alice" } else { "bob" };
        app.store
            .record_audit(&event(now + i, "sign_in", who))
            .await
            .unwrap();
    }
    app.store
        .record_audit(&event(now + 10, "logout", "alice"))
        .await
        .unwrap();

    let (status, first) = audit(&app, "sub=alice&event=sign_in&limit=2").await;
    assert_eq!(status, 200);
    let ats: Vec<i64> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ats,
        vec![now + 4, now + 2],
        "newest first, alice's sign-ins only"
    );
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    let (_, second) = audit(
        &app,
        &format!("sub=alice&event=sign_in&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(second["events"].as_array().unwrap().len(), 1);
    assert_eq!(second["events"][0]["at"], now);
    assert!(
        second["next_cursor"].is_null(),
        "the last page has no cursor"
    );

    let (_, since) = audit(&app, &format!("since={}", now + 3)).await;
    assert_eq!(since["events"].as_array().unwrap().len(), 3);

    for bad in ["limit=0", "limit=501", "since=yesterday", "cursor=x"] {
        let (status, body) = audit(&app, bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn audit_rows_past_the_retention_are_purged_and_newer_ones_kept() {
    // The background purge is off, so that only the call below deletes.
    let app = TestApp::spawn_with(&[("AUDIT_RETENTION_DAYS", "0")]).await;
    let now = app.clock.now();
    let day = 86_400;
    // More than one purge batch of old rows.
    for i in 0..1_200 {
        app.store
            .record_audit(&event(now - 200 * day - i, "sign_in", "old"))
            .await
            .unwrap();
    }
    app.store
        .record_audit(&event(now - 10 * day, "sign_in", "recent"))
        .await
        .unwrap();

    let removed = app.store.purge_audit(now - 180 * day).await.unwrap();

    assert_eq!(removed, 1_200);
    let left = app.audit().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].sub.as_deref(), Some("recent"));
}

#[tokio::test]
async fn callbacks_with_an_unknown_state_write_no_audit_rows() {
    let app = TestApp::spawn().await;

    for i in 0..20 {
        let response = app
            .http
            .get(app.url(&format!("/auth/wecom/callback?code=x&state=forged{i}")))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }

    assert!(app.audit().await.is_empty());
}
