//! Access follows the member's standing in WeCom.
//!
//! The provider remembers when WeCom last confirmed each member (`user/get`: status, visible
//! range). A refresh and an SSO reuse ask WeCom again when that is older than
//! `MEMBER_RECHECK_SECS`; a background sweep does the same for every member still bound to a
//! userid (those holding a session or refresh token first); WeCom's contact events ask at once.
//! A member WeCom no longer admits loses everything at once ([`Provider::revoke_member`]). When
//! WeCom says the userid does not exist at all (60111: deleted, or never there), the binding of
//! that userid to the `sub` ends too ([`Provider::end_binding`]): WeCom may give the userid to
//! someone new, who must get a new `sub`, and the old one is retired for good.
//!
//! ```text
//!  refresh / SSO reuse ─┐
//!  sweep (leased) ──────┼─▶ confirm_member ─▶ user/get ─┬─ active ─▶ profile and groups updated
//!  WeCom event ─────────┘                              ├─ gone ───▶ revoke_member + back-channel logout
//!                                                      ├─ 60111 ──▶ … and end_binding: the sub is retired
//!                                                      └─ WeCom unreachable ─▶ nothing revoked, retry later
//! ```

use crate::clock::UnixTime;
use crate::config::GroupsOnFailure;
use crate::domain::group::GroupKinds;
use crate::pages::PageKind;
use crate::storage::{MemberRecord, StorageError};
use crate::wecom::{FailureCategory, Member, MemberStatus, WeComClient, WeComError};

use super::backchannel::{sid_of, LogoutNotice};
use super::profile::{subject_of, UserProfile};
use super::Provider;

/// What WeCom says of a member now.
#[derive(Debug)]
pub enum MemberCheck {
    /// Still admitted; the profile (and groups) as of this check, already stored.
    Admitted(Box<UserProfile>),
    /// No longer admitted (disabled, left, not activated, outside the visible range, unknown);
    /// everything they held has been revoked. The reason is the audit reason.
    Revoked(&'static str),
    /// WeCom could not be asked (down, slow, rate-limited, misconfigured): nothing was changed.
    Unknown(WeComError),
}

/// Why a member with this `user/get` status may not sign in: the page shown at sign-in and the
/// audit reason. `None` for an active member.
pub fn status_refusal(status: MemberStatus) -> Option<(PageKind, &'static str)> {
    match status {
        MemberStatus::Active => None,
        MemberStatus::Disabled => Some((PageKind::AccountDisabled, "member_disabled")),
        MemberStatus::NotActivated => Some((PageKind::AccountNotActivated, "member_not_activated")),
        MemberStatus::Left => Some((PageKind::AccountLeft, "member_left")),
        MemberStatus::Other(_) => Some((PageKind::AccountDisabled, "member_status_unknown")),
    }
}

/// What a failed `user/get` says of the member, when it says anything (rather than WeCom
/// failing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// Outside the app's visible range (60011): the member exists; access ends, the `sub` stays
    /// theirs.
    OutOfRange,
    /// No such userid (60111 and its kin): the member was deleted or left. Access ends and so
    /// does the binding of the userid to the `sub`.
    NoSuchUserid,
}

impl Gone {
    pub fn of(err: &WeComError) -> Option<Gone> {
        match err.category() {
            FailureCategory::UserNotFound => Some(Gone::NoSuchUserid),
            FailureCategory::OutsideVisibleRange => Some(Gone::OutOfRange),
            _ => None,
        }
    }

    /// The audit reason.
    pub fn reason(self) -> &'static str {
        match self {
            Gone::OutOfRange => "outside_visible_range",
            Gone::NoSuchUserid => "member_not_found",
        }
    }
}

/// The groups to store for `member`: read now, or — when WeCom cannot tell — what the
/// configuration allows instead. `Err` when the check must fail as "WeCom unavailable".
pub async fn current_groups(
    wecom: &WeComClient,
    provider: &Provider,
    member: &Member,
    previous: Option<&UserProfile>,
    now: UnixTime,
) -> Result<GroupsRead, WeComError> {
    // Every kind is kept: a client's allowed_groups and groups_claim may use any of them.
    match wecom.groups(member, GroupKinds::ALL).await {
        Ok(groups) => Ok(GroupsRead::Read(groups)),
        Err(err) => {
            tracing::warn!(error = %err, explanation = %wecom.explain(&err), "could not resolve the member's groups");
            let fresh_enough = provider.config.wecom.groups_cache_ttl.as_secs() as i64;
            match (provider.config.membership.groups_on_failure, previous) {
                (GroupsOnFailure::Omit, _) => Ok(GroupsRead::Unavailable),
                (GroupsOnFailure::Refuse, Some(previous))
                    if previous.groups_read_at > 0
                        && now - previous.groups_read_at <= fresh_enough =>
                {
                    Ok(GroupsRead::Kept)
                }
                (GroupsOnFailure::Refuse, _) => Err(err),
            }
        }
    }
}

/// The outcome of reading a member's groups.
#[derive(Debug)]
pub enum GroupsRead {
    /// Read from WeCom now.
    Read(Vec<String>),
    /// WeCom could not tell, and the stored groups are recent enough (`GROUPS_CACHE_SECS`).
    Kept,
    /// WeCom could not tell and `GROUPS_ON_FAILURE=omit`: no `groups` claim.
    Unavailable,
}

impl Provider {
    /// Whether `sub` is still admitted, asking WeCom only when the last confirmation is older
    /// than `MEMBER_RECHECK_SECS`. A member unknown to the store (never signed in) is revoked.
    pub async fn confirm_member(
        &self,
        sub: &str,
        now: UnixTime,
    ) -> Result<MemberCheck, StorageError> {
        let Some(record) = self.store.get_member::<UserProfile>(sub).await? else {
            self.revoke_member(sub, "member_not_found", now).await?;
            return Ok(MemberCheck::Revoked("member_not_found"));
        };
        let recheck_after = self.config.membership.recheck_after.as_secs() as i64;
        if record.released.is_none() && now - record.checked_at < recheck_after {
            return Ok(MemberCheck::Admitted(Box::new(record.profile)));
        }
        self.recheck_member(record, now).await
    }

    /// Asks WeCom about a stored member now, and acts on the answer: an admitted member's profile
    /// and groups are stored as of now; a member WeCom no longer admits loses everything.
    #[tracing::instrument(skip_all, fields(sub = %record.sub))]
    pub async fn recheck_member(
        &self,
        record: MemberRecord<UserProfile>,
        now: UnixTime,
    ) -> Result<MemberCheck, StorageError> {
        // The userid of a retired `sub` may belong to someone else by now: never ask about it.
        if record.released.is_some() {
            self.revoke_member(&record.sub, BINDING_ENDED, now).await?;
            return Ok(MemberCheck::Revoked(BINDING_ENDED));
        }
        let Some(wecom) = &self.wecom else {
            return Ok(MemberCheck::Unknown(WeComError::Unreachable(
                "WeCom is not configured".into(),
            )));
        };
        let member = match wecom.member(&record.profile.userid).await {
            Ok(member) => member,
            Err(err) => {
                return match Gone::of(&err) {
                    Some(gone) => {
                        self.member_gone(&record.sub, gone, now).await?;
                        self.refused_by_wecom(&record.sub, now).await?;
                        Ok(MemberCheck::Revoked(gone.reason()))
                    }
                    None => {
                        tracing::warn!(error = %err, explanation = %wecom.explain(&err), "could not confirm the member with WeCom");
                        Ok(MemberCheck::Unknown(err))
                    }
                };
            }
        };
        if let Some((_, reason)) = status_refusal(member.status) {
            self.revoke_member(&record.sub, reason, now).await?;
            self.refused_by_wecom(&record.sub, now).await?;
            return Ok(MemberCheck::Revoked(reason));
        }
        let groups = match current_groups(wecom, self, &member, Some(&record.profile), now).await {
            Ok(groups) => groups,
            Err(err) => return Ok(MemberCheck::Unknown(err)),
        };
        let profile = UserProfile::merge(&member, None, groups, Some(record.profile), now);
        self.store.update_member(&record.sub, &profile, now).await?;
        Ok(MemberCheck::Admitted(Box::new(profile)))
    }

    /// A member WeCom refused holds nothing more to revoke: the sweep asks about them again only
    /// after `MEMBER_RECHECK_SECS`, like about a member it admitted.
    async fn refused_by_wecom(&self, sub: &str, now: UnixTime) -> Result<(), StorageError> {
        let recheck_after = self.config.membership.recheck_after.as_secs() as i64;
        self.store
            .hold_member_from_sweep(sub, now + recheck_after)
            .await
    }

    /// Asks WeCom about the member whose userid is `userid` (a WeCom event named them), if they
    /// ever signed in here.
    pub async fn recheck_userid(
        &self,
        userid: &str,
        now: UnixTime,
    ) -> Result<Option<MemberCheck>, StorageError> {
        match self
            .store
            .find_member_by_userid::<UserProfile>(&subject_of(userid))
            .await?
        {
            Some(record) => self.recheck_member(record, now).await.map(Some),
            None => Ok(None),
        }
    }

    /// Ends everything `sub` holds — sessions, grants, access and refresh tokens, and the codes
    /// of those sessions — writes the audit row, and tells the relying parties that registered a
    /// back-channel logout URI.
    pub async fn revoke_member(
        &self,
        sub: &str,
        reason: &str,
        now: UnixTime,
    ) -> Result<(), StorageError> {
        let ended = self
            .store
            .revoke_member(sub, now, self.grant_memory(now))
            .await?;
        // The sweep rechecks members who hold nothing too (see `sweep_members`): one refused by
        // WeCom again is no news. An administrator's revocation is always recorded.
        if ended.grants.is_empty()
            && ended.sessions.is_empty()
            && ended.session_clients.is_empty()
            && reason != ADMIN_REVOKE
        {
            tracing::debug!(sub, reason, "member refused again; nothing left to revoke");
            return Ok(());
        }
        tracing::info!(
            sub,
            reason,
            grants = ended.grants.len(),
            sessions = ended.sessions.len(),
            "member's access revoked"
        );
        self.audit(
            now,
            "member_revoked",
            "success",
            Some(sub),
            None,
            Some(reason),
        )
        .await;
        // Every client that received an ID token from one of the sessions hears of it, whether
        // or not it still holds a live token; and every client holding a live grant.
        let from_sessions = ended
            .session_clients
            .into_iter()
            .map(|(session_id, client_id)| (client_id, Some(session_id)));
        let from_grants = ended
            .grants
            .into_iter()
            .map(|grant| (grant.client_id, grant.session_id));
        let notices = from_sessions
            .chain(from_grants)
            .map(|(client_id, session_id)| LogoutNotice {
                client_id,
                sub: sub.to_owned(),
                sid: session_id.as_deref().map(sid_of),
            })
            .collect();
        self.send_backchannel_logout(notices, reason, now).await;
        Ok(())
    }

    /// WeCom says the userid of `sub` does not exist (60111 at a sign-in, recheck or sweep, or
    /// a `delete_user` event): everything `sub` holds is revoked, then its binding to the userid
    /// ends for good. Revoked first, so that a failure part-way leaves the binding in place for
    /// the retry (an event redelivered, the next recheck) to find.
    pub async fn end_binding(
        &self,
        sub: &str,
        reason: &str,
        now: UnixTime,
    ) -> Result<(), StorageError> {
        self.revoke_member(sub, reason, now).await?;
        self.store.release_userid(sub, reason, now).await?;
        tracing::info!(
            sub,
            reason,
            "member's binding to their userid ended; sub retired"
        );
        self.audit(
            now,
            "member_released",
            "success",
            Some(sub),
            None,
            Some(reason),
        )
        .await;
        Ok(())
    }

    /// Acts on a `user/get` that says the member is gone.
    pub async fn member_gone(
        &self,
        sub: &str,
        gone: Gone,
        now: UnixTime,
    ) -> Result<(), StorageError> {
        match gone {
            Gone::OutOfRange => self.revoke_member(sub, gone.reason(), now).await,
            Gone::NoSuchUserid => self.end_binding(sub, gone.reason(), now).await,
        }
    }
}

/// The audit reason of an administrator's revocation.
const ADMIN_REVOKE: &str = "admin_revoke";

/// The audit reason for a `sub` whose binding to its userid has ended.
const BINDING_ENDED: &str = "binding_ended";

/// How many members the sweep takes from its budget and leases at a time.
const SWEEP_CHUNK: i64 = 10;
/// How long a replica holds the members it leased; past this another replica may take them.
const SWEEP_LEASE_SECS: i64 = 120;

impl Provider {
    /// One pass of the background sweep: asks WeCom about every member still bound to a userid
    /// (those holding a live session or refresh token first) who was last confirmed more than
    /// `MEMBER_RECHECK_SECS` ago, within the minute's budget shared by every replica
    /// (`MEMBER_SWEEP_PER_MINUTE`). Members are leased, so replicas sweeping at once never check
    /// the same member. Returns how many were checked.
    #[tracing::instrument(skip_all)]
    pub async fn sweep_members(&self, now: UnixTime) -> Result<usize, StorageError> {
        if self.wecom.is_none() {
            return Ok(0);
        }
        let limit = i64::from(self.config.membership.sweep_per_minute);
        let chunk = SWEEP_CHUNK.min(limit);
        let checked_before = now - self.config.membership.recheck_after.as_secs() as i64;
        let window = now - now.rem_euclid(60);
        let mut checked = 0;
        loop {
            if !self.store.take_sweep_budget(window, chunk, limit).await? {
                break;
            }
            let due = self
                .store
                .lease_members_due::<UserProfile>(
                    checked_before,
                    now,
                    now + SWEEP_LEASE_SECS,
                    chunk,
                )
                .await?;
            if due.is_empty() {
                break;
            }
            for record in due {
                match self.recheck_member(record, now).await? {
                    // WeCom is away: stop here; the leases lapse and the next pass retries.
                    MemberCheck::Unknown(_) => return Ok(checked),
                    MemberCheck::Admitted(_) | MemberCheck::Revoked(_) => checked += 1,
                }
            }
        }
        Ok(checked)
    }
}

impl Provider {
    /// What the admin API and `wecom-oidc user show` tell of a member: the stored profile, when
    /// WeCom last confirmed them, their live sessions and their grants per client. `None` for a
    /// `sub` that never signed in.
    pub async fn member_document(
        &self,
        sub: &str,
        now: UnixTime,
    ) -> Result<Option<serde_json::Value>, StorageError> {
        let Some(member) = self.store.get_member::<UserProfile>(sub).await? else {
            return Ok(None);
        };
        let sessions = self.store.sessions_of(sub, now).await?;
        let grants = self.store.grants_of(sub, now).await?;
        let amr = |amr: &str| -> Vec<String> {
            amr.split(' ')
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        };
        // The story of the binding: a retired `sub` tells when and why it ended.
        let binding = match &member.released {
            None => serde_json::json!({ "state": "active" }),
            Some(release) => serde_json::json!({
                "state": "ended",
                "ended_at": release.at,
                "reason": release.reason,
            }),
        };
        Ok(Some(serde_json::json!({
            "sub": member.sub,
            "userid": member.profile.userid,
            "binding": binding,
            "profile": member.profile,
            "checked_at": (member.checked_at > 0).then_some(member.checked_at),
            "sessions": sessions.iter().map(|s| serde_json::json!({
                "auth_time": s.auth_time,
                "expires_at": s.expires_at,
                "amr": amr(&s.amr),
            })).collect::<Vec<_>>(),
            "grants": grants.iter().map(|g| serde_json::json!({
                "client_id": g.client_id,
                "grant_id": g.grant_id,
                "from_session": g.session_id.is_some(),
                "refreshable": g.refreshable,
                "expires_at": g.expires_at,
            })).collect::<Vec<_>>(),
        })))
    }

    /// An administrator ends every session, grant and token of `sub`; `false` for an unknown sub.
    pub async fn revoke_member_by_admin(
        &self,
        sub: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError> {
        if self.store.get_member::<UserProfile>(sub).await?.is_none() {
            return Ok(false);
        }
        self.revoke_member(sub, ADMIN_REVOKE, now).await?;
        Ok(true)
    }
}

/// What a WeCom event says about one member, reduced to what the provider acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberNews {
    /// The member is gone for certain (`update_user` with status disabled or left): revoked
    /// without asking WeCom, since the event itself is signed by WeCom.
    Gone {
        userid: String,
        reason: &'static str,
    },
    /// `delete_user`: revoked, and the userid released, since WeCom may give it to someone else
    /// later — who must not inherit this member's `sub`.
    Deleted { userid: String },
    /// Something changed that may end access or change claims (`unsubscribe`, a department move,
    /// status "not activated"): WeCom is asked now.
    Changed { userid: String },
    /// An administrator changed the userid (possible once): the member keeps `sub`.
    Renamed { userid: String, new_userid: String },
}

impl Provider {
    /// Acts on one piece of WeCom news about a member who signed in here (others are ignored).
    pub async fn apply_member_news(
        &self,
        news: MemberNews,
        now: UnixTime,
    ) -> Result<(), StorageError> {
        match news {
            MemberNews::Gone { userid, reason } => {
                if let Some(member) = self
                    .store
                    .find_member_by_userid::<UserProfile>(&subject_of(&userid))
                    .await?
                {
                    self.revoke_member(&member.sub, reason, now).await?;
                }
            }
            MemberNews::Deleted { userid } => {
                if let Some(member) = self
                    .store
                    .find_member_by_userid::<UserProfile>(&subject_of(&userid))
                    .await?
                {
                    self.end_binding(&member.sub, "member_deleted", now).await?;
                }
            }
            MemberNews::Changed { userid } => {
                if let Some(MemberCheck::Unknown(err)) = self.recheck_userid(&userid, now).await? {
                    // WeCom cannot be asked now: make the member due, so the next refresh, SSO
                    // reuse or sweep asks again.
                    tracing::warn!(error = %err, "WeCom event: could not recheck the member; left to the sweep");
                    if let Some(member) = self
                        .store
                        .find_member_by_userid::<UserProfile>(&subject_of(&userid))
                        .await?
                    {
                        self.store.mark_member_unchecked(&member.sub).await?;
                    }
                }
            }
            MemberNews::Renamed { userid, new_userid } => {
                let (old_key, new_key) = (subject_of(&userid), subject_of(&new_userid));
                let Some(member) = self
                    .store
                    .find_member_by_userid::<UserProfile>(&old_key)
                    .await?
                else {
                    return Ok(());
                };
                // WeCom keeps userids unique: whoever held the new userid here has lost it. Their
                // binding ends as every ended binding does (access revoked, relying parties told,
                // audited) before the userid moves; `rename_member` alone would only retire it.
                if let Some(holder) = self
                    .store
                    .find_member_by_userid::<UserProfile>(&new_key)
                    .await?
                    .filter(|holder| holder.sub != member.sub)
                {
                    self.end_binding(&holder.sub, "userid_given_to_another", now)
                        .await?;
                }
                let renamed = self
                    .store
                    .rename_member::<UserProfile>(
                        &old_key,
                        &new_key,
                        |profile| profile.userid = new_userid.clone(),
                        now,
                    )
                    .await?;
                if let Some(sub) = renamed {
                    tracing::info!(sub, "member's userid changed; sub kept");
                    self.audit(now, "member_renamed", "success", Some(&sub), None, None)
                        .await;
                }
            }
        }
        Ok(())
    }
}
