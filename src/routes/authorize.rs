//! Browser-facing routes: authorize, the WeCom callback, logout.

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};

use super::respond::{self, header_str, lang_of};
use super::AppState;
use crate::oidc::authorize::{AuthorizeOutcome, BrowserContext};
use crate::oidc::callback::{CallbackCookies, CallbackOutcome};
use crate::oidc::login_state::{login_cookie_name, Parked};
use crate::oidc::logout::{LogoutOutcome, LogoutRequest};
use crate::oidc::{Params, BROWSER_COOKIE, SESSION_COOKIE};
use crate::pages::Lang;

pub(super) fn cookie_value(req: &HttpRequest, state: &AppState, name: &str) -> Option<String> {
    named_cookie(req, &format!("{}{name}", state.cookie_prefix))
}

/// The provider's own cookies of a browser request, read once so that the protocol code can
/// borrow them as a [`BrowserContext`].
pub(super) struct BrowserCookies {
    session: Option<String>,
    browser: Option<String>,
}

impl BrowserCookies {
    pub(super) fn of(req: &HttpRequest, state: &AppState) -> Self {
        Self {
            session: cookie_value(req, state, SESSION_COOKIE),
            browser: cookie_value(req, state, BROWSER_COOKIE),
        }
    }

    pub(super) fn context<'a>(&'a self, req: &'a HttpRequest, lang: Lang) -> BrowserContext<'a> {
        BrowserContext {
            session_cookie: self.session.as_deref(),
            browser_cookie: self.browser.as_deref(),
            user_agent: header_str(req, header::USER_AGENT),
            lang,
        }
    }
}

/// The value of the cookie whose full name (prefix included) is `full_name`.
fn named_cookie(req: &HttpRequest, full_name: &str) -> Option<String> {
    req.cookie(full_name).map(|c| c.value().to_owned())
}

/// The parameters of a GET (query string) or a POST (form body), and whether it was a POST.
/// OIDC Core §3.1.2.1: the authorization endpoint takes both; so does RP-initiated logout.
fn request_params(req: &HttpRequest, body: &web::Bytes) -> (Params, bool) {
    if req.method() == Method::POST {
        (Params::parse(body), true)
    } else {
        (Params::parse(req.query_string().as_bytes()), false)
    }
}

pub async fn authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let (params, after_post) = request_params(&req, &body);
    let lang = lang_of(&req, params.get("ui_locales"));
    let cookies = BrowserCookies::of(&req, &state);
    match state
        .provider
        .authorize(&params, &cookies.context(&req, lang), state.clock.now())
        .await
    {
        Ok(AuthorizeOutcome::ShowError(page)) => respond::page(&state.pages, &page, lang),
        Ok(AuthorizeOutcome::Redirect(reply)) => {
            respond::to_client(&state, &reply, after_post, Vec::new())
        }
        Ok(AuthorizeOutcome::RedirectToWeCom { url, parked }) => {
            to_wecom(&state, &url, parked, after_post)
        }
        Err(err) => respond::storage_failure_page(&state.pages, err, lang),
    }
}

/// Off to WeCom, with the cookie that keeps the sign-in where `login_state` parked it.
pub(super) fn to_wecom(
    state: &AppState,
    url: &str,
    parked: Parked,
    after_post: bool,
) -> HttpResponse {
    let mut builder = respond::redirect(url, after_post);
    match parked {
        Parked::Cookie { name, value } => {
            let max_age = state.provider.config.lifetimes.auth_request.as_secs() as i64;
            builder.cookie(respond::callback_cookie(state, &name, value, Some(max_age)));
        }
        Parked::Row {
            new_browser_cookie: Some(value),
        } => {
            builder.cookie(respond::cookie(state, BROWSER_COOKIE, value, None));
        }
        Parked::Row {
            new_browser_cookie: None,
        } => {}
    }
    builder.finish()
}

pub async fn wecom_callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let lang = lang_of(&req, None);
    let login_cookie_name = params.get("state").map(login_cookie_name);
    let login_cookie = login_cookie_name
        .as_deref()
        .and_then(|name| named_cookie(&req, &respond::callback_cookie_name(&state, name)));
    let browser_cookie = cookie_value(&req, &state, BROWSER_COOKIE);
    let cookies = CallbackCookies {
        login_cookie: login_cookie.as_deref(),
        browser_cookie: browser_cookie.as_deref(),
    };
    let mut response = match state
        .provider
        .complete_login(&params, cookies, state.clock.now())
        .await
    {
        Ok(CallbackOutcome::ShowError(page)) => respond::page(&state.pages, &page, lang),
        Ok(CallbackOutcome::Redirect {
            redirect,
            session_cookie,
        }) => {
            let max_age = state.provider.config.lifetimes.session.as_secs() as i64;
            let cookie = respond::cookie(&state, SESSION_COOKIE, session_cookie, Some(max_age));
            respond::to_client(&state, &redirect, false, vec![cookie])
        }
        Err(err) => respond::storage_failure_page(&state.pages, err, lang),
    };
    // The sign-in is over, whatever its outcome: the browser need not keep it.
    if let (Some(name), Some(_)) = (&login_cookie_name, &login_cookie) {
        if let Err(err) = response.add_cookie(&respond::callback_cookie_removal(&state, name)) {
            tracing::warn!(error = %err, "could not clear the sign-in cookie");
        }
    }
    response
}

pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let (params, after_post) = request_params(&req, &body);
    let lang = lang_of(&req, params.get("ui_locales"));
    let session_cookie = cookie_value(&req, &state, SESSION_COOKIE);
    let request = LogoutRequest {
        params: &params,
        session_cookie: session_cookie.as_deref(),
        via_post: after_post,
    };
    match state.provider.logout(request, state.clock.now()).await {
        Ok(outcome) => {
            let signed_out = outcome.signed_out();
            let mut response = match outcome {
                LogoutOutcome::Redirect(url) => respond::redirect(&url, after_post).finish(),
                LogoutOutcome::ShowPage(page) => respond::page(&state.pages, &page, lang),
            };
            if signed_out {
                let _ = response.add_cookie(&respond::removal_cookie(&state, SESSION_COOKIE));
            }
            response
        }
        Err(err) => respond::storage_failure_page(&state.pages, err, lang),
    }
}
