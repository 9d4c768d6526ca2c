//! The browser side of WeCom: web login (`/wwlogin/sso/login`), the legacy `qrConnect` and the
//! in-client OAuth page (`/connect/oauth2/authorize`). Where WeCom shows a QR code or a consent
//! screen, the simulator shows a picker ("who scans?"); its buttons lead to an `/approve` URL that
//! repeats the page's query plus the choice, re-validates everything (tests call it directly)
//! and redirects to the client with a fresh code. Plain functions, no actix.

use url::Url;

use super::directory::{App, SensitiveField};
use super::params::Params;
use super::state::{
    domain_matches, redirect_host, CodeGrant, GrantKind, SimState, SimTime, Subject, CODE_TTL_SECS,
};

/// Which of WeCom's three login entry points a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `login.work.weixin.qq.com/wwlogin/sso/login` (企业微信Web登录).
    WebLogin,
    /// `open.work.weixin.qq.com/wwopen/sso/qrConnect` (legacy QR login).
    QrConnect,
    /// `open.weixin.qq.com/connect/oauth2/authorize` (inside the WeCom client).
    OAuth,
}

impl Flow {
    pub fn page_path(self) -> &'static str {
        match self {
            Flow::WebLogin => "/wwlogin/sso/login",
            Flow::QrConnect => "/wwopen/sso/qrConnect",
            Flow::OAuth => "/connect/oauth2/authorize",
        }
    }

    pub fn approve_path(self) -> &'static str {
        match self {
            Flow::WebLogin => "/wwlogin/sso/login/approve",
            Flow::QrConnect => "/wwopen/sso/qrConnect/approve",
            Flow::OAuth => "/connect/oauth2/authorize/approve",
        }
    }

    /// The flow served at `path`, and whether it is the approve step.
    pub fn from_path(path: &str) -> Option<(Flow, bool)> {
        let path = path.trim_end_matches('/');
        [Flow::WebLogin, Flow::QrConnect, Flow::OAuth]
            .into_iter()
            .find_map(|flow| {
                if path == flow.page_path() {
                    Some((flow, false))
                } else if path == flow.approve_path() {
                    Some((flow, true))
                } else {
                    None
                }
            })
    }
}

/// The parameters the picker's buttons add; everything else is carried over unchanged.
const CHOICE_KEYS: [&str; 4] = ["userid", "openid", "deny", "consent"];

/// One browser request to a login page or its approve step.
#[derive(Debug, Clone, Copy)]
pub struct LoginRequest<'a> {
    pub params: &'a Params,
    pub user_agent: &'a str,
    /// Page language: `lang=en`, or English first in Accept-Language.
    pub english: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Picker(Picker),
    /// 302 to this URL (the client's redirect_uri with `code`/`state`).
    Redirect(String),
    Error(PageError),
}

/// The "who scans?" page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picker {
    pub flow: Flow,
    pub corp_name: String,
    pub app_name: String,
    pub action: &'static str,
    /// The page's own query, repeated by every button.
    pub carried: Vec<(String, String)>,
    pub members: Vec<PickerMember>,
    pub non_members: Vec<PickerNonMember>,
    /// For `snsapi_privateinfo`: the fields the consent box releases.
    pub consent_fields: Option<Vec<SensitiveField>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickerMember {
    pub userid: String,
    pub name: String,
    pub departments: Vec<String>,
    /// Outside the app's visible range, picking this member shows "no permission".
    pub in_range: bool,
    pub status: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickerNonMember {
    pub openid: String,
    pub name: String,
}

/// The error pages WeCom shows instead of redirecting. Never a redirect: the redirect_uri is not
/// trusted at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    MissingParam(&'static str),
    InvalidParam(&'static str),
    /// `login_type` other than `CorpApp` (the simulator has no third-party apps).
    WrongLoginType,
    /// `appid` is not the corporation's CorpID.
    UnknownCorp,
    UnknownApp,
    AppDisabled,
    InvalidRedirectUri,
    /// Web login: redirect host ≠ callback domain ("该链接无法访问").
    RedirectDomainMismatch,
    /// OAuth: redirect host ≠ trusted domain ("redirect_uri需使用应用可信域名").
    UntrustedRedirectDomain,
    /// The member is outside the app's visible range.
    NoPermission,
    UnknownMember,
    UnknownNonMember,
    /// The UA gate is on and the browser is not the WeCom client.
    NotInWeComClient,
}

impl PageError {
    /// A stable name for tests, sent as the `X-Sim-Error` header.
    pub fn code(self) -> &'static str {
        match self {
            PageError::MissingParam(_) => "missing_param",
            PageError::InvalidParam(_) => "invalid_param",
            PageError::WrongLoginType => "wrong_login_type",
            PageError::UnknownCorp => "unknown_corp",
            PageError::UnknownApp => "unknown_app",
            PageError::AppDisabled => "app_disabled",
            PageError::InvalidRedirectUri => "invalid_redirect_uri",
            PageError::RedirectDomainMismatch => "redirect_domain_mismatch",
            PageError::UntrustedRedirectDomain => "untrusted_redirect_domain",
            PageError::NoPermission => "no_permission",
            PageError::UnknownMember => "unknown_member",
            PageError::UnknownNonMember => "unknown_non_member",
            PageError::NotInWeComClient => "not_in_wecom_client",
        }
    }
}

/// A request that passed every check of its flow.
struct Checked {
    app: Option<App>,
    redirect: Url,
    state: Option<String>,
    /// Effective scope: `snsapi_privateinfo` with an agentid.
    privateinfo: bool,
}

fn check(state: &SimState, flow: Flow, request: &LoginRequest<'_>) -> Result<Checked, PageError> {
    let params = request.params;
    let directory = &state.directory;
    if flow == Flow::OAuth
        && state.settings.require_wxwork_ua
        && !request.user_agent.to_lowercase().contains("wxwork")
    {
        return Err(PageError::NotInWeComClient);
    }
    if flow == Flow::WebLogin {
        match params.non_empty("login_type") {
            Some("CorpApp") => {}
            Some(_) => return Err(PageError::WrongLoginType),
            None => return Err(PageError::MissingParam("login_type")),
        }
    }
    let appid = params
        .non_empty("appid")
        .ok_or(PageError::MissingParam("appid"))?;
    if appid != directory.corp_id {
        return Err(PageError::UnknownCorp);
    }
    let redirect = params
        .non_empty("redirect_uri")
        .ok_or(PageError::MissingParam("redirect_uri"))?;
    let redirect = Url::parse(redirect)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
        .ok_or(PageError::InvalidRedirectUri)?;

    let mut privateinfo = false;
    if flow == Flow::OAuth {
        match params.non_empty("response_type") {
            Some("code") => {}
            Some(_) => return Err(PageError::InvalidParam("response_type")),
            None => return Err(PageError::MissingParam("response_type")),
        }
        privateinfo = match params.non_empty("scope") {
            Some("snsapi_base") => false,
            Some("snsapi_privateinfo") => true,
            Some(_) => return Err(PageError::InvalidParam("scope")),
            None => return Err(PageError::MissingParam("scope")),
        };
    }

    // agentid is required for web login and optional for OAuth [D96441].
    let app = match params.non_empty("agentid") {
        Some(agent_id) => Some(
            directory
                .app(agent_id)
                .cloned()
                .ok_or(PageError::UnknownApp)?,
        ),
        None if flow == Flow::OAuth => None,
        None => return Err(PageError::MissingParam("agentid")),
    };
    if let Some(app) = &app {
        if !app.enabled {
            return Err(PageError::AppDisabled);
        }
        // Exact host(+port) match, no wildcard, no parent domain [D98173].
        if let Some(domain) = &app.redirect_domain {
            if !domain_matches(&redirect_host(&redirect), domain) {
                return Err(if flow == Flow::OAuth {
                    PageError::UntrustedRedirectDomain
                } else {
                    PageError::RedirectDomainMismatch
                });
            }
        }
    }
    Ok(Checked {
        // Without agentid a privateinfo request is treated as snsapi_base [D96441].
        privateinfo: privateinfo && app.is_some(),
        app,
        redirect,
        state: params.get("state").map(str::to_owned),
    })
}

/// The page a login link opens: the picker, or an error page.
pub fn page(state: &SimState, flow: Flow, request: &LoginRequest<'_>) -> Outcome {
    let checked = match check(state, flow, request) {
        Ok(checked) => checked,
        Err(error) => return Outcome::Error(error),
    };
    let directory = &state.directory;
    let members = directory
        .members
        .iter()
        .map(|member| PickerMember {
            userid: member.userid.clone(),
            name: member.name.clone(),
            departments: directory.department_names(member, request.english),
            in_range: checked
                .app
                .as_ref()
                .is_none_or(|app| directory.member_visible(app, member)),
            status: member.status,
        })
        .collect();
    let non_members = directory
        .non_members
        .iter()
        .map(|n| PickerNonMember {
            openid: n.openid.clone(),
            name: n.name.clone(),
        })
        .collect();
    let consent_fields = checked
        .app
        .as_ref()
        .filter(|_| checked.privateinfo)
        .map(|app| app.sensitive_fields.clone());
    Outcome::Picker(Picker {
        flow,
        corp_name: directory.corp_name.clone(),
        app_name: checked.app.map(|app| app.name).unwrap_or_default(),
        action: flow.approve_path(),
        carried: request.params.without(&CHOICE_KEYS),
        members,
        non_members,
        consent_fields,
    })
}

/// What the member agreed to on the privateinfo page: `consent=1` releases every field the
/// admin enabled, `consent=mobile,email` only those (and only if enabled), absent or `0` none.
fn consent(raw: Option<&str>, app: Option<&App>) -> Result<Option<Vec<SensitiveField>>, PageError> {
    let enabled = app.map(|a| a.sensitive_fields.clone()).unwrap_or_default();
    match raw.map(str::trim).unwrap_or_default() {
        "" | "0" | "false" | "off" | "no" => Ok(None),
        "1" | "true" | "on" | "yes" => Ok(Some(enabled)),
        list => {
            let mut chosen = Vec::new();
            for key in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                let field =
                    SensitiveField::from_key(key).ok_or(PageError::InvalidParam("consent"))?;
                if enabled.contains(&field) && !chosen.contains(&field) {
                    chosen.push(field);
                }
            }
            Ok(Some(chosen))
        }
    }
}

/// The approve step: re-checks the request, then redirects with a new code (or, on `deny=1`,
/// with `state` alone, as WeCom does when the person cancels \[blog-qr-old\]).
pub fn approve(
    state: &mut SimState,
    now: SimTime,
    flow: Flow,
    request: &LoginRequest<'_>,
) -> Outcome {
    match try_approve(state, now, flow, request) {
        Ok(url) => Outcome::Redirect(url),
        Err(error) => Outcome::Error(error),
    }
}

fn try_approve(
    state: &mut SimState,
    now: SimTime,
    flow: Flow,
    request: &LoginRequest<'_>,
) -> Result<String, PageError> {
    let checked = check(state, flow, request)?;
    let params = request.params;
    let mut pairs: Vec<(&str, String)> = Vec::new();

    let denied = params
        .non_empty("deny")
        .is_some_and(|v| !matches!(v, "0" | "false"));
    if !denied {
        let directory = &state.directory;
        let (subject, kind) = if let Some(userid) = params.non_empty("userid") {
            let member = directory.member(userid).ok_or(PageError::UnknownMember)?;
            let in_range = checked
                .app
                .as_ref()
                .is_none_or(|app| directory.member_visible(app, member));
            // Web login refuses members outside the range ("no permission") [blog-qr-lang];
            // OAuth only for privateinfo [D96441]: base still identifies them [D96442].
            if !in_range && (flow != Flow::OAuth || checked.privateinfo) {
                return Err(PageError::NoPermission);
            }
            let kind = match flow {
                Flow::WebLogin => GrantKind::WebLogin,
                Flow::QrConnect => GrantKind::QrConnect,
                Flow::OAuth if checked.privateinfo => GrantKind::OAuthPrivateInfo {
                    consented: consent(params.get("consent"), checked.app.as_ref())?,
                },
                Flow::OAuth => GrantKind::OAuthBase,
            };
            (Subject::Member(member.userid.clone()), kind)
        } else if let Some(openid) = params.non_empty("openid") {
            let non_member = directory
                .non_member(openid)
                .ok_or(PageError::UnknownNonMember)?;
            let kind = match flow {
                Flow::WebLogin => GrantKind::WebLogin,
                Flow::QrConnect => GrantKind::QrConnect,
                Flow::OAuth => GrantKind::OAuthBase,
            };
            (Subject::NonMember(non_member.openid.clone()), kind)
        } else {
            return Err(PageError::MissingParam("userid"));
        };
        let code = state.issue_code(
            CodeGrant {
                agent_id: checked.app.as_ref().map(|app| app.agent_id.clone()),
                subject,
                kind,
                redirect_host: redirect_host(&checked.redirect),
                expires_at: now + CODE_TTL_SECS,
            },
            now,
        );
        pairs.push(("code", code));
    }
    if let Some(state_param) = checked.state {
        pairs.push(("state", state_param));
    }
    // The legacy qrConnect also sends the CorpID back [blog-appid; powerwechat].
    if flow == Flow::QrConnect && !denied {
        pairs.push(("appid", state.directory.corp_id.clone()));
    }

    // Appending keeps any query the redirect_uri already has, and the query lands before its
    // #fragment [blog-appid].
    let mut redirect = checked.redirect;
    if !pairs.is_empty() {
        let mut query = redirect.query_pairs_mut();
        for (key, value) in &pairs {
            query.append_pair(key, value);
        }
    }
    Ok(redirect.to_string())
}
