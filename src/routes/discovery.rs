//! Discovery and JWKS: prebuilt documents, cacheable, no database round trip.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::AppState;

/// Clients and caches may keep the discovery document for an hour.
const CACHE_CONTROL: &str = "public, max-age=3600";

pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(state.discovery.clone())
}

/// Cached for `KeyManager::jwks_max_age`: an hour, or less when `KEY_ACTIVATION_DELAY_SECS` is
/// shorter, so that every cached copy holds a rotated key before it signs.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let max_age = state.provider.keys.jwks_max_age().as_secs();
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(state.provider.keys.jwks().as_str().to_owned())
}
