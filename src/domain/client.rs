//! Registered clients: RFC 7591 metadata, checked when a client is created or updated.

use serde::{Deserialize, Serialize};
use url::Url;

use super::group::{self, GroupKinds};
use super::scope::ScopeSet;

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with the client secret (HS256), OIDC Core §9.
    ClientSecretJwt,
    /// A JWT signed with the client's own key (RS256 or ES256), OIDC Core §9, RFC 7523.
    PrivateKeyJwt,
    /// A public client (single-page or native app); it must use PKCE.
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::ClientSecretJwt => "client_secret_jwt",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    pub fn is_confidential(self) -> bool {
        self != AuthMethod::None
    }

    /// Whether the client gets a secret from the registry (everyone confidential but the
    /// holders of a private key).
    pub fn uses_secret(self) -> bool {
        self.is_confidential() && self != AuthMethod::PrivateKeyJwt
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    /// The device authorization grant (RFC 8628 §3.4); `device_code` is accepted as a short name.
    #[serde(
        rename = "urn:ietf:params:oauth:grant-type:device_code",
        alias = "device_code"
    )]
    DeviceCode,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::DeviceCode => DEVICE_CODE_GRANT,
        }
    }
}

/// The grant type URN of RFC 8628 §3.4.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A registration or update request as the admin API and the CLI receive it (RFC 7591 names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    pub client_name: String,
    /// Required unless the client uses only the device grant (a CLI has no redirect).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    #[serde(default)]
    pub grant_types: Option<Vec<GrantType>>,
    /// Only `["code"]` is supported; accepted so that RFC 7591 documents can be posted as they are.
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    /// The scopes the client may ask for; every supported scope when absent.
    #[serde(default)]
    pub scope: Option<String>,
    /// Require PKCE S256 even though the client is confidential (always required when public).
    #[serde(default)]
    pub require_pkce: Option<bool>,
    /// Put the profile claims its scopes grant into the ID token too, not only into userinfo
    /// (Grafana, Argo CD, oauth2-proxy and Harbor read the ID token). Default true; false gives a
    /// minimal ID token.
    #[serde(default)]
    pub id_token_profile_claims: Option<bool>,
    /// Issue a refresh token even when `offline_access` was not requested.
    #[serde(default)]
    pub always_issue_refresh_token: Option<bool>,
    /// Where logout tokens are posted (OpenID Connect Back-Channel Logout 1.0 §2.2).
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// Every logout token must carry `sid` (BCL §2.2).
    #[serde(default)]
    pub backchannel_logout_session_required: Option<bool>,
    /// Group values (`domain::group`) of which a member must hold one to sign in to this client;
    /// a department path also admits its sub-departments. Absent or empty: everyone in range.
    #[serde(default)]
    pub allowed_groups: Option<Vec<String>>,
    /// Which kinds the `groups` claim carries for this client (`paths`, `names`, `ids`, `tags`),
    /// overriding GROUPS_CLAIM.
    #[serde(default)]
    pub groups_claim: Option<Vec<String>>,
    /// Prefixes: only group values starting with one of them are sent to this client.
    #[serde(default)]
    pub groups_filter: Option<Vec<String>>,
    /// The client's public keys for `private_key_jwt` (a JWK Set, RFC 7591 §2).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWK Set for `private_key_jwt`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// Metadata as stored and served; the result of a checked `ClientRegistration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub scope: String,
    pub require_pkce: bool,
    pub id_token_profile_claims: bool,
    pub always_issue_refresh_token: bool,
    /// Absent from documents stored before back-channel logout existed, hence the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    // The fields below came later: `default` lets rows stored before them load unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups_filter: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
}

/// A refused registration, with the RFC 7591 §3.2.2 error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataError {
    pub error: &'static str,
    pub description: String,
}

fn invalid_metadata(description: impl Into<String>) -> MetadataError {
    MetadataError {
        error: "invalid_client_metadata",
        description: description.into(),
    }
}

fn invalid_redirect(description: impl Into<String>) -> MetadataError {
    MetadataError {
        error: "invalid_redirect_uri",
        description: description.into(),
    }
}

const MAX_URIS: usize = 20;
const MAX_URI_LEN: usize = 2000;

/// True for `localhost`, `127.0.0.0/8` and `[::1]`.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Absolute, no fragment (RFC 6749 §3.1.2), no wildcard, `https` unless the host is loopback
/// (RFC 8252 §7.3); matched byte for byte later, so it is kept exactly as given.
pub fn check_redirect_uri(field: &str, raw: &str) -> Result<(), MetadataError> {
    if raw.len() > MAX_URI_LEN {
        return Err(invalid_redirect(format!(
            "{field}: longer than {MAX_URI_LEN} characters"
        )));
    }
    let url = Url::parse(raw)
        .map_err(|e| invalid_redirect(format!("{field}: {raw:?} is not an absolute URL ({e})")))?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(invalid_redirect(format!(
            "{field}: {raw:?} must not contain a fragment"
        )));
    }
    if raw.contains('*') {
        return Err(invalid_redirect(format!(
            "{field}: {raw:?}: wildcards are not allowed"
        )));
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid_redirect(format!(
            "{field}: {raw:?} must name a host and carry no credentials"
        )));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        _ => Err(invalid_redirect(format!(
            "{field}: {raw:?} must use https (http is allowed only for localhost, 127.0.0.1 and [::1])"
        ))),
    }
}

impl ClientRegistration {
    /// Checks every field and fills in the defaults.
    pub fn into_metadata(self) -> Result<ClientMetadata, MetadataError> {
        let client_name = self.client_name.trim().to_owned();
        if client_name.is_empty() || client_name.chars().count() > 200 {
            return Err(invalid_metadata("client_name must be 1 to 200 characters"));
        }
        let mut grant_types = self
            .grant_types
            .unwrap_or_else(|| vec![GrantType::AuthorizationCode, GrantType::RefreshToken]);
        grant_types.dedup();
        if !grant_types.contains(&GrantType::AuthorizationCode)
            && !grant_types.contains(&GrantType::DeviceCode)
        {
            return Err(invalid_metadata(
                "grant_types must include authorization_code or urn:ietf:params:oauth:grant-type:device_code (the ways to start a grant here)",
            ));
        }
        // A device-only client never redirects anywhere: it polls the token endpoint.
        if self.redirect_uris.is_empty() && grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(invalid_redirect("redirect_uris must hold at least one URI"));
        }
        if self.redirect_uris.len() > MAX_URIS || self.post_logout_redirect_uris.len() > MAX_URIS {
            return Err(invalid_metadata(format!(
                "at most {MAX_URIS} URIs per list"
            )));
        }
        for uri in &self.redirect_uris {
            check_redirect_uri("redirect_uris", uri)?;
        }
        for uri in &self.post_logout_redirect_uris {
            check_redirect_uri("post_logout_redirect_uris", uri)?;
        }
        // BCL §2.2: an absolute URL, https unless on loopback, no fragment; a query is allowed.
        // The redirect-URI rules are exactly these, but its error code is the general one.
        if let Some(uri) = &self.backchannel_logout_uri {
            check_redirect_uri("backchannel_logout_uri", uri).map_err(|e| MetadataError {
                error: "invalid_client_metadata",
                ..e
            })?;
        }
        let auth_method = self
            .token_endpoint_auth_method
            .unwrap_or(AuthMethod::ClientSecretBasic);
        if let Some(types) = &self.response_types {
            if types.iter().any(|t| t != "code") {
                return Err(invalid_metadata(
                    "response_types: only \"code\" is supported",
                ));
            }
        }
        let scope = match self.scope {
            None => ScopeSet::all(),
            Some(raw) => {
                let (set, unknown) = ScopeSet::parse(&raw);
                if !unknown.is_empty() {
                    return Err(invalid_metadata(format!(
                        "scope: unsupported scopes {}",
                        unknown.join(" ")
                    )));
                }
                if !set.contains(super::Scope::OpenId) {
                    return Err(invalid_metadata("scope must include openid"));
                }
                set
            }
        };
        let allowed_groups = self.allowed_groups.unwrap_or_default();
        if allowed_groups.len() > MAX_GROUP_VALUES {
            return Err(invalid_metadata(format!(
                "allowed_groups: at most {MAX_GROUP_VALUES} values"
            )));
        }
        if let Some(bad) = allowed_groups.iter().find(|g| !group::is_well_formed(g)) {
            return Err(invalid_metadata(format!(
                "allowed_groups: {bad:?} is not a group value (a department path such as 研发部/平台组 with / inside a name written \\/, or tag:NAME, dept:NAME, deptid:ID)"
            )));
        }
        let groups_claim = match self.groups_claim {
            None => None,
            Some(kinds) => {
                GroupKinds::parse(&kinds.join(","))
                    .map_err(|e| invalid_metadata(format!("groups_claim: {e}")))?;
                Some(
                    kinds
                        .iter()
                        .map(|k| k.trim().to_ascii_lowercase())
                        .collect(),
                )
            }
        };
        let groups_filter = self.groups_filter.unwrap_or_default();
        if groups_filter.len() > MAX_GROUP_VALUES || groups_filter.iter().any(String::is_empty) {
            return Err(invalid_metadata(format!(
                "groups_filter: 1 to {MAX_GROUP_VALUES} non-empty prefixes"
            )));
        }
        if auth_method == AuthMethod::PrivateKeyJwt {
            match (&self.jwks, &self.jwks_uri) {
                (Some(jwks), None) => {
                    if !jwks.get("keys").is_some_and(serde_json::Value::is_array) {
                        return Err(invalid_metadata(
                            "jwks must be a JWK Set: {\"keys\": [...]}",
                        ));
                    }
                }
                (None, Some(uri)) => check_jwks_uri(uri)?,
                // RFC 7591 §2: jwks and jwks_uri MUST NOT both be present.
                _ => {
                    return Err(invalid_metadata(
                        "private_key_jwt needs exactly one of jwks or jwks_uri",
                    ))
                }
            }
        } else if self.jwks.is_some() || self.jwks_uri.is_some() {
            return Err(invalid_metadata(
                "jwks and jwks_uri are only used with token_endpoint_auth_method private_key_jwt",
            ));
        }
        Ok(ClientMetadata {
            client_name,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            token_endpoint_auth_method: auth_method,
            grant_types,
            response_types: vec!["code".to_owned()],
            scope: scope.to_string(),
            require_pkce: self.require_pkce.unwrap_or(false) || !auth_method.is_confidential(),
            id_token_profile_claims: self.id_token_profile_claims.unwrap_or(true),
            always_issue_refresh_token: self.always_issue_refresh_token.unwrap_or(false),
            backchannel_logout_uri: self.backchannel_logout_uri,
            backchannel_logout_session_required: self
                .backchannel_logout_session_required
                .unwrap_or(false),
            allowed_groups,
            groups_claim,
            groups_filter,
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
        })
    }
}

const MAX_GROUP_VALUES: usize = 100;

/// https (or http on loopback, for development), like redirect URIs.
fn check_jwks_uri(raw: &str) -> Result<(), MetadataError> {
    let url = Url::parse(raw)
        .map_err(|e| invalid_metadata(format!("jwks_uri: {raw:?} is not a URL ({e})")))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        _ => Err(invalid_metadata(format!(
            "jwks_uri: {raw:?} must use https (http only for localhost)"
        ))),
    }
}

/// A client as the store holds it.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    /// argon2id PHC string; `None` for public clients.
    pub secret_hash: Option<String>,
    pub metadata: ClientMetadata,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RegisteredClient {
    /// Exact, byte-for-byte comparison (RFC 9700 §4.1.3; OIDC Core §3.1.2.1 "Simple String
    /// Comparison").
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.metadata.redirect_uris.iter().any(|u| u == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.metadata
            .post_logout_redirect_uris
            .iter()
            .any(|u| u == uri)
    }

    pub fn allowed_scopes(&self) -> ScopeSet {
        ScopeSet::parse(&self.metadata.scope).0
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.metadata.grant_types.contains(&grant)
    }

    /// The kinds of group values this client receives: its own `groups_claim`, else GROUPS_CLAIM.
    pub fn group_kinds(&self, default: GroupKinds) -> GroupKinds {
        self.metadata
            .groups_claim
            .as_ref()
            .and_then(|kinds| GroupKinds::parse(&kinds.join(",")).ok())
            .unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(uris: &[&str]) -> ClientRegistration {
        ClientRegistration {
            client_name: "grafana".into(),
            redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            post_logout_redirect_uris: vec![],
            token_endpoint_auth_method: None,
            grant_types: None,
            response_types: None,
            scope: None,
            require_pkce: None,
            id_token_profile_claims: None,
            always_issue_refresh_token: None,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: None,
            allowed_groups: None,
            groups_claim: None,
            groups_filter: None,
            jwks: None,
            jwks_uri: None,
        }
    }

    #[test]
    fn redirect_uri_rules() {
        for ok in [
            "https://grafana.example.com/login/generic_oauth",
            "http://localhost:3000/cb",
            "http://127.0.0.1/cb?x=1",
            "http://[::1]:8000/cb",
        ] {
            assert!(
                registration(&[ok]).into_metadata().is_ok(),
                "{ok} should pass"
            );
        }
        for bad in [
            "/relative",
            "https://example.com/cb#frag",
            "https://*.example.com/cb",
            "http://example.com/cb",
            "javascript:alert(1)",
            "https://user:pw@example.com/cb",
        ] {
            let err = registration(&[bad]).into_metadata().unwrap_err();
            assert_eq!(err.error, "invalid_redirect_uri", "{bad} should fail");
        }
    }

    #[test]
    fn backchannel_logout_uri_follows_the_redirect_uri_rules() {
        for ok in [
            "https://rp.example.com/bcl?tenant=1",
            "http://127.0.0.1:8000/bcl",
        ] {
            let mut reg = registration(&["https://app.example.com/cb"]);
            reg.backchannel_logout_uri = Some(ok.into());
            let metadata = reg.into_metadata().unwrap();
            assert_eq!(metadata.backchannel_logout_uri.as_deref(), Some(ok));
            assert!(!metadata.backchannel_logout_session_required);
        }
        for bad in [
            "/bcl",
            "http://rp.example.com/bcl",
            "https://rp.example.com/bcl#x",
        ] {
            let mut reg = registration(&["https://app.example.com/cb"]);
            reg.backchannel_logout_uri = Some(bad.into());
            let err = reg.into_metadata().unwrap_err();
            assert_eq!(err.error, "invalid_client_metadata", "{bad} should fail");
            assert!(err.description.contains("backchannel_logout_uri"), "{bad}");
        }
    }

    #[test]
    fn metadata_stored_before_backchannel_logout_still_reads() {
        let mut doc = serde_json::to_value(
            registration(&["https://app.example.com/cb"])
                .into_metadata()
                .unwrap(),
        )
        .unwrap();
        doc.as_object_mut()
            .unwrap()
            .remove("backchannel_logout_session_required");
        let metadata: ClientMetadata = serde_json::from_value(doc).unwrap();
        assert_eq!(metadata.backchannel_logout_uri, None);
        assert!(!metadata.backchannel_logout_session_required);
    }

    #[test]
    fn public_clients_always_require_pkce() {
        let mut reg = registration(&["https://app.example.com/cb"]);
        reg.token_endpoint_auth_method = Some(AuthMethod::None);
        assert!(reg.into_metadata().unwrap().require_pkce);
    }
}
