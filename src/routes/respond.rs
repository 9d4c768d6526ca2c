//! Turning outcomes into HTTP responses: OAuth JSON errors, pages, redirects, cookies.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::oidc::endpoints;
use crate::oidc::{ClientRedirect, ErrorCode, OAuthError, ResponseMode};
use crate::pages::{Lang, Page, PageKind, Pages};
use crate::storage::StorageError;

/// `Cache-Control: no-store` and `Pragma: no-cache`: RFC 6749 §5.1 for anything carrying tokens.
pub fn no_store(
    builder: &mut actix_web::HttpResponseBuilder,
) -> &mut actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
}

/// RFC 6749 §5.2: 400, except `invalid_client` (401, with `WWW-Authenticate: Basic` when the
/// client used Basic) and our own failures (500 / 503).
pub fn oauth_error(err: &OAuthError) -> HttpResponse {
    let status = match err.code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut builder = HttpResponse::build(status);
    no_store(&mut builder);
    if err.code == ErrorCode::InvalidClient && err.used_basic_auth {
        builder.insert_header((
            header::WWW_AUTHENTICATE,
            "Basic realm=\"wecom-oidc\", charset=\"UTF-8\"",
        ));
    }
    builder.json(json!({ "error": err.code.as_str(), "error_description": err.description }))
}

pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
        .json(json!({ "error": "invalid_request", "error_description": "this endpoint accepts POST only" }))
}

pub fn lang_of(req: &HttpRequest, ui_locales: Option<&str>) -> Lang {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Lang::negotiate(ui_locales, accept)
}

pub fn page(pages: &Pages, page: &Page, lang: Lang) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(page.status()).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(pages.render(page, lang))
}

/// A store failure on a page-serving route: a readable page, 503 when the database is down.
pub fn storage_failure_page(pages: &Pages, err: StorageError, lang: Lang) -> HttpResponse {
    let kind = match &err {
        StorageError::Unavailable(_) => PageKind::ServiceUnavailable,
        _ => PageKind::InternalError,
    };
    tracing::error!(error = %format!("{:#}", anyhow::Error::from(err)), "store failure on a page route");
    page(pages, &Page::new(kind), lang)
}

/// A found-redirect (or 303 after a POST, so that the browser does not re-post).
pub fn redirect(location: &str, after_post: bool) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::build(if after_post {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    });
    builder
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    builder
}

/// Delivers a response to the client's redirect URI in its response mode, setting `cookies`.
pub fn to_client(
    state: &AppState,
    reply: &ClientRedirect,
    after_post: bool,
    cookies: Vec<Cookie<'static>>,
) -> HttpResponse {
    let mut builder = match reply.mode {
        ResponseMode::Query => redirect(&reply.url(), after_post),
        ResponseMode::FormPost => {
            let mut builder = HttpResponse::Ok();
            builder
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::CONTENT_SECURITY_POLICY, Pages::form_post_csp()));
            builder
        }
    };
    for cookie in cookies {
        builder.cookie(cookie);
    }
    match reply.mode {
        ResponseMode::Query => builder.finish(),
        ResponseMode::FormPost => builder.body(
            state
                .pages
                .render_form_post(&reply.redirect_uri, &reply.params),
        ),
    }
}

pub fn cookie(
    state: &AppState,
    name: &str,
    value: String,
    max_age_secs: Option<i64>,
) -> Cookie<'static> {
    let name = format!("{}{name}", state.cookie_prefix);
    build_cookie(state, name, state.cookie_path.clone(), value, max_age_secs)
}

pub fn removal_cookie(state: &AppState, name: &str) -> Cookie<'static> {
    let mut cookie = cookie(state, name, String::new(), None);
    cookie.make_removal();
    cookie
}

/// The cookie name prefix that binds a cookie to this host and `Path=/` (RFC 6265bis §4.1.3.2).
const HOST_PREFIX: &str = "__Host-";

/// The cookie that carries a pending sign-in (`oidc::login_state`) until the WeCom callback.
///
/// On an https issuer at the root of its host it is a `__Host-` cookie with `Path=/`: a browser
/// accepts such a cookie only from this very host, never with a `Domain`, so whoever controls a
/// sibling subdomain cannot plant a sign-in of their own in a victim's browser (login CSRF,
/// RFC 9700 §4.7; RFC 6265bis §4.1.3.2). An issuer with a path prefix cannot have `__Host-`,
/// which demands `Path=/`, and must not have a cookie for the whole host it shares with others:
/// there, and only there, it is a `__Secure-` cookie scoped to the callback's path. Over plain
/// http (development) no prefix exists, and the cookie is scoped to the callback's path too.
pub fn callback_cookie(
    state: &AppState,
    name: &str,
    value: String,
    max_age_secs: Option<i64>,
) -> Cookie<'static> {
    let path = if state.cookie_prefix == HOST_PREFIX {
        "/".to_owned()
    } else {
        format!(
            "{}{}",
            state.cookie_path.trim_end_matches('/'),
            endpoints::WECOM_CALLBACK_PATH
        )
    };
    build_cookie(
        state,
        callback_cookie_name(state, name),
        path,
        value,
        max_age_secs,
    )
}

pub fn callback_cookie_removal(state: &AppState, name: &str) -> Cookie<'static> {
    let mut cookie = callback_cookie(state, name, String::new(), None);
    cookie.make_removal();
    cookie
}

/// The full name of a `callback_cookie`, prefix included (see there).
pub fn callback_cookie_name(state: &AppState, name: &str) -> String {
    let prefix = match (state.cookie_prefix, state.secure_cookies) {
        (HOST_PREFIX, _) => HOST_PREFIX,
        (_, true) => "__Secure-",
        (_, false) => "",
    };
    format!("{prefix}{name}")
}

fn build_cookie(
    state: &AppState,
    name: String,
    path: String,
    value: String,
    max_age_secs: Option<i64>,
) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(state.secure_cookies)
        // Lax: the cookie must come along on the top-level GET back from WeCom and from the
        // relying party, and must not on cross-site POSTs.
        .same_site(SameSite::Lax)
        .finish();
    if let Some(age) = max_age_secs {
        cookie.set_max_age(actix_web::cookie::time::Duration::seconds(age));
    }
    cookie
}

pub fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers()
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
}
