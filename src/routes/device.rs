//! The device authorization grant's routes (RFC 8628): the terminal's `POST
//! /device_authorization`, and the person's verification page `GET`/`POST /device`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::authorize::{cookie_value, to_wecom, BrowserCookies};
use super::respond::{self, header_str, lang_of, no_store};
use super::token::form_params;
use super::AppState;
use crate::limits::WrongUserCode;
use crate::oidc::device::DeviceOutcome;
use crate::oidc::{Params, SESSION_COOKIE};

pub async fn device_authorization(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let params = match form_params(&req, &body) {
        Ok(params) => params,
        Err(err) => return respond::oauth_error(&err),
    };
    // The address the approval page shows is the one the abuse limits count (TRUSTED_PROXIES).
    let source = crate::limits::source(
        &state.provider.config.limits,
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
    )
    .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    match state
        .provider
        .device_authorization(
            header_str(&req, header::AUTHORIZATION),
            &params,
            &source,
            state.clock.now(),
        )
        .await
    {
        Ok(response) => no_store(&mut HttpResponse::Ok()).json(response),
        Err(err) => respond::oauth_error(&err),
    }
}

pub async fn device_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let lang = lang_of(&req, params.get("ui_locales"));
    let cookies = BrowserCookies::of(&req, &state);
    let outcome = state
        .provider
        .device_page(&params, &cookies.context(&req, lang), state.clock.now())
        .await;
    respond_device(&state, outcome, lang)
}

pub async fn device_decision(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let params = Params::parse(&body);
    let lang = lang_of(&req, None);
    let session_cookie = cookie_value(&req, &state, SESSION_COOKIE);
    let outcome = state
        .provider
        .device_decision(&params, session_cookie.as_deref(), state.clock.now())
        .await;
    respond_device(&state, outcome, lang)
}

fn respond_device(
    state: &AppState,
    outcome: Result<DeviceOutcome, crate::storage::StorageError>,
    lang: crate::pages::Lang,
) -> HttpResponse {
    let wrong_code = outcome.as_ref().is_ok_and(DeviceOutcome::is_wrong_code);
    let mut response = match outcome {
        Ok(DeviceOutcome::Device(page)) => {
            let action = state
                .provider
                .config
                .issuer
                .endpoint(crate::oidc::endpoints::DEVICE_PATH);
            HttpResponse::build(
                actix_web::http::StatusCode::from_u16(page.status())
                    .unwrap_or(actix_web::http::StatusCode::OK),
            )
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(state.pages.render_device(&page, &action, lang))
        }
        Ok(DeviceOutcome::ShowPage(page)) => respond::page(&state.pages, &page, lang),
        Ok(DeviceOutcome::RedirectToWeCom { url, parked }) => to_wecom(state, &url, parked, false),
        Err(err) => respond::storage_failure_page(&state.pages, err, lang),
    };
    // Counted by the abuse limits against the source (RFC 8628 §5.1: user codes are short
    // enough to guess without a limit).
    if wrong_code {
        response.extensions_mut().insert(WrongUserCode);
    }
    response
}
