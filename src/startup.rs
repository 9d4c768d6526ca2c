//! Building and running the application: store, keys, WeCom client, route table, middleware and
//! background tasks. Tests and the demo start exactly this.
//!
//! The only place that assembles the parts; it handles no request itself. Below it the layers run
//! `registry` → `routes` → `limits` → `oidc` → `keys`/`telemetry` → `storage` → `wecom`/`pages` →
//! `config` → `domain` → leaves (drawn and checked in `layers.rs`).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders, Next};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use serde_json::json;

use crate::clock::Clock;
use crate::config::Config;
use crate::key_timing::KEY_RELOAD_INTERVAL;
use crate::keys::KeyManager;
use crate::oidc::backchannel::BackchannelSender;
use crate::oidc::{discovery, Provider};
use crate::pages::Pages;
use crate::registry::http::AdminContext;
use crate::routes::{self, AppState};
use crate::storage::Store;
use crate::wecom::events::EventReceiver;

/// The largest request body accepted anywhere (forms, admin JSON).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How often expired codes, tokens, sessions and requests are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(300);

/// Knobs that are not configuration a deployer sets; tests and the demo use them.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// HTTP worker threads; `None` = one per core.
    pub workers: Option<usize>,
}

pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    store: Store,
    state: web::Data<AppState>,
}

/// A handle on the running provider's member sweep, for tests and operators' tools: one pass now,
/// as the background task does it.
#[derive(Clone)]
pub struct MemberSweep {
    state: web::Data<AppState>,
}

impl MemberSweep {
    pub async fn run_once(&self) -> Result<usize, crate::storage::StorageError> {
        let now = self.state.clock.now();
        self.state.provider.sweep_members(now).await
    }
}

impl Application {
    /// Connects, migrates and loads the keys first, and only then binds `LISTEN_ADDR`: the port
    /// accepts no connection before the provider can answer it.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::build_on(config, clock, BuildOptions::default(), None).await
    }

    /// Builds on a listener bound beforehand, so that a caller can put the port in the issuer.
    /// Connections made before the build finishes wait in the listener's backlog.
    pub async fn build_with(
        config: Config,
        clock: Arc<dyn Clock>,
        options: BuildOptions,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        Self::build_on(config, clock, options, Some(listener)).await
    }

    async fn build_on(
        config: Config,
        clock: Arc<dyn Clock>,
        options: BuildOptions,
        listener: Option<TcpListener>,
    ) -> anyhow::Result<Self> {
        crate::outbound::prepare();
        let store = Store::connect_with_clock(&config.database, Arc::clone(&clock)).await?;
        let keys = Arc::new(KeyManager::load_or_create(store.clone(), &config, clock.now()).await?);
        let metrics = match &config.metrics_addr {
            Some(addr) => {
                let handle = crate::telemetry::recorder()?;
                let listener = TcpListener::bind(addr)
                    .with_context(|| format!("cannot listen on {addr} (METRICS_ADDR)"))?;
                let port = listener.local_addr()?.port();
                tokio::spawn(crate::telemetry::serve(listener, handle, store.clone())?);
                Some(port)
            }
            None => None,
        };
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(&config.listen_addr).with_context(|| {
                format!("cannot listen on {} (LISTEN_ADDR)", config.listen_addr)
            })?,
        };
        let mut algs = vec![keys.signing_alg()];
        if !algs.contains(&config.signing_alg) {
            algs.push(config.signing_alg);
        }
        let discovery = serde_json::to_string(&discovery::document(&config, &algs))?;
        let port = listener.local_addr()?.port();
        let prefix = config.issuer.path_prefix();
        let state = web::Data::new(AppState {
            pages: Pages::new().context("compiling page templates")?,
            wecom_events: match &config.wecom.credentials {
                Some(credentials) => {
                    EventReceiver::from_settings(&credentials.corp_id, &config.wecom.events)
                        .map_err(|e| anyhow::anyhow!("WeCom event settings: {e}"))?
                }
                None => None,
            },
            clock: Arc::clone(&clock),
            discovery,
            cookie_path: if prefix.is_empty() {
                "/".to_owned()
            } else {
                prefix.clone()
            },
            secure_cookies: config.issuer.is_https(),
            cookie_prefix: match (config.issuer.is_https(), prefix.is_empty()) {
                (true, true) => "__Host-",
                (true, false) => "__Secure-",
                (false, _) => "",
            },
            provider: Provider::new(
                config.clone(),
                store.clone(),
                Arc::clone(&keys),
                Arc::clone(&clock),
            )?,
        });
        let console = match config.console.enabled() {
            true => Some(web::Data::new(
                crate::console::ConsolePages::new().context("compiling console templates")?,
            )),
            false => None,
        };
        let admin = web::Data::new(AdminContext {
            store: store.clone(),
            admin_token: config.admin_token.clone(),
            key_encryption_key: config.key_encryption_key.clone(),
            clock: Arc::clone(&clock),
        });

        keys.spawn_reloader(Arc::clone(&clock), KEY_RELOAD_INTERVAL);
        spawn_purger(store.clone(), Arc::clone(&clock), config.audit_retention);
        spawn_member_sweep(MemberSweep {
            state: state.clone(),
        });

        let state_handle = state.clone();
        let hsts = config.issuer.is_https();
        let limits = web::Data::from(crate::limits::Limits::new(&config.limits));
        let mut server = HttpServer::new(move || {
            let console = console.clone();
            let mut app = App::new()
                .app_data(state.clone())
                .app_data(admin.clone())
                .app_data(limits.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .wrap(from_fn(routes::shape::error_shape))
                .wrap(security_headers(hsts))
                .wrap(from_fn(crate::telemetry::record_request))
                .wrap(from_fn(log_request))
                .service(
                    web::scope(&prefix)
                        .configure(routes::configure)
                        .configure(crate::registry::http::configure)
                        // Without ADMIN_GROUPS and ADMIN_USERS the console's routes do not
                        // exist: every /console path is the ordinary 404.
                        .configure(|cfg| {
                            if let Some(pages) = console {
                                cfg.app_data(pages);
                                crate::console::http::configure(cfg);
                            }
                        }),
                )
                .default_service(web::to(not_found));
            if !prefix.is_empty() {
                // Probes often hit the pod directly, without the proxy's path prefix.
                app = app.configure(routes::configure_health);
            }
            app
        })
        .listen(listener)?
        .shutdown_timeout(10);
        if let Some(workers) = options.workers {
            server = server.workers(workers);
        }
        Ok(Self {
            port,
            metrics_port: metrics,
            server: server.run(),
            store,
            state: state_handle,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn member_sweep(&self) -> MemberSweep {
        MemberSweep {
            state: self.state.clone(),
        }
    }

    /// The back-channel logout sender, to wait for its deliveries (`wait_idle`) in tests.
    pub fn backchannel(&self) -> BackchannelSender {
        self.state.provider.backchannel.clone()
    }

    /// The running provider's signing keys, to reload them on demand (as the background reloader
    /// does every `KEY_RELOAD_INTERVAL`) in tests.
    pub fn signing_keys(&self) -> Arc<KeyManager> {
        Arc::clone(&self.state.provider.keys)
    }

    /// The port `/metrics` listens on, when `METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes the requests in flight (graceful shutdown).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.store.close().await;
        result
    }
}

/// Anti-framing, no referrer, no sniffing, and a strict CSP on every response; the form-post
/// page sets its own CSP, which these defaults do not override. On an https issuer, HSTS too
/// (RFC 6797): a browser that once reached the provider never tries plain http again. No
/// `includeSubDomains`: other hosts of the domain are not the provider's to decide.
fn security_headers(hsts: bool) -> DefaultHeaders {
    let headers = if hsts {
        DefaultHeaders::new().add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        DefaultHeaders::new()
    };
    headers
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        ))
}

/// One line per request: method, path without the query string (it may hold codes and tokens),
/// status and latency.
async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let response = next.call(req).await;
    let status = match &response {
        Ok(res) => res.status().as_u16(),
        Err(err) => err.as_response_error().status_code().as_u16(),
    };
    tracing::info!(
        target: "wecom_oidc::http",
        %method,
        path,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({ "error": "not_found", "error_description": "no such endpoint" }))
}

fn spawn_purger(store: Store, clock: Arc<dyn Clock>, audit_retention: Option<Duration>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(PURGE_INTERVAL);
        loop {
            ticker.tick().await;
            let now = clock.now();
            match store.purge_expired(now).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "expired rows purged"),
                Err(err) => tracing::warn!(error = %err, "could not purge expired rows"),
            }
            if let Some(retention) = audit_retention {
                match store.purge_audit(now - retention.as_secs() as i64).await {
                    Ok(0) => {}
                    Ok(removed) => {
                        tracing::info!(removed, "audit rows past AUDIT_RETENTION_DAYS purged")
                    }
                    Err(err) => tracing::warn!(error = %err, "could not purge the audit log"),
                }
            }
        }
    });
}

/// Rechecks members with WeCom in the background (see `oidc::membership`), at a quarter of
/// `MEMBER_RECHECK_SECS` (at most every 30 s), so a member who left is found within about
/// `MEMBER_RECHECK_SECS` even if they never come back.
fn spawn_member_sweep(sweep: MemberSweep) {
    let period = (sweep.state.provider.config.membership.recheck_after / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(30));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match sweep.run_once().await {
                Ok(0) => {}
                Ok(checked) => tracing::debug!(checked, "members rechecked with WeCom"),
                Err(err) => tracing::warn!(error = %err, "member sweep failed"),
            }
        }
    });
}
