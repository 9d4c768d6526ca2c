//! The discovery document (OIDC Discovery 1.0 §3, RFC 8414), built once at start-up.

use serde_json::{json, Value};

use crate::config::{Config, SigningAlg};
use crate::domain::Scope;

use super::endpoints;

/// Claims this provider can release, besides the ID token's own.
fn claims_supported() -> Vec<&'static str> {
    let mut claims = vec![
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "azp",
        "sid",
    ];
    for scope in Scope::ALL {
        for claim in scope.claims() {
            if !claims.contains(claim) {
                claims.push(claim);
            }
        }
    }
    claims
}

pub fn document(config: &Config, signing_algs: &[SigningAlg]) -> Value {
    let issuer = &config.issuer;
    let authenticated_methods = [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ];
    let assertion_algs = crate::keys::client_jwt::ASSERTION_ALGS;
    json!({
        "issuer": issuer.as_str(),
        "authorization_endpoint": issuer.endpoint(endpoints::AUTHORIZE_PATH),
        "token_endpoint": issuer.endpoint(endpoints::TOKEN_PATH),
        "userinfo_endpoint": issuer.endpoint(endpoints::USERINFO_PATH),
        "jwks_uri": issuer.endpoint(endpoints::JWKS_PATH),
        "revocation_endpoint": issuer.endpoint(endpoints::REVOKE_PATH),
        "introspection_endpoint": issuer.endpoint(endpoints::INTROSPECT_PATH),
        "end_session_endpoint": issuer.endpoint(endpoints::LOGOUT_PATH),
        "scopes_supported": Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "device_authorization_endpoint": issuer.endpoint(endpoints::DEVICE_AUTHORIZATION_PATH),
        "grant_types_supported": ["authorization_code", "refresh_token", crate::domain::client::DEVICE_CODE_GRANT],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algs.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": authenticated_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": authenticated_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims_supported(),
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": ["zh-CN", "en"],
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}
