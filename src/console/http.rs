//! The console's routes under `{issuer}/console`, mounted only when `ADMIN_GROUPS` or
//! `ADMIN_USERS` is set (otherwise every console path is the ordinary 404). Each handler checks
//! the request's standing first (`guard`, `guard_post`, `guard_destructive`) and shows nothing to
//! anyone who is not an administrator. The actions call the same functions as the admin API
//! (`registry`, `Provider::revoke_member_by_admin`, `KeyManager::rotate`) and audit each with the
//! administrator's `sub`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::{context, Value};
use serde::Serialize;

use super::pages::{datetime_local, parse_datetime_local, path_segment, Frame};
use super::text::strings;
use super::{
    console_path, same_origin, Administrator, ConsolePages, SignInOutcome, Standing,
    FRESH_SIGN_IN_SECS, SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::domain::{ClientRegistration, GrantType, RegisteredClient, Scope, ScopeSet};
use crate::oidc::profile::{GroupRelease, UserProfile};
use crate::oidc::Params;
use crate::pages::Lang;
use crate::registry::{self, RegistryError};
use crate::routes::respond::{self, header_str};
use crate::routes::AppState;
use crate::storage::{AuditEvent, AuditQuery, StorageError};

/// The cookie that keeps a language chosen with `?lang=`.
const LANG_COOKIE: &str = "wecom_oidc_console_lang";
/// What every console page answers with: no script at all, no framing, nothing cached.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";
/// Rows per page of the audit log, and the most one CSV export holds.
const AUDIT_PAGE: i64 = 50;
const CSV_MAX_ROWS: i64 = 10_000;
/// The most people a search lists.
const SEARCH_MAX: usize = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(home))
        .route("/console/", web::get().to(home))
        .route("/console/login", web::get().to(login))
        .route("/console/callback", web::get().to(callback))
        .route("/console/logout", web::post().to(logout))
        .route("/console/clients", web::get().to(clients))
        .service(
            web::resource("/console/clients/new")
                .route(web::get().to(new_client_form))
                .route(web::post().to(create_client)),
        )
        .service(
            web::resource("/console/clients/{client_id}")
                .route(web::get().to(client_page))
                .route(web::post().to(update_client)),
        )
        .route(
            "/console/clients/{client_id}/secret",
            web::post().to(rotate_secret),
        )
        .service(
            web::resource("/console/clients/{client_id}/delete")
                .route(web::get().to(delete_form))
                .route(web::post().to(delete_client)),
        )
        .route("/console/people", web::get().to(people))
        .route("/console/people/{sub}", web::get().to(person))
        .route("/console/people/{sub}/revoke", web::post().to(revoke))
        .route("/console/audit", web::get().to(audit))
        .route("/console/keys", web::get().to(keys))
        .route("/console/keys/rotate", web::post().to(rotate_keys))
        .route("/console/status", web::get().to(status));
}

type State = web::Data<AppState>;
type Templates = web::Data<ConsolePages>;

/// One console request: what every helper below needs.
#[derive(Clone, Copy)]
struct Cx<'a> {
    req: &'a HttpRequest,
    state: &'a AppState,
    pages: &'a ConsolePages,
}

impl<'a> Cx<'a> {
    fn new(req: &'a HttpRequest, state: &'a AppState, pages: &'a ConsolePages) -> Self {
        Self { req, state, pages }
    }
}

/// The value of a check that passed, or else the handler answers with the check's response
/// (sign in, 403, 404, 503) and does nothing more.
macro_rules! or_respond {
    ($checked:expr) => {
        match $checked {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

/// The issuer's path prefix: `""` or `/sso`.
fn base(state: &AppState) -> String {
    state.provider.config.issuer.path_prefix()
}

fn cookie_of(req: &HttpRequest, state: &AppState, name: &str) -> Option<String> {
    req.cookie(&format!("{}{name}", state.cookie_prefix))
        .map(|c| c.value().to_owned())
}

/// `?lang=` first (and remembered), then the remembered choice, then `Accept-Language`.
fn lang(req: &HttpRequest, state: &AppState) -> Lang {
    let chosen = Params::parse(req.query_string().as_bytes())
        .get("lang")
        .map(str::to_owned)
        .or_else(|| cookie_of(req, state, LANG_COOKIE));
    match chosen.as_deref() {
        Some("en") => Lang::En,
        Some("zh") => Lang::Zh,
        _ => respond::lang_of(req, None),
    }
}

/// A console page: its status, the console's CSP, `no-store`, and the language cookie when
/// `?lang=` chose one.
fn html(req: &HttpRequest, state: &AppState, status: StatusCode, body: String) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        // The console's own form posts must carry their `Origin` (`no-referrer`, the default
        // elsewhere, makes browsers send `Origin: null`); nothing leaves for another site.
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(code) = Params::parse(req.query_string().as_bytes())
        .get("lang")
        .filter(|code| matches!(*code, "en" | "zh"))
    {
        builder.cookie(respond::cookie(
            state,
            LANG_COOKIE,
            code.to_owned(),
            Some(365 * 86_400),
        ));
    }
    builder.body(body)
}

impl Cx<'_> {
    /// A page of the console around `content`.
    fn page(
        &self,
        admin: Option<&Administrator>,
        nav: &str,
        template: &str,
        status: StatusCode,
        content: Value,
    ) -> HttpResponse {
        let (req, state, pages) = (self.req, self.state, self.pages);
        let base = base(state);
        let frame = Frame {
            lang: lang(req, state),
            base: &base,
            admin,
            nav,
        };
        html(req, state, status, pages.render(template, frame, content))
    }
}

impl Cx<'_> {
    /// A message page: `title` and `body` are keys of the console's strings.
    fn message(
        &self,
        admin: Option<&Administrator>,
        status: StatusCode,
        title: &str,
        body: &str,
        detail: Option<&str>,
        link: Option<(String, &str)>,
    ) -> HttpResponse {
        let (req, state) = (self.req, self.state);
        let t = strings(lang(req, state));
        let text = |key: &str| t.get(key).copied().unwrap_or_default();
        let content = context! {
            title => text(title), body => text(body), detail,
            link => link.as_ref().map(|(url, _)| url.clone()),
            link_label => link.as_ref().map(|(_, label)| text(label)),
        };
        self.page(admin, "", "message.html", status, content)
    }
}

/// Where the sign-in starts, to come back to `next`; `fresh` asks for a sign-in of the last
/// ten minutes (`max_age`).
fn sign_in_url(state: &AppState, next: &str, fresh: bool) -> String {
    let mut url = format!("{}/console/login?next={}", base(state), path_segment(next));
    if fresh {
        url.push_str(&format!("&max_age={FRESH_SIGN_IN_SECS}"));
    }
    url
}

/// The path and query of this request, where the sign-in returns to.
fn here(req: &HttpRequest) -> String {
    match req.query_string() {
        "" => req.path().to_owned(),
        query => format!("{}?{query}", req.path()),
    }
}

impl Cx<'_> {
    /// Our own failure: logged with its chain, shown as an opaque page.
    fn failure(
        &self,
        admin: Option<&Administrator>,
        err: impl Into<anyhow::Error>,
    ) -> HttpResponse {
        let err = err.into();
        tracing::error!(error = %format!("{err:#}"), "console failure");
        self.message(
            admin,
            StatusCode::INTERNAL_SERVER_ERROR,
            "error_title",
            "error_body",
            None,
            None,
        )
    }
}

impl Cx<'_> {
    /// The administrator behind this request, or the response for anyone else: a redirect to sign
    /// in (no data), the 403 page, or the WeCom-unavailable page.
    async fn guard(&self, next: &str) -> Result<Administrator, HttpResponse> {
        let (req, state) = (self.req, self.state);
        let sealed = cookie_of(req, state, SESSION_COOKIE);
        let now = state.clock.now();
        match state
            .provider
            .console_standing(sealed.as_deref(), now)
            .await
        {
            Ok(Standing::Admin(admin)) => Ok(admin),
            Ok(Standing::SignInNeeded) => {
                let mut response =
                    respond::redirect(&sign_in_url(state, next, false), false).finish();
                if sealed.is_some() {
                    let _ = response.add_cookie(&respond::removal_cookie(state, SESSION_COOKIE));
                }
                Err(response)
            }
            Ok(Standing::Forbidden) => Err(self.message(
                None,
                StatusCode::FORBIDDEN,
                "forbidden_title",
                "forbidden_body",
                None,
                None,
            )),
            Ok(Standing::WeComUnavailable) => Err(self.message(
                None,
                StatusCode::SERVICE_UNAVAILABLE,
                "wecom_down_title",
                "wecom_down_body",
                None,
                None,
            )),
            Err(err) => Err(self.failure(None, err)),
        }
    }
}

impl Cx<'_> {
    /// [`guard`] for a form post: the request must come from the console's own origin and carry
    /// this session's CSRF token, or it is refused (403) before anything else is read.
    async fn guard_post(&self, form: &Params, next: &str) -> Result<Administrator, HttpResponse> {
        let (req, state) = (self.req, self.state);
        let refused = || {
            self.message(
                None,
                StatusCode::FORBIDDEN,
                "csrf_title",
                "csrf_body",
                None,
                None,
            )
        };
        let expected = state.provider.config.issuer.origin();
        if !same_origin(
            &expected,
            header_str(req, header::ORIGIN),
            req.headers()
                .get("sec-fetch-site")
                .and_then(|v| v.to_str().ok()),
        ) {
            tracing::warn!(
                path = req.path(),
                "console POST from another origin refused"
            );
            return Err(refused());
        }
        let admin = self.guard(next).await?;
        if form.is_repeated("csrf") || !admin.csrf_matches(form.get("csrf")) {
            tracing::warn!(
                path = req.path(),
                "console POST without this session's CSRF token"
            );
            return Err(refused());
        }
        Ok(admin)
    }
}

impl Cx<'_> {
    /// [`guard_post`] for revoke, rotate and delete: the sign-in must also be of the last ten
    /// minutes; otherwise the person signs in again (`max_age`) and comes back to `next`, where they
    /// press the button again (the action is never replayed for them).
    async fn guard_destructive(
        &self,
        form: &Params,
        next: &str,
    ) -> Result<Administrator, HttpResponse> {
        let state = self.state;
        let admin = self.guard_post(form, next).await?;
        if !admin.signed_in_recently(state.clock.now()) {
            return Err(respond::redirect(&sign_in_url(state, next, true), true).finish());
        }
        Ok(admin)
    }
}

async fn home(state: State) -> HttpResponse {
    respond::redirect(&format!("{}/console/clients", base(&state)), false).finish()
}

/// `GET /console/login?next=&max_age=`: off to `/authorize` as the console's built-in client.
async fn login(req: HttpRequest, state: State, pages: Templates) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let params = Params::parse(req.query_string().as_bytes());
    let next = console_path(&base(&state), params.get("next"));
    // Only the console's own re-sign-in asks for a recent one; no other age is accepted.
    let max_age = params
        .get("max_age")
        .is_some_and(|age| age == FRESH_SIGN_IN_SECS.to_string())
        .then_some(FRESH_SIGN_IN_SECS);
    let locale = lang(&req, &state).wecom_code();
    match state
        .provider
        .start_console_sign_in(next, max_age, locale, state.clock.now())
    {
        Ok((url, sealed)) => respond::redirect(&url, false)
            .cookie(respond::cookie(
                &state,
                SIGN_IN_COOKIE,
                sealed,
                Some(super::SIGN_IN_SECS),
            ))
            .finish(),
        Err(err) => cx.failure(None, err),
    }
}

/// `GET /console/callback?code&state`: the end of the console's sign-in.
async fn callback(req: HttpRequest, state: State, pages: Templates) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let params = Params::parse(req.query_string().as_bytes());
    let sealed = cookie_of(&req, &state, SIGN_IN_COOKIE);
    let again = Some((format!("{}/console/login", base(&state)), "sign_in_again"));
    let mut response = match state
        .provider
        .complete_console_sign_in(&params, sealed.as_deref(), state.clock.now())
        .await
    {
        Ok(SignInOutcome::SignedIn {
            cookie,
            max_age,
            next,
        }) => respond::redirect(&next, false)
            .cookie(respond::cookie(
                &state,
                SESSION_COOKIE,
                cookie,
                Some(max_age),
            ))
            .finish(),
        Ok(SignInOutcome::Forbidden) => cx.message(
            None,
            StatusCode::FORBIDDEN,
            "forbidden_title",
            "forbidden_body",
            None,
            None,
        ),
        Ok(SignInOutcome::Expired) => cx.message(
            None,
            StatusCode::BAD_REQUEST,
            "expired_title",
            "expired_body",
            None,
            again,
        ),
        Ok(SignInOutcome::Refused(error)) => cx.message(
            None,
            StatusCode::FORBIDDEN,
            "refused_title",
            "refused_body",
            Some(&error),
            again,
        ),
        Err(err) => cx.failure(None, err),
    };
    if sealed.is_some() {
        let _ = response.add_cookie(&respond::removal_cookie(&state, SIGN_IN_COOKIE));
    }
    response
}

/// `POST /console/logout`: ends the console session, then offers to end the SSO session too
/// (the provider's own logout page asks).
async fn logout(
    req: HttpRequest,
    state: State,
    pages: Templates,
    body: web::Bytes,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let form = Params::parse(&body);
    let base = base(&state);
    let admin = or_respond!(cx.guard_post(&form, &base).await);
    state
        .provider
        .audit_console(&admin, "console_sign_out", None, None, state.clock.now())
        .await;
    let mut response = respond::redirect(
        &format!("{base}{}", crate::oidc::endpoints::LOGOUT_PATH),
        true,
    )
    .finish();
    let _ = response.add_cookie(&respond::removal_cookie(&state, SESSION_COOKIE));
    response
}

/// A client as the pages show it.
#[derive(Debug, Serialize)]
struct ClientView {
    client_id: String,
    name: String,
    auth_method: &'static str,
    redirect_uris: Vec<String>,
    has_secret: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<&RegisteredClient> for ClientView {
    fn from(client: &RegisteredClient) -> Self {
        Self {
            client_id: client.client_id.clone(),
            name: client.metadata.client_name.clone(),
            auth_method: client.metadata.token_endpoint_auth_method.as_str(),
            redirect_uris: client.metadata.redirect_uris.clone(),
            has_secret: client.metadata.token_endpoint_auth_method.uses_secret(),
            created_at: client.created_at,
            updated_at: client.updated_at,
        }
    }
}

/// The fields of the client form, as typed (to show again after an error) or as registered.
#[derive(Debug, Serialize)]
struct ClientForm {
    client_name: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    auth_method: String,
    scope: String,
    allowed_groups: String,
    groups_filter: String,
    backchannel_logout_uri: String,
    jwks_uri: String,
    /// An inline JWK Set (RFC 7591 `jwks`), as JSON text.
    jwks: String,
    /// The grants, one checkbox each (RFC 7591 `grant_types`): saving the form replaces every
    /// field, so a field the form lacked would be reset on each save.
    grant_authorization_code: bool,
    grant_refresh_token: bool,
    grant_device_code: bool,
    require_pkce: bool,
    id_token_profile_claims: bool,
    always_issue_refresh_token: bool,
    backchannel_logout_session_required: bool,
}

impl ClientForm {
    fn blank() -> Self {
        Self {
            client_name: String::new(),
            redirect_uris: String::new(),
            post_logout_redirect_uris: String::new(),
            auth_method: "client_secret_basic".to_owned(),
            scope: String::new(),
            allowed_groups: String::new(),
            groups_filter: String::new(),
            backchannel_logout_uri: String::new(),
            jwks_uri: String::new(),
            jwks: String::new(),
            grant_authorization_code: true,
            grant_refresh_token: true,
            grant_device_code: false,
            require_pkce: true,
            id_token_profile_claims: true,
            always_issue_refresh_token: false,
            backchannel_logout_session_required: false,
        }
    }

    fn of(client: &RegisteredClient) -> Self {
        let m = &client.metadata;
        Self {
            client_name: m.client_name.clone(),
            redirect_uris: m.redirect_uris.join("\n"),
            post_logout_redirect_uris: m.post_logout_redirect_uris.join("\n"),
            auth_method: m.token_endpoint_auth_method.as_str().to_owned(),
            scope: m.scope.clone(),
            allowed_groups: m.allowed_groups.join("\n"),
            groups_filter: m.groups_filter.join("\n"),
            backchannel_logout_uri: m.backchannel_logout_uri.clone().unwrap_or_default(),
            jwks_uri: m.jwks_uri.clone().unwrap_or_default(),
            jwks: m
                .jwks
                .as_ref()
                .and_then(|jwks| serde_json::to_string_pretty(jwks).ok())
                .unwrap_or_default(),
            grant_authorization_code: client.allows_grant(GrantType::AuthorizationCode),
            grant_refresh_token: client.allows_grant(GrantType::RefreshToken),
            grant_device_code: client.allows_grant(GrantType::DeviceCode),
            require_pkce: m.require_pkce,
            id_token_profile_claims: m.id_token_profile_claims,
            always_issue_refresh_token: m.always_issue_refresh_token,
            backchannel_logout_session_required: m.backchannel_logout_session_required,
        }
    }

    fn posted(form: &Params) -> Self {
        let text = |name: &str| form.get(name).unwrap_or_default().to_owned();
        Self {
            client_name: text("client_name"),
            redirect_uris: text("redirect_uris"),
            post_logout_redirect_uris: text("post_logout_redirect_uris"),
            auth_method: text("token_endpoint_auth_method"),
            scope: text("scope"),
            allowed_groups: text("allowed_groups"),
            groups_filter: text("groups_filter"),
            backchannel_logout_uri: text("backchannel_logout_uri"),
            jwks_uri: text("jwks_uri"),
            jwks: text("jwks"),
            grant_authorization_code: form.get("grant_authorization_code") == Some("true"),
            grant_refresh_token: form.get("grant_refresh_token") == Some("true"),
            grant_device_code: form.get("grant_device_code") == Some("true"),
            require_pkce: form.get("require_pkce") == Some("true"),
            id_token_profile_claims: form.get("id_token_profile_claims") == Some("true"),
            always_issue_refresh_token: form.get("always_issue_refresh_token") == Some("true"),
            backchannel_logout_session_required: form.get("backchannel_logout_session_required")
                == Some("true"),
        }
    }

    /// The RFC 7591 registration these fields make, checked by the registry like the admin
    /// API's JSON; `Err` is the message to show.
    fn registration(&self) -> Result<ClientRegistration, String> {
        let lines = |text: &str| -> Vec<String> {
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let optional = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        let non_empty = |values: Vec<String>| Some(values).filter(|v| !v.is_empty());
        let jwks = match optional(&self.jwks) {
            Some(text) => Some(
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| format!("jwks is not JSON: {e}"))?,
            ),
            None => None,
        };
        let grant_types: Vec<&str> = [
            (self.grant_authorization_code, GrantType::AuthorizationCode),
            (self.grant_refresh_token, GrantType::RefreshToken),
            (self.grant_device_code, GrantType::DeviceCode),
        ]
        .into_iter()
        .filter(|(chosen, _)| *chosen)
        .map(|(_, grant)| grant.as_str())
        .collect();
        let document = serde_json::json!({
            "client_name": self.client_name,
            "redirect_uris": lines(&self.redirect_uris),
            "post_logout_redirect_uris": lines(&self.post_logout_redirect_uris),
            "token_endpoint_auth_method": self.auth_method,
            "scope": optional(&self.scope),
            "allowed_groups": non_empty(lines(&self.allowed_groups)),
            "groups_filter": non_empty(lines(&self.groups_filter)),
            "backchannel_logout_uri": optional(&self.backchannel_logout_uri),
            "jwks_uri": optional(&self.jwks_uri),
            "jwks": jwks,
            "grant_types": grant_types,
            "require_pkce": self.require_pkce,
            "id_token_profile_claims": self.id_token_profile_claims,
            "always_issue_refresh_token": self.always_issue_refresh_token,
            "backchannel_logout_session_required": self.backchannel_logout_session_required,
        });
        if document.to_string().contains("\\u0000") {
            // Postgres cannot store a NUL; no field has a use for one.
            return Err("values must not contain NUL characters".to_owned());
        }
        serde_json::from_value(document).map_err(|e| e.to_string())
    }
}

/// Ready-to-paste settings for the integration guides, filled in for this client.
#[derive(Debug, Serialize)]
struct Snippet {
    title: &'static str,
    text: String,
}

fn snippets(issuer: &str, client: &RegisteredClient, secret: Option<&str>) -> Vec<Snippet> {
    if !client.metadata.token_endpoint_auth_method.uses_secret() {
        return Vec::new();
    }
    let id = &client.client_id;
    let secret = secret.unwrap_or("<client_secret>");
    let redirect = client
        .metadata
        .redirect_uris
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    vec![
        Snippet {
            title: "Grafana (grafana.ini)",
            text: format!(
                "[auth.generic_oauth]\nenabled = true\nname = WeCom\nclient_id = {id}\nclient_secret = {secret}\n\
                 scopes = openid profile email groups offline_access\nauth_url = {issuer}/authorize\n\
                 token_url = {issuer}/token\napi_url = {issuer}/userinfo\nuse_pkce = true\n\
                 use_refresh_token = true\nlogin_attribute_path = preferred_username"
            ),
        },
        Snippet {
            title: "GitLab (gitlab.rb)",
            text: format!(
                "gitlab_rails['omniauth_providers'] = [{{\n  name: \"openid_connect\", label: \"WeCom\",\n  args: {{\n    \
                 name: \"openid_connect\", scope: [\"openid\", \"profile\", \"email\"],\n    \
                 response_type: \"code\", issuer: \"{issuer}\",\n    \
                 discovery: true, client_auth_method: \"basic\", uid_field: \"sub\", pkce: true,\n    \
                 client_options: {{\n      identifier: \"{id}\", secret: \"{secret}\",\n      \
                 redirect_uri: \"{redirect}\"\n    }}\n  }}\n}}]"
            ),
        },
        Snippet {
            title: "oauth2-proxy",
            text: format!(
                "oauth2-proxy --provider=oidc --oidc-issuer-url={issuer} \\\n  \
                 --client-id={id} --client-secret={secret} \\\n  --redirect-url={redirect} \\\n  \
                 --scope=\"openid profile email groups\" --code-challenge-method=S256 \\\n  \
                 --email-domain='*' --insecure-oidc-allow-unverified-email \\\n  --oidc-groups-claim=groups"
            ),
        },
    ]
}

/// The message a registry error shows on the form; `None` for failures of our own.
fn form_error(err: &RegistryError) -> Option<String> {
    match err {
        RegistryError::Invalid(invalid) => {
            Some(format!("{}: {}", invalid.error, invalid.description))
        }
        RegistryError::PublicClient => Some(err.to_string()),
        _ => None,
    }
}

/// A `?done=` notice after a redirect, in the page's language.
fn notice(req: &HttpRequest, state: &AppState, allowed: &[&str]) -> Option<&'static str> {
    let params = Params::parse(req.query_string().as_bytes());
    let done = params.get("done")?;
    let key = allowed.iter().find(|key| **key == done)?;
    strings(lang(req, state)).get(key).copied()
}

async fn clients(req: HttpRequest, state: State, pages: Templates) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let admin = or_respond!(cx.guard(&here(&req)).await);
    let mut list = match state.provider.store.list_clients().await {
        Ok(list) => list,
        Err(err) => return cx.failure(Some(&admin), err),
    };
    list.sort_by_key(|c| c.metadata.client_name.to_lowercase());
    let views: Vec<ClientView> = list.iter().map(ClientView::from).collect();
    let content = context! { clients => views, notice => notice(&req, &state, &["deleted"]) };
    cx.page(
        Some(&admin),
        "clients",
        "clients.html",
        StatusCode::OK,
        content,
    )
}

async fn new_client_form(req: HttpRequest, state: State, pages: Templates) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let admin = or_respond!(cx.guard(&here(&req)).await);
    cx.page(
        Some(&admin),
        "clients",
        "client_new.html",
        StatusCode::OK,
        context! { form => ClientForm::blank() },
    )
}

/// `POST /console/clients/new`: registers, then shows the client_id and the secret once.
async fn create_client(
    req: HttpRequest,
    state: State,
    pages: Templates,
    body: web::Bytes,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let params = Params::parse(&body);
    let admin = or_respond!(cx.guard_post(&params, req.path()).await);
    let form = ClientForm::posted(&params);
    let show_error = |message: String| {
        cx.page(
            Some(&admin),
            "clients",
            "client_new.html",
            StatusCode::BAD_REQUEST,
            context! { form => &form, error => message },
        )
    };
    let registration = match form.registration() {
        Ok(registration) => registration,
        Err(message) => return show_error(message),
    };
    let now = state.clock.now();
    let config = &state.provider.config;
    let created = match registry::register_client(
        &state.provider.store,
        config.key_encryption_key.as_ref(),
        registration,
        None,
        now,
    )
    .await
    {
        Ok(created) => created,
        Err(err) => match form_error(&err) {
            Some(message) => return show_error(message),
            None => return cx.failure(Some(&admin), err),
        },
    };
    let client = &created.client;
    state
        .provider
        .audit_console(
            &admin,
            "console_client_created",
            Some(&client.client_id),
            None,
            now,
        )
        .await;
    cx.secret_page(
        &admin,
        client,
        created.client_secret.as_deref(),
        "created_title",
    )
}

impl Cx<'_> {
    /// The page that shows a client's id and, this once, its new secret.
    fn secret_page(
        &self,
        admin: &Administrator,
        client: &RegisteredClient,
        secret: Option<&str>,
        title: &str,
    ) -> HttpResponse {
        let (req, state) = (self.req, self.state);
        let issuer = state.provider.issuer();
        let title = strings(lang(req, state)).get(title).copied();
        self.page(
            Some(admin),
            "clients",
            "client_secret.html",
            StatusCode::OK,
            context! {
                title, issuer, secret, client => ClientView::from(client),
                snippets => snippets(issuer, client, secret),
            },
        )
    }
}

impl Cx<'_> {
    /// The client named in the path, or the response for an unknown one.
    async fn find_client(
        &self,
        admin: &Administrator,
        client_id: &str,
    ) -> Result<RegisteredClient, HttpResponse> {
        let state = self.state;
        match state.provider.store.get_client(client_id).await {
            Ok(client) => Ok(client),
            Err(StorageError::NotFound) => Err(self.message(
                Some(admin),
                StatusCode::NOT_FOUND,
                "not_found_title",
                "not_found_body",
                None,
                Some((
                    format!("{}/console/clients", base(state)),
                    "back_to_clients",
                )),
            )),
            Err(err) => Err(self.failure(Some(admin), err)),
        }
    }
}

fn client_path(state: &AppState, client_id: &str) -> String {
    format!(
        "{}/console/clients/{}",
        base(state),
        path_segment(client_id)
    )
}

async fn client_page(
    req: HttpRequest,
    state: State,
    pages: Templates,
    path: web::Path<String>,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let admin = or_respond!(cx.guard(&here(&req)).await);
    let client = or_respond!(cx.find_client(&admin, &path).await);
    let content = context! {
        client => ClientView::from(&client), form => ClientForm::of(&client),
        notice => notice(&req, &state, &["saved"]),
    };
    cx.page(
        Some(&admin),
        "clients",
        "client_detail.html",
        StatusCode::OK,
        content,
    )
}

/// `POST /console/clients/{id}`: replaces the metadata (as `PUT /admin/clients/{id}`).
async fn update_client(
    req: HttpRequest,
    state: State,
    pages: Templates,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let params = Params::parse(&body);
    let admin = or_respond!(cx.guard_post(&params, req.path()).await);
    let client = or_respond!(cx.find_client(&admin, &path).await);
    let form = ClientForm::posted(&params);
    let show_error = |message: String| {
        cx.page(
            Some(&admin),
            "clients",
            "client_detail.html",
            StatusCode::BAD_REQUEST,
            context! { client => ClientView::from(&client), form => &form, error => message },
        )
    };
    let registration = match form.registration() {
        Ok(registration) => registration,
        Err(message) => return show_error(message),
    };
    let now = state.clock.now();
    let updated = match registry::reregister_client(
        &state.provider.store,
        state.provider.config.key_encryption_key.as_ref(),
        &client.client_id,
        registration,
        None,
        now,
    )
    .await
    {
        Ok(updated) => updated,
        Err(err) => match form_error(&err) {
            Some(message) => return show_error(message),
            None => return cx.failure(Some(&admin), err),
        },
    };
    state
        .provider
        .audit_console(
            &admin,
            "console_client_updated",
            Some(&client.client_id),
            None,
            now,
        )
        .await;
    // A client that became confidential has a new secret: this is its one showing.
    if let Some(secret) = updated.client_secret.as_deref() {
        return cx.secret_page(&admin, &updated.client, Some(secret), "rotated_title");
    }
    respond::redirect(
        &format!("{}?done=saved", client_path(&state, &client.client_id)),
        true,
    )
    .finish()
}

/// `POST /console/clients/{id}/secret`: a new generated secret, shown once.
async fn rotate_secret(
    req: HttpRequest,
    state: State,
    pages: Templates,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let params = Params::parse(&body);
    let back = client_path(&state, &path);
    let admin = or_respond!(cx.guard_destructive(&params, &back).await);
    let client = or_respond!(cx.find_client(&admin, &path).await);
    let now = state.clock.now();
    let secret = match registry::rotate_client_secret(
        &state.provider.store,
        state.provider.config.key_encryption_key.as_ref(),
        &client.client_id,
        None,
        now,
    )
    .await
    {
        Ok(secret) => secret,
        Err(RegistryError::PublicClient) => {
            return respond::redirect(&back, true).finish();
        }
        Err(err) => return cx.failure(Some(&admin), err),
    };
    state
        .provider
        .audit_console(
            &admin,
            "console_client_secret_rotated",
            Some(&client.client_id),
            None,
            now,
        )
        .await;
    cx.secret_page(&admin, &client, secret.as_deref(), "rotated_title")
}

async fn delete_form(
    req: HttpRequest,
    state: State,
    pages: Templates,
    path: web::Path<String>,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let admin = or_respond!(cx.guard(&here(&req)).await);
    let client = or_respond!(cx.find_client(&admin, &path).await);
    cx.page(
        Some(&admin),
        "clients",
        "client_delete.html",
        StatusCode::OK,
        context! { client => ClientView::from(&client) },
    )
}

/// `POST /console/clients/{id}/delete`: removes the client once its name was typed to confirm.
async fn delete_client(
    req: HttpRequest,
    state: State,
    pages: Templates,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let params = Params::parse(&body);
    let back = format!("{}/delete", client_path(&state, &path));
    let admin = or_respond!(cx.guard_destructive(&params, &back).await);
    let client = or_respond!(cx.find_client(&admin, &path).await);
    if params.get("confirm_name").map(str::trim) != Some(client.metadata.client_name.as_str()) {
        let error = strings(lang(&req, &state))
            .get("delete_name_mismatch")
            .copied();
        return cx.page(
            Some(&admin),
            "clients",
            "client_delete.html",
            StatusCode::BAD_REQUEST,
            context! { client => ClientView::from(&client), error },
        );
    }
    let now = state.clock.now();
    match state.provider.store.delete_client(&client.client_id).await {
        Ok(()) | Err(StorageError::NotFound) => {}
        Err(err) => return cx.failure(Some(&admin), err),
    }
    tracing::info!(client_id = %client.client_id, "client deleted in the console");
    state
        .provider
        .audit_console(
            &admin,
            "console_client_deleted",
            Some(&client.client_id),
            None,
            now,
        )
        .await;
    respond::redirect(
        &format!("{}/console/clients?done=deleted", base(&state)),
        true,
    )
    .finish()
}

/// A member in the search results.
#[derive(Debug, Serialize)]
struct PersonRow {
    sub: String,
    userid: String,
    name: String,
    position: String,
    checked_at: i64,
}

/// `GET /console/people?q=`: members whose userid, name or sub contains `q`.
async fn people(req: HttpRequest, state: State, pages: Templates) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let admin = or_respond!(cx.guard(&here(&req)).await);
    let params = Params::parse(req.query_string().as_bytes());
    let q = params
        .get("q")
        .map(str::trim)
        .filter(|q| !q.is_empty() && !q.contains('\0'))
        .map(|q| q.chars().take(100).collect::<String>());
    let rows = match &q {
        None => Vec::new(),
        Some(q) => match state
            .provider
            .store
            .search_members::<UserProfile>(q, 200)
            .await
        {
            Ok(found) => {
                let needle = q.to_lowercase();
                found
                    .into_iter()
                    .filter(|m| {
                        m.sub.to_lowercase().contains(&needle)
                            || m.profile.userid.to_lowercase().contains(&needle)
                            || m.profile
                                .name
                                .as_deref()
                                .is_some_and(|n| n.to_lowercase().contains(&needle))
                    })
                    .take(SEARCH_MAX)
                    .map(|m| PersonRow {
                        name: m
                            .profile
                            .name
                            .clone()
                            .unwrap_or_else(|| m.profile.userid.clone()),
                        position: m.profile.position.clone().unwrap_or_default(),
                        userid: m.profile.userid,
                        sub: m.sub,
                        checked_at: m.checked_at,
                    })
                    .collect()
            }
            Err(err) => return cx.failure(Some(&admin), err),
        },
    };
    cx.page(
        Some(&admin),
        "people",
        "people.html",
        StatusCode::OK,
        context! { q, people => rows },
    )
}

/// One grant as the person page shows it: which application, and the groups it receives.
#[derive(Debug, Serialize)]
struct GrantView {
    client_id: String,
    name: Option<String>,
    refreshable: bool,
    expires_at: i64,
    groups: Vec<String>,
}

/// The `groups` claim `client` receives for `profile`: exactly what the tokens carry.
fn groups_seen(state: &AppState, profile: &UserProfile, client: &RegisteredClient) -> Vec<String> {
    let login = &state.provider.config.login;
    let scopes = ScopeSet::parse("openid groups")
        .0
        .intersect(&client.allowed_scopes());
    if !scopes.contains(Scope::Groups) {
        return Vec::new();
    }
    profile
        .claims(&scopes, login, &GroupRelease::for_client(client, login))
        .get("groups")
        .and_then(|v| v.as_array())
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /console/people/{sub}`: profile, groups, sessions, grants, recent sign-ins, Revoke.
async fn person(
    req: HttpRequest,
    state: State,
    pages: Templates,
    path: web::Path<String>,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let admin = or_respond!(cx.guard(&here(&req)).await);
    match person_content(&state, &path).await {
        Ok(Some(content)) => cx.page(
            Some(&admin),
            "people",
            "person.html",
            StatusCode::OK,
            context! { notice => notice(&req, &state, &["revoked"]), ..content },
        ),
        Ok(None) => cx.message(
            Some(&admin),
            StatusCode::NOT_FOUND,
            "not_found_title",
            "not_found_body",
            None,
            Some((format!("{}/console/people", base(&state)), "people_title")),
        ),
        Err(err) => cx.failure(Some(&admin), err),
    }
}

async fn person_content(state: &AppState, sub: &str) -> Result<Option<Value>, StorageError> {
    let store = &state.provider.store;
    let now = state.clock.now();
    let Some(member) = store.get_member::<UserProfile>(sub).await? else {
        return Ok(None);
    };
    let profile = &member.profile;
    let sessions: Vec<Value> = store
        .sessions_of(sub, now)
        .await?
        .iter()
        .map(|s| context! { auth_time => s.auth_time, expires_at => s.expires_at, amr => s.amr })
        .collect();
    let mut grants = Vec::new();
    for grant in store.grants_of(sub, now).await? {
        let client = match store.get_client(&grant.client_id).await {
            Ok(client) => Some(client),
            Err(StorageError::NotFound) => None,
            Err(err) => return Err(err),
        };
        grants.push(GrantView {
            name: client.as_ref().map(|c| c.metadata.client_name.clone()),
            groups: client
                .as_ref()
                .map(|c| groups_seen(state, profile, c))
                .unwrap_or_default(),
            client_id: grant.client_id,
            refreshable: grant.refreshable,
            expires_at: grant.expires_at,
        });
    }
    let sign_ins = store
        .audit_page(&AuditQuery {
            sub: Some(sub.to_owned()),
            event: Some("sign_in".to_owned()),
            limit: 10,
            ..Default::default()
        })
        .await?;
    let sign_ins: Vec<Value> = sign_ins.iter().map(|(_, e)| event_view(e)).collect();
    Ok(Some(context! {
        person => context! {
            sub => member.sub, userid => profile.userid,
            name => profile.name.clone().unwrap_or_else(|| profile.userid.clone()),
            position => profile.position, email => profile.biz_mail.as_ref().or(profile.email.as_ref()),
            mobile => profile.mobile, departments => profile.departments,
            groups => profile.current_groups().filter(|_| !profile.groups_unavailable),
            checked_at => member.checked_at,
        },
        sessions, grants, sign_ins,
    }))
}

fn event_view(e: &AuditEvent) -> Value {
    context! {
        at => e.at, event => e.event, outcome => e.outcome, sub => e.sub,
        client_id => e.client_id, reason => e.reason,
    }
}

/// `POST /console/people/{sub}/revoke`: what `POST /admin/users/{sub}/revoke` does — every
/// session, grant and token ended, back-channel logout sent.
async fn revoke(
    req: HttpRequest,
    state: State,
    pages: Templates,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let params = Params::parse(&body);
    let back = format!("{}/console/people/{}", base(&state), path_segment(&path));
    let admin = or_respond!(cx.guard_destructive(&params, &back).await);
    let now = state.clock.now();
    match state.provider.revoke_member_by_admin(&path, now).await {
        Ok(true) => {}
        Ok(false) => {
            return cx.message(
                Some(&admin),
                StatusCode::NOT_FOUND,
                "not_found_title",
                "not_found_body",
                None,
                None,
            )
        }
        Err(err) => return cx.failure(Some(&admin), err),
    }
    tracing::info!(sub = %path, "member revoked in the console");
    state
        .provider
        .audit_console(&admin, "console_member_revoked", None, Some(&path), now)
        .await;
    respond::redirect(&format!("{back}?done=revoked"), true).finish()
}

/// The audit filters as typed, to show again in the form.
#[derive(Debug, Default, Serialize)]
struct AuditFilters {
    sub: String,
    client_id: String,
    event: String,
    since: String,
    until: String,
}

/// The query the filters make, or what is wrong with them.
fn audit_query(params: &Params) -> Result<(AuditFilters, AuditQuery), &'static str> {
    let text = |name: &str| -> Result<Option<String>, &'static str> {
        match params.get(name).map(str::trim).filter(|v| !v.is_empty()) {
            Some(value) if value.len() > 256 || value.contains('\0') => {
                Err("sub, client_id and event are at most 256 characters")
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    let time = |name: &str| -> Result<Option<i64>, &'static str> {
        match params.get(name) {
            None => Ok(None),
            Some(raw) => parse_datetime_local(raw)
                .map(Some)
                .ok_or("times are YYYY-MM-DDTHH:MM (UTC)"),
        }
    };
    let query = AuditQuery {
        sub: text("sub")?,
        client_id: text("client_id")?,
        event: text("event")?,
        since: time("since")?,
        until: time("until")?,
        before_id: params
            .get("cursor")
            .map(str::parse::<i64>)
            .transpose()
            .map_err(|_| "cursor must come from an earlier page")?,
        limit: AUDIT_PAGE,
    };
    let filters = AuditFilters {
        sub: query.sub.clone().unwrap_or_default(),
        client_id: query.client_id.clone().unwrap_or_default(),
        event: query.event.clone().unwrap_or_default(),
        since: query.since.map(datetime_local).unwrap_or_default(),
        until: query.until.map(datetime_local).unwrap_or_default(),
    };
    Ok((filters, query))
}

/// The filters as a query string (cursor and format apart), for the pager and the export.
fn filter_link(base: &str, filters: &AuditFilters, extra: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("sub", &filters.sub),
        ("client_id", &filters.client_id),
        ("event", &filters.event),
        ("since", &filters.since),
        ("until", &filters.until),
    ] {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    query.extend_pairs(extra);
    format!("{base}/console/audit?{}", query.finish())
}

/// `GET /console/audit?sub=&client_id=&event=&since=&until=&cursor=[&format=csv]`.
async fn audit(req: HttpRequest, state: State, pages: Templates) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let admin = or_respond!(cx.guard(&here(&req)).await);
    let params = Params::parse(req.query_string().as_bytes());
    let base = base(&state);
    let (filters, mut query, error) = match audit_query(&params) {
        Ok((filters, query)) => (filters, query, None),
        Err(problem) => (
            AuditFilters::default(),
            AuditQuery {
                limit: AUDIT_PAGE,
                ..Default::default()
            },
            Some(problem),
        ),
    };
    let csv = params.get("format") == Some("csv") && error.is_none();
    if csv {
        query.limit = CSV_MAX_ROWS;
        query.before_id = None;
    }
    let rows = match state.provider.store.audit_page(&query).await {
        Ok(rows) => rows,
        Err(err) => return cx.failure(Some(&admin), err),
    };
    if csv {
        return HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"wecom-oidc-audit.csv\"",
            ))
            .body(audit_csv(rows.iter().map(|(_, e)| e)));
    }
    let next_link = (rows.len() as i64 == AUDIT_PAGE)
        .then(|| rows.last().map(|(id, _)| id.to_string()))
        .flatten()
        .map(|cursor| filter_link(&base, &filters, &[("cursor", &cursor)]));
    let first_link = query.before_id.map(|_| filter_link(&base, &filters, &[]));
    let content = context! {
        f => &filters, error, next_link, first_link,
        csv_link => filter_link(&base, &filters, &[("format", "csv")]),
        rows => rows.iter().map(|(_, e)| event_view(e)).collect::<Vec<_>>(),
    };
    cx.page(
        Some(&admin),
        "audit",
        "audit.html",
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        content,
    )
}

/// RFC 4180 CSV of audit rows, time as Unix seconds and as UTC text. A field a spreadsheet would
/// run as a formula (`=`, `+`, `-`, `@` first) is prefixed with `'`.
fn audit_csv<'a>(rows: impl Iterator<Item = &'a AuditEvent>) -> String {
    fn field(value: &str) -> String {
        let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{value}")
        } else {
            value.to_owned()
        };
        if value.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", value.replace('"', "\"\""))
        } else {
            value
        }
    }
    let mut out = String::from("at,time_utc,event,outcome,sub,client_id,reason\r\n");
    for e in rows {
        let time = super::pages::datetime_local(e.at);
        let cells = [
            e.at.to_string(),
            time,
            field(&e.event),
            field(&e.outcome),
            field(e.sub.as_deref().unwrap_or_default()),
            field(e.client_id.as_deref().unwrap_or_default()),
            field(e.reason.as_deref().unwrap_or_default()),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// `GET /console/keys`: published, signing and retired keys.
async fn keys(req: HttpRequest, state: State, pages: Templates) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let admin = or_respond!(cx.guard(&here(&req)).await);
    let now = state.clock.now();
    let keys = match state.provider.keys.overview(now).await {
        Ok(keys) => keys,
        Err(err) => return cx.failure(Some(&admin), err),
    };
    let params = Params::parse(req.query_string().as_bytes());
    // The kid comes from the URL: named only when it is one of the keys, so that a crafted link
    // cannot put words of its own in the notice.
    let rotated = params
        .get("kid")
        .filter(|kid| keys.iter().any(|key| key.kid == *kid))
        .unwrap_or_default();
    let notice = notice(&req, &state, &["keys_rotated"]).map(|text| format!("{text}{rotated}"));
    cx.page(
        Some(&admin),
        "keys",
        "keys.html",
        StatusCode::OK,
        context! { keys, now, notice },
    )
}

/// `POST /console/keys/rotate`: what `wecom-oidc keys rotate` does.
async fn rotate_keys(
    req: HttpRequest,
    state: State,
    pages: Templates,
    body: web::Bytes,
) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let params = Params::parse(&body);
    let back = format!("{}/console/keys", base(&state));
    let admin = or_respond!(cx.guard_destructive(&params, &back).await);
    let now = state.clock.now();
    let kid = match state.provider.keys.rotate(now).await {
        Ok(kid) => kid,
        Err(err) => return cx.failure(Some(&admin), err),
    };
    tracing::info!(%kid, "signing key rotated in the console");
    state
        .provider
        .audit_console(&admin, "console_keys_rotated", None, Some(&kid), now)
        .await;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("done", "keys_rotated")
        .append_pair("kid", &kid);
    respond::redirect(&format!("{back}?{}", query.finish()), true).finish()
}

/// `GET /console/status[?check=1&userid=]`: readiness, the main figures, and on demand the
/// checks of `wecom-oidc check`.
async fn status(req: HttpRequest, state: State, pages: Templates) -> HttpResponse {
    let cx = Cx::new(&req, &state, &pages);
    let admin = or_respond!(cx.guard(&here(&req)).await);
    let provider = &state.provider;
    let now = state.clock.now();
    let ready = provider.store.ping().await.is_ok();
    let counts = provider
        .store
        .audit_counts(now - 86_400)
        .await
        .unwrap_or_default();
    let count = |event: &str, outcome: &str| -> i64 {
        counts
            .iter()
            .filter(|(e, o, _)| e == event && o == outcome)
            .map(|(_, _, n)| n)
            .sum()
    };
    let clients = provider
        .store
        .list_clients()
        .await
        .map(|list| list.len().to_string())
        .unwrap_or_else(|_| "—".to_owned());
    let (open, idle, max) = provider.store.pool_stats();
    let figures = context! {
        sign_ins => count("sign_in", "success"),
        refusals => count("sign_in", "refused"),
        revocations => count("member_revoked", "success"),
        clients, kid => provider.keys.current_kid(),
        pool => format!("{open} / {idle} / {max}"),
        store => format!("{:?}", provider.store.backend()),
        version => env!("CARGO_PKG_VERSION"),
    };
    let params = Params::parse(req.query_string().as_bytes());
    let userid = params
        .get("userid")
        .map(str::trim)
        .filter(|u| !u.is_empty() && u.len() <= 64 && u.chars().all(|c| !c.is_control()));
    let checks = if params.get("check") == Some("1") {
        match crate::check::checks(&provider.config, userid).await {
            Ok(lines) => lines,
            Err(err) => vec![crate::check::CheckLine {
                ok: false,
                what: "wecom-oidc check".to_owned(),
                detail: format!("{err:#}"),
            }],
        }
    } else {
        Vec::new()
    };
    cx.page(
        Some(&admin),
        "status",
        "status.html",
        StatusCode::OK,
        context! { ready, figures, checks, userid, issuer => provider.issuer() },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it_and_defuses_formulas() {
        let row = AuditEvent {
            at: 1_796_588_109,
            event: "sign_in".into(),
            outcome: "refused".into(),
            sub: Some("=HYPERLINK(\"x\")".into()),
            client_id: Some("a,b".into()),
            reason: None,
        };
        let csv = audit_csv(std::iter::once(&row));
        assert_eq!(
            csv,
            "at,time_utc,event,outcome,sub,client_id,reason\r\n\
             1796588109,2026-12-06T20:15,sign_in,refused,\"'=HYPERLINK(\"\"x\"\")\",\"a,b\",\r\n"
        );
    }

    #[test]
    fn the_client_form_makes_the_registration_the_admin_api_would_get() {
        let form = Params::parse(
            b"client_name=Grafana&redirect_uris=https%3A%2F%2Fg.example.com%2Fcb%0D%0A%0D%0Ahttps%3A%2F%2Fg2.example.com%2Fcb&token_endpoint_auth_method=client_secret_post&allowed_groups=tag%3ASRE&id_token_profile_claims=true&grant_authorization_code=true&grant_device_code=true",
        );
        let metadata = ClientForm::posted(&form)
            .registration()
            .unwrap()
            .into_metadata()
            .unwrap();
        assert_eq!(
            metadata.redirect_uris,
            ["https://g.example.com/cb", "https://g2.example.com/cb"]
        );
        assert_eq!(metadata.allowed_groups, ["tag:SRE"]);
        assert_eq!(
            metadata.grant_types,
            [GrantType::AuthorizationCode, GrantType::DeviceCode],
            "the ticked grants, and no others"
        );
        assert!(metadata.id_token_profile_claims);
        assert!(!metadata.require_pkce);
        assert_eq!(
            metadata.token_endpoint_auth_method.as_str(),
            "client_secret_post"
        );
    }
}
