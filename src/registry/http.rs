//! The admin API under `/admin/clients`, behind `Authorization: Bearer $ADMIN_TOKEN`.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{client_document, RegistryError};
use crate::clock::Clock;
use crate::crypto::{constant_time_eq, sha256};
use crate::domain::ClientRegistration;
use crate::storage::Store;

pub struct AdminContext {
    pub store: Store,
    pub admin_token: Option<SecretString>,
    pub clock: Arc<dyn Clock>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/clients")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/admin/clients/{client_id}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .route("/admin/clients/{client_id}/secret", web::post().to(rotate));
}

fn json_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "error": error, "error_description": description }))
}

fn ok(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// Checked before anything else, the body included. Digests are compared so that neither the
/// token nor its length leaks through timing.
fn authorize(req: &HttpRequest, context: &AdminContext) -> Result<(), HttpResponse> {
    let Some(expected) = &context.admin_token else {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "admin_api_disabled",
            "the admin API is disabled; set ADMIN_TOKEN to enable it",
        ));
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::oidc::userinfo::bearer_token);
    let valid = presented.is_some_and(|token| {
        constant_time_eq(
            &sha256(token.as_bytes()),
            &sha256(expected.expose_secret().as_bytes()),
        )
    });
    if valid {
        Ok(())
    } else {
        let mut response = json_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "send Authorization: Bearer <ADMIN_TOKEN>",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"wecom-oidc-admin\""),
        );
        Err(response)
    }
}

/// Parses the body ourselves so that every failure gets the same JSON error shape.
fn parse_registration(req: &HttpRequest, body: &[u8]) -> Result<ClientRegistration, HttpResponse> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if !is_json {
        return Err(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "send the client metadata as application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        json_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            &format!("the body is not valid client metadata: {e}"),
        )
    })
}

fn registry_error(err: RegistryError) -> HttpResponse {
    match err {
        RegistryError::Invalid(invalid) => {
            json_error(StatusCode::BAD_REQUEST, invalid.error, &invalid.description)
        }
        RegistryError::NotFound => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no client with that client_id",
        ),
        RegistryError::PublicClient => json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this is a public client (token_endpoint_auth_method none); it has no secret",
        ),
        RegistryError::Unavailable => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the database is unavailable; try again shortly",
        ),
        RegistryError::Unexpected(err) => {
            tracing::error!(error = %format!("{err:#}"), "admin API failure");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }
}

async fn list(req: HttpRequest, context: web::Data<AdminContext>) -> HttpResponse {
    if let Err(denied) = authorize(&req, &context) {
        return denied;
    }
    match context.store.list_clients().await {
        Ok(clients) => ok(
            StatusCode::OK,
            json!({ "clients": clients.iter().map(|c| client_document(c, None)).collect::<Vec<_>>() }),
        ),
        Err(err) => registry_error(err.into()),
    }
}

async fn create(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(denied) = authorize(&req, &context) {
        return denied;
    }
    let registration = match parse_registration(&req, &body) {
        Ok(registration) => registration,
        Err(response) => return response,
    };
    match super::create_client(&context.store, registration, context.clock.now()).await {
        Ok(created) => {
            tracing::info!(client_id = %created.client.client_id, "client registered");
            ok(
                StatusCode::CREATED,
                client_document(&created.client, created.client_secret.as_deref()),
            )
        }
        Err(err) => registry_error(err),
    }
}

async fn get(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Err(denied) = authorize(&req, &context) {
        return denied;
    }
    match context.store.get_client(&path).await {
        Ok(client) => ok(StatusCode::OK, client_document(&client, None)),
        Err(err) => registry_error(err.into()),
    }
}

async fn update(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(denied) = authorize(&req, &context) {
        return denied;
    }
    let registration = match parse_registration(&req, &body) {
        Ok(registration) => registration,
        Err(response) => return response,
    };
    match super::update_client(&context.store, &path, registration, context.clock.now()).await {
        Ok(updated) => ok(
            StatusCode::OK,
            client_document(&updated.client, updated.client_secret.as_deref()),
        ),
        Err(err) => registry_error(err),
    }
}

async fn delete(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Err(denied) = authorize(&req, &context) {
        return denied;
    }
    match context.store.delete_client(&path).await {
        Ok(()) => {
            tracing::info!(client_id = %path, "client deleted");
            HttpResponse::NoContent().finish()
        }
        Err(err) => registry_error(err.into()),
    }
}

async fn rotate(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Err(denied) = authorize(&req, &context) {
        return denied;
    }
    match super::rotate_secret(&context.store, &path, context.clock.now()).await {
        Ok(secret) => ok(
            StatusCode::OK,
            json!({ "client_id": path.as_str(), "client_secret": secret }),
        ),
        Err(err) => registry_error(err),
    }
}
