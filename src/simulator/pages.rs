//! HTML for the simulated login pages, in Chinese and English, with every echoed value escaped.
//! The strings live in one table per language ([`ZH`], [`EN`]).

use std::fmt::Write as _;

use super::directory::SensitiveField;
use super::login::{Flow, PageError, Picker};

/// The texts of one language.
struct Texts {
    lang: &'static str,
    web_login_title: &'static str,
    oauth_title: &'static str,
    simulated_note: &'static str,
    pick_member: &'static str,
    pick_non_member: &'static str,
    non_member_note: &'static str,
    out_of_range: &'static str,
    status_disabled: &'static str,
    status_inactive: &'static str,
    status_left: &'static str,
    consent_intro: &'static str,
    consent_label: &'static str,
    cancel: &'static str,
    error_title: &'static str,
    field_names: [&'static str; 7],
}

const ZH: Texts = Texts {
    lang: "zh-CN",
    web_login_title: "企业微信登录",
    oauth_title: "企业微信授权",
    simulated_note: "这是本地模拟的企业微信（wecom-oidc simulator），请选择由谁扫码或确认登录。",
    pick_member: "以成员身份登录",
    pick_non_member: "非企业成员（个人微信）",
    non_member_note: "个人微信用户不是本企业成员。",
    out_of_range: "不在应用可见范围",
    status_disabled: "已禁用",
    status_inactive: "未激活",
    status_left: "已退出企业",
    consent_intro: "该应用申请获取你的以下信息：",
    consent_label: "同意授权",
    cancel: "取消",
    error_title: "出错了",
    field_names: [
        "头像",
        "性别",
        "手机",
        "个人邮箱",
        "企业邮箱",
        "个人二维码",
        "地址",
    ],
};

const EN: Texts = Texts {
    lang: "en",
    web_login_title: "Log in with WeCom",
    oauth_title: "WeCom authorisation",
    simulated_note: "This is a local WeCom simulator (wecom-oidc simulator). Choose who scans or confirms the login.",
    pick_member: "Log in as a member",
    pick_non_member: "Not a member (personal WeChat)",
    non_member_note: "A personal WeChat user is not a member of this corporation.",
    out_of_range: "outside the app's visible range",
    status_disabled: "disabled",
    status_inactive: "not activated",
    status_left: "left the corporation",
    consent_intro: "The app asks for the following information:",
    consent_label: "I agree",
    cancel: "Cancel",
    error_title: "Something went wrong",
    field_names: [
        "avatar",
        "gender",
        "mobile",
        "personal email",
        "corporate email",
        "personal QR code",
        "address",
    ],
};

fn texts(english: bool) -> &'static Texts {
    if english {
        &EN
    } else {
        &ZH
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

fn field_name(t: &Texts, field: SensitiveField) -> &'static str {
    let index = SensitiveField::ALL
        .iter()
        .position(|f| *f == field)
        .unwrap_or(0);
    t.field_names.get(index).copied().unwrap_or_default()
}

fn document(t: &Texts, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>\
body{{font-family:system-ui,\"PingFang SC\",\"Microsoft YaHei\",sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.4rem}} .note{{color:#666;font-size:.9rem}} .who{{display:block;width:100%;text-align:left;margin:.4rem 0;padding:.6rem .8rem;font-size:1rem;border:1px solid #ccc;border-radius:6px;background:#f7fbff;cursor:pointer}}\
.who small{{color:#666}} .warn{{color:#b35c00}} .cancel{{background:#fff}} fieldset{{border:1px solid #ddd;border-radius:6px;margin:1rem 0}}\
</style></head><body>{body}</body></html>\n",
        lang = t.lang,
        title = escape(title),
    )
}

/// The "who scans?" page. Buttons submit a GET form to the approve URL, so the browser sends
/// the page's own query plus `userid=` / `openid=` / `deny=1` (and `consent=1`).
pub fn picker(picker: &Picker, english: bool) -> String {
    let t = texts(english);
    let title = match picker.flow {
        Flow::OAuth => t.oauth_title,
        Flow::WebLogin | Flow::QrConnect => t.web_login_title,
    };
    let mut body = String::new();
    let _ = write!(body, "<h1>{}</h1>", escape(title));
    let _ = write!(
        body,
        "<p><strong>{}</strong> · {}</p><p class=\"note\">{}</p>",
        escape(&picker.corp_name),
        escape(&picker.app_name),
        escape(t.simulated_note)
    );
    let _ = write!(
        body,
        "<form method=\"get\" action=\"{}\">",
        escape(picker.action)
    );
    for (key, value) in &picker.carried {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(key),
            escape(value)
        );
    }
    if let Some(fields) = &picker.consent_fields {
        let names: Vec<&str> = fields.iter().map(|f| field_name(t, *f)).collect();
        let _ = write!(
            body,
            "<fieldset><p>{} {}</p><label><input type=\"checkbox\" name=\"consent\" value=\"1\" checked> {}</label></fieldset>",
            escape(t.consent_intro),
            escape(&names.join(if english { ", " } else { "、" })),
            escape(t.consent_label)
        );
    }
    let _ = write!(body, "<h2>{}</h2>", escape(t.pick_member));
    for member in &picker.members {
        let mut remarks = Vec::new();
        match member.status {
            2 => remarks.push(t.status_disabled),
            4 => remarks.push(t.status_inactive),
            5 => remarks.push(t.status_left),
            _ => {}
        }
        if !member.in_range {
            remarks.push(t.out_of_range);
        }
        let remark = if remarks.is_empty() {
            String::new()
        } else {
            format!(
                " <small class=\"warn\">({})</small>",
                escape(&remarks.join(", "))
            )
        };
        let _ = write!(
            body,
            "<button class=\"who\" type=\"submit\" name=\"userid\" value=\"{userid}\">{name} <small>{userid} · {departments}</small>{remark}</button>",
            userid = escape(&member.userid),
            name = escape(&member.name),
            departments = escape(&member.departments.join(" / ")),
        );
    }
    if !picker.non_members.is_empty() {
        let _ = write!(
            body,
            "<h2>{}</h2><p class=\"note\">{}</p>",
            escape(t.pick_non_member),
            escape(t.non_member_note)
        );
        for non_member in &picker.non_members {
            let _ = write!(
                body,
                "<button class=\"who\" type=\"submit\" name=\"openid\" value=\"{openid}\">{name} <small>{openid}</small></button>",
                openid = escape(&non_member.openid),
                name = escape(&non_member.name),
            );
        }
    }
    let _ = write!(
        body,
        "<button class=\"who cancel\" type=\"submit\" name=\"deny\" value=\"1\">{}</button></form>",
        escape(t.cancel)
    );
    document(t, title, &body)
}

/// The headline and explanation of an error page, worded like WeCom's own where known.
fn error_text(error: PageError, english: bool) -> (String, String) {
    let (zh, en): ((&str, String), (&str, String)) = match error {
        PageError::MissingParam(name) => (
            ("参数错误", format!("缺少参数 {name}。")),
            ("Invalid request", format!("The parameter {name} is missing.")),
        ),
        PageError::InvalidParam(name) => (
            ("参数错误", format!("参数 {name} 的值无效。")),
            ("Invalid request", format!("The parameter {name} has an invalid value.")),
        ),
        PageError::WrongLoginType => (
            ("参数错误", "login_type 必须为 CorpApp。".to_owned()),
            ("Invalid request", "login_type must be CorpApp.".to_owned()),
        ),
        PageError::UnknownCorp => (
            ("参数错误", "appid 不是本企业的 CorpID。".to_owned()),
            ("Invalid request", "appid is not this corporation's CorpID.".to_owned()),
        ),
        PageError::UnknownApp => (
            ("参数错误", "agentid 对应的应用不存在。".to_owned()),
            ("Invalid request", "No app has this agentid.".to_owned()),
        ),
        PageError::AppDisabled => (
            ("应用已停用", "该应用已被管理员停用。".to_owned()),
            ("App disabled", "The administrator disabled this app.".to_owned()),
        ),
        PageError::InvalidRedirectUri => (
            ("参数错误", "redirect_uri 不是有效的 http(s) 地址。".to_owned()),
            ("Invalid request", "redirect_uri is not a valid http(s) URL.".to_owned()),
        ),
        PageError::RedirectDomainMismatch => (
            ("该链接无法访问", "redirect_uri 与应用设置的授权回调域不一致。".to_owned()),
            ("This link cannot be opened", "The redirect_uri host does not match the app's callback domain.".to_owned()),
        ),
        PageError::UntrustedRedirectDomain => (
            ("redirect_uri需使用应用可信域名", "redirect_uri 的域名不是该应用的可信域名。".to_owned()),
            ("redirect_uri must use the app's trusted domain", "The redirect_uri host is not the app's trusted domain.".to_owned()),
        ),
        PageError::NoPermission => (
            ("无权限", "你没有使用该应用的权限，请联系管理员将你加入应用可见范围。".to_owned()),
            ("No permission", "You are not allowed to use this app. Ask the administrator to add you to its visible range.".to_owned()),
        ),
        PageError::UnknownMember => (
            ("成员不存在", "没有这个 userid 的成员。".to_owned()),
            ("Unknown member", "No member has this userid.".to_owned()),
        ),
        PageError::UnknownNonMember => (
            ("用户不存在", "没有这个 openid 的微信用户。".to_owned()),
            ("Unknown user", "No WeChat user has this openid.".to_owned()),
        ),
        PageError::NotInWeComClient => (
            ("请在企业微信客户端打开链接", "该页面只能在企业微信内打开。".to_owned()),
            ("Open this link in the WeCom client", "This page works only inside WeCom.".to_owned()),
        ),
    };
    let (headline, detail) = if english { en } else { zh };
    (headline.to_owned(), detail)
}

/// An error page; the flow never redirects from here.
pub fn error(error: PageError, english: bool) -> String {
    let t = texts(english);
    let (headline, detail) = error_text(error, english);
    let body = format!(
        "<h1>{}</h1><p>{}</p><p class=\"note\">{} · {}</p>",
        escape(&headline),
        escape(&detail),
        escape(t.error_title),
        escape(error.code())
    );
    document(t, &headline, &body)
}

/// The body behind an injected HTTP status, shaped like a gateway's error page.
pub fn gateway_error(status: u16, reason: &str) -> String {
    format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>stgw</center>\r\n</body>\r\n</html>\r\n",
        reason = escape(reason)
    )
}
