//! One typed error for every way a WeCom call fails, mapped once from WeCom's errcodes
//! (wecom-api.md §9) into what it means for the sign-in and what an administrator must fix.

use std::net::IpAddr;
use std::time::Duration;

/// A failed WeCom call. Nothing here holds the corp secret, an access token, a code or a
/// `user_ticket`: transport messages are taken without the URL, and WeCom's own `errmsg` is
/// scrubbed of the values the request carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeComError {
    /// WeCom answered `errcode != 0`; `errmsg` is what WeCom sent.
    #[error("WeCom errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("WeCom could not be reached: {0}")]
    Unreachable(String),
    #[error("WeCom did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("WeCom answered HTTP {0}")]
    HttpStatus(u16),
    #[error("WeCom's answer is not a valid API response: {0}")]
    InvalidResponse(String),
}

/// What a failure means for the sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCategory {
    /// Our settings or the app's settings in WeCom are wrong: an administrator must act.
    Misconfigured,
    /// WeCom is down, slow, busy or answered nonsense: try again later.
    Unavailable,
    /// WeCom's rate limit (45009) was hit: try again after its window.
    RateLimited,
    /// The login code is used, expired or missing: start the sign-in again.
    CodeInvalid,
    /// The member exists but is outside the app's visible range (可见范围).
    OutsideVisibleRange,
    /// WeCom does not know this member for this app.
    UserNotFound,
}

impl WeComError {
    pub fn errcode(&self) -> Option<i64> {
        match self {
            WeComError::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// The errcode table of wecom-api.md §9. 40014/42001 only reach a caller after a fresh token
    /// was rejected too, so they mean the secret and the token's app disagree: configuration.
    /// Unknown codes count as WeCom being unavailable: nothing the person could fix.
    pub fn category(&self) -> FailureCategory {
        let Some(code) = self.errcode() else {
            return FailureCategory::Unavailable;
        };
        match code {
            40001 | 40013 | 40014 | 40056 | 40091 | 41001 | 41002 | 41004 | 42001 | 43001
            | 43002 | 48002 | 48009 | 50001 | 60020 => FailureCategory::Misconfigured,
            45009 => FailureCategory::RateLimited,
            40029 | 41008 | 42003 => FailureCategory::CodeInvalid,
            50002 | 60011 => FailureCategory::OutsideVisibleRange,
            40003 | 46004 | 60111 => FailureCategory::UserNotFound,
            _ => FailureCategory::Unavailable,
        }
    }

    /// The address WeCom saw the call come from, out of an errmsg like
    /// `not allow to access from your ip, hint: [..], from ip: 203.0.113.7, more info at ..`.
    /// Only a well-formed IP address is returned: the errmsg is untrusted text.
    pub fn from_ip(&self) -> Option<IpAddr> {
        let WeComError::Api { errmsg, .. } = self else {
            return None;
        };
        let (_, rest) = errmsg.split_once("from ip:")?;
        let candidate: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == '.' || *c == ':')
            .collect();
        candidate.parse().ok()
    }

    /// Plain words for an administrator, with the fix. 50001 can only say "the host of
    /// WECOM_REDIRECT_URL" here; [`super::WeComClient::explain`] names the host itself.
    pub fn admin_explanation(&self) -> String {
        self.explain_with(None)
    }

    /// [`WeComError::admin_explanation`], naming `redirect_host` (host[:port]) for 50001.
    pub(super) fn explain_with(&self, redirect_host: Option<&str>) -> String {
        let code = match self {
            WeComError::Unreachable(_) => return "wecom-oidc could not connect to the WeCom API. Check DNS, the firewall and any outbound proxy; a private WeCom deployment needs WECOM_API_BASE.".into(),
            WeComError::Timeout(limit) => return format!("WeCom did not answer within {} ms (WECOM_TIMEOUT_SECS). WeCom or the network path to it is slow; raise the timeout if this keeps happening.", limit.as_millis()),
            WeComError::HttpStatus(status) => return format!("WeCom answered HTTP {status} instead of an API answer: it is having trouble, or WECOM_API_BASE points at something other than the WeCom API."),
            WeComError::InvalidResponse(_) => return "WeCom's answer was not the JSON the API documents: check that WECOM_API_BASE points at the WeCom API (https://qyapi.weixin.qq.com or the private deployment's API host).".into(),
            WeComError::Api { errcode, .. } => *errcode,
        };
        match code {
            60020 => {
                let ip = self
                    .from_ip()
                    .map_or_else(|| "(WeCom did not say which)".to_owned(), |ip| ip.to_string());
                format!("WeCom refused the call because it came from IP {ip}, which is not in the app's trusted IPs (60020). Add {ip} under 应用管理 → the app → 企业可信IP (several IPs are separated by ';'; it applies after about a minute). The list can only be edited once a trusted domain or callback domain is set.")
            }
            40001 => "WeCom rejected the secret (40001 invalid credential): WECOM_CORP_SECRET is wrong or was reset, or the app is disabled. Copy the Secret of the app named by WECOM_AGENT_ID again from 应用管理 → the app, and check that the app is enabled.".into(),
            40013 => "The corp id is invalid (40013): check WECOM_CORP_ID against 我的企业 → 企业信息 → 企业ID.".into(),
            40091 => "The secret belongs to another corporation (40091): WECOM_CORP_SECRET and WECOM_CORP_ID do not go together.".into(),
            40056 => "The agent id is invalid (40056): check WECOM_AGENT_ID against the AgentId shown in 应用管理 → the app.".into(),
            41002 | 41004 => "The corp id or the secret was not sent (41002/41004): set WECOM_CORP_ID and WECOM_CORP_SECRET.".into(),
            40014 | 42001 => "WeCom rejected the access token even after a fresh one was fetched (40014/42001): check that WECOM_CORP_SECRET is the Secret of the app named by WECOM_AGENT_ID.".into(),
            41001 | 43001 | 43002 => format!("WeCom says the request was malformed ({code}); this is a bug in wecom-oidc or WECOM_API_BASE points at a proxy that alters requests."),
            50001 => {
                let host = redirect_host.map_or_else(
                    || "the host (and port) of WECOM_REDIRECT_URL".to_owned(),
                    |host| format!("exactly {host}"),
                );
                format!("WeCom refused the redirect URL (50001 redirect_uri unauthorized): its domain is not a trusted domain of the app, or the code was issued to another app. In 应用管理 → the app, set 网页授权及JS-SDK → 可信域名 (in-client sign-in) and 企业微信授权登录 → 设置授权回调域 (web login) to {host} — no scheme, no wildcard, port included.")
            }
            45009 => "WeCom's rate limit was reached (45009 api freq out of limit); calls work again after the limit's window (a minute, or an hour after many failed gettoken calls). Look for something calling WeCom in a loop, such as a wrong secret retried.".into(),
            45033 | -1 => "WeCom was busy (-1 or 45033) and retries did not help; try again shortly.".into(),
            50002 | 60011 => "The member is outside the app's visible range (可见范围) (60011/50002). Add them, or their department, under 应用管理 → the app → 可见范围.".into(),
            60111 | 46004 | 40003 => "WeCom does not know this member for this app (60111/46004/40003): they left or were deleted, or they are outside the app's visible range (可见范围) — check 应用管理 → the app → 可见范围.".into(),
            48002 => "The app may not call this API (48002 api forbidden): check the app's API permissions in 应用管理 → the app.".into(),
            48009 => "This is the contacts-sync (通讯录同步) secret, which may not read members from new IPs (48009): set WECOM_CORP_SECRET to the Secret of the app named by WECOM_AGENT_ID.".into(),
            40029 | 42003 | 41008 => "The login code from WeCom was already used, expired (after 5 minutes) or missing; the person should simply sign in again. If it happens every time, a proxy may be delivering the callback twice.".into(),
            60003 | 60123 => "A department the app asked about does not exist (60003/60123); it is skipped.".into(),
            other => format!("WeCom answered errcode {other}; see https://open.work.weixin.qq.com/devtool/query?e={other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(errcode: i64, errmsg: &str) -> WeComError {
        WeComError::Api {
            errcode,
            errmsg: errmsg.into(),
        }
    }

    #[test]
    fn errcodes_map_to_what_they_mean_for_the_sign_in() {
        use FailureCategory::*;
        let table = [
            (-1, Unavailable),
            (40001, Misconfigured),
            (40003, UserNotFound),
            (40013, Misconfigured),
            (40014, Misconfigured),
            (40029, CodeInvalid),
            (40056, Misconfigured),
            (40091, Misconfigured),
            (41001, Misconfigured),
            (41002, Misconfigured),
            (41004, Misconfigured),
            (41008, CodeInvalid),
            (42001, Misconfigured),
            (42003, CodeInvalid),
            (45009, RateLimited),
            (45033, Unavailable),
            (46004, UserNotFound),
            (48002, Misconfigured),
            (48009, Misconfigured),
            (50001, Misconfigured),
            (50002, OutsideVisibleRange),
            (60011, OutsideVisibleRange),
            (60020, Misconfigured),
            (60111, UserNotFound),
            (99999, Unavailable),
        ];
        for (code, category) in table {
            assert_eq!(api(code, "").category(), category, "errcode {code}");
        }
        for transport in [
            WeComError::Unreachable("dns".into()),
            WeComError::Timeout(Duration::from_secs(1)),
            WeComError::HttpStatus(502),
            WeComError::InvalidResponse("x".into()),
        ] {
            assert_eq!(transport.category(), Unavailable, "{transport}");
            assert_eq!(transport.errcode(), None);
        }
    }

    #[test]
    fn trusted_ip_failures_name_the_ip_wecom_saw() {
        let err = api(60020, "not allow to access from your ip, hint: [1700000000_1_abc], from ip: 203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/query?e=60020");
        assert_eq!(err.from_ip(), "203.0.113.7".parse().ok());
        let text = err.admin_explanation();
        assert!(
            text.contains("203.0.113.7") && text.contains("企业可信IP"),
            "{text}"
        );
        let v6 = api(60020, "not allow, from ip: 2001:db8::1, more info");
        assert_eq!(v6.from_ip(), "2001:db8::1".parse().ok());
        let garbled = api(60020, "from ip: <script>");
        assert_eq!(garbled.from_ip(), None);
        assert!(garbled.admin_explanation().contains("did not say"));
    }

    #[test]
    fn explanations_name_the_setting_to_fix() {
        let cases = [
            (40001, "WECOM_CORP_SECRET"),
            (40001, "disabled"),
            (40013, "WECOM_CORP_ID"),
            (40056, "WECOM_AGENT_ID"),
            (50001, "WECOM_REDIRECT_URL"),
            (50001, "可信域名"),
            (45009, "45009"),
            (60011, "可见范围"),
            (60111, "可见范围"),
            (48009, "通讯录同步"),
            (40029, "sign in again"),
        ];
        for (code, needle) in cases {
            let text = api(code, "").admin_explanation();
            assert!(text.contains(needle), "{code}: {text}");
        }
        let named = api(50001, "").explain_with(Some("sso.example.com:8443"));
        assert!(named.contains("exactly sso.example.com:8443"), "{named}");
    }
}
