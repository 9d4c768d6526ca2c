//! The admin API under `/admin/clients`, behind `Authorization: Bearer $ADMIN_TOKEN`.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{client_document, ChosenSecret, RegistryError};
use crate::clock::Clock;
use crate::crypto::{constant_time_eq, sha256};
use crate::domain::ClientRegistration;
use crate::limits::{Group, Limited};
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
        web::scope("/admin")
            .wrap(Limited(Group::Admin))
            .service(
                web::resource("/clients")
                    .route(web::get().to(list))
                    .route(web::post().to(create)),
            )
            .service(
                web::resource("/clients/{client_id}")
                    .route(web::get().to(get))
                    .route(web::put().to(update))
                    .route(web::delete().to(delete)),
            )
            .route("/clients/{client_id}/secret", web::post().to(rotate))
            .route("/users/{sub}", web::get().to(show_member))
            .route("/users/{sub}/revoke", web::post().to(revoke_member))
            .service(web::resource("/audit").route(web::get().to(audit))),
    );
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
    #[error("{0}")]
    BadQuery(&'static str),
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
            AdminError::BadQuery(_) => {
                json_error(StatusCode::BAD_REQUEST, "invalid_request", &description)
            }
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

/// Parses the body ourselves so that every failure gets the same JSON error shape. A
/// `client_secret` member sets the secret instead of generating one.
fn parse_registration(
    req: &HttpRequest,
    body: &[u8],
) -> Result<(ClientRegistration, Option<ChosenSecret>), AdminError> {
    let mut document = parse_json_object(req, body)?;
    let chosen = take_chosen_secret(&mut document)?;
    let document = serde_json::Value::Object(document);
    if holds_nul(&document) {
        // Postgres cannot store a NUL byte in text; no metadata value has a use for one.
        return Err(AdminError::BadMetadata(
            "values must not contain NUL characters".to_owned(),
        ));
    }
    let registration =
        serde_json::from_value(document).map_err(|e| AdminError::BadMetadata(e.to_string()))?;
    Ok((registration, chosen))
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(members) => members
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

/// Removes `client_secret` from the document and checks it.
fn take_chosen_secret(
    document: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<ChosenSecret>, AdminError> {
    match document.remove("client_secret") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(secret)) => Ok(Some(ChosenSecret::parse(&secret)?)),
        Some(_) => Err(AdminError::BadMetadata(
            "client_secret must be a string".to_owned(),
        )),
    }
}

fn parse_json_object(
    req: &HttpRequest,
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, AdminError> {
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
    let (registration, chosen) = parse_registration(&req, &body)?;
    let created = super::register_client(
        &context.store,
        context.key_encryption_key.as_ref(),
        registration,
        chosen,
        context.clock.now(),
    )
    .await?;
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
    let (registration, chosen) = parse_registration(&req, &body)?;
    let updated = super::reregister_client(
        &context.store,
        context.key_encryption_key.as_ref(),
        &path,
        registration,
        chosen,
        context.clock.now(),
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

/// A new generated secret (shown once), or, with a JSON body `{"client_secret": "…"}`, the
/// administrator's (not echoed).
async fn rotate(
    req: HttpRequest,
    context: web::Data<AdminContext>,
    path: web::Path<String>,
    body: web::Bytes,
) -> AdminResult {
    authorize(&req, &context)?;
    let chosen = if body.is_empty() {
        None
    } else {
        let mut document = parse_json_object(&req, &body)?;
        let chosen = take_chosen_secret(&mut document)?;
        if let Some(unknown) = document.keys().next() {
            return Err(AdminError::BadMetadata(format!(
                "unknown field `{unknown}`; only client_secret may be sent"
            )));
        }
        chosen
    };
    let secret = super::rotate_client_secret(
        &context.store,
        context.key_encryption_key.as_ref(),
        &path,
        chosen,
        context.clock.now(),
    )
    .await?;
    let mut document = json!({ "client_id": path.as_str() });
    if let Some(secret) = secret {
        document["client_secret"] = json!(secret);
    }
    Ok(ok(StatusCode::OK, document))
}

/// The most rows one `GET /admin/audit` returns, and the default.
const AUDIT_PAGE_MAX: i64 = 500;
const AUDIT_PAGE_DEFAULT: i64 = 100;

/// `GET /admin/audit?sub=&event=&since=&limit=&cursor=`: the audit log, newest first. A full page
/// carries `next_cursor`; pass it as `cursor` for the next, older page.
async fn audit(req: HttpRequest, context: web::Data<AdminContext>) -> AdminResult {
    authorize(&req, &context)?;
    let params = crate::oidc::Params::parse(req.query_string().as_bytes());
    let number = |name: &str, problem: &'static str| -> Result<Option<i64>, AdminError> {
        params
            .get(name)
            .map(|raw| {
                raw.parse::<i64>()
                    .map_err(|_| AdminError::BadQuery(problem))
            })
            .transpose()
    };
    let text = |name: &str| -> Result<Option<String>, AdminError> {
        match params.get(name) {
            Some(value) if value.len() > 256 || value.contains('\0') => Err(AdminError::BadQuery(
                "sub and event are at most 256 characters",
            )),
            other => Ok(other.map(str::to_owned)),
        }
    };
    let limit = number("limit", "limit must be a whole number")?.unwrap_or(AUDIT_PAGE_DEFAULT);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(AdminError::BadQuery("limit must be from 1 to 500"));
    }
    let query = crate::storage::AuditQuery {
        sub: text("sub")?,
        event: text("event")?,
        since: number("since", "since must be a Unix time in seconds")?,
        before_id: number(
            "cursor",
            "cursor must be a next_cursor from an earlier page",
        )?,
        limit,
        ..Default::default()
    };
    let rows = context.store.audit_page(&query).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|(id, _)| id.to_string()))
        .flatten();
    let events: Vec<serde_json::Value> = rows
        .iter()
        .map(|(_, e)| {
            json!({
                "at": e.at, "event": e.event, "outcome": e.outcome, "sub": e.sub,
                "client_id": e.client_id, "reason": e.reason,
            })
        })
        .collect();
    Ok(ok(
        StatusCode::OK,
        json!({ "events": events, "next_cursor": next_cursor }),
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
