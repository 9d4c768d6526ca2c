//! The WeCom API client, the only module that calls WeCom's API: the corp access token cache, errcodes and
//! retries, member profiles, groups, app messages, and the login URLs (facts and sources in wecom-api.md).
//!
//! Every business call goes through [`WeComClient::call`]:
//!
//! ```text
//! token (cached; single-flight gettoken) ─► request ─► errcode 0 ─────────► answer
//!                                              │ -1 / 45033: back off 100/200/400 ms, resend
//!                                              │ 40014 / 42001: drop that token, refetch, resend once
//!                                              └ anything else: WeComError, mapped once in error.rs
//! ```
//!
//! The corp secret, access tokens, codes and user tickets never reach a log line, an error or a
//! `Debug` output: they travel only in the URL or body of a request, and no URL is ever logged.
//!
//! Returns WeCom's facts (members, groups, errcodes); what they mean for access is decided in
//! `oidc`. It never touches the store or the HTTP framework.

mod answer;
mod error;
pub mod events;
mod groups;
mod http;
pub use http::proxy_display;
mod login;
mod message;
mod profile;
mod token;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::config::{WeComCredentials, WeComSettings};
use crate::domain::group::GroupKinds;
use answer::Answer;
pub use error::{FailureCategory, WeComError};
use http::{Request, Transport};
pub use login::{in_client_login_url, is_wecom_client, web_login_url};
pub use message::{is_one_member, Delivery, TextCard};
pub use profile::{Department, Gender, Identity, Member, MemberDetail, MemberStatus};
use token::{Fetched, TokenCache};

/// WeCom's documented token lifetime, assumed when `gettoken` does not say: a wrong guess costs
/// one 42001 and a refetch.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);

/// A client for one WeCom app. Cheap to clone: clones share the connection pool, the token and
/// the caches.
#[derive(Clone)]
pub struct WeComClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    corp_id: String,
    /// The app (`WECOM_AGENT_ID`) messages are sent from.
    agent_id: String,
    secret: SecretString,
    /// host[:port] of the redirect URL, for explaining 50001.
    redirect_host: String,
    tokens: TokenCache,
    directory: groups::DirectoryCache,
}

impl fmt::Debug for WeComClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeComClient")
            .field("api_base", &self.inner.transport.api_base().as_str())
            .field("corp_id", &self.inner.corp_id)
            .finish_non_exhaustive()
    }
}

/// `base` + `path`, keeping any path prefix the base carries (private deployments, gateways).
fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url.set_query(None);
    url.set_fragment(None);
    url
}

impl WeComClient {
    /// Builds the HTTP client once (timeout, no redirects, pooled connections); makes no call.
    pub fn new(
        settings: &WeComSettings,
        credentials: &WeComCredentials,
    ) -> Result<Self, WeComError> {
        let redirect = &settings.redirect_url;
        let redirect_host = match (redirect.host_str(), redirect.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => redirect.as_str().to_owned(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                transport: Transport::new(settings)?,
                corp_id: credentials.corp_id.clone(),
                agent_id: credentials.agent_id.clone(),
                secret: credentials.corp_secret.clone(),
                redirect_host,
                tokens: TokenCache::new(),
                directory: groups::DirectoryCache::new(settings.groups_cache_ttl),
            }),
        })
    }

    /// [`WeComError::admin_explanation`], naming this app's redirect host where it matters
    /// (50001: the trusted domain and callback domain must equal it).
    pub fn explain(&self, err: &WeComError) -> String {
        err.explain_with(Some(&self.inner.redirect_host))
    }

    /// `GET /cgi-bin/auth/getuserinfo`: who an OAuth or web-login code belongs to. A code is
    /// single use and valid for five minutes.
    #[tracing::instrument(name = "wecom.identify", skip_all)]
    pub async fn identify(&self, code: &str) -> Result<Identity, WeComError> {
        let answer = self
            .call(
                Method::GET,
                "/cgi-bin/auth/getuserinfo",
                &[("code", code)],
                None,
                &[code],
            )
            .await?;
        Identity::from_answer(&answer)
    }

    /// `GET /cgi-bin/user/get`.
    #[tracing::instrument(name = "wecom.member", skip_all, fields(userid = %userid))]
    pub async fn member(&self, userid: &str) -> Result<Member, WeComError> {
        let answer = self
            .call(
                Method::GET,
                "/cgi-bin/user/get",
                &[("userid", userid)],
                None,
                &[],
            )
            .await?;
        Member::from_answer(&answer, userid)
    }

    /// `POST /cgi-bin/auth/getuserdetail` with the `user_ticket` of an in-client sign-in: the
    /// sensitive fields the member agreed to share.
    #[tracing::instrument(name = "wecom.member_detail", skip_all)]
    pub async fn member_detail(&self, user_ticket: &str) -> Result<MemberDetail, WeComError> {
        let body = serde_json::json!({ "user_ticket": user_ticket });
        let answer = self
            .call(
                Method::POST,
                "/cgi-bin/auth/getuserdetail",
                &[],
                Some(&body),
                &[user_ticket],
            )
            .await?;
        MemberDetail::from_answer(&answer)
    }

    /// The member's groups of the kinds `kinds` switches on — department paths from the top
    /// (`总部/研发部/平台组`), department names (`dept:…`), department ids (`deptid:…`), tags
    /// (`tag:…`) — in that order, deduplicated, as `domain::group` values. Departments the app
    /// cannot see are skipped.
    #[tracing::instrument(name = "wecom.groups", skip_all, fields(userid = %member.userid))]
    pub async fn groups(
        &self,
        member: &Member,
        kinds: GroupKinds,
    ) -> Result<Vec<String>, WeComError> {
        self.resolve_groups(member, kinds).await
    }

    /// Drops the cached departments and tags: the next groups are read from WeCom (a WeCom event
    /// said the directory changed).
    pub fn invalidate_directory(&self) {
        self.inner.directory.clear();
    }

    /// For `wecom-oidc check`: fetches a token whatever the cache holds, so the corp id and
    /// secret are tested now; the fresh token is kept.
    #[tracing::instrument(name = "wecom.check_credentials", skip_all)]
    pub async fn check_credentials(&self) -> Result<(), WeComError> {
        self.inner
            .tokens
            .refetch(Instant::now(), || self.fetch_token())
            .await
            .map(drop)
    }

    /// `GET /cgi-bin/department/list`: every department the app may see, read now (groups use a
    /// cached copy).
    #[tracing::instrument(name = "wecom.departments", skip_all)]
    pub async fn departments(&self) -> Result<Vec<Department>, WeComError> {
        let answer = self
            .call(Method::GET, "/cgi-bin/department/list", &[], None, &[])
            .await?;
        Department::list_from_answer(&answer)
    }

    /// `GET /cgi-bin/gettoken`.
    #[tracing::instrument(name = "wecom.gettoken", skip_all)]
    async fn fetch_token(&self) -> Result<Fetched, WeComError> {
        let secret = self.inner.secret.expose_secret();
        let mut url = self.inner.transport.url("/cgi-bin/gettoken");
        url.query_pairs_mut()
            .append_pair("corpid", &self.inner.corp_id)
            .append_pair("corpsecret", secret);
        let answer = self
            .inner
            .transport
            .send(&Request {
                method: Method::GET,
                url,
                body: None,
                sensitive: &[secret],
            })
            .await?;
        let token = answer.id(&["access_token"]).ok_or_else(|| {
            WeComError::InvalidResponse("gettoken answered no access_token".into())
        })?;
        // A missing or nonsensical lifetime is taken as the documented one; a huge one is
        // clamped, so that no deadline computed from it can overflow.
        let lifetime = answer
            .number("expires_in")
            .and_then(|secs| u64::try_from(secs).ok())
            .filter(|secs| *secs > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
            .min(token::MAX_LIFETIME);
        tracing::info!(
            expires_in = lifetime.as_secs(),
            "fetched a WeCom access token"
        );
        Ok(Fetched {
            token: SecretString::from(token),
            lifetime,
        })
    }

    async fn access_token(&self) -> Result<SecretString, WeComError> {
        self.inner
            .tokens
            .get(Instant::now(), || self.fetch_token())
            .await
    }

    /// Calls a business API with the access token in the query string (where WeCom wants it).
    /// On 40014/42001 the token is dropped, a new one fetched and the call made once more.
    /// `sensitive` lists the values of `query` and `body` that must never appear in an error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        sensitive: &[&str],
    ) -> Result<Answer, WeComError> {
        let mut token = self.access_token().await?;
        let mut renewed = false;
        loop {
            let mut url = self.inner.transport.url(path);
            url.query_pairs_mut()
                .append_pair("access_token", token.expose_secret())
                .extend_pairs(query);
            let mut hidden = vec![token.expose_secret()];
            hidden.extend_from_slice(sensitive);
            let request = Request {
                method: method.clone(),
                url,
                body,
                sensitive: &hidden,
            };
            let result = self.inner.transport.send(&request).await;
            match result {
                Err(WeComError::Api {
                    errcode: errcode @ (40014 | 42001),
                    ..
                }) if !renewed => {
                    tracing::info!(
                        errcode,
                        path,
                        "WeCom rejected the access token; fetching a new one"
                    );
                    self.inner.tokens.forget(&token);
                    token = self.access_token().await?;
                    renewed = true;
                }
                other => return other,
            }
        }
    }
}
