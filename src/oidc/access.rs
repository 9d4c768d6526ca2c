//! Per-application access: a client registered with `allowed_groups` admits only the members
//! holding one of those group values. Checked wherever a code is issued (WeCom callback and SSO
//! reuse) and at every refresh, so that removing someone from a group ends their access at the
//! next token the application asks for.

use crate::clock::UnixTime;
use crate::domain::{group, ClientMetadata, RegisteredClient};
use crate::pages::{Page, PageKind};
use crate::storage::StorageError;

use super::profile::UserProfile;
use super::{AuthorizationRequest, ErrorCode, OAuthError, Provider};

/// The audit reason of a refusal.
pub const DENIED: &str = "not_in_allowed_groups";

/// Whether a member holding `groups` may sign in to the client. `None` (groups never resolved,
/// or stored in the old ambiguous format) admits nobody a restricted client needs to check.
pub fn admits(metadata: &ClientMetadata, groups: Option<&[String]>) -> bool {
    if metadata.allowed_groups.is_empty() {
        return true;
    }
    let Some(held) = groups else {
        return false;
    };
    metadata
        .allowed_groups
        .iter()
        .any(|allowed| held.iter().any(|value| group::admits(allowed, value)))
}

impl Provider {
    /// [`admits`] for a profile just read from WeCom, before a code is issued for `client_id`.
    pub async fn admits_profile(
        &self,
        client_id: &str,
        profile: &UserProfile,
    ) -> Result<bool, StorageError> {
        match self.sign_in_client(client_id).await {
            Ok(client) => Ok(admits(&client.metadata, profile.current_groups())),
            // Deleted while the person was at WeCom: nothing to sign in to.
            Err(StorageError::NotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// The refusal page, with the link back carrying `error=access_denied` and `state`, after
    /// the audit row.
    pub async fn refuse_access(
        &self,
        request: &AuthorizationRequest,
        sub: &str,
        now: UnixTime,
    ) -> Page {
        self.audit_access_refused(&request.client_id, sub, now)
            .await;
        let back = request
            .error(ErrorCode::AccessDenied, DENIED, self.issuer())
            .url();
        Page::new(PageKind::NoAccessToApplication).back(back)
    }

    /// At refresh: `invalid_grant` (RFC 6749 §5.2) once the member, whose stored profile is
    /// `profile` (`None`: there is none, refused by a restricted client), is no longer admitted.
    pub async fn check_refresh_access(
        &self,
        client: &RegisteredClient,
        sub: &str,
        profile: Option<&UserProfile>,
        now: UnixTime,
    ) -> Result<(), OAuthError> {
        if admits(
            &client.metadata,
            profile.and_then(UserProfile::current_groups),
        ) {
            return Ok(());
        }
        self.audit_access_refused(&client.client_id, sub, now).await;
        Err(OAuthError::invalid_grant(
            "the user no longer has access to this application",
        ))
    }

    async fn audit_access_refused(&self, client_id: &str, sub: &str, now: UnixTime) {
        tracing::info!(client_id, "member not in the client's allowed_groups");
        self.audit(
            now,
            "sign_in",
            "refused",
            Some(sub),
            Some(client_id),
            Some(DENIED),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ClientRegistration;

    fn metadata(allowed: &[&str]) -> ClientMetadata {
        let registration: ClientRegistration = serde_json::from_value(serde_json::json!({
            "client_name": "app",
            "redirect_uris": ["https://app.example.com/cb"],
            "allowed_groups": allowed,
        }))
        .unwrap();
        registration.into_metadata().unwrap()
    }

    #[test]
    fn allowed_groups_admit_subdepartments_and_exact_tags_only() {
        let restricted = metadata(&["总部/研发部", "tag:SRE"]);
        let held = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        let cases: [(&[&str], bool, &str); 6] = [
            (&["总部/研发部/平台组"], true, "sub-department"),
            (&["总部/研发部"], true, "the department itself"),
            (&["tag:SRE"], true, "the tag"),
            (&["总部/销售部", "tag:SRE2"], false, "outsider"),
            (
                &["tag:总部/研发部"],
                false,
                "a tag named like the department",
            ),
            (&[], false, "no groups"),
        ];
        for (values, expected, case) in cases {
            assert_eq!(admits(&restricted, Some(&held(values))), expected, "{case}");
        }
        assert!(!admits(&restricted, None), "groups of an old row");
        assert!(admits(&metadata(&[]), None), "an unrestricted client");
    }
}
