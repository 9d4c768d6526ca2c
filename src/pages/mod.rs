//! Pages a person sees: errors and refusals in Chinese or English, and the form-post response.
//! Every string lives in `text()`, one place per language; templates are compiled in.
//!
//! Rendering only: no I/O, no HTTP framework, no protocol decisions; callers choose the status.

use minijinja::{context, Environment};

use crate::crypto::sha256;

/// The page language, from `ui_locales` first, then `Accept-Language`; Chinese by default because
/// that is what WeCom members read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn negotiate(ui_locales: Option<&str>, accept_language: Option<&str>) -> Lang {
        let ranked = ui_locales
            .map(|v| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .into_iter()
            .chain(accept_language.map(|v| {
                v.split(',')
                    .map(|part| part.split(';').next().unwrap_or("").trim().to_owned())
                    .collect()
            }));
        for tag in ranked.flatten() {
            let tag = tag.to_ascii_lowercase();
            if tag.starts_with("zh") {
                return Lang::Zh;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::Zh
    }

    /// The `lang` WeCom's login page takes.
    pub fn wecom_code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

/// What went wrong, as a person needs to hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    UnknownClient,
    RedirectUriMismatch,
    BadRequest,
    LoginExpired,
    LoginCancelled,
    NotMember,
    AccountDisabled,
    AccountLeft,
    AccountNotActivated,
    OutsideVisibleRange,
    DomainNotAllowed,
    /// The member is not in the client's `allowed_groups`.
    NoAccessToApplication,
    /// The client asked (claims parameter, `sub` by value) for another member than the one who
    /// signed in.
    DifferentMember,
    WeComUnavailable,
    WeComMisconfigured,
    NotConfigured,
    LoggedOut,
    /// "Sign out?" with a button that posts back: a logout nobody proved the person asked for.
    ConfirmLogout,
    LogoutRefused,
    ServiceUnavailable,
    InternalError,
    /// A device request approved: back to the terminal.
    DeviceApproved,
    /// A device request denied.
    DeviceDenied,
    /// A user code that has expired or was answered already: nothing to approve.
    DeviceCodeExpired,
}

/// A page to show: its kind, an optional technical detail, and where "back" leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub kind: PageKind,
    pub detail: Option<String>,
    /// A link back to the application (already carrying `error=access_denied&state=…`).
    pub back: Option<String>,
    /// A button that posts these hidden fields to `action`.
    pub form: Option<PageForm>,
}

/// A form the page submits by a button (never by script): the person has to press it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageForm {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl Page {
    pub fn new(kind: PageKind) -> Self {
        Self {
            kind,
            detail: None,
            back: None,
            form: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn back(mut self, url: String) -> Self {
        self.back = Some(url);
        self
    }

    pub fn form(mut self, form: PageForm) -> Self {
        self.form = Some(form);
        self
    }

    /// 4xx for what the person or the application got wrong, 403 for refusals, 5xx for our side.
    pub fn status(&self) -> u16 {
        match self.kind {
            PageKind::LoggedOut
            | PageKind::ConfirmLogout
            | PageKind::DeviceApproved
            | PageKind::DeviceDenied => 200,
            PageKind::NotMember
            | PageKind::AccountDisabled
            | PageKind::AccountLeft
            | PageKind::AccountNotActivated
            | PageKind::OutsideVisibleRange
            | PageKind::DomainNotAllowed
            | PageKind::NoAccessToApplication
            | PageKind::DifferentMember
            | PageKind::LoginCancelled => 403,
            PageKind::WeComUnavailable | PageKind::WeComMisconfigured => 502,
            PageKind::NotConfigured | PageKind::ServiceUnavailable => 503,
            PageKind::InternalError => 500,
            _ => 400,
        }
    }
}

/// (title, message, what to do) for each kind and language.
fn text(kind: PageKind, lang: Lang) -> (&'static str, &'static str, &'static str) {
    use PageKind::*;
    match (kind, lang) {
        (UnknownClient, Lang::Zh) => ("无法登录", "发起登录的应用没有在本登录服务中注册。", "请联系该应用的管理员。"),
        (UnknownClient, Lang::En) => ("Cannot sign in", "The application that sent you here is not registered with this sign-in service.", "Please contact the application's administrator."),
        (RedirectUriMismatch, Lang::Zh) => ("无法登录", "应用提供的回调地址与注册的不一致，为了安全已停止登录。", "请联系该应用的管理员检查回调地址（redirect_uri）。"),
        (RedirectUriMismatch, Lang::En) => ("Cannot sign in", "The application's return address does not match its registration, so sign-in was stopped for your safety.", "Please ask the application's administrator to check its redirect_uri."),
        (BadRequest, Lang::Zh) => ("请求无效", "登录请求不完整或有误。", "请返回应用重新登录。"),
        (BadRequest, Lang::En) => ("Invalid request", "The sign-in request is incomplete or malformed.", "Please go back to the application and sign in again."),
        (LoginExpired, Lang::Zh) => ("登录已过期", "这个登录链接已经使用过或已过期。", "请返回应用重新登录。"),
        (LoginExpired, Lang::En) => ("Sign-in expired", "This sign-in link has already been used or has expired.", "Please go back to the application and sign in again."),
        (LoginCancelled, Lang::Zh) => ("已取消登录", "你在企业微信中取消了登录。", "如需登录，请返回应用重新开始。"),
        (LoginCancelled, Lang::En) => ("Sign-in cancelled", "You cancelled the sign-in in WeCom.", "To sign in, go back to the application and start again."),
        (NotMember, Lang::Zh) => ("无法登录", "只有本企业的成员才能登录。你使用的微信账号不是企业成员。", "请使用企业微信扫码，或联系管理员把你加入企业通讯录。"),
        (NotMember, Lang::En) => ("Cannot sign in", "Only members of this organisation can sign in, and the account you used is not a member.", "Scan with WeCom, or ask your administrator to add you to the directory."),
        (AccountDisabled, Lang::Zh) => ("账号已停用", "你的企业微信账号已被管理员停用。", "请联系企业微信管理员。"),
        (AccountDisabled, Lang::En) => ("Account disabled", "Your WeCom account has been disabled by an administrator.", "Please contact your WeCom administrator."),
        (AccountLeft, Lang::Zh) => ("无法登录", "你的账号已不在本企业中。", "如有疑问，请联系企业微信管理员。"),
        (AccountLeft, Lang::En) => ("Cannot sign in", "Your account is no longer part of this organisation.", "If this is a mistake, contact your WeCom administrator."),
        (AccountNotActivated, Lang::Zh) => ("账号未激活", "你的企业微信账号尚未激活。", "请先在手机上登录企业微信完成激活，然后重试。"),
        (AccountNotActivated, Lang::En) => ("Account not activated", "Your WeCom account has not been activated yet.", "Sign in to the WeCom app on your phone to activate it, then try again."),
        (OutsideVisibleRange, Lang::Zh) => ("没有使用权限", "你不在该应用的可见范围内，所以不能用它登录。", "请联系企业微信管理员把你加入应用的可见范围。"),
        (OutsideVisibleRange, Lang::En) => ("No access", "You are outside this app's visible range in WeCom, so you cannot sign in with it.", "Ask your WeCom administrator to add you to the app's visible range."),
        (DomainNotAllowed, Lang::Zh) => ("无法登录", "你的邮箱域名不在允许登录的范围内。", "请联系管理员。"),
        (DomainNotAllowed, Lang::En) => ("Cannot sign in", "Your email domain is not allowed to sign in here.", "Please contact your administrator."),
        (NoAccessToApplication, Lang::Zh) => ("没有访问权限", "您没有访问此应用的权限。", "如需使用，请联系该应用的管理员为你开通。"),
        (NoAccessToApplication, Lang::En) => ("No access", "You do not have access to this application.", "If you need it, ask the application's administrator to grant you access."),
        (DifferentMember, Lang::Zh) => ("无法登录", "应用要求的是另一位成员的登录，而你登录的是其他账号。", "请返回应用，用应用要求的企业微信账号重新登录。"),
        (DifferentMember, Lang::En) => ("Cannot sign in", "The application asked for a different member than the one who signed in.", "Go back to the application and sign in with the WeCom account it asked for."),
        (WeComUnavailable, Lang::Zh) => ("企业微信暂时不可用", "暂时无法连接企业微信。", "请稍后返回应用重试。"),
        (WeComUnavailable, Lang::En) => ("WeCom is unavailable", "WeCom could not be reached just now.", "Please go back to the application and try again in a moment."),
        (WeComMisconfigured, Lang::Zh) => ("登录服务配置有误", "登录服务与企业微信的对接配置有误，管理员已可在日志中看到原因。", "请联系 IT 管理员。"),
        (WeComMisconfigured, Lang::En) => ("Sign-in is misconfigured", "The sign-in service's WeCom settings are wrong; the reason is in its log for the administrator.", "Please contact your IT administrator."),
        (NotConfigured, Lang::Zh) => ("登录服务尚未配置", "尚未设置企业微信的 CorpID、Secret 和 AgentId。", "请管理员设置 WECOM_CORP_ID、WECOM_CORP_SECRET 和 WECOM_AGENT_ID。"),
        (NotConfigured, Lang::En) => ("Sign-in is not set up", "The WeCom corp id, secret and agent id have not been configured.", "Administrators: set WECOM_CORP_ID, WECOM_CORP_SECRET and WECOM_AGENT_ID."),
        (LoggedOut, Lang::Zh) => ("已退出登录", "你已经退出登录。", "现在可以关闭此页面。"),
        (LoggedOut, Lang::En) => ("Signed out", "You have been signed out.", "You can close this page now."),
        (ConfirmLogout, Lang::Zh) => ("退出登录？", "确定要退出企业微信登录吗？通过它登录的应用会收到退出通知。", "如果不是你本人发起的退出，直接关闭此页面即可，不会退出。"),
        (ConfirmLogout, Lang::En) => ("Sign out?", "Do you want to sign out of WeCom sign-in? Applications you signed in to with it will be told.", "If you did not ask to sign out, just close this page: nothing happens."),
        (LogoutRefused, Lang::Zh) => ("无法完成退出", "应用提供的退出后跳转地址没有注册，为了安全不会跳转。", "请联系该应用的管理员。"),
        (LogoutRefused, Lang::En) => ("Cannot complete sign-out", "The application's post-logout address is not registered, so you will not be sent there.", "Please contact the application's administrator."),
        (ServiceUnavailable, Lang::Zh) => ("服务暂时不可用", "登录服务暂时无法处理请求。", "请稍后重试。"),
        (ServiceUnavailable, Lang::En) => ("Service unavailable", "The sign-in service cannot handle requests right now.", "Please try again shortly."),
        (InternalError, Lang::Zh) => ("出错了", "登录服务发生了内部错误。", "请稍后重试；如果一直出现，请联系 IT 管理员。"),
        (InternalError, Lang::En) => ("Something went wrong", "The sign-in service hit an internal error.", "Please try again; if it keeps happening, contact your IT administrator."),
        (DeviceApproved, Lang::Zh) => ("已授权", "设备登录已获批准。", "请回到你的终端继续操作，现在可以关闭此页面。"),
        (DeviceApproved, Lang::En) => ("Approved", "The device sign-in has been approved.", "Return to your terminal to continue; you can close this page now."),
        (DeviceDenied, Lang::Zh) => ("已拒绝", "你拒绝了这次设备登录，终端不会获得你的身份。", "请回到你的终端；如果不是你发起的请求，无需其他操作。"),
        (DeviceDenied, Lang::En) => ("Denied", "You denied this device sign-in; the terminal gets nothing.", "Return to your terminal. If you did not start this, nothing else is needed."),
        (DeviceCodeExpired, Lang::Zh) => ("没有待批准的请求", "这个设备码已过期或已处理过，没有可以批准的内容。", "请回到你的终端重新发起登录，获取新的设备码。"),
        (DeviceCodeExpired, Lang::En) => ("Nothing to approve", "This device code has expired or has already been answered.", "Return to your terminal and start the sign-in again for a new code."),
    }
}

/// The device verification page (RFC 8628 §3.3): the form to type a user code, or the approval
/// of the request it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePage {
    /// One field for the user code; `wrong` after a code that matches nothing.
    EnterCode {
        wrong: bool,
    },
    Approve(DeviceApproval),
}

/// What the person sees before approving (RFC 8628 §5.4: enough to notice a request that is not
/// theirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceApproval {
    pub client_name: String,
    pub scopes: Vec<crate::domain::Scope>,
    /// The address the device request came from.
    pub requested_from: String,
    pub requested_at: crate::clock::UnixTime,
    /// As the terminal shows it, `XXXX-XXXX`.
    pub user_code: String,
    pub csrf_token: String,
}

impl DevicePage {
    pub fn status(&self) -> u16 {
        match self {
            DevicePage::EnterCode { wrong: true } => 400,
            _ => 200,
        }
    }
}

/// A scope in words.
fn scope_words(scope: crate::domain::Scope, lang: Lang) -> &'static str {
    use crate::domain::Scope::*;
    match (scope, lang) {
        (OpenId, Lang::Zh) => "确认你的企业微信身份",
        (OpenId, Lang::En) => "confirm your WeCom identity",
        (Profile, Lang::Zh) => "姓名、头像、职务等基本资料",
        (Profile, Lang::En) => "your name, avatar, position and basic profile",
        (Email, Lang::Zh) => "邮箱地址",
        (Email, Lang::En) => "your email address",
        (Phone, Lang::Zh) => "手机号码",
        (Phone, Lang::En) => "your phone number",
        (Groups, Lang::Zh) => "所在部门和标签",
        (Groups, Lang::En) => "your departments and tags",
        (OfflineAccess, Lang::Zh) => "在你离开后继续访问（刷新令牌）",
        (OfflineAccess, Lang::En) => "keep access while you are away (refresh token)",
    }
}

/// The strings of the device page.
fn device_text(page: &DevicePage, lang: Lang) -> minijinja::Value {
    match (page, lang) {
        (DevicePage::EnterCode { .. }, Lang::Zh) => context! {
            title => "设备登录", message => "请输入终端或设备上显示的代码。",
            wrong => "代码不正确，请核对后重新输入。", next => "下一步",
        },
        (DevicePage::EnterCode { .. }, Lang::En) => context! {
            title => "Sign in a device", message => "Enter the code shown on your terminal or device.",
            wrong => "That code is not right. Check it and try again.", next => "Next",
        },
        (DevicePage::Approve(_), Lang::Zh) => context! {
            title => "批准设备登录？", message => "一个设备请求以你的身份登录：",
            application => "应用", access => "将获得", from => "请求来自", when => "请求时间",
            code => "设备码",
            warning => "只有当这个请求是你本人刚刚在终端上发起、且设备码与终端上显示的一致时才批准。如果有人发给你这个链接或代码，请拒绝。",
            approve => "批准", deny => "拒绝",
        },
        (DevicePage::Approve(_), Lang::En) => context! {
            title => "Approve this device?", message => "A device asks to sign in as you:",
            application => "Application", access => "It gets", from => "Requested from", when => "Requested at",
            code => "Code",
            warning => "Approve only if you just started this on your own terminal and the code matches what it shows. If someone sent you this link or code, deny.",
            approve => "Approve", deny => "Deny",
        },
    }
}

/// Compiled templates, built once at start-up.
pub struct Pages {
    env: Environment<'static>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pages")
    }
}

/// The inline script of the form-post page, allowed by its hash in the page's CSP.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit()";

impl Pages {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.add_template("page.html", include_str!("page.html"))?;
        env.add_template("form_post.html", include_str!("form_post.html"))?;
        env.add_template("device.html", include_str!("device.html"))?;
        Ok(Self { env })
    }

    pub fn render(&self, page: &Page, lang: Lang) -> String {
        let (title, message, what_to_do) = text(page.kind, lang);
        let back_label = match lang {
            Lang::Zh => "返回应用",
            Lang::En => "Back to the application",
        };
        let submit_label = match (page.kind, lang) {
            (PageKind::ConfirmLogout, Lang::Zh) => "退出登录",
            (PageKind::ConfirmLogout, Lang::En) => "Sign out",
            (_, Lang::Zh) => "继续",
            (_, Lang::En) => "Continue",
        };
        self.env
            .get_template("page.html")
            .and_then(|t| {
                t.render(context! {
                    lang => match lang { Lang::Zh => "zh-CN", Lang::En => "en" },
                    title, message, what_to_do, back_label, submit_label,
                    detail => page.detail, back => page.back,
                    form => page.form.as_ref().map(|f| context! {
                        action => f.action, fields => f.fields,
                    }),
                })
            })
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "page template failed");
                title.to_owned()
            })
    }

    /// The device verification page; its forms go to `action` (the page's own URL).
    pub fn render_device(&self, page: &DevicePage, action: &str, lang: Lang) -> String {
        let approval = match page {
            DevicePage::Approve(approval) => Some(context! {
                client_name => approval.client_name,
                scopes => approval.scopes.iter().map(|s| scope_words(*s, lang)).collect::<Vec<_>>(),
                requested_from => approval.requested_from,
                requested_at => crate::clock::utc_timestamp(approval.requested_at),
                user_code => approval.user_code,
                csrf_token => approval.csrf_token,
            }),
            DevicePage::EnterCode { .. } => None,
        };
        self.env
            .get_template("device.html")
            .and_then(|t| {
                t.render(context! {
                    lang => match lang { Lang::Zh => "zh-CN", Lang::En => "en" },
                    t => device_text(page, lang),
                    wrong => matches!(page, DevicePage::EnterCode { wrong: true }),
                    approval, action,
                })
            })
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "device template failed");
                String::new()
            })
    }

    /// The auto-submitting form of the form_post response mode.
    pub fn render_form_post(&self, action: &str, params: &[(String, String)]) -> String {
        self.env
            .get_template("form_post.html")
            .and_then(|t| t.render(context! { action, params }))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "form_post template failed");
                String::new()
            })
    }

    /// CSP for the form-post page: only its own inline script may run.
    pub fn form_post_csp() -> String {
        format!(
            "default-src 'none'; script-src 'sha256-{}'; frame-ancestors 'none'",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                sha256(FORM_POST_SCRIPT.as_bytes())
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_follows_ui_locales_then_accept_language() {
        assert_eq!(Lang::negotiate(Some("en-US zh"), Some("zh-CN")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("fr-FR")), Lang::Zh);
        assert_eq!(Lang::negotiate(None, None), Lang::Zh);
    }

    #[test]
    fn pages_escape_what_they_echo() {
        let pages = Pages::new().unwrap();
        let html = pages.render(
            &Page::new(PageKind::BadRequest).detail("<script>alert(1)</script>"),
            Lang::En,
        );
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>alert"));
    }

    #[test]
    fn a_confirmation_page_posts_its_hidden_fields_by_a_button() {
        let pages = Pages::new().unwrap();
        let page = Page::new(PageKind::ConfirmLogout).form(PageForm {
            action: "https://sso.example.com/logout".into(),
            fields: vec![("state".into(), "\"><script>".into())],
        });
        let html = pages.render(&page, Lang::Zh);
        assert!(html.contains("method=\"post\""));
        assert!(html.contains("name=\"state\""));
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("<button"));
        assert!(!html.contains("<script"));
    }
}
