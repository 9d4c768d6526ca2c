//! Typed, validated settings, read once at start-up from the environment and an optional TOML file.
//!
//! Every setting has one name (`OIDC_ISSUER`, `DATABASE_URL`, …). The TOML file given with `--config`
//! may set the same keys (in any case); the environment wins. An invalid value stops the program with a
//! message that names the variable and says what is expected. Secrets are `SecretString`, so `Debug`
//! never prints them.
//!
//! Nearly everything reads `Config`, so it depends on nothing but the leaf types it parses into
//! (`domain`, `limit_settings`, `key_timing`, `event_keys`) and is the only reader of the
//! environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::domain::client::is_loopback_host;
use crate::domain::group::GroupKinds;
use crate::event_keys::{check_token, decode_aes_key};
use crate::key_timing::{JWKS_MAX_AGE, KEY_RELOAD_INTERVAL};
use crate::limit_settings::{ForwardedHeader, LimitSettings, TrustedProxies};

/// A setting that could not be read: names the variable and what it expects.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
    #[error("config file {path}: {problem}")]
    File { path: String, problem: String },
}

fn invalid(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        problem: problem.into(),
    }
}

/// Every key the program reads. Keys outside this list in a config file are refused (typo guard).
const KNOWN_KEYS: &[&str] = &[
    "OIDC_ISSUER",
    "LISTEN_ADDR",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "ADMIN_TOKEN",
    "ADMIN_GROUPS",
    "ADMIN_USERS",
    "KEY_ENCRYPTION_KEY",
    "SIGNING_ALG",
    "LOG_FORMAT",
    "WECOM_CORP_ID",
    "WECOM_CORP_SECRET",
    "WECOM_AGENT_ID",
    "WECOM_REDIRECT_URL",
    "WECOM_API_BASE",
    "WECOM_LOGIN_BASE",
    "WECOM_OAUTH_BASE",
    "WECOM_TIMEOUT_SECS",
    "WECOM_IN_CLIENT_SCOPE",
    "WECOM_AUTO_LOGIN",
    "WECOM_EVENT_TOKEN",
    "WECOM_EVENT_AES_KEY",
    "WECOM_CONTACT_EVENT_TOKEN",
    "WECOM_CONTACT_EVENT_AES_KEY",
    "ALLOWED_DOMAINS",
    "SYNTHETIC_EMAIL_DOMAIN",
    "GROUPS_CLAIM",
    "GROUPS_CACHE_SECS",
    "AUTH_CODE_TTL_SECS",
    "ACCESS_TOKEN_TTL_SECS",
    "ID_TOKEN_TTL_SECS",
    "REFRESH_TOKEN_TTL_SECS",
    "SESSION_TTL_SECS",
    "AUTH_REQUEST_TTL_SECS",
    "CLIENT_SECRET_CACHE_SECS",
    "GRANT_MAX_TTL_SECS",
    "MEMBER_RECHECK_SECS",
    "MEMBER_SWEEP_PER_MINUTE",
    "GROUPS_ON_FAILURE",
    "BACKCHANNEL_LOGOUT_TIMEOUT_SECS",
    "REFRESH_REUSE_GRACE_SECS",
    "KEY_ACTIVATION_DELAY_SECS",
    "KEY_ROTATION_DAYS",
    "AUDIT_RETENTION_DAYS",
    "METRICS_ADDR",
    "RATE_LIMIT_PER_MINUTE",
    "AUTH_FAILURE_LIMIT_PER_MINUTE",
    "TRUSTED_PROXIES",
    "FORWARDED_HEADER",
    "WECOM_PROXY",
];

/// Where WeCom sends the member back after sign-in, under the issuer: the default of
/// `WECOM_REDIRECT_URL`, and the path `routes/` mounts the callback on (through `oidc::endpoints`).
pub const WECOM_CALLBACK_PATH: &str = "/auth/wecom/callback";

/// The whole configuration, passed to the application as state.
#[derive(Debug, Clone)]
pub struct Config {
    pub issuer: Issuer,
    pub listen_addr: String,
    pub database: DatabaseSettings,
    pub admin_token: Option<SecretString>,
    /// Who may use the browser console (`ADMIN_GROUPS`, `ADMIN_USERS`); off when both are empty.
    pub console: ConsoleAccess,
    pub key_encryption_key: Option<SecretString>,
    pub signing_alg: SigningAlg,
    pub log_format: LogFormat,
    pub wecom: WeComSettings,
    pub login: LoginSettings,
    pub lifetimes: Lifetimes,
    pub membership: MembershipSettings,
    /// How long a client secret that verified is remembered (0 = verify with argon2 every time).
    pub client_secret_cache_ttl: Duration,
    /// How long one back-channel logout delivery may take before it counts as failed.
    pub backchannel_logout_timeout: Duration,
    /// How long after its rotation a refresh token may be presented again by the same client and
    /// still answer (two tabs or pods refreshing at once); later reuse revokes the grant.
    pub refresh_reuse_grace: Duration,
    pub keys: KeySettings,
    /// Audit rows older than this are deleted (`AUDIT_RETENTION_DAYS`); `None` keeps them all.
    pub audit_retention: Option<Duration>,
    /// Where `/metrics` listens (`METRICS_ADDR`); `None` = no metrics.
    pub metrics_addr: Option<String>,
    /// Per-source abuse limits and the proxies whose forwarding headers are believed.
    pub limits: LimitSettings,
}

/// Signing-key rotation.
#[derive(Debug, Clone, Copy)]
pub struct KeySettings {
    /// How long a rotated key is published before it signs (`KEY_ACTIVATION_DELAY_SECS`).
    pub activation_delay: Duration,
    /// Rotate by itself this often (`KEY_ROTATION_DAYS`); `None` = only by `keys rotate`.
    pub rotate_every: Option<Duration>,
}

/// The public base URL; every endpoint lives under it, path prefix included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

impl Issuer {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("expected an absolute URL ({e})"))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err("expected an http or https URL".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            // OIDC Discovery 1.0 §3: the issuer has no query or fragment components.
            return Err("must not contain a query or fragment".into());
        }
        if url.scheme() == "http" && !is_loopback_host(&url) && !cfg!(debug_assertions) {
            tracing::warn!(
                "OIDC_ISSUER is plain http on a non-loopback host; use https in production"
            );
        }
        Ok(Self(raw.trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `https://example.com/sso` + `/token` → `https://example.com/sso/token`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }

    /// The path the routes are mounted under: `""` or `"/sso"`.
    pub fn path_prefix(&self) -> String {
        Url::parse(&self.0)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default()
    }

    /// `scheme://host[:port]`, as browsers send it in `Origin` (RFC 6454 §6.1).
    pub fn origin(&self) -> String {
        Url::parse(&self.0)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    /// Schemes are case-insensitive (RFC 3986 §3.1): `HTTPS://` is https too.
    pub fn is_https(&self) -> bool {
        self.0
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone)]
pub struct DatabaseSettings {
    /// May carry a password, so it is kept secret and never printed.
    pub url: SecretString,
    pub max_connections: u32,
}

impl DatabaseSettings {
    pub fn is_postgres(&self) -> bool {
        let url = self.url.expose_secret();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        };
        f.debug_struct("DatabaseSettings")
            .field("kind", &kind)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Rs256,
    Es256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "RS256" => Some(SigningAlg::Rs256),
            "ES256" => Some(SigningAlg::Es256),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where and how to reach WeCom. The bases are configurable for private deployments and tests.
#[derive(Debug, Clone)]
pub struct WeComSettings {
    /// `None` until WECOM_CORP_ID, WECOM_CORP_SECRET and WECOM_AGENT_ID are all set: the provider
    /// then still serves discovery, JWKS and the admin API, and the login explains what is missing.
    pub credentials: Option<WeComCredentials>,
    pub redirect_url: Url,
    pub api_base: Url,
    pub login_base: Url,
    pub oauth_base: Url,
    pub timeout: Duration,
    pub in_client_scope: InClientScope,
    pub auto_login_in_client: bool,
    pub groups_cache_ttl: Duration,
    /// An http(s) proxy for the WeCom API calls only (`WECOM_PROXY`): WeCom answers only the
    /// corporation's trusted IPs, which is often a fixed egress.
    pub proxy: Option<Url>,
    /// The event-callback channels; both `None` when events are not received.
    pub events: EventSettings,
}

/// Token and EncodingAESKey of the event-callback channels (接收事件服务器), whose receiveid is
/// WECOM_CORP_ID.
#[derive(Debug, Clone, Default)]
pub struct EventSettings {
    /// The app's 接收消息 settings: WECOM_EVENT_TOKEN, WECOM_EVENT_AES_KEY.
    pub app: Option<EventChannelSettings>,
    /// The 通讯录同步 assistant's: WECOM_CONTACT_EVENT_TOKEN, WECOM_CONTACT_EVENT_AES_KEY.
    pub contact_sync: Option<EventChannelSettings>,
}

#[derive(Debug, Clone)]
pub struct EventChannelSettings {
    pub token: SecretString,
    pub aes_key: SecretString,
}

#[derive(Debug, Clone)]
pub struct WeComCredentials {
    pub corp_id: String,
    pub corp_secret: SecretString,
    pub agent_id: String,
}

/// The scope asked for when the page is opened inside the WeCom client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InClientScope {
    /// Silent; userid only.
    Base,
    /// A consent page once; yields a `user_ticket` for email, mobile and avatar.
    PrivateInfo,
}

impl InClientScope {
    pub fn as_str(self) -> &'static str {
        match self {
            InClientScope::Base => "snsapi_base",
            InClientScope::PrivateInfo => "snsapi_privateinfo",
        }
    }
}

/// How members are admitted and which claims they get.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// Lowercase mail domains; empty admits every domain. Applies to real addresses only.
    pub allowed_domains: Vec<String>,
    /// Domain of the address made up for members without one: `{userid}@{domain}`.
    pub synthetic_email_domain: String,
    pub group_kinds: GroupKinds,
}

/// Who may sign in to the admin console: members holding one of `groups` (values exactly as in
/// the `groups` claim: `tag:SRE`, `研发部/平台组`) or whose userid is in `userids` (lowercase,
/// since WeCom userids are case-insensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleAccess {
    pub groups: Vec<String>,
    pub userids: Vec<String>,
}

impl ConsoleAccess {
    /// With neither setting the console does not exist (every `/console` path is 404).
    pub fn enabled(&self) -> bool {
        !self.groups.is_empty() || !self.userids.is_empty()
    }

    /// Whether the member with `userid` and group values `groups` is an administrator. Group
    /// values must be equal, not merely related: a department path here does not admit its
    /// sub-departments, so the list says exactly who holds the keys.
    pub fn admits(&self, userid: &str, groups: &[String]) -> bool {
        let userid = userid.to_lowercase();
        self.userids.contains(&userid) || groups.iter().any(|held| self.groups.contains(held))
    }
}

/// What a sign-in does when WeCom cannot tell the member's departments and tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupsOnFailure {
    /// Refuse with the "WeCom unavailable, try again" page (unless the stored groups are younger
    /// than `GROUPS_CACHE_SECS`): never assert stale groups as current.
    Refuse,
    /// Sign in without a `groups` claim.
    Omit,
}

/// How access follows the member's standing in WeCom.
#[derive(Debug, Clone, Copy)]
pub struct MembershipSettings {
    /// A grant (one sign-in, one client, every refresh) ends this long after the WeCom sign-in.
    pub grant_max_ttl: Duration,
    /// WeCom is asked again about a member last confirmed longer ago than this, at a refresh, at
    /// an SSO reuse, and by the background sweep.
    pub recheck_after: Duration,
    /// The sweep's WeCom calls per minute, across every replica.
    pub sweep_per_minute: u32,
    pub groups_on_failure: GroupsOnFailure,
}

impl Default for MembershipSettings {
    fn default() -> Self {
        Self {
            grant_max_ttl: Duration::from_secs(90 * 86_400),
            recheck_after: Duration::from_secs(300),
            sweep_per_minute: 600,
            groups_on_failure: GroupsOnFailure::Refuse,
        }
    }
}

/// Lifetimes of everything the provider issues.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub authorization_code: Duration,
    pub access_token: Duration,
    pub id_token: Duration,
    pub refresh_token: Duration,
    pub session: Duration,
    pub auth_request: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            authorization_code: Duration::from_secs(60),
            access_token: Duration::from_secs(3600),
            id_token: Duration::from_secs(3600),
            refresh_token: Duration::from_secs(30 * 24 * 3600),
            session: Duration::from_secs(8 * 3600),
            auth_request: Duration::from_secs(600),
        }
    }
}

/// Raw key → value pairs, before parsing.
type RawSettings = BTreeMap<String, String>;

impl Config {
    /// Reads the file (if any), overlays the process environment, and parses.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut raw = match file {
            Some(path) => read_toml(path)?,
            None => RawSettings::new(),
        };
        for key in KNOWN_KEYS {
            if let Ok(value) = std::env::var(key) {
                raw.insert((*key).to_owned(), value);
            }
        }
        Self::from_settings(raw)
    }

    /// Parses settings given as pairs; what tests and the demo use instead of the environment.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut raw = RawSettings::new();
        for (key, value) in pairs {
            let key = key.to_ascii_uppercase();
            if !KNOWN_KEYS.contains(&key.as_str()) {
                return Err(invalid("config", format!("unknown setting {key}")));
            }
            raw.insert(key, value.to_owned());
        }
        Self::from_settings(raw)
    }

    fn from_settings(raw: RawSettings) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            raw.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let issuer = Issuer::parse(
            &get("OIDC_ISSUER").unwrap_or_else(|| "http://localhost:8080".to_owned()),
        )
        .map_err(|e| invalid("OIDC_ISSUER", e))?;

        let listen_addr = get("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        if listen_addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "LISTEN_ADDR",
                format!("expected host:port such as 0.0.0.0:8080, got {listen_addr:?}"),
            ));
        }

        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://wecom-oidc.db".into());
        if !["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            return Err(invalid(
                "DATABASE_URL",
                "expected postgres://… or sqlite://path (the scheme names the store)",
            ));
        }
        let database = DatabaseSettings {
            url: SecretString::from(database_url),
            max_connections: parse_number(&get, "DATABASE_MAX_CONNECTIONS", 10, 1, 1000)? as u32,
        };

        let admin_token = get("ADMIN_TOKEN").map(SecretString::from);
        if let Some(token) = &admin_token {
            if token.expose_secret().len() < 16 {
                return Err(invalid(
                    "ADMIN_TOKEN",
                    "expected at least 16 characters (use a random value)",
                ));
            }
        }
        // Group values are case-sensitive (`tag:SRE` is not `tag:sre`): not `split_list`.
        let console = ConsoleAccess {
            groups: get("ADMIN_GROUPS")
                .map(|raw| {
                    raw.split(',')
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            userids: get("ADMIN_USERS")
                .map(|raw| split_list(&raw))
                .unwrap_or_default(),
        };
        if let Some(bad) = console
            .groups
            .iter()
            .find(|g| !crate::domain::group::is_well_formed(g))
        {
            return Err(invalid(
                "ADMIN_GROUPS",
                format!("{bad:?} is not a group value (a department path such as 研发部/平台组, or tag:NAME, dept:NAME, deptid:ID)"),
            ));
        }
        let key_encryption_key = get("KEY_ENCRYPTION_KEY").map(SecretString::from);
        if let Some(key) = &key_encryption_key {
            if key.expose_secret().len() < 32 {
                return Err(invalid(
                    "KEY_ENCRYPTION_KEY",
                    "expected at least 32 random characters",
                ));
            }
        }
        let signing_alg = match get("SIGNING_ALG") {
            None => SigningAlg::Rs256,
            Some(raw) => SigningAlg::parse(&raw)
                .ok_or_else(|| invalid("SIGNING_ALG", "expected RS256 or ES256"))?,
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(invalid("LOG_FORMAT", "expected text or json")),
        };

        let credentials = match (
            get("WECOM_CORP_ID"),
            get("WECOM_CORP_SECRET"),
            get("WECOM_AGENT_ID"),
        ) {
            (None, None, None) => None,
            (Some(corp_id), Some(secret), Some(agent_id)) => {
                if !agent_id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(invalid(
                        "WECOM_AGENT_ID",
                        "expected the app's numeric AgentId",
                    ));
                }
                Some(WeComCredentials {
                    corp_id,
                    corp_secret: SecretString::from(secret),
                    agent_id,
                })
            }
            (corp_id, secret, agent_id) => {
                let missing: Vec<&str> = [
                    ("WECOM_CORP_ID", corp_id.is_none()),
                    ("WECOM_CORP_SECRET", secret.is_none()),
                    ("WECOM_AGENT_ID", agent_id.is_none()),
                ]
                .iter()
                .filter(|(_, missing)| *missing)
                .map(|(name, _)| *name)
                .collect();
                return Err(invalid(
                    "WECOM_CORP_ID",
                    format!(
                        "WECOM_CORP_ID, WECOM_CORP_SECRET and WECOM_AGENT_ID go together; missing {}",
                        missing.join(", ")
                    ),
                ));
            }
        };
        let redirect_url = match get("WECOM_REDIRECT_URL") {
            Some(raw) => parse_url("WECOM_REDIRECT_URL", &raw)?,
            None => parse_url("OIDC_ISSUER", &issuer.endpoint(WECOM_CALLBACK_PATH))?,
        };
        let base = |name: &'static str, default: &str| -> Result<Url, ConfigError> {
            parse_url(name, &get(name).unwrap_or_else(|| default.to_owned()))
        };
        let in_client_scope = match get("WECOM_IN_CLIENT_SCOPE").as_deref() {
            None | Some("snsapi_privateinfo") => InClientScope::PrivateInfo,
            Some("snsapi_base") => InClientScope::Base,
            Some(_) => {
                return Err(invalid(
                    "WECOM_IN_CLIENT_SCOPE",
                    "expected snsapi_privateinfo or snsapi_base",
                ))
            }
        };
        let events = EventSettings {
            app: event_channel(&get, "WECOM_EVENT_TOKEN", "WECOM_EVENT_AES_KEY")?,
            contact_sync: event_channel(
                &get,
                "WECOM_CONTACT_EVENT_TOKEN",
                "WECOM_CONTACT_EVENT_AES_KEY",
            )?,
        };
        if (events.app.is_some() || events.contact_sync.is_some()) && credentials.is_none() {
            // The CorpID is the receiveid every event must carry (§10.3.3).
            let name = if events.app.is_some() {
                "WECOM_EVENT_TOKEN"
            } else {
                "WECOM_CONTACT_EVENT_TOKEN"
            };
            return Err(invalid(
                name,
                "event callbacks need WECOM_CORP_ID, WECOM_CORP_SECRET and WECOM_AGENT_ID",
            ));
        }
        let proxy = get("WECOM_PROXY")
            .map(|raw| parse_url("WECOM_PROXY", &raw))
            .transpose()?;
        let wecom = WeComSettings {
            proxy,
            credentials,
            redirect_url,
            api_base: base("WECOM_API_BASE", "https://qyapi.weixin.qq.com")?,
            login_base: base("WECOM_LOGIN_BASE", "https://login.work.weixin.qq.com")?,
            oauth_base: base("WECOM_OAUTH_BASE", "https://open.weixin.qq.com")?,
            timeout: Duration::from_secs(parse_number(&get, "WECOM_TIMEOUT_SECS", 5, 1, 120)?),
            in_client_scope,
            auto_login_in_client: parse_bool(&get, "WECOM_AUTO_LOGIN", true)?,
            groups_cache_ttl: Duration::from_secs(parse_number(
                &get,
                "GROUPS_CACHE_SECS",
                300,
                0,
                86_400,
            )?),
            events,
        };

        let allowed_domains = get("ALLOWED_DOMAINS")
            .map(|raw| split_list(&raw))
            .unwrap_or_default();
        if let Some(bad) = allowed_domains
            .iter()
            .find(|d| d.contains('@') || d.contains('/') || !d.contains('.'))
        {
            return Err(invalid(
                "ALLOWED_DOMAINS",
                format!("expected a comma list of mail domains such as example.com, got {bad:?}"),
            ));
        }
        let synthetic_email_domain =
            get("SYNTHETIC_EMAIL_DOMAIN").unwrap_or_else(|| "wecom.local".to_owned());
        if synthetic_email_domain.contains('@') || synthetic_email_domain.contains('/') {
            return Err(invalid("SYNTHETIC_EMAIL_DOMAIN", "expected a bare domain"));
        }
        let group_kinds = GroupKinds::parse(&get("GROUPS_CLAIM").unwrap_or("paths,tags".into()))
            .map_err(|e| invalid("GROUPS_CLAIM", e))?;

        let defaults = Lifetimes::default();
        let secs = |name: &'static str, default: Duration, max: u64| {
            parse_number(&get, name, default.as_secs(), 1, max).map(Duration::from_secs)
        };
        let lifetimes = Lifetimes {
            authorization_code: secs("AUTH_CODE_TTL_SECS", defaults.authorization_code, 600)?,
            access_token: secs("ACCESS_TOKEN_TTL_SECS", defaults.access_token, 86_400)?,
            id_token: secs("ID_TOKEN_TTL_SECS", defaults.id_token, 86_400)?,
            refresh_token: secs(
                "REFRESH_TOKEN_TTL_SECS",
                defaults.refresh_token,
                365 * 86_400,
            )?,
            session: secs("SESSION_TTL_SECS", defaults.session, 30 * 86_400)?,
            auth_request: secs("AUTH_REQUEST_TTL_SECS", defaults.auth_request, 3600)?,
        };
        let membership_defaults = MembershipSettings::default();
        let membership = MembershipSettings {
            grant_max_ttl: secs(
                "GRANT_MAX_TTL_SECS",
                membership_defaults.grant_max_ttl,
                10 * 365 * 86_400,
            )?,
            recheck_after: secs(
                "MEMBER_RECHECK_SECS",
                membership_defaults.recheck_after,
                7 * 86_400,
            )?,
            sweep_per_minute: parse_number(
                &get,
                "MEMBER_SWEEP_PER_MINUTE",
                u64::from(membership_defaults.sweep_per_minute),
                1,
                10_000,
            )? as u32,
            groups_on_failure: match get("GROUPS_ON_FAILURE").as_deref() {
                None | Some("refuse") => GroupsOnFailure::Refuse,
                Some("omit") => GroupsOnFailure::Omit,
                Some(_) => return Err(invalid("GROUPS_ON_FAILURE", "expected refuse or omit")),
            },
        };
        let client_secret_cache_ttl = Duration::from_secs(parse_number(
            &get,
            "CLIENT_SECRET_CACHE_SECS",
            600,
            0,
            86_400,
        )?);

        let backchannel_logout_timeout = Duration::from_secs(parse_number(
            &get,
            "BACKCHANNEL_LOGOUT_TIMEOUT_SECS",
            5,
            1,
            60,
        )?);
        let refresh_reuse_grace =
            Duration::from_secs(parse_number(&get, "REFRESH_REUSE_GRACE_SECS", 3, 0, 60)?);
        let default_delay = JWKS_MAX_AGE + KEY_RELOAD_INTERVAL;
        let keys = KeySettings {
            activation_delay: Duration::from_secs(parse_number(
                &get,
                "KEY_ACTIVATION_DELAY_SECS",
                default_delay.as_secs(),
                0,
                7 * 86_400,
            )?),
            rotate_every: match parse_number(&get, "KEY_ROTATION_DAYS", 0, 0, 3650)? {
                0 => None,
                days => Some(Duration::from_secs(days * 86_400)),
            },
        };

        let audit_retention = match parse_number(&get, "AUDIT_RETENTION_DAYS", 180, 0, 36_500)? {
            0 => None,
            days => Some(Duration::from_secs(days * 86_400)),
        };

        let metrics_addr = get("METRICS_ADDR");
        if let Some(addr) = &metrics_addr {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(
                    "METRICS_ADDR",
                    format!("expected host:port such as 0.0.0.0:9090, got {addr:?}"),
                ));
            }
        }

        let limits = LimitSettings {
            per_minute: parse_number(&get, "RATE_LIMIT_PER_MINUTE", 1200, 0, 1_000_000)? as u32,
            failures_per_minute: parse_number(
                &get,
                "AUTH_FAILURE_LIMIT_PER_MINUTE",
                30,
                0,
                1_000_000,
            )? as u32,
            trusted_proxies: TrustedProxies::parse(&get("TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|e| invalid("TRUSTED_PROXIES", e))?,
            forwarded_header: match get("FORWARDED_HEADER") {
                Some(raw) => {
                    ForwardedHeader::parse(&raw).map_err(|e| invalid("FORWARDED_HEADER", e))?
                }
                None => Default::default(),
            },
        };

        Ok(Config {
            issuer,
            listen_addr,
            database,
            admin_token,
            console,
            key_encryption_key,
            signing_alg,
            log_format,
            wecom,
            login: LoginSettings {
                allowed_domains,
                synthetic_email_domain,
                group_kinds,
            },
            lifetimes,
            membership,
            client_secret_cache_ttl,
            backchannel_logout_timeout,
            refresh_reuse_grace,
            keys,
            audit_retention,
            metrics_addr,
            limits,
        })
    }
}

fn read_toml(path: &Path) -> Result<RawSettings, ConfigError> {
    let file_error = |problem: String| ConfigError::File {
        path: path.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e| file_error(format!("{e}")))?;
    let mut raw = RawSettings::new();
    for (key, value) in table {
        let key = key.to_ascii_uppercase();
        if !KNOWN_KEYS.contains(&key.as_str()) {
            return Err(file_error(format!("unknown setting {key}")));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => {
                return Err(file_error(format!(
                    "{key}: expected a string, number or list"
                )))
            }
        };
        raw.insert(key, value);
    }
    Ok(raw)
}

fn parse_url(name: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| invalid(name, format!("expected a URL ({e})")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(invalid(name, "expected an http or https URL"));
    }
    Ok(url)
}

fn parse_number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            name,
            format!("expected a whole number from {min} to {max}, got {raw:?}"),
        )),
    }
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(invalid(
            name,
            format!("expected true or false, got {other:?}"),
        )),
    }
}

/// One event channel: its Token and EncodingAESKey, both or neither.
fn event_channel(
    get: &impl Fn(&str) -> Option<String>,
    token_name: &'static str,
    key_name: &'static str,
) -> Result<Option<EventChannelSettings>, ConfigError> {
    match (get(token_name), get(key_name)) {
        (None, None) => Ok(None),
        (Some(token), Some(key)) => {
            check_token(&token).map_err(|e| invalid(token_name, e))?;
            decode_aes_key(&key).map_err(|e| invalid(key_name, e))?;
            Ok(Some(EventChannelSettings {
                token: SecretString::from(token),
                aes_key: SecretString::from(key),
            }))
        }
        (None, Some(_)) => Err(invalid(token_name, format!("{key_name} is set; set both"))),
        (Some(_), None) => Err(invalid(key_name, format!("{token_name} is set; set both"))),
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_settings() {
        let config = Config::from_pairs([]).unwrap();
        assert_eq!(config.issuer.as_str(), "http://localhost:8080");
        assert_eq!(
            config.wecom.redirect_url.as_str(),
            "http://localhost:8080/auth/wecom/callback"
        );
        assert!(config.wecom.credentials.is_none());
        assert!(!config.database.is_postgres());
    }

    #[test]
    fn issuer_with_path_prefix_keeps_the_prefix_everywhere() {
        let config = Config::from_pairs([("OIDC_ISSUER", "https://example.com/sso/")]).unwrap();
        assert_eq!(config.issuer.as_str(), "https://example.com/sso");
        assert_eq!(config.issuer.path_prefix(), "/sso");
        assert_eq!(
            config.wecom.redirect_url.as_str(),
            "https://example.com/sso/auth/wecom/callback"
        );
    }

    #[test]
    fn operations_settings_have_safe_defaults() {
        let config = Config::from_pairs([]).unwrap();
        assert_eq!(config.keys.activation_delay, Duration::from_secs(3660));
        assert!(config.keys.rotate_every.is_none());
        assert_eq!(
            config.audit_retention,
            Some(Duration::from_secs(180 * 86_400))
        );
        assert!(config.metrics_addr.is_none() && config.wecom.proxy.is_none());
        assert_eq!(config.limits.per_minute, 1200);
        assert_eq!(config.limits.failures_per_minute, 30);
    }

    #[test]
    fn an_issuer_scheme_in_capitals_is_still_https() {
        let config = Config::from_pairs([("OIDC_ISSUER", "HTTPS://sso.example.com")]).unwrap();
        assert!(config.issuer.is_https());
        let config = Config::from_pairs([("OIDC_ISSUER", "http://localhost:8080")]).unwrap();
        assert!(!config.issuer.is_https());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (key, value) in [
            ("OIDC_ISSUER", "not a url"),
            ("LISTEN_ADDR", "8080"),
            ("DATABASE_URL", "mysql://x"),
            ("ACCESS_TOKEN_TTL_SECS", "-5"),
            ("SIGNING_ALG", "HS256"),
            ("ALLOWED_DOMAINS", "@example.com"),
            ("WECOM_AGENT_ID", "abc"),
            ("METRICS_ADDR", "9090"),
            ("TRUSTED_PROXIES", "10.0.0.0/99"),
            ("FORWARDED_HEADER", "x-real-ip"),
            ("WECOM_PROXY", "not a url"),
            ("KEY_ACTIVATION_DELAY_SECS", "-1"),
            ("AUDIT_RETENTION_DAYS", "forever"),
            ("RATE_LIMIT_PER_MINUTE", "lots"),
        ] {
            let err = Config::from_pairs([(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn partial_wecom_credentials_say_what_is_missing() {
        let err = Config::from_pairs([("WECOM_CORP_ID", "ww1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WECOM_CORP_SECRET") && err.contains("WECOM_AGENT_ID"),
            "{err}"
        );
    }

    #[test]
    fn event_settings_come_in_validated_pairs() {
        let corp = [
            ("WECOM_CORP_ID", "ww1"),
            ("WECOM_CORP_SECRET", "s"),
            ("WECOM_AGENT_ID", "1000002"),
        ];
        let key = "Wq8vRkT3mXa9LzPq2NcY7dHf0JsB4uE6gKiO1tMnV5C";
        let with = |extra: &[(&'static str, &'static str)]| {
            Config::from_pairs(corp.iter().chain(extra).copied())
        };
        let config = with(&[("WECOM_EVENT_TOKEN", "T0ken"), ("WECOM_EVENT_AES_KEY", key)]).unwrap();
        assert!(config.wecom.events.app.is_some());
        assert!(config.wecom.events.contact_sync.is_none());
        assert!(with(&[]).unwrap().wecom.events.app.is_none());

        for (pairs, named) in [
            (vec![("WECOM_EVENT_TOKEN", "T0ken")], "WECOM_EVENT_AES_KEY"),
            (
                vec![("WECOM_CONTACT_EVENT_AES_KEY", key)],
                "WECOM_CONTACT_EVENT_TOKEN",
            ),
            (
                vec![
                    ("WECOM_EVENT_TOKEN", "tok-en"),
                    ("WECOM_EVENT_AES_KEY", key),
                ],
                "WECOM_EVENT_TOKEN",
            ),
            (
                vec![
                    ("WECOM_CONTACT_EVENT_TOKEN", "T0ken"),
                    ("WECOM_CONTACT_EVENT_AES_KEY", &key[1..]),
                ],
                "WECOM_CONTACT_EVENT_AES_KEY",
            ),
        ] {
            let err = with(&pairs).unwrap_err().to_string();
            assert!(err.starts_with(named), "{pairs:?}: {err}");
        }
        let err =
            Config::from_pairs([("WECOM_EVENT_TOKEN", "T0ken"), ("WECOM_EVENT_AES_KEY", key)])
                .unwrap_err()
                .to_string();
        assert!(err.contains("WECOM_CORP_ID"), "{err}");
        let printed = format!(
            "{:?}",
            with(&[("WECOM_EVENT_TOKEN", "T0ken"), ("WECOM_EVENT_AES_KEY", key)])
        );
        assert!(
            !printed.contains(key) && !printed.contains("T0ken"),
            "{printed}"
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let config = Config::from_pairs([
            ("ADMIN_TOKEN", "super-secret-admin-token"),
            ("WECOM_CORP_ID", "ww1"),
            ("WECOM_CORP_SECRET", "corp-secret-value"),
            ("WECOM_AGENT_ID", "1000002"),
            ("DATABASE_URL", "postgres://u:dbpassword@localhost/x"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        for secret in [
            "super-secret-admin-token",
            "corp-secret-value",
            "dbpassword",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked");
        }
    }

    /// docs/configuration.md documents a setting by a table row (or a heading) that starts with
    /// its name in backticks: `| `NAME` | default | meaning |`.
    fn documented_settings(docs: &str) -> std::collections::BTreeSet<&str> {
        docs.lines()
            .filter_map(|line| {
                let rest = line
                    .strip_prefix('|')
                    .or_else(|| line.starts_with('#').then(|| line.trim_start_matches('#')))?;
                let (name, _) = rest.trim_start().strip_prefix('`')?.split_once('`')?;
                let is_setting = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                is_setting.then_some(name)
            })
            .collect()
    }

    #[test]
    fn every_setting_is_documented_and_every_documented_setting_exists() {
        let documented = documented_settings(include_str!("../docs/configuration.md"));
        let known: std::collections::BTreeSet<&str> = KNOWN_KEYS.iter().copied().collect();
        let undocumented: Vec<_> = known.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&known).collect();
        assert!(
            undocumented.is_empty(),
            "settings in KNOWN_KEYS without a row in docs/configuration.md: {undocumented:?}"
        );
        assert!(
            unknown.is_empty(),
            "docs/configuration.md documents settings that are not in KNOWN_KEYS: {unknown:?}"
        );
    }

    #[test]
    fn documented_settings_are_read_from_rows_and_headings_only() {
        let docs = "| `OIDC_ISSUER` | x | y |\n### `LISTEN_ADDR`\n| `client_name` | field |\nsee `DATABASE_URL`\n";
        assert_eq!(
            documented_settings(docs).into_iter().collect::<Vec<_>>(),
            ["LISTEN_ADDR", "OIDC_ISSUER"]
        );
    }
}
