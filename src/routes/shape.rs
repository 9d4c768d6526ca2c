//! The last word on error responses. What the framework answers on its own — an oversized body
//! (413), a path segment it cannot decode (404), a method no route takes (405), an unreadable
//! payload (400) — comes as `text/plain` or empty. This middleware rewrites such an answer into
//! the shape of the endpoint that was asked, keeping its status: RFC 6749 §5.2 JSON at the token,
//! revocation and introspection endpoints, a Bearer `WWW-Authenticate` challenge with JSON at
//! userinfo (RFC 6750 §3), the admin API's JSON, and an HTML page at the browser endpoints.
//! Answers the handlers made (JSON, HTML, redirects) pass untouched.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{respond, AppState};
use crate::oidc::endpoints;
use crate::pages::{Lang, Page, PageKind};

/// Which error shape an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// RFC 6749 §5.2 `{error, error_description}` with `Cache-Control: no-store`.
    OAuthJson,
    /// RFC 6750 §3: `WWW-Authenticate: Bearer error=…` and the same JSON.
    Bearer,
    /// A page for a person in a browser.
    Page,
    /// `{error, error_description}`: the admin API, discovery, JWKS, health, unknown paths.
    Json,
}

fn shape_of(path: &str, prefix: &str) -> Shape {
    let path = path.strip_prefix(prefix).unwrap_or(path);
    match path {
        endpoints::TOKEN_PATH
        | endpoints::REVOKE_PATH
        | endpoints::INTROSPECT_PATH
        | endpoints::DEVICE_AUTHORIZATION_PATH => Shape::OAuthJson,
        endpoints::USERINFO_PATH => Shape::Bearer,
        endpoints::AUTHORIZE_PATH
        | endpoints::WECOM_CALLBACK_PATH
        | endpoints::LOGOUT_PATH
        | endpoints::DEVICE_PATH => Shape::Page,
        _ => Shape::Json,
    }
}

/// True when a handler wrote this answer in its endpoint's shape already.
fn is_shaped(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json") || ct.starts_with("text/html")
        })
}

/// The wire code and a description for a status the framework chose.
fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("invalid_request", "the request is too large"),
        StatusCode::URI_TOO_LONG => ("invalid_request", "the request URI is too long"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "invalid_request",
            "this endpoint does not accept that method",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("invalid_request", "the content type is not supported here")
        }
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::TOO_MANY_REQUESTS => (
            "temporarily_unavailable",
            "too many requests from this address; retry after the Retry-After delay",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "temporarily_unavailable",
            "the service is temporarily unavailable; try again shortly",
        ),
        s if s.is_server_error() => ("server_error", "internal error"),
        _ => ("invalid_request", "the request could not be read"),
    }
}

/// What a 405 names when the framework did not say.
fn allowed_methods(shape: Shape, path: &str) -> &'static str {
    match shape {
        Shape::OAuthJson => "POST, OPTIONS",
        Shape::Bearer => "GET, POST, OPTIONS",
        Shape::Page if path.ends_with(endpoints::WECOM_CALLBACK_PATH) => "GET",
        Shape::Page => "GET, POST",
        Shape::Json => "GET",
    }
}

fn reshape(
    shape: Shape,
    path: &str,
    status: StatusCode,
    original: &HeaderMap,
    state: Option<&AppState>,
) -> HttpResponse {
    let (code, description) = describe(status);
    let mut builder = HttpResponse::build(status);
    respond::no_store(&mut builder);
    if let Some(retry_after) = original.get(header::RETRY_AFTER) {
        builder.insert_header((header::RETRY_AFTER, retry_after.clone()));
    }
    // RFC 9110 §15.5.6: a 405 names the methods the resource takes.
    if let Some(allow) = original.get(header::ALLOW) {
        builder.insert_header((header::ALLOW, allow.clone()));
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        builder.insert_header((header::ALLOW, allowed_methods(shape, path)));
    }
    match shape {
        Shape::Page => match state {
            Some(state) => {
                let kind = if status == StatusCode::SERVICE_UNAVAILABLE
                    || status == StatusCode::TOO_MANY_REQUESTS
                {
                    PageKind::ServiceUnavailable
                } else if status.is_server_error() {
                    PageKind::InternalError
                } else {
                    PageKind::BadRequest
                };
                builder.content_type("text/html; charset=utf-8").body(
                    state
                        .pages
                        .render(&Page::new(kind).detail(description), Lang::En),
                )
            }
            None => builder.json(json!({ "error": code, "error_description": description })),
        },
        Shape::Bearer => {
            let challenge = format!(
                "Bearer realm=\"wecom-oidc\", error=\"invalid_request\", error_description=\"{description}\""
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                builder.insert_header((header::WWW_AUTHENTICATE, value));
            }
            builder.json(json!({ "error": code, "error_description": description }))
        }
        Shape::OAuthJson | Shape::Json => {
            builder.json(json!({ "error": code, "error_description": description }))
        }
    }
}

/// Wraps the whole application: see the module documentation.
pub async fn error_shape(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let prefix = state
        .as_ref()
        .map(|s| s.cookie_path.trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let raw_path = req.path().to_owned();
    let response = next.call(req).await?;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_shaped(response.headers()) {
        return Ok(response.map_into_left_body());
    }
    // The pattern of the resource that answered, when one did: every spelling of a path the
    // router accepts (`/tok%65n`) is shaped like the endpoint it reached.
    let path = response.request().match_pattern().unwrap_or(raw_path);
    let shape = shape_of(&path, &prefix);
    let replacement = reshape(
        shape,
        &path,
        status,
        response.headers(),
        state.as_ref().map(|s| s.get_ref()),
    );
    let (request, _) = response.into_parts();
    Ok(ServiceResponse::new(request, replacement).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_classified_under_a_path_prefix_too() {
        for (path, prefix, shape) in [
            ("/token", "", Shape::OAuthJson),
            ("/sso/introspect", "/sso", Shape::OAuthJson),
            ("/userinfo", "", Shape::Bearer),
            ("/sso/authorize", "/sso", Shape::Page),
            ("/admin/clients/x", "", Shape::Json),
            ("/nowhere", "", Shape::Json),
        ] {
            assert_eq!(shape_of(path, prefix), shape, "{path}");
        }
    }
}
