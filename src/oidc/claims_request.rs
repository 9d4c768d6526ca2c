//! The `claims` request parameter (OIDC Core §5.5): individual claims asked for in the ID token
//! and/or at userinfo. Here it selects among the claims the granted scopes allow, never beyond:
//! a client registered with a minimal ID token (`id_token_profile_claims: false`) names the few
//! claims it wants in the ID token. Userinfo already answers every claim of the granted scopes,
//! so a `userinfo` member changes nothing there.
//!
//! Two requests constrain the sign-in itself (§5.5.1): a `sub` with a `value` names the one
//! member the client will accept, and an essential `acr` with `value`/`values` demands an
//! authentication context. This provider asserts no `acr` (a WeCom scan has no levels), so such
//! a demand can never be met.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest `claims` value accepted; it is stored with the request and the code.
const MAX_LEN: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimsRequest {
    /// Claim name → `null` or `{"essential": bool, "value": …, "values": […]}`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub id_token: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub userinfo: Map<String, Value>,
}

impl ClaimsRequest {
    /// §5.5: a JSON object whose `id_token` and `userinfo` members map claim names to `null` or
    /// to an object; other top-level members are ignored, as the section allows.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.len() > MAX_LEN {
            return Err("claims is too long");
        }
        let top: Map<String, Value> =
            serde_json::from_str(raw).map_err(|_| "claims must be a JSON object")?;
        let member = |name: &str| -> Result<Map<String, Value>, &'static str> {
            let requests = match top.get(name) {
                None | Some(Value::Null) => return Ok(Map::new()),
                Some(Value::Object(requests)) => requests,
                Some(_) => return Err("claims: id_token and userinfo must be objects"),
            };
            for request in requests.values() {
                let Some(request) = request.as_object() else {
                    if request.is_null() {
                        continue;
                    }
                    return Err("claims: each claim asks null or an object");
                };
                if request.get("essential").is_some_and(|e| !e.is_boolean()) {
                    return Err("claims: essential must be true or false");
                }
                if request.get("values").is_some_and(|v| !v.is_array()) {
                    return Err("claims: values must be an array");
                }
            }
            Ok(requests.clone())
        };
        Ok(Self {
            id_token: member("id_token")?,
            userinfo: member("userinfo")?,
        })
    }

    pub fn wants_in_id_token(&self, claim: &str) -> bool {
        self.id_token.contains_key(claim)
    }

    /// §5.5.1: the `sub` the client asked for by value; tokens may only be issued for that
    /// member, whether the session already exists or the person signs in now.
    pub fn required_sub(&self) -> Option<&str> {
        self.id_token.get("sub")?.get("value")?.as_str()
    }

    /// §5.5.1.1: an essential `acr` with required values. No `acr` is ever asserted here, so
    /// the outcome is a failed authentication, which the section requires the server to report.
    pub fn demands_an_acr(&self) -> bool {
        [&self.id_token, &self.userinfo].iter().any(|claims| {
            claims.get("acr").is_some_and(|acr| {
                acr.get("essential") == Some(&Value::Bool(true))
                    && (acr.get("value").is_some() || acr.get("values").is_some())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_by_value_and_an_essential_acr_are_recognised() {
        let request = ClaimsRequest::parse(
            r#"{"id_token": {"sub": {"value": "zhangsan"}, "acr": {"essential": true, "values": ["gold"]}}}"#,
        )
        .unwrap();
        assert_eq!(request.required_sub(), Some("zhangsan"));
        assert!(request.demands_an_acr());

        let voluntary = ClaimsRequest::parse(
            r#"{"id_token": {"sub": null, "acr": {"values": ["gold"]}}, "userinfo": {"acr": {"essential": true}}}"#,
        )
        .unwrap();
        assert_eq!(voluntary.required_sub(), None);
        assert!(
            !voluntary.demands_an_acr(),
            "voluntary, or no value demanded"
        );
    }

    #[test]
    fn the_parameter_is_parsed_as_oidc_core_5_5_describes() {
        let request = ClaimsRequest::parse(
            r#"{"id_token": {"email": {"essential": true}, "groups": null, "acr": {"values": ["1"]}},
                "userinfo": {"name": null}, "future": 1}"#,
        )
        .unwrap();
        assert!(request.wants_in_id_token("email") && request.wants_in_id_token("groups"));
        assert!(!request.wants_in_id_token("name"));
        assert!(request.userinfo.contains_key("name"));
        for bad in [
            "[]",
            "not json",
            r#"{"id_token": []}"#,
            r#"{"id_token": {"email": 1}}"#,
            r#"{"id_token": {"email": {"essential": "yes"}}}"#,
            r#"{"userinfo": {"name": {"values": "x"}}}"#,
        ] {
            assert!(ClaimsRequest::parse(bad).is_err(), "{bad}");
        }
    }
}
