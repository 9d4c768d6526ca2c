//! One typed error for every way a WeCom call fails, mapped once from WeCom's errcodes into what
//! it means for the person signing in and what an administrator must fix.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WeComError {
    /// WeCom answered with `errcode != 0` (its `errmsg` holds no secret).
    #[error("WeCom errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("WeCom could not be reached: {0}")]
    Unreachable(String),
    #[error("WeCom did not answer within {0:?}")]
    Timeout(Duration),
    #[error("WeCom answered HTTP {0}")]
    HttpStatus(u16),
    #[error("WeCom's answer is not a valid API response: {0}")]
    InvalidResponse(String),
}

/// What a failure means for the sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCategory {
    /// Our settings or the app's WeCom settings are wrong: an administrator must act.
    Misconfigured,
    /// WeCom is down, slow or busy: try again later.
    Unavailable,
    RateLimited,
    /// The login code is used, expired or unknown: start the sign-in again.
    CodeInvalid,
    OutsideVisibleRange,
    UserNotFound,
}

impl WeComError {
    pub fn errcode(&self) -> Option<i64> {
        match self {
            WeComError::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    pub fn category(&self) -> FailureCategory {
        match self.errcode() {
            None => FailureCategory::Unavailable,
            Some(code) => match code {
                40001 | 40013 | 40014 | 40056 | 40091 | 41001 | 41002 | 41004 | 42001 | 48002
                | 48009 | 50001 | 60020 => FailureCategory::Misconfigured,
                45009 => FailureCategory::RateLimited,
                40029 | 41008 | 42003 => FailureCategory::CodeInvalid,
                60011 | 50002 => FailureCategory::OutsideVisibleRange,
                60111 | 40003 | 46004 => FailureCategory::UserNotFound,
                _ => FailureCategory::Unavailable,
            },
        }
    }

    /// The IP address WeCom saw, from an errmsg like `…, from ip: 1.2.3.4, more info at …`.
    pub fn from_ip(&self) -> Option<String> {
        let WeComError::Api { errmsg, .. } = self else {
            return None;
        };
        let rest = errmsg.split("from ip:").nth(1)?;
        let ip: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == '.' || *c == ':')
            .collect();
        (!ip.is_empty()).then_some(ip)
    }

    /// Plain words for an administrator, with the fix.
    pub fn admin_explanation(&self) -> String {
        match self {
            WeComError::Unreachable(_) => "wecom-oidc could not connect to the WeCom API. Check DNS, the firewall and any outbound proxy; a private WeCom deployment needs WECOM_API_BASE.".into(),
            WeComError::Timeout(limit) => format!("WeCom did not answer within {} s (WECOM_TIMEOUT_SECS). WeCom may be slow, or the network path to it is.", limit.as_secs()),
            WeComError::HttpStatus(status) => format!("WeCom answered HTTP {status} instead of an API response; it is probably having trouble, or WECOM_API_BASE points at the wrong host."),
            WeComError::InvalidResponse(_) => "WeCom's answer was not the JSON the API documents; check that WECOM_API_BASE points at the WeCom API.".into(),
            WeComError::Api { errcode, .. } => match errcode {
                60020 => format!(
                    "WeCom refused the call because it came from IP {}, which is not in the app's trusted IP list. Add it under 应用管理 → the app → 企业可信IP (it applies after about a minute).",
                    self.from_ip().unwrap_or_else(|| "(not stated)".into())
                ),
                40001 => "WeCom rejected the secret (40001): WECOM_CORP_SECRET is wrong or was reset, or the app is disabled. Copy the Secret of the app named by WECOM_AGENT_ID again from 应用管理, and check the app is enabled.".into(),
                40013 => "The corp id is invalid (40013): check WECOM_CORP_ID against 我的企业 → 企业信息 → 企业ID.".into(),
                40091 => "The secret belongs to another corporation (40091): WECOM_CORP_SECRET and WECOM_CORP_ID do not match.".into(),
                40056 => "The agent id is invalid (40056): check WECOM_AGENT_ID against the app's AgentId.".into(),
                41002 | 41004 => "The corp id or secret was not sent: set WECOM_CORP_ID and WECOM_CORP_SECRET.".into(),
                40014 | 42001 | 41001 => "WeCom kept rejecting the access token even after a fresh one was fetched; check that the secret belongs to this app.".into(),
                50001 => "The redirect URL is not a trusted domain of the app (50001), or the code was issued to another app. Set the app's 企业微信授权登录 → 授权回调域 and 网页授权及JS-SDK → 可信域名 to the exact host (and port) of WECOM_REDIRECT_URL.".into(),
                45009 => "WeCom's rate limit was reached (45009); sign-ins will work again after the limit's window (up to an hour).".into(),
                45033 | -1 => "WeCom is busy; retries did not help. Try again shortly.".into(),
                60011 | 50002 => "The member is outside the app's visible range (可见范围). Add them (or their department) to the app's visible range.".into(),
                60111 | 46004 | 40003 => "WeCom does not know this member for this app: they left, were deleted, or are outside the app's visible range (可见范围).".into(),
                48002 => "The app may not call this API (48002): check the app's API permissions.".into(),
                48009 => "This is the contact-sync (通讯录同步) secret, which may not read members from new IPs (48009); use the app's own Secret.".into(),
                40029 | 42003 | 41008 => "The login code from WeCom was used already, expired (5 minutes) or missing; the person should sign in again.".into(),
                other => format!("WeCom answered errcode {other}; see https://developer.work.weixin.qq.com/devtool/query?e={other}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_ip_failures_name_the_ip_wecom_saw() {
        let err = WeComError::Api {
            errcode: 60020,
            errmsg: "not allow to access from your ip, hint: [1700000000_1_abc], from ip: 203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/query?e=60020".into(),
        };
        assert_eq!(err.category(), FailureCategory::Misconfigured);
        assert!(err.admin_explanation().contains("203.0.113.7"));
        assert!(err.admin_explanation().contains("企业可信IP"));
    }

    #[test]
    fn errcodes_map_to_what_they_mean_for_the_sign_in() {
        let api = |errcode| WeComError::Api {
            errcode,
            errmsg: String::new(),
        };
        assert_eq!(api(40029).category(), FailureCategory::CodeInvalid);
        assert_eq!(api(60011).category(), FailureCategory::OutsideVisibleRange);
        assert_eq!(api(45009).category(), FailureCategory::RateLimited);
        assert_eq!(api(40001).category(), FailureCategory::Misconfigured);
        assert!(api(40001).admin_explanation().contains("WECOM_CORP_SECRET"));
        assert!(api(40013).admin_explanation().contains("WECOM_CORP_ID"));
        assert!(api(50001).admin_explanation().contains("可信域名"));
        assert_eq!(
            WeComError::Timeout(Duration::from_secs(1)).category(),
            FailureCategory::Unavailable
        );
    }
}
