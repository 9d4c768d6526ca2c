//! The HTTP edge: one catch-all actix handler that counts the request, applies an injected fault,
//! then hands the parsed request to the API, login or `/_sim/` control code and maps the
//! outcome to a response.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{self, ApiCall, Method};
use super::control::{Fault, FaultKind, SimulatorControl};
use super::errcode;
use super::events::{Delivery, EventSource, PrefixMode, SimEvent};
use super::login::{self, Flow, LoginRequest, Outcome};
use super::pages;
use super::params::Params;
use super::state::Shared;

const JSON: &str = "application/json; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Registers the simulator on an actix app (a server or `test::init_service`).
pub fn configure(shared: Arc<Shared>) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    let data = web::Data::from(shared);
    move |config: &mut web::ServiceConfig| {
        config
            .app_data(data)
            // WeCom answers everything on few paths; one handler keeps the fault injection
            // and the counters in one place, for every path alike.
            .default_service(web::to(dispatch));
    }
}

/// The caller's IP as WeCom would see it (and echo in errmsg).
fn client_ip(request: &HttpRequest) -> String {
    request
        .peer_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".to_owned())
}

fn method(request: &HttpRequest) -> Method {
    match *request.method() {
        actix_web::http::Method::GET => Method::Get,
        actix_web::http::Method::POST => Method::Post,
        _ => Method::Other,
    }
}

#[tracing::instrument(name = "simulator", skip_all, fields(path = %request.path()))]
async fn dispatch(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let path = request.path().to_owned();
    let control = SimulatorControl::new(shared.into_inner());
    if path.starts_with("/_sim/events/") || path.starts_with("/_sim/members/") {
        return event_endpoint(&control, &request, &path, &body)
            .await
            .unwrap_or_else(|(status, message)| control_error(status, message));
    }
    if path == "/_sim" || path.starts_with("/_sim/") {
        return sim_endpoint(&control, &request, &path, &body);
    }
    let ip = client_ip(&request);
    let fault = control.shared().lock().record_call(&path);
    match fault {
        Some(FaultKind::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(FaultKind::Errcode(code)) => return json_response(errcode::error_body(code, &ip)),
        Some(FaultKind::HttpStatus(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let reason = status.canonical_reason().unwrap_or("Error");
            return HttpResponse::build(status)
                .content_type(HTML)
                .body(pages::gateway_error(status.as_u16(), reason));
        }
        Some(FaultKind::NonJson) => {
            return HttpResponse::Ok().content_type(HTML).body(
                "<html><body>系统繁忙，请稍后再试 (simulated non-JSON answer)</body></html>",
            );
        }
        None => {}
    }
    serve(&control, &request, &path, &body, &ip)
}

fn serve(
    control: &SimulatorControl,
    request: &HttpRequest,
    path: &str,
    body: &[u8],
    ip: &str,
) -> HttpResponse {
    let params = Params::parse(request.query_string());
    if path.starts_with("/cgi-bin/") {
        let call = ApiCall {
            path,
            method: method(request),
            query: &params,
            body,
            ip,
        };
        let mut state = control.shared().lock();
        let now = state.now();
        return match api::handle(&mut state, now, &call) {
            Some(answer) => json_response(answer),
            None => not_found(),
        };
    }
    let Some((flow, approving)) = Flow::from_path(path) else {
        return not_found();
    };
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let english = wants_english(&params, request);
    let login_request = LoginRequest {
        params: &params,
        user_agent,
        english,
    };
    let outcome = {
        let mut state = control.shared().lock();
        if approving {
            let now = state.now();
            login::approve(&mut state, now, flow, &login_request)
        } else {
            login::page(&state, flow, &login_request)
        }
    };
    match outcome {
        Outcome::Redirect(url) => HttpResponse::Found()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Outcome::Picker(picker) => HttpResponse::Ok()
            .content_type(HTML)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(pages::picker(&picker, english)),
        // WeCom shows its error pages with status 200; the header lets tests tell them apart.
        Outcome::Error(error) => {
            tracing::info!(error = error.code(), "simulated login refused");
            HttpResponse::Ok()
                .content_type(HTML)
                .insert_header(("X-Sim-Error", HeaderValue::from_static(error.code())))
                .body(pages::error(error, english))
        }
    }
}

/// `lang=en|zh` wins; without it the first Accept-Language decides; Chinese by default
/// \[blog-qr-lang\].
fn wants_english(params: &Params, request: &HttpRequest) -> bool {
    match params.non_empty("lang") {
        Some(lang) => lang.eq_ignore_ascii_case("en"),
        None => request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_lowercase().starts_with("en")),
    }
}

fn json_response(body: Value) -> HttpResponse {
    HttpResponse::Ok().content_type(JSON).body(body.to_string())
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type(HTML)
        .body(pages::gateway_error(404, "Not Found"))
}

fn control_error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(JSON)
        .body(json!({ "error": message.into() }).to_string())
}

fn control_ok(extra: Value) -> HttpResponse {
    let mut body = json!({ "ok": true });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    json_response(body)
}

/// `POST /_sim/faults` body: the path, how many times (default 1), and exactly one fault.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    path: String,
    #[serde(default = "one")]
    times: usize,
    errcode: Option<i64>,
    http_status: Option<u16>,
    #[serde(default)]
    non_json: bool,
    delay_ms: Option<u64>,
}

fn one() -> usize {
    1
}

impl FaultRequest {
    fn into_fault(self) -> Result<Fault, String> {
        let mut kinds = Vec::new();
        if let Some(code) = self.errcode {
            kinds.push(FaultKind::Errcode(code));
        }
        if let Some(status) = self.http_status {
            kinds.push(FaultKind::HttpStatus(status));
        }
        if self.non_json {
            kinds.push(FaultKind::NonJson);
        }
        if let Some(ms) = self.delay_ms {
            kinds.push(FaultKind::Delay(Duration::from_millis(ms)));
        }
        match <[FaultKind; 1]>::try_from(kinds) {
            Ok([kind]) => Ok(Fault::new(self.path, kind, self.times)),
            Err(_) => Err("give exactly one of errcode, http_status, non_json, delay_ms".into()),
        }
    }
}

/// `POST /_sim/settings` body; absent keys stay as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsRequest {
    expired_token_errcode: Option<i64>,
    fresh_token_each_call: Option<bool>,
    rate_limit_per_minute: Option<u32>,
    user_ticket_errcode: Option<i64>,
    stripped_fields_absent: Option<bool>,
    require_wxwork_ua: Option<bool>,
}

/// `POST /_sim/apps/{agent_id}` body; absent keys stay, `null` clears the optional ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRequest {
    #[serde(default, deserialize_with = "present")]
    redirect_domain: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    trusted_ips: Option<Option<Vec<String>>>,
    created_after_2022_06_20: Option<bool>,
    enabled: Option<bool>,
    out_of_range_errcode: Option<i64>,
}

/// Tells "key given as null" (Some(None)) from "key absent" (None, via `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceRequest {
    seconds: u64,
}

/// A refused control request: status and message.
type ControlError = (StatusCode, String);

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ControlError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

/// The manual control surface, mirroring [`SimulatorControl`].
fn sim_endpoint(
    control: &SimulatorControl,
    request: &HttpRequest,
    path: &str,
    body: &[u8],
) -> HttpResponse {
    let post = request.method() == actix_web::http::Method::POST;
    let delete = request.method() == actix_web::http::Method::DELETE;
    let path = path.trim_end_matches('/');
    let result: Result<HttpResponse, ControlError> = match path {
        "/_sim" => Ok(json_response(overview(control))),
        "/_sim/messages" => Ok(json_response(json!({ "messages": control.messages() }))),
        "/_sim/calls" => {
            let params = Params::parse(request.query_string());
            Ok(match params.non_empty("path") {
                Some(p) => json_response(json!({ "path": p, "calls": control.calls(p) })),
                None => json_response(json!({ "calls": control.all_calls() })),
            })
        }
        "/_sim/faults" if post => parse_body::<FaultRequest>(body).and_then(|request| {
            let fault = request
                .into_fault()
                .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
            control.inject(fault);
            Ok(control_ok(json!({})))
        }),
        "/_sim/faults" if delete => {
            control.clear_faults();
            Ok(control_ok(json!({})))
        }
        "/_sim/faults" => Ok(json_response(json!({
            "faults": control.pending_faults().iter().map(fault_json).collect::<Vec<_>>()
        }))),
        "/_sim/clock/advance" if post => parse_body::<AdvanceRequest>(body).map(|request| {
            control.advance_clock(Duration::from_secs(request.seconds));
            control_ok(json!({ "now": control.now() }))
        }),
        "/_sim/tokens/revoke" if post => {
            control.revoke_tokens();
            Ok(control_ok(json!({})))
        }
        "/_sim/settings" if post => parse_body::<SettingsRequest>(body).map(|request| {
            apply_settings(control, request);
            control_ok(json!({ "settings": control.settings() }))
        }),
        "/_sim/settings" => Ok(json_response(json!({ "settings": control.settings() }))),
        "/_sim/directory" => Ok(json_response(
            serde_json::to_value(control.directory()).unwrap_or(Value::Null),
        )),
        _ => match path.strip_prefix("/_sim/apps/") {
            Some(agent_id) if post => {
                if control.directory().app(agent_id).is_none() {
                    Err((StatusCode::NOT_FOUND, format!("no app {agent_id}")))
                } else {
                    parse_body::<AppRequest>(body).map(|request| {
                        apply_app(control, agent_id, request);
                        control_ok(json!({}))
                    })
                }
            }
            _ => Err((
                StatusCode::NOT_FOUND,
                "unknown control endpoint or method; GET /_sim lists them".to_owned(),
            )),
        },
    };
    result.unwrap_or_else(|(status, message)| control_error(status, message))
}

/// `POST /_sim/events/config` body: an app's (or, without `agent_id`, the contact-sync
/// assistant's) callback settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventConfigRequest {
    agent_id: Option<String>,
    url: String,
    token: String,
    aes_key: String,
    prefix: Option<PrefixMode>,
    change_contact: Option<bool>,
}

/// Bodies naming a source: `{"agent_id": "1000002"}`, or `{}` for the contact-sync assistant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceRequest {
    agent_id: Option<String>,
}

impl SourceRequest {
    fn source(&self) -> EventSource {
        match &self.agent_id {
            Some(agent_id) => EventSource::app(agent_id),
            None => EventSource::ContactSync,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameRequest {
    new_userid: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HideRequest {
    agent_id: String,
}

fn deliveries_json(deliveries: &[Delivery]) -> HttpResponse {
    control_ok(json!({
        "deliveries": deliveries.iter().map(Delivery::to_json).collect::<Vec<_>>()
    }))
}

/// The event half of the control surface, mirroring the event methods of [`SimulatorControl`];
/// async, because it sends.
async fn event_endpoint(
    control: &SimulatorControl,
    request: &HttpRequest,
    path: &str,
    body: &[u8],
) -> Result<HttpResponse, ControlError> {
    if request.method() != actix_web::http::Method::POST {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "use POST".to_owned()));
    }
    let refused = |e: anyhow::Error| (StatusCode::BAD_REQUEST, format!("{e:#}"));
    match path.trim_end_matches('/') {
        "/_sim/events/config" => {
            let config: EventConfigRequest = parse_body(body)?;
            let source = SourceRequest {
                agent_id: config.agent_id.clone(),
            }
            .source();
            match &config.agent_id {
                Some(agent_id) => {
                    control.configure_events(agent_id, &config.url, &config.token, &config.aes_key)
                }
                None => {
                    control.configure_contact_events(&config.url, &config.token, &config.aes_key)
                }
            }
            .map_err(refused)?;
            if let Some(mode) = config.prefix {
                control.set_event_prefix_mode(&source, mode);
            }
            if let (Some(on), EventSource::App(agent_id)) = (config.change_contact, &source) {
                control.set_app_change_contact(agent_id, on);
            }
            Ok(control_ok(json!({})))
        }
        "/_sim/events/verify" => {
            let source = parse_body::<SourceRequest>(body)?.source();
            let passed = control.verify_event_url(&source).await.map_err(refused)?;
            Ok(control_ok(json!({ "passed": passed })))
        }
        "/_sim/events/send" => {
            let event: SimEvent = parse_body(body)?;
            Ok(deliveries_json(&control.send_event(event).await))
        }
        _ => {
            let rest = path.strip_prefix("/_sim/members/").unwrap_or_default();
            let Some((userid, action)) = rest.trim_end_matches('/').rsplit_once('/') else {
                return Err((
                    StatusCode::NOT_FOUND,
                    "unknown control endpoint; GET /_sim lists them".to_owned(),
                ));
            };
            let deliveries = match action {
                "disable" => control.disable_member(userid).await,
                "enable" => control.enable_member(userid).await,
                "delete" => control.delete_member(userid).await,
                "rename" => {
                    let rename: RenameRequest = parse_body(body)?;
                    control.rename_member(userid, &rename.new_userid).await
                }
                "hide" => {
                    let hide: HideRequest = parse_body(body)?;
                    control
                        .remove_from_visible_range(&hide.agent_id, userid)
                        .await
                }
                _ => {
                    return Err((
                        StatusCode::NOT_FOUND,
                        format!("unknown member action {action}"),
                    ))
                }
            }
            .map_err(refused)?;
            Ok(deliveries_json(&deliveries))
        }
    }
}

fn apply_settings(control: &SimulatorControl, request: SettingsRequest) {
    if let Some(code) = request.expired_token_errcode {
        control.expired_token_errcode(code);
    }
    if let Some(fresh) = request.fresh_token_each_call {
        control.set_fresh_token_each_call(fresh);
    }
    if let Some(limit) = request.rate_limit_per_minute {
        control.set_rate_limit(limit);
    }
    if let Some(code) = request.user_ticket_errcode {
        control.set_user_ticket_errcode(code);
    }
    if let Some(absent) = request.stripped_fields_absent {
        control.set_stripped_fields_absent(absent);
    }
    if let Some(required) = request.require_wxwork_ua {
        control.set_require_wxwork_ua(required);
    }
}

fn apply_app(control: &SimulatorControl, agent_id: &str, request: AppRequest) {
    if let Some(domain) = request.redirect_domain {
        control.set_redirect_domain(agent_id, domain);
    }
    if let Some(ips) = request.trusted_ips {
        control.set_trusted_ips(agent_id, ips);
    }
    if let Some(yes) = request.created_after_2022_06_20 {
        control.set_created_after_2022(agent_id, yes);
    }
    if let Some(enabled) = request.enabled {
        control.set_app_enabled(agent_id, enabled);
    }
    if let Some(code) = request.out_of_range_errcode {
        control.set_out_of_range_errcode(agent_id, code);
    }
}

fn fault_json(fault: &Fault) -> Value {
    let kind = match &fault.kind {
        FaultKind::Errcode(code) => json!({ "errcode": code }),
        FaultKind::HttpStatus(status) => json!({ "http_status": status }),
        FaultKind::NonJson => json!({ "non_json": true }),
        FaultKind::Delay(delay) => json!({ "delay_ms": delay.as_millis() }),
    };
    json!({ "path": fault.path, "times": fault.times, "kind": kind })
}

/// `GET /_sim`: what the simulator serves and how to steer it.
fn overview(control: &SimulatorControl) -> Value {
    let directory = control.directory();
    json!({
        "corp_id": directory.corp_id,
        "apps": directory.apps.iter().map(|a| json!({
            "agent_id": a.agent_id,
            "name": a.name,
            "created_after_2022_06_20": a.created_after_2022_06_20,
            "redirect_domain": a.redirect_domain,
            "trusted_ips": a.trusted_ips,
        })).collect::<Vec<_>>(),
        "now": control.now(),
        "settings": control.settings(),
        "control": {
            "GET /_sim/calls[?path=P]": "request counters",
            "GET /_sim/messages": "app messages delivered by message/send, oldest first",
            "GET /_sim/faults": "pending faults",
            "POST /_sim/faults": "{\"path\":\"/cgi-bin/gettoken\",\"times\":1, and one of \"errcode\":-1 | \"http_status\":502 | \"non_json\":true | \"delay_ms\":1500}",
            "DELETE /_sim/faults": "drop pending faults",
            "POST /_sim/clock/advance": "{\"seconds\":7200}",
            "POST /_sim/tokens/revoke": "invalidate every token",
            "GET|POST /_sim/settings": "{\"expired_token_errcode\":40014, \"fresh_token_each_call\":true, \"rate_limit_per_minute\":N, \"user_ticket_errcode\":N, \"stripped_fields_absent\":true, \"require_wxwork_ua\":true}",
            "POST /_sim/apps/{agent_id}": "{\"redirect_domain\":\"host:port\"|null, \"trusted_ips\":[..]|null, \"created_after_2022_06_20\":bool, \"enabled\":bool, \"out_of_range_errcode\":60111}",
            "GET /_sim/directory": "the directory as JSON (secrets included: they are simulated)",
            "POST /_sim/events/config": "{\"agent_id\":\"1000002\" (omit for the contact-sync assistant), \"url\":\"https://idp.example/wecom/events\", \"token\":\"…\", \"aes_key\":\"43 letters or digits\", \"prefix\":\"digits|alphanumeric|binary\", \"change_contact\":true}",
            "POST /_sim/events/verify": "{\"agent_id\":\"1000002\"} or {}: WeCom's URL check, answers {\"passed\":bool}",
            "POST /_sim/events/send": "{\"type\":\"subscribe|unsubscribe|enter_agent|create_user|update_user|delete_user|party|update_tag|batch_job_result\", …}",
            "POST /_sim/members/{userid}/disable|enable|delete": "change the directory and send the events WeCom would",
            "POST /_sim/members/{userid}/rename": "{\"new_userid\":\"…\"}",
            "POST /_sim/members/{userid}/hide": "{\"agent_id\":\"1000002\"}: out of that app's visible range (sends unsubscribe)",
        },
    })
}
