//! Outgoing HTTP clients (the WeCom API, back-channel logout, client `jwks_uri` documents) share
//! one TLS configuration. Building one reads and parses the system's CA bundle, tens of
//! milliseconds each time; done once per client, it was a third of the start-up. It is done
//! once, on a thread of its own started first thing (`prepare`), beside the migrations and the
//! key generation.
//!
//! A leaf: no crate imports. It builds clients; who they call (WeCom, relying parties) is the
//! caller's business.

use std::sync::OnceLock;

static TLS: OnceLock<Result<native_tls::TlsConnector, String>> = OnceLock::new();

/// Starts building the shared TLS configuration in the background.
pub fn prepare() {
    std::thread::spawn(tls);
}

/// The TLS connector every outgoing client uses, with the system's roots; waits for `prepare`'s
/// thread if it is still at it.
fn tls() -> Result<native_tls::TlsConnector, String> {
    TLS.get_or_init(|| native_tls::TlsConnector::new().map_err(|e| e.to_string()))
        .clone()
}

/// A `reqwest` client builder with the shared TLS configuration; callers add timeouts, proxy and
/// redirect policy.
pub fn client_builder() -> anyhow::Result<reqwest::ClientBuilder> {
    let tls = tls().map_err(|e| anyhow::anyhow!("setting up TLS for outgoing requests: {e}"))?;
    Ok(reqwest::Client::builder().use_preconfigured_tls(tls))
}
