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
//! nearest address that is not itself a trusted proxy in the one header `FORWARDED_HEADER` names:
//! `X-Forwarded-For` by default, RFC 7239 `Forwarded` only when set so. The other header is
//! ignored, since a proxy passes it through as the client wrote it.
//! The 429 is plain here; `routes::shape` turns it into the endpoint's error shape.
//!
//! Each resource names its group where it is mounted (`.wrap(Limited(Group::Token))`): the
//! middleware runs after routing, so every spelling the router accepts (`/tok%65n` is `/token`)
//! counts alike. This module knows no path, and imports nothing of the crate but its settings.

use std::future::{ready, Ready};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use futures_util::future::LocalBoxFuture;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::limit_settings::{ForwardedHeader, LimitSettings};

/// The address the request came from. Behind a trusted proxy it is read from the one header
/// `FORWARDED_HEADER` names, walking from the nearest hop outwards past our own proxies (RFC 7239
/// §5.2 order; X-Forwarded-For is appended to the same way). Only the hops our proxies appended are
/// believed: the first hop that is not a trusted proxy is the client, and anything further out
/// is whatever the client chose to send. A hop that is not an address (`for=unknown`, garbage)
/// stops the walk at the last proxy that wrote it, never letting a client-written hop through.
pub fn source(
    settings: &LimitSettings,
    peer: Option<IpAddr>,
    headers: &header::HeaderMap,
) -> Option<IpAddr> {
    let peer = peer?;
    let trusted = &settings.trusted_proxies;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let (name, hop): (header::HeaderName, fn(&str) -> Option<IpAddr>) =
        match settings.forwarded_header {
            ForwardedHeader::XForwardedFor => (
                header::HeaderName::from_static("x-forwarded-for"),
                address_of_hop,
            ),
            ForwardedHeader::Forwarded => (header::FORWARDED, forwarded_for),
        };
    let hops: Vec<Option<IpAddr>> = headers
        .get_all(name)
        .flat_map(|value| {
            // A value that is not text cannot be read hop by hop: it counts as one unreadable hop.
            value
                .to_str()
                .map_or(vec![None], |text| text.split(',').map(hop).collect())
        })
        .collect();
    let mut nearest = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) if trusted.contains(&ip) => nearest = ip,
            Some(ip) => return Some(ip),
            None => return Some(nearest),
        }
    }
    Some(nearest)
}

/// The address of one X-Forwarded-For hop: `192.0.2.1`, `2001:db8::1`, or with the port some
/// load balancers append, `192.0.2.1:4711` and `[2001:db8::1]:4711`.
fn address_of_hop(hop: &str) -> Option<IpAddr> {
    host_of(hop.trim())?.parse().ok()
}

/// The host of `address`, `address:port`, `[v6]` or `[v6]:port`; a bare IPv6 address has no port.
fn host_of(address: &str) -> Option<&str> {
    match address.strip_prefix('[') {
        Some(rest) => rest.split(']').next(),
        None if address.matches(':').count() > 1 => Some(address),
        None => address.split(':').next(),
    }
}

/// The `for=` address of one `Forwarded` element: `for=192.0.2.1`, `for="[2001:db8::1]:443"`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        host_of(value.trim().trim_matches('"'))?.parse().ok()
    })
}

/// Set on a response that answered a user code matching nothing: a failure of its source.
#[derive(Debug, Clone, Copy)]
pub struct WrongUserCode;

/// The limit a resource counts under, attached to the resource itself (`.wrap(Limited(…))`), so
/// that every spelling of its path that the router accepts (`/tok%65n` is `/token`) counts alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
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
    /// Which proxies and which header say where a request came from.
    sources: LimitSettings,
    /// One limiter per group (userinfo has only the failure limit).
    requests: Option<[(Group, DefaultKeyedRateLimiter<IpAddr>); 6]>,
    failures: Vec<(Failure, DefaultKeyedRateLimiter<IpAddr>)>,
    /// Sources past a failure allowance, and until when.
    blocked: moka::sync::Cache<(IpAddr, Failure), Instant>,
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Arc<Self> {
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
            sources: settings.clone(),
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

/// Counts the requests of the resource or scope it wraps under one limit group, and refuses them
/// with 429 while the source is over that group's limits. It runs after routing, on whatever
/// spelling of the path the router matched, so no spelling escapes it.
#[derive(Debug, Clone, Copy)]
pub struct Limited(pub Group);

impl<S, B> Transform<S, ServiceRequest> for Limited
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = LimitedService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(LimitedService {
            service: Rc::new(service),
            group: self.0,
        }))
    }
}

/// The service made by [`Limited`].
pub struct LimitedService<S> {
    service: Rc<S>,
    group: Group,
}

impl<S, B> Service<ServiceRequest> for LimitedService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let group = self.group;
        Box::pin(async move {
            let limits = req.app_data::<web::Data<Limits>>().cloned();
            let source = limits.as_ref().and_then(|limits| {
                source(
                    &limits.sources,
                    req.peer_addr().map(|a| a.ip()),
                    req.headers(),
                )
            });
            let (Some(limits), Some(source)) = (limits, source) else {
                return service
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
            let response = service.call(req).await?;
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit_settings::TrustedProxies;
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

    fn behind(proxies: &str, header: ForwardedHeader) -> LimitSettings {
        LimitSettings {
            per_minute: 0,
            failures_per_minute: 0,
            trusted_proxies: TrustedProxies::parse(proxies).unwrap(),
            forwarded_header: header,
        }
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let settings = behind("10.0.0.0/8, 127.0.0.1", ForwardedHeader::XForwardedFor);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 192.0.2.7, 10.9.9.9")]);

        assert_eq!(
            source(&settings, Some(proxy), &xff),
            Some("192.0.2.7".parse().unwrap()),
            "the nearest untrusted hop"
        );
        assert_eq!(source(&settings, Some(stranger), &xff), Some(stranger));
        assert_eq!(
            source(&settings, Some(proxy), &HeaderMap::new()),
            Some(proxy)
        );
    }

    #[test]
    fn only_the_header_the_setting_names_is_read() {
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let both = headers(&[
            ("forwarded", "for=\"[2001:db8::1]:443\";proto=https"),
            ("x-forwarded-for", "192.0.2.7"),
        ]);

        let by_default = behind("10.0.0.0/8", ForwardedHeader::XForwardedFor);
        assert_eq!(
            source(&by_default, Some(proxy), &both),
            Some("192.0.2.7".parse().unwrap()),
            "a client-supplied Forwarded is ignored by default"
        );
        let forwarded = behind("10.0.0.0/8", ForwardedHeader::Forwarded);
        assert_eq!(
            source(&forwarded, Some(proxy), &both),
            Some("2001:db8::1".parse().unwrap())
        );
        let only_xff = headers(&[("x-forwarded-for", "192.0.2.7")]);
        assert_eq!(
            source(&forwarded, Some(proxy), &only_xff),
            Some(proxy),
            "with FORWARDED_HEADER=forwarded, X-Forwarded-For is ignored"
        );
    }

    #[test]
    fn a_hop_that_is_no_address_stops_the_walk_at_the_proxy_that_wrote_it() {
        let settings = behind("10.0.0.0/8", ForwardedHeader::XForwardedFor);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let chosen_by_client = headers(&[("x-forwarded-for", "203.0.113.9, unknown, 10.9.9.9")]);
        assert_eq!(
            source(&settings, Some(proxy), &chosen_by_client),
            Some("10.9.9.9".parse().unwrap())
        );
        let forwarded = behind("10.0.0.0/8", ForwardedHeader::Forwarded);
        let hidden = headers(&[("forwarded", "for=203.0.113.9, for=_hidden")]);
        assert_eq!(source(&forwarded, Some(proxy), &hidden), Some(proxy));
    }

    #[test]
    fn an_x_forwarded_for_hop_with_a_port_is_the_client_not_the_end_of_the_walk() {
        let settings = behind("10.0.0.0/8", ForwardedHeader::XForwardedFor);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        for (hops, client) in [
            ("203.0.113.9:4711", "203.0.113.9"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            let forwarded = headers(&[("x-forwarded-for", hops)]);
            assert_eq!(
                source(&settings, Some(proxy), &forwarded),
                Some(client.parse().unwrap()),
                "{hops}"
            );
        }
    }
}
