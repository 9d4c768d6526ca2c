//! Thin actix-web handlers: each extracts its input, calls one `Provider` function and maps the
//! outcome to a response. Every route is mounted under the issuer's path prefix.
//!
//! Routes own the HTTP edge (extractors, cookies, status codes, CORS) and nothing else: no
//! protocol decision, no SQL, no WeCom call. The paths come from `oidc::endpoints`; each
//! resource names the limit group it counts under (`limits::Limited`).

mod authorize;
mod discovery;
mod health;
pub(crate) mod respond;
pub mod shape;
mod token;
mod wecom_events;

use std::sync::Arc;

use actix_web::http::{header, Method};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse};

use crate::clock::Clock;
use crate::limits::{Group, Limited};
use crate::oidc::endpoints::{
    AUTHORIZE_PATH, DISCOVERY_PATH, INTROSPECT_PATH, JWKS_PATH, LOGOUT_PATH, REVOKE_PATH,
    TOKEN_PATH, USERINFO_PATH, WECOM_CALLBACK_PATH, WECOM_EVENTS_PATH,
};
use crate::oidc::Provider;
use crate::pages::Pages;

/// What every handler shares.
pub struct AppState {
    pub provider: Provider,
    /// WeCom's event callbacks, when `WECOM_EVENT_*` are set.
    pub wecom_events: Option<crate::wecom::events::EventReceiver>,
    pub pages: Pages,
    pub clock: Arc<dyn Clock>,
    /// The discovery document, serialised once.
    pub discovery: String,
    /// Cookie attributes derived from the issuer.
    pub cookie_path: String,
    pub secure_cookies: bool,
    /// `__Host-` on an https issuer without a path prefix, `__Secure-` on one with a prefix
    /// (`__Host-` demands `Path=/`, which would send the cookies to every application on the
    /// host), nothing on plain http.
    pub cookie_prefix: &'static str,
}

/// Browser-based clients (public, with PKCE) call these endpoints from their own origin. They take
/// no cookies, so any origin may call them; the answer is what the token or credentials allow.
fn cors() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .add((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .add((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type",
        ))
        .add((header::ACCESS_CONTROL_MAX_AGE, "86400"))
}

/// The answer to a CORS preflight; the headers come from `cors()`.
async fn preflight() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        DISCOVERY_PATH,
        web::get().to(discovery::openid_configuration),
    )
    .route(JWKS_PATH, web::get().to(discovery::jwks))
    .service(
        web::resource(AUTHORIZE_PATH)
            .wrap(Limited(Group::Authorize))
            .route(web::get().to(authorize::authorize))
            .route(web::post().to(authorize::authorize)),
    )
    // A resource, not a bare route: other methods get a 405 (shaped by `shape`), not a 404.
    .service(
        web::resource(WECOM_CALLBACK_PATH)
            .wrap(Limited(Group::Callback))
            .route(web::get().to(authorize::wecom_callback)),
    )
    .service(
        web::resource(WECOM_EVENTS_PATH)
            .route(web::get().to(wecom_events::verify))
            .route(web::post().to(wecom_events::deliver)),
    )
    .service(
        web::resource(TOKEN_PATH)
            .wrap(cors())
            .wrap(Limited(Group::Token))
            .route(web::post().to(token::token))
            .route(web::method(Method::OPTIONS).to(preflight))
            .default_service(web::to(respond::method_not_allowed)),
    )
    .service(
        web::resource(USERINFO_PATH)
            .wrap(cors())
            .wrap(Limited(Group::Userinfo))
            .route(web::get().to(token::userinfo_get))
            .route(web::post().to(token::userinfo_post))
            .route(web::method(Method::OPTIONS).to(preflight)),
    )
    .service(
        web::resource(REVOKE_PATH)
            .wrap(cors())
            .wrap(Limited(Group::RevokeIntrospect))
            .route(web::post().to(token::revoke))
            .route(web::method(Method::OPTIONS).to(preflight))
            .default_service(web::to(respond::method_not_allowed)),
    )
    .service(
        web::resource(INTROSPECT_PATH)
            .wrap(cors())
            .wrap(Limited(Group::RevokeIntrospect))
            .route(web::post().to(token::introspect))
            .route(web::method(Method::OPTIONS).to(preflight))
            .default_service(web::to(respond::method_not_allowed)),
    )
    .service(
        web::resource(LOGOUT_PATH)
            .route(web::get().to(authorize::logout))
            .route(web::post().to(authorize::logout)),
    );
    health::configure(cfg);
}

pub use health::configure as configure_health;
