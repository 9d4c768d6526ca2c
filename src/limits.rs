//! Per-source abuse limits: a flood from one address gets 429 with `Retry-After` and leaves
//! everyone else alone.
//!
//! Two kinds of limit, each per source address (governor's GCRA, keyed by IP):
//! - a request rate per endpoint group (`/authorize`, the WeCom callback, `/token`,
//!   `/revoke` + `/introspect`, `/admin`), `RATE_LIMIT_PER_MINUTE`, generous by default so that
//!   a whole office behind one NAT signs in freely;
//! - a failure rate: failed client authentications (401 at `/token`, `/revoke`, `/introspect`),
//!   `AUTH_FAILURE_LIMIT_PER_MINUTE`, and failed `/userinfo` calls, at the general rate (expired
//!   tokens are routine behind an office NAT). A source past one is refused at those endpoints
//!   until its allowance refills. The limit is on the source, not on the client: the same
//!   client keeps working from its own addresses while someone guesses its secret elsewhere.
//!   Wrong user codes at `/device` (marked `WrongUserCode` by the handler) have an allowance of
//!   their own at `AUTH_FAILURE_LIMIT_PER_MINUTE` (RFC 8628 §5.1).
//!
//! The source is the peer address, or — only when the peer is in `TRUSTED_PROXIES` — the
//! nearest address in `X-Forwarded-For` / `Forwarded` that is not itself a trusted proxy.
//! The 429 is plain here; `routes::shape` turns it into the endpoint's error shape.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

/// Parsed `TRUSTED_PROXIES`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma list of CIDRs (`10.0.0.0/8, 127.0.0.1/32`); a bare address counts as one host.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("expected a comma list of CIDRs such as 10.0.0.0/8, got {item:?}")
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The address the request came from, trusting forwarding headers only from our proxies.
    pub fn source(&self, peer: Option<IpAddr>, headers: &header::HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.contains(&peer) {
            return Some(peer);
        }
        // Walk from the nearest hop outwards, past our own proxies (RFC 7239 §5.2 order).
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in headers.get_all(header::FORWARDED) {
            if let Ok(text) = value.to_str() {
                hops.extend(text.split(',').filter_map(forwarded_for));
            }
        }
        if hops.is_empty() {
            for value in headers.get_all("x-forwarded-for") {
                if let Ok(text) = value.to_str() {
                    hops.extend(
                        text.split(',')
                            .filter_map(|h| h.trim().parse::<IpAddr>().ok()),
                    );
                }
            }
        }
        Some(
            hops.iter()
                .rev()
                .find(|ip| !self.contains(ip))
                .copied()
                .unwrap_or(peer),
        )
    }
}

/// The `for=` address of one `Forwarded` element: `for=192.0.2.1`, `for="[2001:db8::1]:443"`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        let host = match value.strip_prefix('[') {
            Some(rest) => rest.split(']').next()?,
            None => value
                .split(':')
                .next()
                .filter(|_| value.matches(':').count() <= 1)?,
        };
        host.parse().ok()
    })
}

/// Set on a response that answered a user code matching nothing: a failure of its source.
#[derive(Debug, Clone, Copy)]
pub struct WrongUserCode;

/// Which limit a path falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Authorize,
    /// The device verification page, where people type user codes.
    Device,
    Callback,
    Token,
    RevokeIntrospect,
    Userinfo,
    Admin,
}

impl Group {
    fn of(path: &str) -> Option<Self> {
        use crate::routes::*;
        match path {
            AUTHORIZE_PATH => Some(Group::Authorize),
            WECOM_CALLBACK_PATH => Some(Group::Callback),
            TOKEN_PATH | DEVICE_AUTHORIZATION_PATH => Some(Group::Token),
            DEVICE_PATH => Some(Group::Device),
            REVOKE_PATH | INTROSPECT_PATH => Some(Group::RevokeIntrospect),
            USERINFO_PATH => Some(Group::Userinfo),
            p if p == "/admin" || p.starts_with("/admin/") => Some(Group::Admin),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Group::Authorize => "authorize",
            Group::Device => "device",
            Group::Callback => "wecom_callback",
            Group::Token => "token",
            Group::RevokeIntrospect => "revoke_introspect",
            Group::Userinfo => "userinfo",
            Group::Admin => "admin",
        }
    }

    /// Which failure allowance a 401 here counts against.
    fn failure_kind(self) -> Option<Failure> {
        match self {
            Group::Token | Group::RevokeIntrospect => Some(Failure::ClientAuthentication),
            Group::Userinfo => Some(Failure::Userinfo),
            Group::Device => Some(Failure::UserCode),
            _ => None,
        }
    }
}

/// The two failure allowances, kept apart so that expired tokens at `/userinfo` never block a
/// source's client authentication, nor the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Failure {
    ClientAuthentication,
    Userinfo,
    UserCode,
}

/// The limits of one application; cheap to share.
pub struct Limits {
    prefix: String,
    trusted: TrustedProxies,
    /// One limiter per group (userinfo has only the failure limit).
    requests: Option<[(Group, DefaultKeyedRateLimiter<IpAddr>); 6]>,
    failures: Vec<(Failure, DefaultKeyedRateLimiter<IpAddr>)>,
    /// Sources past a failure allowance, and until when.
    blocked: moka::sync::Cache<(IpAddr, Failure), Instant>,
}

/// `RATE_LIMIT_PER_MINUTE`, `AUTH_FAILURE_LIMIT_PER_MINUTE`, `TRUSTED_PROXIES`.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Requests per minute per source and endpoint group; 0 = no limit.
    pub per_minute: u32,
    /// Failed client authentications per minute per source; 0 = no limit. (Failed userinfo
    /// calls are limited at `per_minute`.)
    pub failures_per_minute: u32,
    pub trusted_proxies: TrustedProxies,
}

impl Limits {
    pub fn new(settings: &LimitSettings, prefix: &str) -> Arc<Self> {
        let requests = NonZeroU32::new(settings.per_minute).map(|n| {
            let quota = Quota::per_minute(n);
            [
                Group::Authorize,
                Group::Device,
                Group::Callback,
                Group::Token,
                Group::RevokeIntrospect,
                Group::Admin,
            ]
            .map(|group| (group, DefaultKeyedRateLimiter::keyed(quota)))
        });
        let failures = [
            (Failure::ClientAuthentication, settings.failures_per_minute),
            (Failure::Userinfo, settings.per_minute),
            (Failure::UserCode, settings.failures_per_minute),
        ]
        .into_iter()
        .filter_map(|(kind, per_minute)| {
            NonZeroU32::new(per_minute)
                .map(|n| (kind, DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))))
        })
        .collect();
        let limits = Arc::new(Self {
            prefix: prefix.to_owned(),
            trusted: settings.trusted_proxies.clone(),
            requests,
            failures,
            blocked: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(120))
                .build(),
        });
        spawn_cleanup(Arc::downgrade(&limits));
        limits
    }

    /// How long the source must wait, when a request of `group` from it is over a limit.
    fn refused_for(&self, group: Group, source: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        if let Some(kind) = group.failure_kind() {
            if let Some(until) = self
                .blocked
                .get(&(source, kind))
                .filter(|until| *until > now)
            {
                return Some(until - now);
            }
        }
        let (_, limiter) = self.requests.as_ref()?.iter().find(|(g, _)| *g == group)?;
        limiter
            .check_key(&source)
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// A failure from `source`; past the allowance, the source is refused until it refills.
    fn record_failure(&self, source: IpAddr, kind: Failure) {
        let Some((_, failures)) = self.failures.iter().find(|(k, _)| *k == kind) else {
            return;
        };
        if let Err(not_until) = failures.check_key(&source) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            tracing::warn!(%source, ?kind, wait_secs = wait.as_secs(), "too many failures from this source; slowing it down");
            self.blocked.insert((source, kind), Instant::now() + wait);
        }
    }
}

/// Forgets sources idle long enough to have their full allowance back, so memory follows the
/// number of recent sources, not every address ever seen.
fn spawn_cleanup(limits: std::sync::Weak<Limits>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(60));
        loop {
            ticker.tick().await;
            let Some(limits) = limits.upgrade() else {
                return;
            };
            for (_, limiter) in limits.requests.iter().flatten() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            for (_, failures) in &limits.failures {
                failures.retain_recent();
                failures.shrink_to_fit();
            }
        }
    });
}

/// Wraps the application: see the module documentation.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(limits) = req.app_data::<web::Data<Limits>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let path = req.path();
    let group = Group::of(path.strip_prefix(limits.prefix.as_str()).unwrap_or(path));
    let source = limits
        .trusted
        .source(req.peer_addr().map(|a| a.ip()), req.headers());
    let (Some(group), Some(source)) = (group, source) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    if let Some(wait) = limits.refused_for(group, source) {
        metrics::counter!("wecom_oidc_rate_limited_total", "endpoint" => group.label())
            .increment(1);
        // Retry-After in whole seconds, never 0 (RFC 9110 §10.2.3).
        let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let response = HttpResponse::TooManyRequests()
            .insert_header((header::RETRY_AFTER, retry_after.max(1).to_string()))
            .finish();
        return Ok(req.into_response(response).map_into_right_body());
    }
    let response = next.call(req).await?;
    if let Some(kind) = group.failure_kind() {
        if response.status() == actix_web::http::StatusCode::UNAUTHORIZED
            || response
                .response()
                .extensions()
                .get::<WrongUserCode>()
                .is_some()
        {
            limits.record_failure(source, kind);
        }
    }
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 192.0.2.7, 10.9.9.9")]);

        assert_eq!(
            trusted.source(Some(proxy), &xff),
            Some("192.0.2.7".parse().unwrap()),
            "the nearest untrusted hop"
        );
        assert_eq!(trusted.source(Some(stranger), &xff), Some(stranger));
        let forwarded = headers(&[("forwarded", "for=\"[2001:db8::1]:443\";proto=https")]);
        assert_eq!(
            trusted.source(Some(proxy), &forwarded),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(trusted.source(Some(proxy), &HeaderMap::new()), Some(proxy));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }
}
