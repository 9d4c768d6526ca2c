//! Everything the simulator remembers between requests: the directory (with the per-app switches
//! tests flip), the simulated clock, access tokens, login codes, user tickets, injected faults,
//! call counters and rate-limit windows. One `Mutex` guards it all; handlers take it once per
//! request and never across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::distributions::Alphanumeric;
use rand::Rng;
use url::Url;

use super::control::{Fault, FaultKind};
use super::directory::{Directory, SensitiveField};
use super::errcode;
use super::events::{EventSource, EventTarget};

/// Lifetime of an access token \[D91039\].
pub const TOKEN_TTL_SECS: i64 = 7200;
/// Lifetime of an unused login code \[D96442\].
pub const CODE_TTL_SECS: i64 = 300;
/// Lifetime of a `user_ticket` \[D96442\].
pub const TICKET_TTL_SECS: i64 = 1800;
/// "Effectively off": the documented per-corp, per-API limit \[D90454\].
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 10_000;
/// Requests with `debug=1` are limited to 5 a minute \[D90313\].
pub const DEBUG_RATE_LIMIT_PER_MINUTE: u32 = 5;

/// Seconds since the Unix epoch on the simulated clock.
pub type SimTime = i64;

/// Process-wide switches (per-app ones live on [`super::directory::App`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    /// What an expired or revoked token gets: 42001, or 40014 as some corporations see.
    pub expired_token_errcode: i64,
    /// Issue a new token on every gettoken instead of repeating the valid one.
    pub fresh_token_each_call: bool,
    pub rate_limit_per_minute: u32,
    /// What `auth/getuserdetail` answers for an unknown or expired ticket (unconfirmed in WeCom).
    pub user_ticket_errcode: i64,
    /// Post-2022 apps get the sensitive keys left out instead of set to `""`.
    pub stripped_fields_absent: bool,
    pub require_wxwork_ua: bool,
}

impl Settings {
    fn for_directory(directory: &Directory) -> Settings {
        Settings {
            expired_token_errcode: errcode::ACCESS_TOKEN_EXPIRED,
            fresh_token_each_call: false,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            user_ticket_errcode: errcode::INVALID_CODE,
            stripped_fields_absent: false,
            require_wxwork_ua: directory.require_wxwork_ua,
        }
    }
}

#[derive(Debug, Clone)]
struct TokenGrant {
    agent_id: String,
    expires_at: SimTime,
    revoked: bool,
}

/// Who approved a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Canonical userid (as spelled in the directory).
    Member(String),
    NonMember(String),
}

/// How a code was obtained; decides what `auth/getuserinfo` may reveal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantKind {
    WebLogin,
    QrConnect,
    OAuthBase,
    /// `consented` holds the fields the member agreed to (already limited to the admin's list),
    /// `None` when the member did not tick the consent box.
    OAuthPrivateInfo {
        consented: Option<Vec<SensitiveField>>,
    },
}

/// A login code and what it is bound to.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    /// `None` for an in-client OAuth link without `agentid`: any app of the corporation may
    /// redeem it, subject to its redirect domain.
    pub agent_id: Option<String>,
    pub subject: Subject,
    pub kind: GrantKind,
    /// `host` or `host:port` of the redirect_uri the code was sent to.
    pub redirect_host: String,
    pub expires_at: SimTime,
}

/// A `user_ticket`, bound to a member and an app.
#[derive(Debug, Clone)]
pub struct TicketGrant {
    pub agent_id: String,
    pub userid: String,
    pub fields: Vec<SensitiveField>,
    pub expires_at: SimTime,
}

pub struct SimState {
    pub directory: Directory,
    pub settings: Settings,
    clock_offset: Duration,
    tokens: HashMap<String, TokenGrant>,
    /// The token gettoken repeats for each app while it is valid.
    current_tokens: HashMap<String, String>,
    codes: HashMap<String, CodeGrant>,
    tickets: HashMap<String, TicketGrant>,
    faults: Vec<Fault>,
    calls: BTreeMap<String, usize>,
    /// Per rate-limit key: the times of the calls in the last minute, oldest first.
    rate_windows: HashMap<String, VecDeque<SimTime>>,
    /// Where events go: the callback settings of each app and of the contact-sync assistant.
    pub event_targets: BTreeMap<EventSource, EventTarget>,
    /// App messages delivered by `message/send`, oldest first.
    pub messages: Vec<SentMessage>,
}

/// An app message as `message/send` delivered it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentMessage {
    pub msgid: String,
    pub agent_id: String,
    /// The recipients it reached (their userids as the directory spells them).
    pub touser: Vec<String>,
    pub msgtype: String,
    /// The payload under the `msgtype` key (a textcard's title, description, url, btntxt).
    pub content: serde_json::Value,
    pub sent_at: i64,
}

/// The state shared by the server workers and every [`super::SimulatorControl`].
pub struct Shared {
    state: Mutex<SimState>,
    /// Sends events to the callback URLs, outside the lock; built on first use, since most
    /// simulators never send one.
    http: OnceLock<reqwest::Client>,
}

impl Shared {
    pub fn new(directory: Directory) -> Shared {
        Shared {
            state: Mutex::new(SimState::new(directory)),
            http: OnceLock::new(),
        }
    }

    /// The client that sends events.
    pub fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            // WeCom does not follow redirects from a callback URL; a 3xx counts as a failure.
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        })
    }

    /// A poisoned lock only means another request panicked mid-update; the simulator keeps
    /// serving rather than failing every later test.
    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A random opaque string of `len` ASCII letters and digits.
pub fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// `host` or `host:port` of a redirect URI, the form WeCom compares with the app's domain.
pub fn redirect_host(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_lowercase();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// Exact host(+port) comparison; a configured scheme or trailing slash is tolerated because
/// people paste URLs into that field.
pub fn domain_matches(host: &str, domain: &str) -> bool {
    let domain = domain.trim().to_lowercase();
    let domain = domain
        .strip_prefix("https://")
        .or_else(|| domain.strip_prefix("http://"))
        .unwrap_or(&domain)
        .trim_end_matches('/');
    host == domain
}

/// Path keys for faults and counters: leading slash, no trailing slash.
pub fn normalize_path(path: &str) -> String {
    let trimmed = path.trim().trim_end_matches('/');
    if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

impl SimState {
    pub fn new(directory: Directory) -> SimState {
        SimState {
            settings: Settings::for_directory(&directory),
            directory,
            clock_offset: Duration::ZERO,
            tokens: HashMap::new(),
            current_tokens: HashMap::new(),
            codes: HashMap::new(),
            tickets: HashMap::new(),
            faults: Vec::new(),
            calls: BTreeMap::new(),
            rate_windows: HashMap::new(),
            event_targets: BTreeMap::new(),
            messages: Vec::new(),
        }
    }

    /// The simulated time: the wall clock plus everything `advance_clock` added. It follows the
    /// wall clock so that `wecom-oidc simulator` expires things in real time too.
    pub fn now(&self) -> SimTime {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from((real + self.clock_offset).as_secs()).unwrap_or(i64::MAX)
    }

    pub fn advance_clock(&mut self, by: Duration) {
        self.clock_offset = self.clock_offset.saturating_add(by);
    }

    /// Counts the request and takes one use of the first fault queued for `path`.
    pub fn record_call(&mut self, path: &str) -> Option<FaultKind> {
        let path = normalize_path(path);
        *self.calls.entry(path.clone()).or_default() += 1;
        let index = self
            .faults
            .iter()
            .position(|f| normalize_path(&f.path) == path && f.times > 0)?;
        let fault = &mut self.faults[index];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.faults.remove(index);
        }
        Some(kind)
    }

    pub fn calls(&self, path: &str) -> usize {
        self.calls.get(&normalize_path(path)).copied().unwrap_or(0)
    }

    pub fn all_calls(&self) -> BTreeMap<String, usize> {
        self.calls.clone()
    }

    pub fn inject(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.faults.push(fault);
        }
    }

    pub fn pending_faults(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Counts one call under `key` (an API path, or a path's `debug=1` bucket) and answers
    /// 45009 once `limit` calls fall within the last simulated minute. A sliding window keeps
    /// the outcome independent of where the wall clock's minute boundary happens to fall.
    pub fn check_rate(&mut self, key: &str, limit: u32, now: SimTime) -> Result<(), i64> {
        let window = self.rate_windows.entry(key.to_owned()).or_default();
        while window.front().is_some_and(|&t| t <= now - 60) {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return Err(errcode::FREQ_OUT_OF_LIMIT);
        }
        window.push_back(now);
        Ok(())
    }

    /// gettoken: repeats the app's valid token unless told to mint a fresh one each time.
    pub fn issue_token(&mut self, agent_id: &str, now: SimTime) -> String {
        if !self.settings.fresh_token_each_call {
            let reusable = self
                .current_tokens
                .get(agent_id)
                .and_then(|token| self.tokens.get(token).map(|grant| (token, grant)))
                .filter(|(_, grant)| !grant.revoked && now < grant.expires_at)
                .map(|(token, _)| token.clone());
            if let Some(token) = reusable {
                return token;
            }
        }
        // Drop tokens long dead so a long `simulator` run does not grow without bound; keep a
        // day of history so they still answer "expired" rather than "invalid".
        self.tokens
            .retain(|_, grant| now < grant.expires_at + 86_400);
        let token = random_string(128);
        self.tokens.insert(
            token.clone(),
            TokenGrant {
                agent_id: agent_id.to_owned(),
                expires_at: now + TOKEN_TTL_SECS,
                revoked: false,
            },
        );
        self.current_tokens
            .insert(agent_id.to_owned(), token.clone());
        token
    }

    /// The agent id a token belongs to, or the errcode WeCom answers: 41001 missing,
    /// 40014 unknown, 42001 (or the configured variance) expired or revoked.
    pub fn check_token(&self, token: Option<&str>, now: SimTime) -> Result<String, i64> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(errcode::MISSING_ACCESS_TOKEN)?;
        let grant = self
            .tokens
            .get(token)
            .ok_or(errcode::INVALID_ACCESS_TOKEN)?;
        if grant.revoked || now >= grant.expires_at {
            return Err(self.settings.expired_token_errcode);
        }
        Ok(grant.agent_id.clone())
    }

    /// WeCom may invalidate tokens before `expires_in`; clients must then fetch a new one.
    pub fn revoke_tokens(&mut self) {
        for grant in self.tokens.values_mut() {
            grant.revoked = true;
        }
        self.current_tokens.clear();
    }

    pub fn issue_code(&mut self, grant: CodeGrant, now: SimTime) -> String {
        self.codes.retain(|_, g| now < g.expires_at);
        // Real codes are opaque and up to 512 bytes; 64 characters keeps URLs readable.
        let code = random_string(64);
        self.codes.insert(code.clone(), grant);
        code
    }

    /// A live code, without consuming it.
    pub fn peek_code(&self, code: &str, now: SimTime) -> Option<&CodeGrant> {
        self.codes.get(code).filter(|g| now < g.expires_at)
    }

    /// Consumes a code: a second redemption finds nothing (40029).
    pub fn take_code(&mut self, code: &str) -> Option<CodeGrant> {
        self.codes.remove(code)
    }

    pub fn issue_ticket(&mut self, grant: TicketGrant, now: SimTime) -> String {
        self.tickets.retain(|_, g| now < g.expires_at);
        let ticket = random_string(96);
        self.tickets.insert(ticket.clone(), grant);
        ticket
    }

    pub fn ticket(&self, ticket: &str, now: SimTime) -> Option<&TicketGrant> {
        self.tickets.get(ticket).filter(|g| now < g.expires_at)
    }
}
