//! The WeCom API client, the only user of reqwest: the corp access token cache, errcode handling
//! and retries, member profiles, groups, and the two login URLs.
//!
//! The access token is cached until shortly before it expires and refreshed single-flight, so a
//! burst of sign-ins on a cold cache makes one `gettoken` call. On 40014/42001 the token is dropped,
//! fetched again and the call retried once; on -1 and 45033 (busy) the call is retried with
//! backoff. Nothing secret (secret, token, code, ticket) ever reaches a log line or an error.

mod error;
mod groups;
mod profile;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::config::{GroupKinds, WeComCredentials, WeComSettings};
pub use error::{FailureCategory, WeComError};
use profile::number as number_of;
pub use profile::{Department, Gender, Identity, Member, MemberDetail, MemberStatus};

/// Refresh this long before WeCom's `expires_in` runs out.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// Backoff before each retry of a busy answer (-1, 45033).
const BUSY_BACKOFF: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

struct CachedToken {
    value: String,
    refresh_after: Instant,
}

struct Inner {
    http: reqwest::Client,
    api_base: Url,
    corp_id: String,
    secret: SecretString,
    timeout: Duration,
    token: RwLock<Option<CachedToken>>,
    /// Held while fetching a token: concurrent callers wait for that one fetch.
    refresh: tokio::sync::Mutex<()>,
    directory: groups::DirectoryCache,
}

#[derive(Clone)]
pub struct WeComClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WeComClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeComClient")
            .field("api_base", &self.inner.api_base.as_str())
            .field("corp_id", &self.inner.corp_id)
            .finish_non_exhaustive()
    }
}

/// `base` + `path`, keeping any path prefix the base carries (private deployments).
fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url
}

/// WeCom's JSON carries errcode as a number (once, as a string); absent means success.
fn errcode_of(body: &Value) -> i64 {
    match body.get("errcode") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(-1),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(-1),
        _ => 0,
    }
}

impl WeComClient {
    pub fn new(
        settings: &WeComSettings,
        credentials: &WeComCredentials,
    ) -> Result<Self, WeComError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // WeCom never redirects an API call; following one could leak the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wecom-oidc/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WeComError::Unreachable(e.without_url().to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_base: settings.api_base.clone(),
                corp_id: credentials.corp_id.clone(),
                secret: credentials.corp_secret.clone(),
                timeout: settings.timeout,
                token: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
                directory: groups::DirectoryCache::new(settings.groups_cache_ttl),
            }),
        })
    }

    /// One HTTP exchange; transport failures and non-JSON answers become typed errors.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, WeComError> {
        let mut request = self.inner.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(WeComError::HttpStatus(status.as_u16()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| WeComError::InvalidResponse(format!("not JSON ({e})")))
    }

    fn transport_error(&self, err: reqwest::Error) -> WeComError {
        if err.is_timeout() {
            WeComError::Timeout(self.inner.timeout)
        } else {
            // without_url: the URL carries the access token or the corp secret.
            WeComError::Unreachable(err.without_url().to_string())
        }
    }

    /// Sends, retrying busy answers with backoff; answers the body of a success.
    async fn send_retrying_busy(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Value, WeComError> {
        let mut attempt = 0;
        loop {
            let answer = self.send(method.clone(), url.clone(), body).await?;
            let errcode = errcode_of(&answer);
            if errcode == 0 {
                return Ok(answer);
            }
            if matches!(errcode, -1 | 45033) && attempt < BUSY_BACKOFF.len() {
                tracing::warn!(errcode, attempt, "WeCom busy; retrying");
                tokio::time::sleep(BUSY_BACKOFF[attempt]).await;
                attempt += 1;
                continue;
            }
            let errmsg = answer
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Err(WeComError::Api { errcode, errmsg });
        }
    }

    /// The cached token, or a fresh one fetched by exactly one caller at a time.
    async fn access_token(&self) -> Result<String, WeComError> {
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        let _guard = self.inner.refresh.lock().await;
        // Another caller may have fetched it while this one waited.
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        self.fetch_token().await
    }

    fn cached_token(&self) -> Option<String> {
        let cached = self.inner.token.read().ok()?;
        cached
            .as_ref()
            .filter(|t| Instant::now() < t.refresh_after)
            .map(|t| t.value.clone())
    }

    #[tracing::instrument(skip_all)]
    async fn fetch_token(&self) -> Result<String, WeComError> {
        let mut url = endpoint(&self.inner.api_base, "/cgi-bin/gettoken");
        url.query_pairs_mut()
            .append_pair("corpid", &self.inner.corp_id)
            .append_pair("corpsecret", self.inner.secret.expose_secret());
        let answer = self.send_retrying_busy(Method::GET, &url, None).await?;
        let value = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| WeComError::InvalidResponse("gettoken answered no access_token".into()))?
            .to_owned();
        let lifetime = Duration::from_secs(
            answer
                .get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(7200),
        );
        // Short lifetimes (tests, odd deployments) refresh at half-life instead.
        let margin = TOKEN_MARGIN.min(lifetime / 2);
        if let Ok(mut cached) = self.inner.token.write() {
            *cached = Some(CachedToken {
                value: value.clone(),
                refresh_after: Instant::now() + lifetime - margin,
            });
        }
        tracing::info!(
            expires_in = lifetime.as_secs(),
            "fetched a WeCom access token"
        );
        Ok(value)
    }

    /// Drops the cached token if it is still the one that failed.
    fn forget_token(&self, failed: &str) {
        if let Ok(mut cached) = self.inner.token.write() {
            if cached.as_ref().is_some_and(|t| t.value == failed) {
                *cached = None;
            }
        }
    }

    /// Calls a business API with the access token; on 40014/42001 refreshes it and retries once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, WeComError> {
        let mut refreshed = false;
        loop {
            let token = self.access_token().await?;
            let mut url = endpoint(&self.inner.api_base, path);
            url.query_pairs_mut()
                .append_pair("access_token", &token)
                .extend_pairs(query);
            match self.send_retrying_busy(method.clone(), &url, body).await {
                Err(WeComError::Api {
                    errcode: 40014 | 42001,
                    ..
                }) if !refreshed => {
                    tracing::info!(path, "WeCom access token rejected; fetching a new one");
                    self.forget_token(&token);
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    /// `GET /cgi-bin/auth/getuserinfo`: who the OAuth or web-login code belongs to.
    #[tracing::instrument(skip_all)]
    pub async fn identify(&self, code: &str) -> Result<Identity, WeComError> {
        let answer = self
            .call(
                Method::GET,
                "/cgi-bin/auth/getuserinfo",
                &[("code", code)],
                None,
            )
            .await?;
        Identity::from_answer(&answer)
    }

    /// `GET /cgi-bin/user/get`.
    #[tracing::instrument(skip(self))]
    pub async fn member(&self, userid: &str) -> Result<Member, WeComError> {
        let answer = self
            .call(
                Method::GET,
                "/cgi-bin/user/get",
                &[("userid", userid)],
                None,
            )
            .await?;
        Member::from_answer(&answer)
    }

    /// `POST /cgi-bin/auth/getuserdetail` with the `user_ticket` of an in-client sign-in.
    #[tracing::instrument(skip_all)]
    pub async fn member_detail(&self, user_ticket: &str) -> Result<MemberDetail, WeComError> {
        let body = serde_json::json!({ "user_ticket": user_ticket });
        let answer = self
            .call(
                Method::POST,
                "/cgi-bin/auth/getuserdetail",
                &[],
                Some(&body),
            )
            .await?;
        MemberDetail::from_answer(&answer)
    }

    /// `GET /cgi-bin/department/list`: every department the app may see.
    pub async fn departments(&self) -> Result<Vec<Department>, WeComError> {
        let answer = self
            .call(Method::GET, "/cgi-bin/department/list", &[], None)
            .await?;
        Department::list_from_answer(&answer)
    }

    /// For `wecom-oidc check`: fetches a fresh token, bypassing the cache.
    pub async fn check_credentials(&self) -> Result<(), WeComError> {
        let _guard = self.inner.refresh.lock().await;
        self.fetch_token().await.map(|_| ())
    }

    /// The member's groups, of the kinds asked for (see `groups`).
    pub async fn groups(
        &self,
        member: &Member,
        kinds: GroupKinds,
    ) -> Result<Vec<String>, WeComError> {
        let directory = self.inner.directory.get(self).await?;
        Ok(directory.groups_of(member, kinds))
    }
}

/// The new WeCom web login (QR scan or a running desktop client):
/// `{login_base}/wwlogin/sso/login?login_type=CorpApp&appid=…&agentid=…&redirect_uri=…&state=…[&lang=…]`.
pub fn web_login_url(
    settings: &WeComSettings,
    credentials: &WeComCredentials,
    state: &str,
    lang: Option<&str>,
) -> Url {
    let mut url = endpoint(&settings.login_base, "/wwlogin/sso/login");
    url.query_pairs_mut()
        .append_pair("login_type", "CorpApp")
        .append_pair("appid", &credentials.corp_id)
        .append_pair("agentid", &credentials.agent_id)
        .append_pair("redirect_uri", settings.redirect_url.as_str())
        .append_pair("state", state);
    if let Some(lang) = lang {
        url.query_pairs_mut().append_pair("lang", lang);
    }
    url
}

/// Sign-in inside the WeCom client:
/// `{oauth_base}/connect/oauth2/authorize?appid=…&redirect_uri=…&response_type=code&scope=…&state=…&agentid=…#wechat_redirect`.
/// `agentid` is always sent: without it WeCom treats `snsapi_privateinfo` as `snsapi_base`.
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

/// The WeCom client's browser says `wxwork/<version>`; `MicroMessenger` alone is personal WeChat.
pub fn is_wecom_client(user_agent: &str) -> bool {
    user_agent.to_ascii_lowercase().contains("wxwork")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn settings() -> (WeComSettings, WeComCredentials) {
        let config = Config::from_pairs([
            ("OIDC_ISSUER", "https://sso.example.com/base"),
            ("WECOM_CORP_ID", "ww123"),
            ("WECOM_CORP_SECRET", "s"),
            ("WECOM_AGENT_ID", "1000002"),
            ("WECOM_LOGIN_BASE", "https://login.example.com/private/"),
        ])
        .unwrap();
        let credentials = config.wecom.credentials.clone().unwrap();
        (config.wecom, credentials)
    }

    #[test]
    fn web_login_url_has_exactly_the_documented_parameters() {
        let (settings, credentials) = settings();
        let url = web_login_url(&settings, &credentials, "st", Some("en"));
        assert_eq!(
            url.as_str(),
            "https://login.example.com/private/wwlogin/sso/login?login_type=CorpApp&appid=ww123&agentid=1000002&redirect_uri=https%3A%2F%2Fsso.example.com%2Fbase%2Fauth%2Fwecom%2Fcallback&state=st&lang=en"
        );
    }

    #[test]
    fn in_client_url_ends_with_wechat_redirect() {
        let (settings, credentials) = settings();
        let url = in_client_login_url(&settings, &credentials, "st");
        assert_eq!(
            url.as_str(),
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww123&redirect_uri=https%3A%2F%2Fsso.example.com%2Fbase%2Fauth%2Fwecom%2Fcallback&response_type=code&scope=snsapi_privateinfo&state=st&agentid=1000002#wechat_redirect"
        );
    }

    #[test]
    fn only_the_wecom_client_counts_as_the_wecom_client() {
        assert!(is_wecom_client(
            "Mozilla/5.0 wxWork/4.1.22 MicroMessenger/7.0.1"
        ));
        assert!(!is_wecom_client(
            "Mozilla/5.0 MicroMessenger/8.0.40 NetType/WIFI"
        ));
    }

    #[test]
    fn errcode_is_read_leniently() {
        assert_eq!(errcode_of(&serde_json::json!({"errcode": 42001})), 42001);
        assert_eq!(errcode_of(&serde_json::json!({"errcode": "40029"})), 40029);
        assert_eq!(errcode_of(&serde_json::json!({"userid": "x"})), 0);
    }
}
