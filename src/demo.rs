//! `wecom-oidc demo`: one command, no configuration, no network. It starts the WeCom simulator,
//! the provider on a fresh embedded store, and a small relying party (built on the `openidconnect`
//! crate, as a real application would be) whose page signs in with WeCom and then shows the
//! verified ID token's claims and the userinfo answer. It also registers a command-line client
//! for the device flow (RFC 8628), prints the curl commands that play it, and shows the WeCom
//! messages the simulator delivered (the pushed approvals).
//!
//! Only wiring of existing parts (`simulator`, `startup`, `registry`): no protocol logic lives here.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{anyhow, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::ClientRegistration;
use crate::simulator::{Directory, Simulator, SimulatorControl};
use crate::startup::{Application, BuildOptions};

/// What the demo application remembers between sending the person off and their return.
struct PendingLogin {
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

struct DemoApp {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    home: String,
    metadata: CoreProviderMetadata,
    http: openidconnect::reqwest::Client,
    pending: Mutex<HashMap<String, PendingLogin>>,
    /// The simulator, for the messages it delivered.
    wecom: SimulatorControl,
}

impl DemoApp {
    fn oidc_client(
        &self,
    ) -> anyhow::Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
    > {
        Ok(CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(self.redirect_uri.clone())?))
    }
}

/// Binds `preferred` if it is free, else any free port on loopback.
fn bind(preferred: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(preferred)
        .or_else(|_| TcpListener::bind("127.0.0.1:0"))
        .context("cannot bind a port on 127.0.0.1")
}

pub async fn run() -> anyhow::Result<()> {
    let directory = Directory::sample();
    let corp_id = directory.corp_id.clone();
    let app = directory
        .apps
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("the sample corporation has no app"))?;
    let simulator = Simulator::start("127.0.0.1:0", directory).await?;
    let wecom = simulator
        .base_url()
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let demo_listener = bind("127.0.0.1:8080")?;
    let demo_port = demo_listener.local_addr()?.port();
    let provider_listener = bind("127.0.0.1:8081")?;
    let provider_port = provider_listener.local_addr()?.port();
    let issuer = format!("http://127.0.0.1:{provider_port}");
    let database = std::env::temp_dir().join(format!("wecom-oidc-demo-{}.db", std::process::id()));
    let database_url = format!("sqlite://{}", database.display());
    let listen = format!("127.0.0.1:{provider_port}");
    // The demo's store is thrown away; its keys are sealed anyway, as a deployment's should be.
    let key_encryption_key = crate::crypto::random_token(32);
    let config = Config::from_pairs([
        ("OIDC_ISSUER", issuer.as_str()),
        ("KEY_ENCRYPTION_KEY", key_encryption_key.as_str()),
        ("LISTEN_ADDR", listen.as_str()),
        ("DATABASE_URL", database_url.as_str()),
        ("WECOM_CORP_ID", corp_id.as_str()),
        ("WECOM_CORP_SECRET", app.secret.as_str()),
        ("WECOM_AGENT_ID", app.agent_id.as_str()),
        ("WECOM_API_BASE", wecom.as_str()),
        ("WECOM_LOGIN_BASE", wecom.as_str()),
        ("WECOM_OAUTH_BASE", wecom.as_str()),
    ])?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let application = Application::build_with(
        config.clone(),
        Arc::clone(&clock),
        BuildOptions::default(),
        provider_listener,
    )
    .await?;
    let provider = tokio::spawn(application.run_until_stopped());

    let home = format!("http://127.0.0.1:{demo_port}/");
    let redirect_uri = format!("http://127.0.0.1:{demo_port}/callback");
    let store = crate::storage::Store::connect(&config.database).await?;
    let registration: ClientRegistration = serde_json::from_value(serde_json::json!({
        "client_name": "wecom-oidc demo application",
        "redirect_uris": [redirect_uri],
        "post_logout_redirect_uris": [home],
        "id_token_profile_claims": true,
    }))?;
    let created = crate::registry::create_client(&store, registration, None, clock.now()).await?;
    let client_secret = created
        .client_secret
        .ok_or_else(|| anyhow!("the demo client has no secret"))?;

    let cli: ClientRegistration = serde_json::from_value(serde_json::json!({
        "client_name": "wecom-oidc demo CLI",
        "token_endpoint_auth_method": "none",
        "grant_types": ["device_code", "refresh_token"],
    }))?;
    let cli = crate::registry::create_client(&store, cli, None, clock.now()).await?;
    let device_commands = device_flow_commands(&config.issuer, &cli.client.client_id);
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()?;
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone())?, &http)
        .await
        .map_err(|e| anyhow!("discovery failed: {e}"))?;
    let demo = web::Data::new(DemoApp {
        issuer,
        client_id: created.client.client_id,
        client_secret,
        redirect_uri,
        home: home.clone(),
        metadata,
        http,
        pending: Mutex::new(HashMap::new()),
        wecom: simulator.control().clone(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(demo.clone())
            .route("/", web::get().to(home_page))
            .route("/login", web::get().to(login))
            .route("/callback", web::get().to(callback))
            .route("/messages", web::get().to(messages))
    })
    .workers(1)
    .listen(demo_listener)?
    .run();

    println!();
    println!("  wecom-oidc demo is running. Open {home} and sign in with WeCom.");
    println!("  (provider: http://127.0.0.1:{provider_port}, WeCom simulator: {wecom}; Ctrl-C stops all)");
    println!();
    println!("{device_commands}");
    println!("  WeCom messages the simulator delivered: {home}messages");
    println!();
    let result = server.await;
    provider.abort();
    simulator.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    Ok(result?)
}

/// The device flow as a terminal plays it, ready to paste: ask for a code (pushed to ZhangSan's
/// WeCom by `login_hint`), open the link, approve, then poll for the tokens.
fn device_flow_commands(issuer: &crate::config::Issuer, client_id: &str) -> String {
    let device = issuer.endpoint(crate::oidc::endpoints::DEVICE_AUTHORIZATION_PATH);
    let token = issuer.endpoint(crate::oidc::endpoints::TOKEN_PATH);
    format!(
        "  Sign in from a terminal (device flow, RFC 8628): paste this, open the link it prints,\n  \
         sign in as ZhangSan and approve; the tokens follow.\n\n    \
         R=$(curl -s -d client_id={client_id} -d 'scope=openid profile offline_access' -d login_hint=ZhangSan {device}); \
         echo \"$R\"; D=$(echo \"$R\" | sed 's/.*\"device_code\":\"\\([^\"]*\\)\".*/\\1/'); \
         until curl -sf -d grant_type=urn:ietf:params:oauth:grant-type:device_code -d client_id={client_id} -d device_code=$D {token}; \
         do sleep 5; done; echo\n"
    )
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>wecom-oidc demo</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:3rem auto;padding:0 1rem;color:#1f2329}}\
             a.button{{display:inline-block;background:#0082ef;color:#fff;padding:.6rem 1.3rem;border-radius:6px;text-decoration:none}}\
             pre{{background:#f5f6f7;padding:1rem;border-radius:8px;overflow:auto}}</style></head><body>{body}</body></html>"
        ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn home_page(demo: web::Data<DemoApp>) -> HttpResponse {
    html(format!(
        "<h1>wecom-oidc demo application</h1>\
         <p>This page is an ordinary OpenID Connect application. The button sends you to wecom-oidc at \
         <code>{}</code>, which sends you to (a simulator of) WeCom's QR login; pick who scans.</p>\
         <p><a class=\"button\" href=\"/login\">Sign in with WeCom · 企业微信登录</a></p>\
         <p>From a terminal, the device flow: see the command the demo printed, and the \
         <a href=\"/messages\">WeCom messages</a> it sends.</p>",
        escape(&demo.issuer)
    ))
}

async fn login(demo: web::Data<DemoApp>) -> HttpResponse {
    let client = match demo.oidc_client() {
        Ok(client) => client,
        Err(err) => return html(format!("<p>{}</p>", escape(&err.to_string()))),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scopes(["profile", "email", "phone", "groups"].map(|s| Scope::new(s.into())))
        .set_pkce_challenge(challenge)
        .url();
    if let Ok(mut pending) = demo.pending.lock() {
        pending.insert(csrf.secret().clone(), PendingLogin { nonce, verifier });
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.to_string()))
        .finish()
}

/// The app messages the simulated WeCom delivered, newest first, with their links.
async fn messages(demo: web::Data<DemoApp>) -> HttpResponse {
    let sent = demo.wecom.messages();
    let items: String = sent
        .iter()
        .rev()
        .map(|message| {
            let text = |key: &str| escape(message.content[key].as_str().unwrap_or_default());
            format!(
                "<li><p>to <b>{}</b> ({}) at {}</p><p><b>{}</b></p><pre>{}</pre><p><a class=\"button\" href=\"{}\">{}</a></p></li>",
                escape(&message.touser.join(", ")),
                escape(&message.msgtype),
                crate::clock::utc_timestamp(message.sent_at),
                text("title"),
                text("description"),
                text("url"),
                text("btntxt"),
            )
        })
        .collect();
    html(format!(
        "<h1>WeCom messages (simulated)</h1><p>What <code>message/send</code> delivered; the link \
         opens as it would in the WeCom client.</p><ul>{}</ul><p><a href=\"/\">Back</a></p>",
        if items.is_empty() {
            "<li>none yet</li>".to_owned()
        } else {
            items
        }
    ))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(demo: web::Data<DemoApp>, query: web::Query<CallbackQuery>) -> HttpResponse {
    match finish_login(&demo, query.into_inner()).await {
        Ok(page) => html(page),
        Err(err) => html(format!(
            "<h1>Sign-in failed</h1><pre>{}</pre><p><a href=\"/\">Back</a></p>",
            escape(&format!("{err:#}"))
        )),
    }
}

async fn finish_login(demo: &DemoApp, query: CallbackQuery) -> anyhow::Result<String> {
    if let Some(error) = query.error {
        return Err(anyhow!("the provider answered error={error}"));
    }
    let state = query.state.ok_or_else(|| anyhow!("no state"))?;
    let pending = demo
        .pending
        .lock()
        .map_err(|_| anyhow!("state store poisoned"))?
        .remove(&state)
        .ok_or_else(|| anyhow!("unknown state (start again)"))?;
    let code = query.code.ok_or_else(|| anyhow!("no code"))?;
    let client = demo.oidc_client()?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))?
        .set_pkce_verifier(pending.verifier)
        .request_async(&demo.http)
        .await
        .map_err(|e| anyhow!("code exchange failed: {e}"))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| anyhow!("no ID token in the answer"))?;
    id_token
        .claims(&client.id_token_verifier(), &pending.nonce)
        .map_err(|e| anyhow!("the ID token did not verify: {e}"))?;
    // Verified above; decoded again only to show every claim as the provider wrote it.
    let raw = id_token.to_string();
    let payload = raw.split('.').nth(1).unwrap_or_default();
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    let userinfo: serde_json::Value = demo
        .http
        .get(format!("{}/userinfo", demo.issuer))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await?
        .json()
        .await?;
    let logout = format!(
        "{}/logout?id_token_hint={}&post_logout_redirect_uri={}",
        demo.issuer,
        raw,
        url::form_urlencoded::byte_serialize(demo.home.as_bytes()).collect::<String>()
    );
    Ok(format!(
        "<h1>Signed in ✓</h1><p>The ID token's signature, issuer, audience, nonce and expiry were verified \
         by the <code>openidconnect</code> crate.</p>\
         <h2>ID token claims</h2><pre>{}</pre><h2>userinfo</h2><pre>{}</pre>\
         <p><a href=\"/login\">Sign in again</a> · <a href=\"{}\">Sign out</a></p>",
        escape(&serde_json::to_string_pretty(&claims)?),
        escape(&serde_json::to_string_pretty(&userinfo)?),
        escape(&logout)
    ))
}
