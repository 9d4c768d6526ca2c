//! The WeCom callback: consume the pending request once, learn who signed in from the WeCom API,
//! admit or refuse them, keep their profile, open the SSO session and issue the code.

use crate::clock::UnixTime;
use crate::crypto::{constant_time_eq, new_secret_token, sha256_hex};
use crate::pages::{Page, PageKind};
use crate::storage::{Session, StorageError};
use crate::wecom::{FailureCategory, Identity, WeComClient, WeComError};

use super::membership::{current_groups, status_refusal};
use super::profile::{subject_of, UserProfile};
use super::{AuthorizationRequest, ClientRedirect, ErrorCode, Params, Provider};

#[derive(Debug)]
pub enum CallbackOutcome {
    ShowError(Page),
    /// Signed in: send the code, and set the new SSO session cookie.
    Redirect {
        redirect: ClientRedirect,
        session_cookie: String,
    },
}

/// A refusal: the page kind, the audit reason and, for the log, what an administrator should know.
struct Refusal {
    kind: PageKind,
    reason: String,
    sub: Option<String>,
}

impl Refusal {
    fn new(kind: PageKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            sub: None,
        }
    }

    fn of(mut self, sub: &str) -> Self {
        self.sub = Some(sub.to_owned());
        self
    }
}

/// Maps a WeCom failure to what the person sees, and logs what the administrator needs.
fn wecom_refusal(wecom: &WeComClient, err: &WeComError, step: &str) -> Refusal {
    let reason = match err.errcode() {
        Some(code) => format!("wecom_{step}_errcode_{code}"),
        None => format!("wecom_{step}_unavailable"),
    };
    let kind = match err.category() {
        FailureCategory::Misconfigured => PageKind::WeComMisconfigured,
        FailureCategory::Unavailable | FailureCategory::RateLimited => PageKind::WeComUnavailable,
        FailureCategory::CodeInvalid => PageKind::LoginExpired,
        FailureCategory::OutsideVisibleRange | FailureCategory::UserNotFound => {
            PageKind::OutsideVisibleRange
        }
    };
    if kind == PageKind::WeComMisconfigured || kind == PageKind::WeComUnavailable {
        tracing::error!(step, error = %err, explanation = %wecom.explain(err), "WeCom call failed");
    } else {
        tracing::warn!(step, error = %err, explanation = %wecom.explain(err), "WeCom refused the sign-in");
    }
    Refusal::new(kind, reason)
}

impl Provider {
    #[tracing::instrument(skip_all)]
    pub async fn complete_login(
        &self,
        params: &Params,
        browser_cookie: Option<&str>,
        now: UnixTime,
    ) -> Result<CallbackOutcome, StorageError> {
        let Some(state) = params.get("state") else {
            return Ok(CallbackOutcome::ShowError(
                Page::new(PageKind::BadRequest).detail("state is missing"),
            ));
        };
        // Taking the request deletes it: a replayed, forged or second delivery of this callback
        // finds nothing and can never produce a second code.
        let pending = match self
            .store
            .take_pending_request::<AuthorizationRequest>(&sha256_hex(state))
            .await
        {
            Ok(pending) => pending,
            Err(StorageError::NotFound) => {
                // Counted, not written to the audit log: anyone can send these, and a row
                // each would let them grow the database without end.
                tracing::warn!("callback with an unknown, used or expired state");
                crate::telemetry::login("refused", Some("state_unknown"));
                return Ok(CallbackOutcome::ShowError(Page::new(
                    PageKind::LoginExpired,
                )));
            }
            Err(other) => return Err(other),
        };
        let request = pending.request;
        let bound_to_this_browser = browser_cookie.is_some_and(|cookie| {
            constant_time_eq(
                sha256_hex(cookie).as_bytes(),
                pending.browser_hash.as_bytes(),
            )
        });
        // Someone else's login delivered to this browser is the login CSRF RFC 9700 §4.7 warns
        // of; an expired one is simply too late. Either way the person starts again.
        let stale = if !bound_to_this_browser {
            tracing::warn!(client_id = %request.client_id, "callback state belongs to another browser");
            Some("browser_mismatch")
        } else if pending.expires_at <= now {
            Some("state_expired")
        } else {
            None
        };
        if let Some(reason) = stale {
            self.audit(
                now,
                "sign_in",
                "refused",
                None,
                Some(&request.client_id),
                Some(reason),
            )
            .await;
            return Ok(CallbackOutcome::ShowError(Page::new(
                PageKind::LoginExpired,
            )));
        }

        let identified = match self.identify_member(params, now).await? {
            // Per-application access (oidc::access), checked before any code exists.
            Ok(profile) if !self.admits_profile(&request.client_id, &profile).await? => Err(
                Refusal::new(PageKind::NoAccessToApplication, super::access::DENIED)
                    .of(&profile.sub()),
            ),
            // OIDC Core §5.5.1: no token for another member than the `sub` the client named.
            Ok(profile)
                if request
                    .claims
                    .as_ref()
                    .and_then(|c| c.required_sub())
                    .is_some_and(|sub| sub != profile.sub()) =>
            {
                Err(
                    Refusal::new(PageKind::DifferentMember, "not_the_requested_sub")
                        .of(&profile.sub()),
                )
            }
            other => other,
        };
        match identified {
            Ok(profile) => {
                let sub = self
                    .store
                    .save_member(&profile.sub(), &profile.sub(), &profile, now)
                    .await?;
                let session_cookie = new_secret_token();
                let session = Session {
                    id_hash: sha256_hex(&session_cookie),
                    sub: sub.clone(),
                    auth_time: now,
                    expires_at: now + self.config.lifetimes.session.as_secs() as i64,
                    amr: request.login_method.amr().to_owned(),
                };
                let (code, redirect) = self.mint_code(&request, &session, &profile, now);
                let audit = super::audit_event(
                    now,
                    "sign_in",
                    "success",
                    Some(&sub),
                    Some(&request.client_id),
                    Some("wecom"),
                );
                self.store.start_session(&session, &code, &audit).await?;
                Ok(CallbackOutcome::Redirect {
                    redirect,
                    session_cookie,
                })
            }
            Err(refusal) => {
                self.audit(
                    now,
                    "sign_in",
                    "refused",
                    refusal.sub.as_deref(),
                    Some(&request.client_id),
                    Some(&refusal.reason),
                )
                .await;
                let back = request
                    .error(ErrorCode::AccessDenied, &refusal.reason, self.issuer())
                    .url();
                Ok(CallbackOutcome::ShowError(
                    Page::new(refusal.kind).back(back),
                ))
            }
        }
    }

    /// Who signed in at WeCom, as a merged profile, or why they may not sign in. Nothing is
    /// written to the store here, so a refusal leaves nothing half-done.
    async fn identify_member(
        &self,
        params: &Params,
        now: UnixTime,
    ) -> Result<Result<UserProfile, Refusal>, StorageError> {
        let Some(wecom) = &self.wecom else {
            return Ok(Err(Refusal::new(
                PageKind::NotConfigured,
                "wecom_not_configured",
            )));
        };
        // WeCom redirects with `state` only when the person cancels or is refused there.
        let Some(code) = params.get("code") else {
            return Ok(Err(Refusal::new(
                PageKind::LoginCancelled,
                "cancelled_at_wecom",
            )));
        };
        let (userid, user_ticket) = match wecom.identify(code).await {
            Ok(Identity::Member {
                userid,
                user_ticket,
            }) => (userid, user_ticket),
            Ok(Identity::NonMember { .. }) => {
                return Ok(Err(Refusal::new(PageKind::NotMember, "non_member")))
            }
            Err(err) => return Ok(Err(wecom_refusal(wecom, &err, "getuserinfo"))),
        };
        let userid_key = subject_of(&userid);
        let previous = self
            .store
            .find_member_by_userid::<UserProfile>(&userid_key)
            .await?;
        let sub = previous
            .as_ref()
            .map_or_else(|| userid_key.clone(), |stored| stored.sub.clone());
        // auth/getuserinfo answers for members outside the visible range too, so user/get is what
        // actually checks that this member may use the app.
        let member = match wecom.member(&userid).await {
            Ok(member) => member,
            Err(err) => {
                let refusal = wecom_refusal(wecom, &err, "user_get").of(&sub);
                if refusal.kind == PageKind::OutsideVisibleRange && previous.is_some() {
                    self.revoke_member(&sub, &refusal.reason, now).await?;
                }
                return Ok(Err(refusal));
            }
        };
        if let Some((kind, reason)) = status_refusal(member.status) {
            // WeCom no longer admits a member who may still hold tokens from earlier sign-ins.
            if previous.is_some() {
                self.revoke_member(&sub, reason, now).await?;
            }
            return Ok(Err(Refusal::new(kind, reason).of(&sub)));
        }
        // The sensitive fields are a bonus: failing to read them must not block the sign-in.
        let detail = match &user_ticket {
            Some(ticket) => match wecom.member_detail(ticket).await {
                Ok(detail) => Some(detail),
                Err(err) => {
                    tracing::warn!(error = %err, explanation = %wecom.explain(&err), "getuserdetail failed; keeping the stored profile");
                    None
                }
            },
            None => None,
        };
        let previous = previous.map(|stored| stored.profile);
        let groups = match current_groups(wecom, self, &member, previous.as_ref(), now).await {
            Ok(groups) => groups,
            Err(err) => return Ok(Err(wecom_refusal(wecom, &err, "groups").of(&sub))),
        };
        let profile = UserProfile::merge(&member, detail.as_ref(), groups, previous, now);
        if !profile.email_domain_allowed(&self.config.login) {
            return Ok(Err(Refusal::new(
                PageKind::DomainNotAllowed,
                "email_domain_not_allowed",
            )
            .of(&sub)));
        }
        Ok(Ok(profile))
    }
}
