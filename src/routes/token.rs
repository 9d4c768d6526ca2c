//! Back-channel routes: token, userinfo, revocation, introspection.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::respond::{self, header_str, no_store};
use super::AppState;
use crate::oidc::userinfo::{bearer_token, UserinfoError};
use crate::oidc::{OAuthError, Params};

/// RFC 6749 §3.2: the token endpoint takes `application/x-www-form-urlencoded` POST bodies.
pub(super) fn form_params(req: &HttpRequest, body: &web::Bytes) -> Result<Params, OAuthError> {
    let is_form = header_str(req, header::CONTENT_TYPE)
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Ok(Params::parse(body))
}

pub async fn token(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let params = match form_params(&req, &body) {
        Ok(params) => params,
        Err(err) => return respond::oauth_error(&err),
    };
    let authorization = header_str(&req, header::AUTHORIZATION);
    match state
        .provider
        .token(authorization, &params, state.clock.now_millis())
        .await
    {
        Ok(response) => no_store(&mut HttpResponse::Ok()).json(response),
        Err(err) => respond::oauth_error(&err),
    }
}

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let params = match form_params(&req, &body) {
        Ok(params) => params,
        Err(err) => return respond::oauth_error(&err),
    };
    match state
        .provider
        .revoke(
            header_str(&req, header::AUTHORIZATION),
            &params,
            state.clock.now(),
        )
        .await
    {
        Ok(()) => no_store(&mut HttpResponse::Ok()).finish(),
        Err(err) => respond::oauth_error(&err),
    }
}

pub async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let params = match form_params(&req, &body) {
        Ok(params) => params,
        Err(err) => return respond::oauth_error(&err),
    };
    match state
        .provider
        .introspect(
            header_str(&req, header::AUTHORIZATION),
            &params,
            state.clock.now(),
        )
        .await
    {
        Ok(answer) => no_store(&mut HttpResponse::Ok()).json(answer),
        Err(err) => respond::oauth_error(&err),
    }
}

pub async fn userinfo_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token = header_str(&req, header::AUTHORIZATION)
        .and_then(bearer_token)
        .map(str::to_owned);
    userinfo(state, token).await
}

/// RFC 6750 §2.2: a POST may carry the token in a form body instead of the header.
pub async fn userinfo_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let from_header = header_str(&req, header::AUTHORIZATION)
        .and_then(bearer_token)
        .map(str::to_owned);
    let from_body = form_params(&req, &body)
        .ok()
        .and_then(|p| p.get("access_token").map(str::to_owned));
    if from_header.is_some() && from_body.is_some() {
        // RFC 6750 §2: clients MUST NOT use more than one method.
        return bearer_error(400, "invalid_request", "send the access token once");
    }
    userinfo(state, from_header.or(from_body)).await
}

async fn userinfo(state: web::Data<AppState>, token: Option<String>) -> HttpResponse {
    let Some(token) = token else {
        // RFC 6750 §3.1: without any credentials, no error code.
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"wecom-oidc\""))
            .finish();
    };
    match state.provider.userinfo(&token, state.clock.now()).await {
        Ok(claims) => no_store(&mut HttpResponse::Ok()).json(claims),
        Err(UserinfoError::InvalidToken(description)) => {
            bearer_error(401, "invalid_token", description)
        }
        Err(UserinfoError::InsufficientScope) => bearer_error(
            403,
            "insufficient_scope",
            "the access token lacks the openid scope",
        ),
        Err(UserinfoError::Failed(err)) => respond::oauth_error(&err),
    }
}

fn bearer_error(status: u16, code: &str, description: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::UNAUTHORIZED);
    no_store(&mut HttpResponse::build(status))
        .insert_header((
            header::WWW_AUTHENTICATE,
            format!("Bearer realm=\"wecom-oidc\", error=\"{code}\", error_description=\"{description}\""),
        ))
        .json(json!({ "error": code, "error_description": description }))
}
