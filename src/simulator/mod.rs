//! A local stand-in for WeCom (企业微信) used by `demo`, `wecom-oidc simulator` and the tests.
//! An island: it takes only the event cipher from `wecom::events` (to sign and encrypt as WeCom
//! does), and nothing in the provider imports it.
//!
//! One base URL serves all three WeCom hosts, so WECOM_API_BASE, WECOM_LOGIN_BASE and
//! WECOM_OAUTH_BASE can all point at it:
//!
//! ```text
//! /cgi-bin/...                         server APIs (api.rs): gettoken, auth/getuserinfo,
//!                                      user/getuserinfo (legacy), auth/getuserdetail, user/get,
//!                                      department/{list,simplelist,get}, tag/{list,get},
//!                                      message/send (kept for the demo and tests to show)
//! /wwlogin/sso/login[/approve]         web login (login.rs)
//! /wwopen/sso/qrConnect[/approve]      legacy QR login, redirect adds appid
//! /connect/oauth2/authorize[/approve]  in-client OAuth, snsapi_base / snsapi_privateinfo
//! /_sim/...                            JSON control surface (http.rs), mirrors SimulatorControl
//! ```
//!
//! Going the other way, the simulator sends event callbacks as WeCom does (events.rs): a test or
//! the demo gives an app (or the contact-sync assistant) a callback URL, Token and
//! EncodingAESKey with [`SimulatorControl::configure_events`], checks the URL like the admin
//! console's 保存 button, and sends events, directly or as the effect of directory changes
//! (`disable_member`, `delete_member`, `rename_member`, `remove_from_visible_range`).
//!
//! The pages let a person pick who "scans"; their buttons (and tests, directly) call the
//! `/approve` URL: the page's own query plus `userid=X`, `openid=X` or `deny=1` (and for
//! privateinfo `consent=1`), answered with `302 redirect_uri?code=CODE&state=STATE`.
//! The corporation comes from a [`Directory`] (`sample_corp.toml` documents the format).
//!
//! Bracketed tags in comments (\[D96442\], \[blog-qr-old\], …) name the sources listed in §0 of
//! the team's WeCom API notes (`wecom-api.md`), where each behaviour copied here is documented.

mod api;
mod control;
mod directory;
mod errcode;
mod events;
mod http;
mod login;
mod pages;
mod params;
mod state;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use anyhow::Context;
use url::Url;

pub use control::{Fault, FaultKind, SimulatorControl};
pub use directory::{
    App, Department, Directory, Member, NonMember, SensitiveField, Tag,
    DEFAULT_OUT_OF_RANGE_ERRCODE,
};
pub use events::{
    Attempt, Delivery, EventRequest, EventSource, EventTarget, PartyChange, PrefixMode, SimEvent,
    DELIVERY_RETRIES, DELIVERY_TIMEOUT,
};
pub use state::{
    SentMessage, Settings, CODE_TTL_SECS, DEFAULT_RATE_LIMIT_PER_MINUTE, TICKET_TTL_SECS,
    TOKEN_TTL_SECS,
};

/// A running simulator: an HTTP server on its own port plus the shared state behind it.
pub struct Simulator {
    base_url: Url,
    control: SimulatorControl,
    handle: ServerHandle,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds `addr` (e.g. "127.0.0.1:0"), serves in the background on the current tokio runtime.
    pub async fn start(addr: &str, directory: Directory) -> anyhow::Result<Simulator> {
        // tokio::spawn would panic outside a runtime; say so instead.
        let runtime = tokio::runtime::Handle::try_current()
            .context("Simulator::start must run inside a tokio runtime")?;
        directory
            .validate()
            .context("the simulator directory is invalid")?;
        let shared = Arc::new(state::Shared::new(directory));
        let app_state = Arc::clone(&shared);
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new().configure(http::configure(Arc::clone(&app_state)))
        })
        // Tests start many simulators at once: one worker each is plenty (handlers never
        // block), signals belong to the host program, and stopping should be quick.
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)
        .with_context(|| format!("binding the WeCom simulator to {addr}"))?;
        let bound = server
            .addrs()
            .first()
            .copied()
            .context("the WeCom simulator bound no address")?;
        let base_url = base_url_for(bound)?;
        let server = server.run();
        let handle = server.handle();
        let task = runtime.spawn(server);
        tracing::info!(base_url = %base_url, "WeCom simulator listening");
        Ok(Simulator {
            base_url,
            control: SimulatorControl::new(shared),
            handle,
            task: Some(task),
        })
    }

    /// "http://127.0.0.1:PORT" (no trailing path).
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    pub fn control(&self) -> &SimulatorControl {
        &self.control
    }

    /// Stops accepting requests and waits for the server to finish.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::warn!(%error, "the WeCom simulator task ended abnormally");
            }
        }
    }
}

impl Drop for Simulator {
    /// A simulator dropped without `stop` (a failing test) still releases its port and worker.
    fn drop(&mut self) {
        if self.task.is_some() {
            // The stop command is sent at once; the returned future only waits for completion.
            drop(self.handle.stop(false));
        }
    }
}

/// The URL clients should use: a wildcard bind is reached through loopback.
fn base_url_for(bound: SocketAddr) -> anyhow::Result<Url> {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let text = format!("http://{}", SocketAddr::new(ip, bound.port()));
    Url::parse(&text).with_context(|| format!("building the simulator URL from {text}"))
}

/// For `wecom-oidc simulator --listen ADDR [--directory FILE]`: serve until Ctrl-C/SIGTERM.
pub async fn run(addr: &str, directory: Option<&Path>) -> anyhow::Result<()> {
    let directory = match directory {
        Some(path) => Directory::from_file(path)?,
        None => Directory::sample(),
    };
    let summary = format!(
        "corp_id {}, apps {}",
        directory.corp_id,
        directory
            .apps
            .iter()
            .map(|a| a.agent_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let simulator = Simulator::start(addr, directory).await?;
    tracing::info!(
        base_url = %simulator.base_url(),
        directory = %summary,
        "WeCom simulator ready; control surface at /_sim; Ctrl-C stops it"
    );
    let waited = shutdown_signal().await;
    simulator.stop().await;
    waited
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("listening for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}
