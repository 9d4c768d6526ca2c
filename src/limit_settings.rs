//! The settings of the per-source abuse limits (`RATE_LIMIT_PER_MINUTE`,
//! `AUTH_FAILURE_LIMIT_PER_MINUTE`, `TRUSTED_PROXIES`, `FORWARDED_HEADER`) and their parsing. A leaf below `config`:
//! no crate imports and no HTTP types; the middleware that applies them is `limits`.

use std::net::IpAddr;

use ipnet::IpNet;

/// `RATE_LIMIT_PER_MINUTE`, `AUTH_FAILURE_LIMIT_PER_MINUTE`, `TRUSTED_PROXIES`, `FORWARDED_HEADER`.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Requests per minute per source and endpoint group; 0 = no limit.
    pub per_minute: u32,
    /// Failed client authentications per minute per source; 0 = no limit. (Failed userinfo
    /// calls are limited at `per_minute`.)
    pub failures_per_minute: u32,
    pub trusted_proxies: TrustedProxies,
    pub forwarded_header: ForwardedHeader,
}

/// `FORWARDED_HEADER`: the one header that names the client behind a trusted proxy. Only one is
/// read: a proxy passes the other through as the client sent it, so believing both would let a
/// client pick its own source address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, appended to by nginx, ingress-nginx, HAProxy and most load balancers.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded` (`for=`), for proxies that append to it instead.
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            other => Err(format!(
                "expected x-forwarded-for (the default) or forwarded, got {other:?}"
            )),
        }
    }
}

/// Parsed `TRUSTED_PROXIES`: the peers whose forwarding headers are believed.
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

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_take_cidrs_and_bare_addresses_and_refuse_the_rest() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        assert!(trusted.contains(&"10.1.2.3".parse().unwrap()));
        assert!(trusted.contains(&"127.0.0.1".parse().unwrap()));
        assert!(!trusted.contains(&"127.0.0.2".parse().unwrap()));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.internal").is_err());
    }

    #[test]
    fn the_forwarded_header_setting_names_one_of_two_headers() {
        assert_eq!(
            ForwardedHeader::parse("X-Forwarded-For"),
            Ok(ForwardedHeader::XForwardedFor)
        );
        assert_eq!(
            ForwardedHeader::parse("forwarded"),
            Ok(ForwardedHeader::Forwarded)
        );
        for other in ["", "both", "x-real-ip"] {
            assert!(ForwardedHeader::parse(other).is_err(), "{other:?}");
        }
    }
}
