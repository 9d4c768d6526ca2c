//! `{issuer}/wecom/events`: WeCom's event callbacks (接收事件服务器). GET verifies the URL when an
//! administrator saves it in the console; POST delivers signed, encrypted events. Without the
//! `WECOM_EVENT_*` settings the endpoint does not exist (404).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::storage::WECOM_EVENT_MEMORY_SECS;
use crate::wecom::events::{EventError, EventQuery, EVENT_WINDOW_SECS};

// A delivery inside the window is recognised by its digest, one outside it by its timestamp:
// the digests must outlive the window, or a replay could slip between the two.
const _: () = assert!(WECOM_EVENT_MEMORY_SECS >= EVENT_WINDOW_SECS);

/// WeCom drops the connection and redelivers after 5 s: processing that takes longer goes on in
/// the background after the answer (wecom-events.md §10.6).
const PROCESSING_WAIT: Duration = Duration::from_secs(3);

fn refused(err: &EventError) -> HttpResponse {
    let mut response = match err {
        // A forged signature or another corporation's message: not ours to read.
        EventError::BadSignature | EventError::ReceiveIdMismatch => HttpResponse::Forbidden(),
        EventError::TooLarge(_) => HttpResponse::PayloadTooLarge(),
        _ => HttpResponse::BadRequest(),
    };
    tracing::warn!(error = %err, code = err.code(), "WeCom event callback refused");
    response.json(json!({ "error": "invalid_request", "error_description": err.to_string() }))
}

fn not_configured() -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({ "error": "not_found", "error_description": "no such endpoint" }))
}

fn query(req: &HttpRequest) -> Option<EventQuery> {
    web::Query::<EventQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .ok()
}

fn bad_query() -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "error": "invalid_request",
        "error_description": "the query string is not valid"
    }))
}

/// URL verification: answer exactly the decrypted `echostr` (no quotes, BOM or newline).
pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(receiver) = &state.wecom_events else {
        return not_configured();
    };
    let Some(query) = query(&req) else {
        return bad_query();
    };
    match receiver.verify_url(&query) {
        Ok((channel, plaintext)) => {
            tracing::info!(channel = channel.as_str(), "WeCom event URL verified");
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                .body(plaintext)
        }
        Err(err) => refused(&err),
    }
}

/// An event: answered with an empty 200 once it is authenticated, recorded and processed; a
/// redelivery or a replay of one already processed, and a delivery whose signed timestamp is
/// outside the window (`EVENT_WINDOW_SECS`), are answered the same and change nothing. An event
/// whose processing failed is answered 503, so that WeCom delivers it again (§10.6).
pub async fn deliver(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(receiver) = &state.wecom_events else {
        return not_configured();
    };
    let Some(query) = query(&req) else {
        return bad_query();
    };
    let opened = match receiver.open(&query, &body) {
        Ok(opened) => opened,
        Err(err) => return refused(&err),
    };
    let now = state.clock.now();
    if !opened.is_fresh(now) {
        // A replay of a captured delivery, or a clock far off: either way a redelivery would be
        // just as stale, so it is answered as received (WeCom retries anything else).
        tracing::warn!(
            channel = opened.channel.as_str(),
            skew_secs = opened.timestamp.map(|sent| now - sent),
            window_secs = EVENT_WINDOW_SECS,
            "WeCom event outside the timestamp window; ignored"
        );
        return HttpResponse::Ok().finish();
    }
    let store = &state.provider.store;
    match store.record_wecom_event(&opened.digest, now).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(
                channel = opened.channel.as_str(),
                "WeCom event already processed"
            );
            return HttpResponse::Ok().finish();
        }
        // Not recorded, not processed: a 503 lets WeCom redeliver it.
        Err(err) => {
            tracing::error!(error = %err, "cannot record a WeCom event");
            return HttpResponse::ServiceUnavailable().json(json!({
                "error": "temporarily_unavailable",
                "error_description": "the database is unavailable"
            }));
        }
    }
    let processing = {
        let state = state.clone();
        tokio::spawn(async move {
            let result = state
                .provider
                .handle_wecom_event(&opened.message, now)
                .await;
            if let Err(err) = &result {
                tracing::error!(error = %err, "could not process a WeCom event; forgetting it so a redelivery retries");
                if let Err(err) = state
                    .provider
                    .store
                    .forget_wecom_event(&opened.digest)
                    .await
                {
                    tracing::error!(error = %err, "could not forget the WeCom event");
                }
            }
            result.is_ok()
        })
    };
    // Most events are done well within a second; a slow WeCom recheck continues in the background.
    match tokio::time::timeout(PROCESSING_WAIT, processing).await {
        Ok(Ok(true)) => HttpResponse::Ok().finish(),
        Err(_) => {
            tracing::info!("WeCom event still processing; answered meanwhile");
            HttpResponse::Ok().finish()
        }
        // Failed: not answered as received, so that WeCom redelivers it; the digest was
        // forgotten, so the redelivery is processed afresh. (A panicked task is answered the
        // same; its digest stays, and the sweep remains the safety net.)
        Ok(Ok(false)) | Ok(Err(_)) => HttpResponse::ServiceUnavailable().json(json!({
            "error": "temporarily_unavailable",
            "error_description": "the event could not be processed; deliver it again"
        })),
    }
}
