//! Prometheus metrics: the recorder, the request middleware and the `/metrics` listener on
//! `METRICS_ADDR`, apart from the public port so that it is never exposed with it.
//!
//! Code records through the `metrics` facade (`metrics::counter!`); without a recorder (no
//! `METRICS_ADDR`) those calls cost nothing. Labels are low-cardinality by construction: the
//! route pattern, never the raw path; a status code; fixed reason codes; the WeCom API path and
//! errcode. No client or user ids.
//!
//! Series: `wecom_oidc_http_requests_total{endpoint,status}`,
//! `wecom_oidc_http_request_duration_seconds{endpoint}`, `wecom_oidc_logins_total{result,reason}`,
//! `wecom_oidc_tokens_issued_total{grant_type}`, `wecom_oidc_wecom_requests_total{api,errcode}`,
//! `wecom_oidc_wecom_request_duration_seconds{api}`, `wecom_oidc_rate_limited_total{endpoint}`,
//! `wecom_oidc_db_pool_connections{state}`, `wecom_oidc_build_info{version}`.
//!
//! Records what happened and decides nothing: no request is refused or changed here.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::clock::Clock;
use crate::storage::Store;

/// Latency buckets in seconds: sub-millisecond cache hits to multi-second WeCom timeouts.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed by the first application that asks for metrics (the
/// facade allows one per process; tests start many applications in one).
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    // Losing a race to another application in this process is fine: use the winner's.
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle);
        describe();
    }
    HANDLE
        .get()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("another metrics recorder is installed in this process"))
}

fn describe() {
    metrics::describe_counter!(
        "wecom_oidc_http_requests_total",
        "HTTP requests by route pattern and status"
    );
    metrics::describe_histogram!(
        "wecom_oidc_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route pattern"
    );
    metrics::describe_counter!(
        "wecom_oidc_logins_total",
        "Sign-ins by result (success, refused) and refusal reason"
    );
    metrics::describe_counter!(
        "wecom_oidc_tokens_issued_total",
        "Token responses by grant type"
    );
    metrics::describe_counter!(
        "wecom_oidc_wecom_requests_total",
        "WeCom API calls by API path and errcode (0 = success)"
    );
    metrics::describe_histogram!(
        "wecom_oidc_wecom_request_duration_seconds",
        metrics::Unit::Seconds,
        "WeCom API call latency by API path"
    );
    metrics::describe_counter!(
        "wecom_oidc_rate_limited_total",
        "Requests refused with 429 by endpoint"
    );
    metrics::describe_gauge!(
        "wecom_oidc_db_pool_connections",
        "Database pool connections by state (open, idle, max)"
    );
    metrics::describe_gauge!(
        "wecom_oidc_device_grants_pending",
        "Device authorization requests waiting for their person to approve or deny"
    );
    metrics::describe_counter!(
        "wecom_oidc_device_pushes_total",
        "Device approvals pushed to WeCom by result (sent, unreachable, limited, failed)"
    );
    metrics::describe_gauge!("wecom_oidc_build_info", "Always 1; the version as a label");
    metrics::gauge!("wecom_oidc_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Counts and times every request by its route pattern (`/admin/clients/{client_id}`), so that
/// random paths do not create series.
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let response = next.call(req).await?;
    let endpoint = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16().to_string();
    metrics::counter!("wecom_oidc_http_requests_total", "endpoint" => endpoint.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("wecom_oidc_http_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    Ok(response)
}

/// A sign-in finished: `result` is `success` or `refused`, `reason` a fixed refusal code.
pub fn login(result: &str, reason: Option<&str>) {
    metrics::counter!(
        "wecom_oidc_logins_total",
        "result" => result.to_owned(),
        "reason" => reason.unwrap_or("none").to_owned()
    )
    .increment(1);
}

/// A device approval pushed to WeCom: `sent`, `unreachable`, `limited` or `failed`.
pub fn device_push(result: &'static str) {
    metrics::counter!("wecom_oidc_device_pushes_total", "result" => result).increment(1);
}

struct MetricsState {
    handle: PrometheusHandle,
    store: Store,
    clock: Arc<dyn Clock>,
}

async fn render(state: web::Data<MetricsState>) -> HttpResponse {
    let (open, idle, max) = state.store.pool_stats();
    for (kind, value) in [("open", open), ("idle", idle), ("max", max)] {
        metrics::gauge!("wecom_oidc_db_pool_connections", "state" => kind).set(f64::from(value));
    }
    // Read at scrape time, so the gauge is right on every replica whichever one took the request.
    match state.store.pending_device_grants(state.clock.now()).await {
        Ok(pending) => metrics::gauge!("wecom_oidc_device_grants_pending").set(pending as f64),
        Err(err) => tracing::warn!(error = %err, "could not count pending device grants"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.handle.render())
}

/// The `/metrics` listener: one worker, nothing else on it.
pub fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    store: Store,
    clock: Arc<dyn Clock>,
) -> std::io::Result<Server> {
    let state = web::Data::new(MetricsState {
        handle,
        store,
        clock,
    });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(render))
    })
    .workers(1)
    .listen(listener)?
    .run())
}
