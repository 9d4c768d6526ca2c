//! The switches tests (in process) and people (through `/_sim/`) turn on a running simulator:
//! fault injection, call counters, the simulated clock, token revocation, per-app settings, and
//! event callbacks (settings, URL check, sending, member changes that send events).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use url::Url;

use super::directory::Directory;
use super::events::{
    self, Attempt, Delivery, EventRequest, EventSource, EventTarget, PrefixMode, SimEvent,
};
use super::state::{Settings, Shared};
use crate::wecom::events::EventCipher;

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

    /// The app messages `message/send` delivered, oldest first.
    pub fn messages(&self) -> Vec<super::state::SentMessage> {
        self.shared.lock().messages.clone()
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

    /// Edits one member's profile as an administrator would in the console, without sending an
    /// event (a field change the app would only see at its next read).
    pub fn edit_member(
        &self,
        userid: &str,
        edit: impl FnOnce(&mut super::directory::Member),
    ) -> anyhow::Result<()> {
        let mut state = self.shared.lock();
        let member = state
            .directory
            .members
            .iter_mut()
            .find(|m| m.userid.eq_ignore_ascii_case(userid))
            .with_context(|| format!("no member {userid}"))?;
        edit(member);
        Ok(())
    }

    /// Adds a member as an administrator would in the console, without sending an event: WeCom
    /// lets a userid freed by a deletion be given to someone new. Refused when the userid is taken
    /// (userids are case-insensitive).
    pub fn add_member(&self, member: super::directory::Member) -> anyhow::Result<()> {
        let mut state = self.shared.lock();
        anyhow::ensure!(
            state.directory.member(&member.userid).is_none(),
            "userid {} is taken",
            member.userid
        );
        state.directory.members.push(member);
        Ok(())
    }

    /// A copy of the directory as it stands, per-app switches included.
    pub fn directory(&self) -> Directory {
        self.shared.lock().directory.clone()
    }
}

/// Event callbacks (§10.9 of `wecom-events.md`): callback settings, the URL check, sending
/// events, and directory changes that send the events WeCom would.
impl SimulatorControl {
    fn set_event_target(
        &self,
        source: EventSource,
        url: &str,
        token: &str,
        aes_key: &str,
    ) -> anyhow::Result<()> {
        let url = Url::parse(url).with_context(|| format!("the callback URL {url:?}"))?;
        let mut state = self.shared.lock();
        // The receiveid of a corporation's own callbacks is its CorpID [D90968].
        let cipher = EventCipher::new(token, aes_key, &state.directory.corp_id)
            .map_err(|e| anyhow!("the callback settings: {e}"))?;
        let target = EventTarget {
            url,
            cipher,
            prefix: PrefixMode::default(),
            change_contact: true,
        };
        state.event_targets.insert(source, target);
        Ok(())
    }

    /// An app's 接收消息 → 设置API接收: URL, Token, EncodingAESKey (43 letters or digits).
    pub fn configure_events(
        &self,
        agent_id: &str,
        url: &str,
        token: &str,
        aes_key: &str,
    ) -> anyhow::Result<()> {
        if self.shared.lock().directory.app(agent_id).is_none() {
            bail!("no app {agent_id}");
        }
        self.set_event_target(EventSource::app(agent_id), url, token, aes_key)
    }

    /// The 通讯录同步 assistant's 接收事件服务器; it gets `change_contact` events only, without
    /// AgentID.
    pub fn configure_contact_events(
        &self,
        url: &str,
        token: &str,
        aes_key: &str,
    ) -> anyhow::Result<()> {
        self.set_event_target(EventSource::ContactSync, url, token, aes_key)
    }

    /// Stops sending events to `source`.
    pub fn remove_events(&self, source: &EventSource) {
        self.shared.lock().event_targets.remove(source);
    }

    /// How the random prefix of `source`'s events is made (default letters and digits).
    pub fn set_event_prefix_mode(&self, source: &EventSource, mode: PrefixMode) {
        if let Some(target) = self.shared.lock().event_targets.get_mut(source) {
            target.prefix = mode;
        }
    }

    /// Whether an app's URL also gets `change_contact` events (default on; unconfirmed in WeCom).
    pub fn set_app_change_contact(&self, agent_id: &str, on: bool) {
        if let Some(target) = self
            .shared
            .lock()
            .event_targets
            .get_mut(&EventSource::app(agent_id))
        {
            target.change_contact = on;
        }
    }

    /// The check WeCom makes when the admin presses 保存: `true` only if the URL answered 200
    /// with exactly the decrypted echostr within one second.
    pub async fn verify_event_url(&self, source: &EventSource) -> anyhow::Result<bool> {
        let (target, now) = {
            let state = self.shared.lock();
            let target = state
                .event_targets
                .get(source)
                .cloned()
                .with_context(|| format!("no callback settings for {source:?}"))?;
            (target, state.now())
        };
        Ok(events::verify_url(self.shared.http(), &target, now).await)
    }

    /// Seals any plaintext as `source`'s callback would carry it (for payloads no [`SimEvent`]
    /// builds, such as hostile XML behind a valid signature).
    pub fn seal_event(
        &self,
        source: &EventSource,
        plaintext: &str,
    ) -> anyhow::Result<EventRequest> {
        self.shared
            .lock()
            .seal_plaintext(source, plaintext)
            .with_context(|| format!("no callback settings for {source:?}"))
    }

    /// Sends a request with WeCom's retries; passing a [`Delivery`]'s request again is a replay
    /// of the identical delivery.
    pub async fn deliver(&self, request: EventRequest) -> Delivery {
        events::deliver(self.shared.http(), request).await
    }

    async fn deliver_all(&self, requests: Vec<EventRequest>) -> Vec<Delivery> {
        let mut deliveries = Vec::with_capacity(requests.len());
        for request in requests {
            deliveries.push(self.deliver(request).await);
        }
        deliveries
    }

    /// Sends `event` to every configured source that takes it (see [`SimEvent::is_change_contact`]),
    /// one delivery per source.
    pub async fn send_event(&self, event: SimEvent) -> Vec<Delivery> {
        let requests: Vec<EventRequest> = {
            let state = self.shared.lock();
            state
                .recipients(&event, |_| true)
                .iter()
                .filter_map(|source| state.seal_event(source, &event))
                .collect()
        };
        self.deliver_all(requests).await
    }

    /// POSTs `body` once to `source`'s URL with `query` (already encoded) instead of the real
    /// signature parameters: for malformed and forged requests.
    pub async fn post_event_raw(
        &self,
        source: &EventSource,
        query: &str,
        body: impl Into<Vec<u8>>,
    ) -> anyhow::Result<Attempt> {
        let mut url = self
            .shared
            .lock()
            .event_targets
            .get(source)
            .map(|target| target.url.clone())
            .with_context(|| format!("no callback settings for {source:?}"))?;
        url.set_query(Some(query));
        Ok(events::post_once(self.shared.http(), &url, body.into()).await)
    }

    /// Applies `change` to the directory and seals the events it causes, all under one lock, so
    /// the events match the directory the receiver will read back.
    fn change_members(
        &self,
        change: impl FnOnce(&mut super::state::SimState) -> anyhow::Result<Vec<(Vec<String>, SimEvent)>>,
    ) -> anyhow::Result<Vec<EventRequest>> {
        let mut state = self.shared.lock();
        let planned = change(&mut state)?;
        Ok(planned
            .iter()
            .flat_map(|(apps, event)| {
                let sources =
                    state.recipients(event, |agent_id| apps.iter().any(|a| a == agent_id));
                sources
                    .into_iter()
                    .filter_map(|source| state.seal_event(&source, event))
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    /// Disables a member (user/get then answers status 2) and sends `update_user` with Status 2
    /// plus, to the apps whose range holds the member, `unsubscribe` ("被禁用" \[D90240\]).
    pub async fn disable_member(&self, userid: &str) -> anyhow::Result<Vec<Delivery>> {
        self.set_member_status(userid, 2, |userid| SimEvent::Unsubscribe { userid })
            .await
    }

    /// Re-enables a member (user/get then answers status 1) and sends `update_user` with Status 1
    /// plus, to the apps whose range holds the member, `subscribe` (whether WeCom sends it on
    /// re-enabling is unconfirmed, §10.11).
    pub async fn enable_member(&self, userid: &str) -> anyhow::Result<Vec<Delivery>> {
        self.set_member_status(userid, 1, |userid| SimEvent::Subscribe { userid })
            .await
    }

    /// Sets a member's `status` and announces it: `update_user` with the new Status, then
    /// `follow_up` (subscribe or unsubscribe) to the apps whose range holds the member.
    async fn set_member_status(
        &self,
        userid: &str,
        status: u8,
        follow_up: fn(String) -> SimEvent,
    ) -> anyhow::Result<Vec<Delivery>> {
        let requests = self.change_members(|state| {
            let member = state
                .directory
                .member(userid)
                .with_context(|| format!("no member {userid}"))?
                .userid
                .clone();
            let apps = state.apps_seeing(&member);
            state.directory.set_member_status(&member, status);
            Ok(vec![
                (
                    apps.clone(),
                    SimEvent::UpdateUser {
                        userid: member.clone(),
                        new_userid: None,
                        status: Some(status),
                        department: None,
                    },
                ),
                (apps, follow_up(member)),
            ])
        })?;
        Ok(self.deliver_all(requests).await)
    }

    /// Deletes a member (user/get then answers 60111) and sends `delete_user` plus, to the apps
    /// whose range held the member, `unsubscribe` (whether WeCom sends it on deletion is
    /// unconfirmed, §10.11).
    pub async fn delete_member(&self, userid: &str) -> anyhow::Result<Vec<Delivery>> {
        let requests = self.change_members(|state| {
            let apps = state.apps_seeing(userid);
            let member = state
                .directory
                .remove_member(userid)
                .with_context(|| format!("no member {userid}"))?;
            Ok(vec![
                (
                    apps.clone(),
                    SimEvent::DeleteUser {
                        userid: member.userid.clone(),
                    },
                ),
                (
                    apps,
                    SimEvent::Unsubscribe {
                        userid: member.userid,
                    },
                ),
            ])
        })?;
        Ok(self.deliver_all(requests).await)
    }

    /// Changes a member's userid (the old one then answers 60111, the new one the member) and
    /// sends `update_user` with NewUserID to the assistant and the apps whose range holds the
    /// member \[cm-userid\].
    pub async fn rename_member(&self, old: &str, new: &str) -> anyhow::Result<Vec<Delivery>> {
        let requests = self.change_members(|state| {
            let member = state
                .directory
                .member(old)
                .with_context(|| format!("no member {old}"))?
                .userid
                .clone();
            let apps = state.apps_seeing(&member);
            state.directory.rename_member(&member, new)?;
            Ok(vec![(
                apps,
                SimEvent::UpdateUser {
                    userid: member,
                    new_userid: Some(new.trim().to_owned()),
                    status: None,
                    department: None,
                },
            )])
        })?;
        Ok(self.deliver_all(requests).await)
    }

    /// Takes a member out of one app's visible range (user/get from that app then answers its
    /// out-of-range errcode) and sends that app `unsubscribe` \[D90240\].
    pub async fn remove_from_visible_range(
        &self,
        agent_id: &str,
        userid: &str,
    ) -> anyhow::Result<Vec<Delivery>> {
        let requests = self.change_members(|state| {
            let member = state
                .directory
                .member(userid)
                .with_context(|| format!("no member {userid}"))?
                .userid
                .clone();
            let was_visible = state.apps_seeing(&member).iter().any(|a| a == agent_id);
            let app = state
                .directory
                .app_mut(agent_id)
                .with_context(|| format!("no app {agent_id}"))?;
            app.hidden_users.push(member.clone());
            Ok(if was_visible {
                vec![(
                    vec![agent_id.to_owned()],
                    SimEvent::Unsubscribe { userid: member },
                )]
            } else {
                Vec::new()
            })
        })?;
        Ok(self.deliver_all(requests).await)
    }
}
