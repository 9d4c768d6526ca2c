//! The HTTP exchange with the WeCom API: one reqwest client, transport failures and non-JSON
//! answers as typed errors, `errcode != 0` as [`WeComError::Api`], and retries of "busy" answers.
//!
//! URLs carry the corp secret or the access token (WeCom wants them in the query string), so no
//! URL is ever logged or kept in an error.

use std::error::Error as _;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::answer::Answer;
use super::WeComError;
use crate::config::WeComSettings;

/// Waits before each retry of a busy answer (-1 system busy, 45033 too many concurrent calls):
/// at most three retries and 700 ms in all, so a sign-in is never held up for long.
const BUSY_BACKOFF: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// The largest answer read. `tag/get` with 30 000 members is about 2 MiB; anything far larger
/// is not WeCom, and must not exhaust memory.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One request: where, what, and which values in it must never show up in an error.
pub(super) struct Request<'a> {
    pub method: Method,
    pub url: Url,
    pub body: Option<&'a Value>,
    /// The secret, token, code or ticket the request carries.
    pub sensitive: &'a [&'a str],
}

pub(super) struct Transport {
    http: reqwest::Client,
    api_base: Url,
    timeout: Duration,
}

impl Transport {
    pub(super) fn new(settings: &WeComSettings) -> Result<Self, WeComError> {
        let mut builder = crate::outbound::client_builder()
            .map_err(|e| WeComError::Unreachable(format!("{e:#}")))?;
        if let Some(proxy) = &settings.proxy {
            let proxy = reqwest::Proxy::all(proxy.as_str())
                .map_err(|e| WeComError::Unreachable(format!("WECOM_PROXY: {}", describe(e))))?;
            builder = builder.proxy(proxy);
        }
        let http = builder
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // WeCom's API never redirects; following a redirect would hand the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wecom-oidc/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WeComError::Unreachable(describe(e)))?;
        Ok(Self {
            http,
            api_base: settings.api_base.clone(),
            timeout: settings.timeout,
        })
    }

    pub(super) fn api_base(&self) -> &Url {
        &self.api_base
    }

    pub(super) fn url(&self, path: &str) -> Url {
        super::endpoint(&self.api_base, path)
    }

    /// Sends `request`, retrying busy answers; answers the body of a success.
    pub(super) async fn send(&self, request: &Request<'_>) -> Result<Answer, WeComError> {
        let mut delays = BUSY_BACKOFF.iter();
        loop {
            let started = std::time::Instant::now();
            let result = self.exchange(request).await;
            record(request.url.path(), &result, started.elapsed());
            let retry = match &result {
                Err(WeComError::Api {
                    errcode: errcode @ (-1 | 45033),
                    ..
                }) => delays.next().map(|delay| (*errcode, *delay)),
                _ => None,
            };
            let Some((errcode, delay)) = retry else {
                return result;
            };
            tracing::warn!(
                errcode,
                path = request.url.path(),
                delay_ms = delay.as_millis() as u64,
                "WeCom is busy; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange, read into an [`Answer`] and judged by its errcode.
    async fn exchange(&self, request: &Request<'_>) -> Result<Answer, WeComError> {
        let mut builder = self
            .http
            .request(request.method.clone(), request.url.clone());
        if let Some(body) = request.body {
            builder = builder.json(body);
        }
        let mut response = builder.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            // Business errors come as HTTP 200; anything else is the gateway, not the API.
            return Err(WeComError::HttpStatus(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let answer = Answer::parse(&body)?;
        match answer.errcode()? {
            0 => Ok(answer),
            errcode => Err(WeComError::Api {
                errcode,
                errmsg: scrub(answer.errmsg(), request.sensitive),
            }),
        }
    }

    fn transport(&self, err: reqwest::Error) -> WeComError {
        if err.is_timeout() {
            WeComError::Timeout(self.timeout)
        } else {
            WeComError::Unreachable(describe(err))
        }
    }
}

/// How a proxy URL is shown: scheme, host and port, never the credentials it may carry.
pub fn proxy_display(proxy: &Url) -> String {
    format!(
        "{}://{}:{}",
        proxy.scheme(),
        proxy.host_str().unwrap_or(""),
        proxy.port_or_known_default().unwrap_or(0)
    )
}

/// `wecom_oidc_wecom_requests_total{api,errcode}` and the latency histogram. The API is the URL
/// path (a fixed set); the errcode is WeCom's, or what went wrong before there was one.
fn record(api: &str, result: &Result<Answer, WeComError>, elapsed: Duration) {
    let errcode = match result {
        Ok(_) => "0".to_owned(),
        Err(WeComError::Api { errcode, .. }) => errcode.to_string(),
        Err(WeComError::HttpStatus(status)) => format!("http_{status}"),
        Err(WeComError::Timeout(_)) => "timeout".to_owned(),
        Err(WeComError::Unreachable(_)) => "unreachable".to_owned(),
        Err(_) => "invalid_response".to_owned(),
    };
    metrics::counter!("wecom_oidc_wecom_requests_total", "api" => api.to_owned(), "errcode" => errcode)
        .increment(1);
    metrics::histogram!("wecom_oidc_wecom_request_duration_seconds", "api" => api.to_owned())
        .record(elapsed.as_secs_f64());
}

/// WeCom's errmsg is its own text and holds no secret, but a gateway in front of a private
/// deployment could echo the request: the values the request carried (as sent, and
/// form-encoded as in the query string) are cut out, so no error can leak them.
fn scrub(mut text: String, sensitive: &[&str]) -> String {
    for value in sensitive.iter().filter(|v| !v.is_empty()) {
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        for form in [*value, encoded.as_str()] {
            if text.contains(form) {
                text = text.replace(form, "[redacted]");
            }
        }
    }
    text
}

fn too_large() -> WeComError {
    WeComError::InvalidResponse(format!(
        "the answer is larger than {} MiB",
        MAX_ANSWER_BYTES / 1024 / 1024
    ))
}

/// The error and its causes ("error sending request: dns error: …"), without the URL, which
/// carries the secret or the token. The causes (hyper, io, TLS) never contain the URL.
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errmsg_is_scrubbed_of_the_values_the_request_carried() {
        let text = scrub(
            "invalid code a+b/c=, token tok123 from a+b/c= or a%2Bb%2Fc%3D".into(),
            &["tok123", "a+b/c=", ""],
        );
        assert_eq!(
            text,
            "invalid code [redacted], token [redacted] from [redacted] or [redacted]"
        );
    }
}
