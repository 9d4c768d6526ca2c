//! The WeCom callback: find the sign-in it completes (`login_state`), learn who signed in from
//! the WeCom API, admit or refuse them, keep their profile, open the SSO session, consume the
//! state and issue the code.

use crate::clock::UnixTime;
use crate::crypto::{new_secret_token, sha256_hex};
use crate::pages::{Page, PageKind};
use crate::storage::{ConsumedState, Session, SignIn, StorageError};
use crate::wecom::{FailureCategory, Identity, WeComClient, WeComError};

use super::login_state::Unparked;
use super::membership::{current_groups, status_refusal, Gone};
use super::profile::{subject_of, UserProfile};
use super::{ClientRedirect, ErrorCode, Params, Provider};

/// The cookies the callback reads: the sealed sign-in named after the state (`login_state`),
/// and the browser's binding cookie for a sign-in kept as a row.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallbackCookies<'a> {
    pub login_cookie: Option<&'a str>,
    pub browser_cookie: Option<&'a str>,
}

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
        cookies: CallbackCookies<'_>,
        now: UnixTime,
    ) -> Result<CallbackOutcome, StorageError> {
        let CallbackCookies {
            login_cookie,
            browser_cookie,
        } = cookies;
        let Some(state) = params.get("state") else {
            return Ok(CallbackOutcome::ShowError(
                Page::new(PageKind::BadRequest).detail("state is missing"),
            ));
        };
        let (request, request_expires_at) = match self
            .unpark_request(state, login_cookie, browser_cookie, now)
            .await?
        {
            Unparked::Found {
                request,
                expires_at,
            } => (request, expires_at),
            Unparked::Unknown => {
                // Counted, not written to the audit log: anyone can send these, and a row
                // each would let them grow the database without end.
                tracing::warn!("callback with an unknown, used or expired state");
                crate::telemetry::login("refused", Some("state_unknown"));
                return Ok(CallbackOutcome::ShowError(Page::new(
                    PageKind::LoginExpired,
                )));
            }
            // Not audited either: a sealed request can be sent again and again once expired.
            Unparked::Expired(request) => {
                tracing::info!(client_id = %request.client_id, "callback after the sign-in expired");
                crate::telemetry::login("refused", Some("state_expired"));
                return Ok(CallbackOutcome::ShowError(Page::new(
                    PageKind::LoginExpired,
                )));
            }
            // Someone else's login delivered to this browser is the login CSRF RFC 9700 §4.7
            // warns of. Taking the stored request deleted it, so this is audited once at most.
            Unparked::OtherBrowser(request) => {
                tracing::warn!(client_id = %request.client_id, "callback state belongs to another browser");
                self.audit(
                    now,
                    "sign_in",
                    "refused",
                    None,
                    Some(&request.client_id),
                    Some("browser_mismatch"),
                )
                .await;
                return Ok(CallbackOutcome::ShowError(Page::new(
                    PageKind::LoginExpired,
                )));
            }
        };

        let identified = match self.identify_member(params, now).await? {
            // Per-application access (oidc::access), checked before any code exists.
            Ok((profile, _)) if !self.admits_profile(&request.client_id, &profile).await? => Err(
                Refusal::new(PageKind::NoAccessToApplication, super::access::DENIED)
                    .of(&profile.sub()),
            ),
            other => other,
        };
        let identified = match identified {
            // A member seen before gets their profile updated in the session's own statement
            // below; a first sign-in's row is written first, for its `sub`.
            Ok((profile, Some(sub))) => Ok((profile, sub, true)),
            Ok((profile, None)) => {
                let sub = self
                    .store
                    .save_member(&profile.sub(), &profile.sub(), &profile, now)
                    .await?;
                Ok((profile, sub, false))
            }
            Err(refusal) => Err(refusal),
        };
        let identified = match identified {
            // OIDC Core §5.5.1: no token for another member than the `sub` the client named,
            // compared with the member's stored `sub` (which a renamed or later holder of a
            // userid does not share with the userid).
            Ok((_, sub, _))
                if request
                    .claims
                    .as_ref()
                    .and_then(|c| c.required_sub())
                    .is_some_and(|required| required != sub) =>
            {
                Err(Refusal::new(PageKind::DifferentMember, "not_the_requested_sub").of(&sub))
            }
            other => other,
        };
        match identified {
            Ok((profile, sub, seen_before)) => {
                let profile_update = seen_before.then_some(&profile);
                let session_cookie = new_secret_token();
                let session = Session {
                    id_hash: sha256_hex(&session_cookie),
                    sub: sub.clone(),
                    auth_time: now,
                    expires_at: now + self.config.lifetimes.session.as_secs() as i64,
                    amr: request.login_method.amr().to_owned(),
                };
                // A device sign-in goes on to its approval page; the grant waits for the
                // person's answer there (`device`), so no code is issued.
                let (code, redirect) = match request.device {
                    Some(_) => (None, request.reply()),
                    None => {
                        let (code, redirect) = self.mint_code(&request, &session, &profile, now);
                        (Some(code), redirect)
                    }
                };
                let audit = super::audit_event(
                    now,
                    "sign_in",
                    "success",
                    Some(&sub),
                    Some(&request.client_id),
                    Some("wecom"),
                );
                let state_hash = sha256_hex(state);
                let consumed = ConsumedState {
                    state_hash: &state_hash,
                    expires_at: request_expires_at,
                };
                let sign_in = SignIn {
                    state: consumed,
                    profile_update,
                    session: &session,
                    code: code.as_ref(),
                    audit: &audit,
                };
                match self.store.start_session(&sign_in).await {
                    Ok(()) => {}
                    // The state was consumed by an earlier delivery of this callback: nothing
                    // of this one was written.
                    Err(StorageError::Conflict) => {
                        tracing::warn!(client_id = %request.client_id, "callback replayed with its sign-in cookie");
                        crate::telemetry::login("refused", Some("state_used"));
                        return Ok(CallbackOutcome::ShowError(Page::new(
                            PageKind::LoginExpired,
                        )));
                    }
                    Err(other) => return Err(other),
                }
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
                let page = Page::new(refusal.kind);
                // A device has no redirect to go back to: the terminal learns of the refusal
                // by polling until the code expires.
                if request.device.is_some() {
                    return Ok(CallbackOutcome::ShowError(page));
                }
                let back = request
                    .error(ErrorCode::AccessDenied, &refusal.reason, self.issuer())
                    .url();
                Ok(CallbackOutcome::ShowError(page.back(back)))
            }
        }
    }

    /// Who signed in at WeCom, as a merged profile with the `sub` of their stored row (`None` on
    /// a first sign-in), or why they may not sign in. Nothing is written to the store here, so a
    /// refusal leaves nothing half-done.
    async fn identify_member(
        &self,
        params: &Params,
        now: UnixTime,
    ) -> Result<Result<(UserProfile, Option<String>), Refusal>, StorageError> {
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
                // Outside the visible range, the member loses access; with no such userid
                // (60111), the binding of the userid to their `sub` ends as well.
                if let (Some(gone), Some(_)) = (Gone::of(&err), &previous) {
                    self.member_gone(&sub, gone, now).await?;
                }
                return Ok(Err(wecom_refusal(wecom, &err, "user_get").of(&sub)));
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
        let (stored_sub, previous) = match previous {
            Some(stored) => (Some(stored.sub), Some(stored.profile)),
            None => (None, None),
        };
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
        Ok(Ok((profile, stored_sub)))
    }
}
