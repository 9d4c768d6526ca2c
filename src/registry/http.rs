//! The admin API under `/admin/clients`, behind `Authorization: Bearer $ADMIN_TOKEN`.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{client_document, RegistryError};
use crate::clock::Clock;
use crate::crypto::{constant_time_eq, sha256};
use crate::domain::ClientRegistration;
use crate::routes::AppState;
use crate::storage::Store;

pub struct AdminContext {
    pub store: Store,
    pub admin_token: Option<SecretString>,
    /// Seals the secrets of `client_secret_jwt` clients.
    pub key_encryption_key: Option<SecretString>,
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
    .route("/admin/clients/{client_id}/secret", web::post().to(rotate))
    .route("/admin/users/{sub}", web::get().to(show_member))
    .route("/admin/users/{sub}/revoke", web::post().to(revoke_member));
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

/// Why an admin call was refused; each answers a JSON error.
#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("the admin API is disabled; set ADMIN_TOKEN to enable it")]
    Disabled,
    #[error("send Authorization: Bearer <ADMIN_TOKEN>")]
    Unauthorized,
    #[error("send the client metadata as application/json")]
    NotJson,
    #[error("the body is not valid client metadata: {0}")]
    BadMetadata(String),
    #[error("no member with this sub has signed in")]
    UnknownMember,
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<crate::storage::StorageError> for AdminError {
    fn from(err: crate::storage::StorageError) -> Self {
        AdminError::Registry(err.into())
    }
}

impl ResponseError for AdminError {
    fn error_response(&self) -> HttpResponse {
        let description = self.to_string();
        match self {
            AdminError::Disabled => {
                json_error(StatusCode::FORBIDDEN, "admin_api_disabled", &description)
            }
            AdminError::Unauthorized => {
                let mut response =
                    json_error(StatusCode::UNAUTHORIZED, "invalid_token", &description);
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"wecom-oidc-admin\""),
                );
                response
            }
            AdminError::NotJson => json_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                &description,
            ),
            AdminError::BadMetadata(_) => json_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                &description,
            ),
            AdminError::Registry(RegistryError::Invalid(invalid)) => {
                json_error(StatusCode::BAD_REQUEST, invalid.error, &invalid.description)
            }
            AdminError::UnknownMember => {
                json_error(StatusCode::NOT_FOUND, "not_found", &description)
            }
            AdminError::Registry(RegistryError::NotFound) => {
                json_error(StatusCode::NOT_FOUND, "not_found", &description)
            }
            AdminError::Registry(RegistryError::PublicClient) => json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "this client has no secret (token_endpoint_auth_method none or private_key_jwt)",
            ),
            AdminError::Registry(RegistryError::Unavailable) => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the database is unavailable; try again shortly",
            ),
            AdminError::Registry(RegistryError::Unexpected(err)) => {
                tracing::error!(error = %format!("{err:#}"), "admin API failure");
                json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error",
                )
            }
        }
    }
}

/// Checked before anything else, the body included. Digests are compared so that neither the
/// token nor its length leaks through timing.
fn authorize(req: &HttpRequest, context: &AdminContext) -> Result<(), AdminError> {
    let expected = context.admin_token.as_ref().ok_or(AdminError::Disabled)?;
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
        Err(AdminError::Unauthorized)
    }
}

/// Parses the body ourselves so that every failure gets the same JSON error shape.
fn parse_registration(req: &HttpRequest, body: &[u8]) -> Result<ClientRegistration, AdminError> {
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
        return Err(AdminError::NotJson);
    }
    serde_json::from_slice(body).map_err(|e| AdminError::BadMetadata(e.to_string()))
}

type AdminResult = Result<HttpResponse, AdminError>;

async fn list(req: HttpRequest, context: web::Data<AdminContext>) -> AdminResult {
    authorize(&req, &context)?;
    let clients = context.store.list_clients().await?;
    Ok(ok(
        StatusCode::OK,
        json!({ "clients": clients.iter().map(|c| client_document(c, None)).collect::<Vec<_>>() }),
    ))
}

async fn create(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    body: web::Bytes,
) -> AdminResult {
    authorize(&req, &context)?;
    let registration = parse_registration(&req, &body)?;
    let created = super::create_client(&context.store, registration, context.clock.now()).await?;
    super::keep_jwt_secret(
        &context.store,
        context.key_encryption_key.as_ref(),
        &created.client.client_id,
        created.client_secret.as_deref(),
    )
    .await?;
    tracing::info!(client_id = %created.client.client_id, "client registered");
    Ok(ok(
        StatusCode::CREATED,
        client_document(&created.client, created.client_secret.as_deref()),
    ))
}

async fn get(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    path: web::Path<String>,
) -> AdminResult {
    authorize(&req, &context)?;
    let client = context.store.get_client(&path).await?;
    Ok(ok(StatusCode::OK, client_document(&client, None)))
}

async fn update(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    path: web::Path<String>,
    body: web::Bytes,
) -> AdminResult {
    authorize(&req, &context)?;
    let registration = parse_registration(&req, &body)?;
    let updated =
        super::update_client(&context.store, &path, registration, context.clock.now()).await?;
    super::keep_jwt_secret(
        &context.store,
        context.key_encryption_key.as_ref(),
        &path,
        updated.client_secret.as_deref(),
    )
    .await?;
    Ok(ok(
        StatusCode::OK,
        client_document(&updated.client, updated.client_secret.as_deref()),
    ))
}

async fn delete(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    path: web::Path<String>,
) -> AdminResult {
    authorize(&req, &context)?;
    context.store.delete_client(&path).await?;
    tracing::info!(client_id = %path, "client deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    path: web::Path<String>,
) -> AdminResult {
    authorize(&req, &context)?;
    let secret = super::rotate_secret(&context.store, &path, context.clock.now()).await?;
    super::keep_jwt_secret(
        &context.store,
        context.key_encryption_key.as_ref(),
        &path,
        Some(&secret),
    )
    .await?;
    Ok(ok(
        StatusCode::OK,
        json!({ "client_id": path.as_str(), "client_secret": secret }),
    ))
}

/// `GET /admin/users/{sub}`: the member's stored profile, when WeCom last confirmed them, their
/// sessions and their grants per client.
async fn show_member(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AdminResult {
    authorize(&req, &context)?;
    let document = state
        .provider
        .member_document(&path, context.clock.now())
        .await?
        .ok_or(AdminError::UnknownMember)?;
    Ok(ok(StatusCode::OK, document))
}

/// `POST /admin/users/{sub}/revoke`: ends every session, grant and token of the member now, with
/// back-channel logout; answers the member as they stand afterwards.
async fn revoke_member(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AdminResult {
    authorize(&req, &context)?;
    let now = context.clock.now();
    if !state.provider.revoke_member_by_admin(&path, now).await? {
        return Err(AdminError::UnknownMember);
    }
    tracing::info!(sub = %path, "member revoked by an administrator");
    let document = state
        .provider
        .member_document(&path, now)
        .await?
        .ok_or(AdminError::UnknownMember)?;
    Ok(ok(StatusCode::OK, document))
}
