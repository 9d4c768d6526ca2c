//! The switches tests (in process) and people (through `/_sim/`) turn on a running simulator:
//! fault injection, call counters, the simulated clock, token revocation and per-app settings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::directory::Directory;
use super::state::{Settings, Shared};

/// Something to go wrong on the next `times` requests to `path` (e.g. `/cgi-bin/gettoken`).
/// Faults queue in injection order; each request consumes one use of the first fault for its
/// path, and is counted by [`SimulatorControl::calls`] either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub path: String,
    pub kind: FaultKind,
    pub times: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// HTTP 200 with this errcode and a real-shaped errmsg (`-1`, `45033`, `60020`, …).
    Errcode(i64),
    /// This HTTP status with an HTML body, as a gateway in front of WeCom would send.
    HttpStatus(u16),
    /// HTTP 200 with an HTML body instead of JSON.
    NonJson,
    /// Wait this long, then answer normally.
    Delay(Duration),
}

impl Fault {
    pub fn new(path: impl Into<String>, kind: FaultKind, times: usize) -> Fault {
        Fault {
            path: path.into(),
            kind,
            times,
        }
    }
}

/// A handle on a running simulator's state; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct SimulatorControl {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SimulatorControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorControl").finish_non_exhaustive()
    }
}

impl SimulatorControl {
    pub(crate) fn new(shared: Arc<Shared>) -> SimulatorControl {
        SimulatorControl { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Changes one app's settings; unknown agent ids are logged and ignored, since the
    /// signatures the team codes against return nothing.
    fn with_app(&self, agent_id: &str, change: impl FnOnce(&mut super::directory::App)) {
        let mut state = self.shared.lock();
        match state.directory.app_mut(agent_id) {
            Some(app) => change(app),
            None => tracing::warn!(agent_id, "simulator: no such app; setting ignored"),
        }
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.lock().inject(fault);
    }

    /// Drops every fault not yet used up.
    pub fn clear_faults(&self) {
        self.shared.lock().clear_faults();
    }

    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.lock().pending_faults()
    }

    /// Requests seen on `path` ("/cgi-bin/gettoken", "/wwlogin/sso/login/approve", …),
    /// faulted ones included; `/_sim/` requests are not counted.
    pub fn calls(&self, path: &str) -> usize {
        self.shared.lock().calls(path)
    }

    pub fn all_calls(&self) -> BTreeMap<String, usize> {
        self.shared.lock().all_calls()
    }

    /// Moves the simulated clock forward: tokens, codes, tickets and rate windows age.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().advance_clock(by);
    }

    /// The simulated time, in seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.shared.lock().now()
    }

    /// Invalidates every token issued so far (they answer like expired ones); the next
    /// gettoken mints a new token.
    pub fn revoke_tokens(&self) {
        self.shared.lock().revoke_tokens();
    }

    /// What expired and revoked tokens get from then on: 42001 (default) or 40014.
    pub fn expired_token_errcode(&self, errcode: i64) {
        self.shared.lock().settings.expired_token_errcode = errcode;
    }

    /// `true`: every gettoken mints a new token (older ones stay valid until they expire).
    pub fn set_fresh_token_each_call(&self, fresh: bool) {
        self.shared.lock().settings.fresh_token_each_call = fresh;
    }

    /// Calls allowed per API path per simulated minute before 45009.
    pub fn set_rate_limit(&self, per_minute: u32) {
        self.shared.lock().settings.rate_limit_per_minute = per_minute;
    }

    /// The errcode for an unknown, expired or foreign `user_ticket` (default 40029).
    pub fn set_user_ticket_errcode(&self, errcode: i64) {
        self.shared.lock().settings.user_ticket_errcode = errcode;
    }

    /// `true`: post-2022 apps get the sensitive keys left out of user/get instead of `""`.
    pub fn set_stripped_fields_absent(&self, absent: bool) {
        self.shared.lock().settings.stripped_fields_absent = absent;
    }

    /// `true`: the in-client OAuth pages refuse browsers whose User-Agent lacks `wxwork`.
    pub fn set_require_wxwork_ua(&self, required: bool) {
        self.shared.lock().settings.require_wxwork_ua = required;
    }

    pub fn settings(&self) -> Settings {
        self.shared.lock().settings.clone()
    }

    /// The app's trusted / web-login callback domain, `"host"` or `"host:port"`; `None` lets
    /// any redirect host through.
    pub fn set_redirect_domain(&self, agent_id: &str, domain: Option<String>) {
        self.with_app(agent_id, |app| app.redirect_domain = domain);
    }

    /// The app's 企业可信IP list; `None` allows every caller.
    pub fn set_trusted_ips(&self, agent_id: &str, ips: Option<Vec<String>>) {
        self.with_app(agent_id, |app| app.trusted_ips = ips);
    }

    pub fn set_created_after_2022(&self, agent_id: &str, yes: bool) {
        self.with_app(agent_id, |app| app.created_after_2022_06_20 = yes);
    }

    /// A disabled app gets 40001 from gettoken.
    pub fn set_app_enabled(&self, agent_id: &str, enabled: bool) {
        self.with_app(agent_id, |app| app.enabled = enabled);
    }

    /// What user/get answers for members outside the app's range: 60011 or 60111.
    pub fn set_out_of_range_errcode(&self, agent_id: &str, errcode: i64) {
        self.with_app(agent_id, |app| app.out_of_range_errcode = errcode);
    }

    /// Replaces the app's visible range.
    pub fn set_visible_range(
        &self,
        agent_id: &str,
        departments: Vec<u32>,
        hidden_departments: Vec<u32>,
        users: Vec<String>,
    ) {
        self.with_app(agent_id, |app| {
            app.visible_departments = departments;
            app.hidden_departments = hidden_departments;
            app.visible_users = users;
        });
    }

    /// A copy of the directory as it stands, per-app switches included.
    pub fn directory(&self) -> Directory {
        self.shared.lock().directory.clone()
    }
}
