//! The command line: wiring only. Every command is a function of the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use wecom_oidc::clock::{Clock, SystemClock};
use wecom_oidc::config::{Config, LogFormat};
use wecom_oidc::keys::KeyManager;
use wecom_oidc::oidc::Provider;
use wecom_oidc::startup::Application;
use wecom_oidc::storage::Store;

/// mimalloc: less CPU per allocation than glibc's malloc under many threads, and it hands freed
/// memory back instead of keeping it in per-thread arenas (argon2 allocates 7 MiB at a time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wecom-oidc",
    version,
    about = "An OpenID Connect provider that signs people in with WeCom (企业微信)"
)]
struct Cli {
    /// A TOML file setting the same keys as the environment (the environment wins).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the provider (the default).
    Serve,
    /// Register and manage clients (relying parties).
    Client {
        #[command(subcommand)]
        command: Box<wecom_oidc::registry::cli::ClientCommand>,
    },
    /// Run the provider, the WeCom simulator and a demo application: no configuration needed.
    Demo,
    /// Members who signed in: show one, or end all their access now.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Call WeCom with the configured credentials and explain whatever is wrong, with the fix.
    Check {
        /// Also look this member up (checks the app's visible range).
        #[arg(long)]
        userid: Option<String>,
    },
    /// Ask the running provider whether it is ready (`/readyz` answers 200): exit 0 if so, 1 if
    /// not. What a container's HEALTHCHECK runs.
    Health {
        /// The readiness URL; by default `/readyz` on LISTEN_ADDR under OIDC_ISSUER's path.
        #[arg(long)]
        url: Option<String>,
    },
    /// Run the WeCom simulator alone (the local stand-in the tests and the demo use).
    Simulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// A directory file (TOML) with the corporation; the built-in sample when omitted.
        #[arg(long)]
        directory: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// The stored profile, when WeCom last confirmed the member, their sessions and grants.
    Show { sub: String },
    /// End every session, grant and token of the member, with back-channel logout.
    Revoke { sub: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key; the old one stays in the JWKS until its ID tokens have expired.
    Rotate,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // stdout carries what commands print (JSON documents, secrets shown once); logs go beside it.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("wecom-oidc: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wecom-oidc: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match command {
        Command::Serve => {
            let issuer = config.issuer.clone();
            let application = Application::build(config, clock).await?;
            tracing::info!(%issuer, port = application.port(), "wecom-oidc ready");
            application.run_until_stopped().await?;
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let store = Store::connect(&config.database).await?;
            let keys = KeyManager::load_or_create(store, &config, clock.now()).await?;
            let kid = keys.rotate(clock.now()).await?;
            println!(
                "new signing key: {kid} ({}); published in the JWKS within a minute, signing in {} s (KEY_ACTIVATION_DELAY_SECS)",
                config.signing_alg.as_str(),
                config.keys.activation_delay.as_secs()
            );
        }
        Command::Client { command } => {
            let store = Store::connect(&config.database).await?;
            wecom_oidc::registry::cli::run(
                &store,
                config.key_encryption_key.as_ref(),
                clock.now(),
                *command,
                &mut std::io::stdout(),
            )
            .await?;
        }
        Command::User { command } => {
            let store = Store::connect(&config.database).await?;
            let keys = KeyManager::load_or_create(store.clone(), &config, clock.now()).await?;
            let provider = Provider::new(config, store, Arc::new(keys), Arc::clone(&clock))?;
            let (sub, revoke) = match &command {
                UserCommand::Show { sub } => (sub, false),
                UserCommand::Revoke { sub } => (sub, true),
            };
            if revoke && !provider.revoke_member_by_admin(sub, clock.now()).await? {
                anyhow::bail!("no member with sub {sub:?} has signed in");
            }
            let Some(document) = provider.member_document(sub, clock.now()).await? else {
                anyhow::bail!("no member with sub {sub:?} has signed in");
            };
            println!("{}", serde_json::to_string_pretty(&document)?);
            // Back-channel logout notices go out in the background; let them finish.
            provider.backchannel.wait_idle().await;
        }
        Command::Demo => wecom_oidc::demo::run().await?,
        Command::Check { userid } => {
            let mut out = std::io::stdout();
            if !wecom_oidc::check::run(&config, userid.as_deref(), &mut out).await? {
                anyhow::bail!("some checks failed (see above)");
            }
        }
        Command::Health { url } => {
            let url = url.unwrap_or_else(|| wecom_oidc::health::readiness_url(&config));
            println!(
                "{}",
                wecom_oidc::health::probe(&url)
                    .await
                    .map_err(anyhow::Error::msg)?
            );
        }
        Command::Simulator { listen, directory } => {
            wecom_oidc::simulator::run(&listen, directory.as_deref()).await?;
        }
    }
    Ok(())
}
