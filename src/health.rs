//! `wecom-oidc health`: the probe a container's `HEALTHCHECK` runs, since the image carries no
//! curl. It asks the running provider's `/readyz` (the database answers) and says yes or no in one
//! line. It reads nothing but the provider's HTTP answer: no database, no WeCom.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::Config;

/// Longer than `/readyz` takes to say "database unavailable" (under a second), shorter than the
/// health check's own timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the provider described by `config` answers readiness: `LISTEN_ADDR` under the issuer's
/// path prefix. An unspecified address (`0.0.0.0`, `[::]`) is asked on the loopback, where a
/// process in the same container reaches it.
pub fn readiness_url(config: &Config) -> String {
    let host = match config.listen_addr.parse::<SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            addr.to_string()
        }
        // `Config` accepts only an address and a port; anything else is asked as written.
        Err(_) => config.listen_addr.clone(),
    };
    format!("http://{host}{}/readyz", config.issuer.path_prefix())
}

/// GETs `url` once. `Ok` with a one-line message when it answers 200, `Err` with one saying why
/// not (nothing listening, a timeout, another status).
pub async fn probe(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        // An egress proxy in the environment (HTTP_PROXY) is for the world, not for loopback.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    match client.get(url).send().await {
        Ok(answer) if answer.status() == reqwest::StatusCode::OK => Ok(format!("ready: {url}")),
        Ok(answer) => Err(format!(
            "not ready: {url} answered {}",
            answer.status().as_u16()
        )),
        Err(e) if e.is_timeout() => Err(format!("not ready: {url} did not answer in time")),
        Err(e) if e.is_connect() => Err(format!("not ready: nothing answers at {url}")),
        Err(e) => Err(format!("not ready: {url}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_for(pairs: &[(&str, &str)]) -> String {
        readiness_url(&Config::from_pairs(pairs.iter().copied()).unwrap())
    }

    #[test]
    fn the_readiness_url_follows_listen_addr_and_the_issuer_prefix() {
        for (listen, issuer, expected) in [
            (
                "0.0.0.0:8080",
                "https://sso.example.com",
                "http://127.0.0.1:8080/readyz",
            ),
            (
                "[::]:9000",
                "https://example.com/sso",
                "http://[::1]:9000/sso/readyz",
            ),
            (
                "10.1.2.3:8080",
                "https://sso.example.com/",
                "http://10.1.2.3:8080/readyz",
            ),
        ] {
            assert_eq!(
                url_for(&[("LISTEN_ADDR", listen), ("OIDC_ISSUER", issuer)]),
                expected,
                "LISTEN_ADDR={listen} OIDC_ISSUER={issuer}"
            );
        }
    }
}
