//! Discovery and JWKS: prebuilt documents, cacheable, no database round trip.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::AppState;

/// Clients and caches may keep both for an hour; key rotation keeps retired keys published far
/// longer than that.
const CACHE_CONTROL: &str = "public, max-age=3600";

pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(state.discovery.clone())
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(state.provider.keys.jwks().as_str().to_owned())
}
