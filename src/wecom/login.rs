//! The two ways a browser is sent to WeCom to sign in (wecom-api.md §2–§3), and how to tell the
//! WeCom client's built-in browser from others.

use url::Url;

use super::endpoint;
use crate::config::{WeComCredentials, WeComSettings};

/// WeCom web login, by QR scan or a running desktop client (the successor of qrConnect):
/// `{login_base}/wwlogin/sso/login?login_type=CorpApp&appid=…&agentid=…&redirect_uri=…&state=…[&lang=zh|en]`.
/// `login_type=CorpApp` is for self-built apps, whose `appid` is the corp id \[D98171\]. `lang`
/// is sent only when it is one WeCom documents (`zh`, `en`).
pub fn web_login_url(
    settings: &WeComSettings,
    credentials: &WeComCredentials,
    state: &str,
    lang: Option<&str>,
) -> Url {
    let mut url = endpoint(&settings.login_base, "/wwlogin/sso/login");
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("login_type", "CorpApp")
            .append_pair("appid", &credentials.corp_id)
            .append_pair("agentid", &credentials.agent_id)
            .append_pair("redirect_uri", settings.redirect_url.as_str())
            .append_pair("state", state);
        if let Some(lang) = lang.filter(|l| matches!(*l, "zh" | "en")) {
            query.append_pair("lang", lang);
        }
    }
    url
}

/// Sign-in inside the WeCom client:
/// `{oauth_base}/connect/oauth2/authorize?appid=…&redirect_uri=…&response_type=code&scope=…&state=…&agentid=…#wechat_redirect`.
/// `agentid` is always sent: without it WeCom treats `snsapi_privateinfo` as `snsapi_base` and
/// releases no `user_ticket` \[D96441\]. The `#wechat_redirect` fragment is what makes the client
/// attach the identity.
pub fn in_client_login_url(
    settings: &WeComSettings,
    credentials: &WeComCredentials,
    state: &str,
) -> Url {
    let mut url = endpoint(&settings.oauth_base, "/connect/oauth2/authorize");
    url.query_pairs_mut()
        .append_pair("appid", &credentials.corp_id)
        .append_pair("redirect_uri", settings.redirect_url.as_str())
        .append_pair("response_type", "code")
        .append_pair("scope", settings.in_client_scope.as_str())
        .append_pair("state", state)
        .append_pair("agentid", &credentials.agent_id);
    url.set_fragment(Some("wechat_redirect"));
    url
}

/// The WeCom client's browser says `wxwork/<version>` (any case); it also says `MicroMessenger`
/// for compatibility, which alone means personal WeChat.
pub fn is_wecom_client(user_agent: &str) -> bool {
    user_agent
        .as_bytes()
        .windows(b"wxwork".len())
        .any(|window| window.eq_ignore_ascii_case(b"wxwork"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, InClientScope};

    fn fixture(extra: &[(&'static str, &'static str)]) -> (WeComSettings, WeComCredentials) {
        let mut pairs = vec![
            ("OIDC_ISSUER", "https://sso.example.com/base"),
            ("WECOM_CORP_ID", "ww123"),
            ("WECOM_CORP_SECRET", "secret"),
            ("WECOM_AGENT_ID", "1000002"),
        ];
        pairs.extend_from_slice(extra);
        let config = Config::from_pairs(pairs).unwrap();
        let credentials = config.wecom.credentials.clone().unwrap();
        (config.wecom, credentials)
    }

    #[test]
    fn web_login_url_has_exactly_the_documented_parameters() {
        let (settings, credentials) = fixture(&[]);
        let url = web_login_url(&settings, &credentials, "st-1", Some("en"));
        assert_eq!(
            url.as_str(),
            "https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp&appid=ww123&agentid=1000002&redirect_uri=https%3A%2F%2Fsso.example.com%2Fbase%2Fauth%2Fwecom%2Fcallback&state=st-1&lang=en"
        );
        let without_lang = web_login_url(&settings, &credentials, "st", None);
        assert!(
            without_lang.as_str().ends_with("&state=st"),
            "{without_lang}"
        );
        let odd_lang = web_login_url(&settings, &credentials, "st", Some("fr"));
        assert_eq!(odd_lang, without_lang);
    }

    #[test]
    fn login_urls_keep_a_private_base_path_and_encode_the_redirect_and_state() {
        let (settings, credentials) = fixture(&[
            ("WECOM_LOGIN_BASE", "https://wecom.corp.example/private/"),
            (
                "WECOM_REDIRECT_URL",
                "https://sso.example.com:8443/cb?x=1&y=a b",
            ),
        ]);
        let url = web_login_url(&settings, &credentials, "a&b=c", Some("zh"));
        assert_eq!(
            url.as_str(),
            "https://wecom.corp.example/private/wwlogin/sso/login?login_type=CorpApp&appid=ww123&agentid=1000002&redirect_uri=https%3A%2F%2Fsso.example.com%3A8443%2Fcb%3Fx%3D1%26y%3Da%2520b&state=a%26b%3Dc&lang=zh"
        );
        let redirect = url
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| v.into_owned());
        assert_eq!(redirect.as_deref(), Some(settings.redirect_url.as_str()));
    }

    #[test]
    fn in_client_url_asks_for_the_configured_scope_and_ends_with_wechat_redirect() {
        let (settings, credentials) = fixture(&[]);
        let url = in_client_login_url(&settings, &credentials, "st");
        assert_eq!(
            url.as_str(),
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww123&redirect_uri=https%3A%2F%2Fsso.example.com%2Fbase%2Fauth%2Fwecom%2Fcallback&response_type=code&scope=snsapi_privateinfo&state=st&agentid=1000002#wechat_redirect"
        );
        let (mut base, credentials) = fixture(&[]);
        base.in_client_scope = InClientScope::Base;
        let url = in_client_login_url(&base, &credentials, "st");
        assert!(url.as_str().contains("&scope=snsapi_base&"), "{url}");
        assert_eq!(url.fragment(), Some("wechat_redirect"));
    }

    #[test]
    fn only_the_wecom_client_counts_as_the_wecom_client() {
        let cases = [
            (
                "Mozilla/5.0 (iPhone) AppleWebKit wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh",
                true,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0) wxWork/4.0.8 (MicroMessenger/6.2) WindowsWechat",
                true,
            ),
            ("WXWORK/3.0", true),
            (
                "Mozilla/5.0 (Linux; Android 13) MicroMessenger/8.0.40 NetType/WIFI",
                false,
            ),
            ("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", false),
            ("", false),
            ("wxwor", false),
        ];
        for (ua, expected) in cases {
            assert_eq!(is_wecom_client(ua), expected, "{ua}");
        }
    }
}
