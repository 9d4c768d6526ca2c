//! Responses sent back to a client's verified redirect URI, as a query string or a form post
//! (OAuth 2.0 Form Post Response Mode).

use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    #[default]
    Query,
    FormPost,
}

impl ResponseMode {
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw {
            None | Some("query") => Ok(ResponseMode::Query),
            Some("form_post") => Ok(ResponseMode::FormPost),
            Some(other) => Err(format!(
                "response_mode {other:?} is not supported; use query or form_post"
            )),
        }
    }
}

/// A response to deliver to a redirect URI that has been matched against the client's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRedirect {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub params: Vec<(String, String)>,
}

impl ClientRedirect {
    pub fn new(redirect_uri: &str, mode: ResponseMode) -> Self {
        Self {
            redirect_uri: redirect_uri.to_owned(),
            mode,
            params: Vec::new(),
        }
    }

    pub fn with(mut self, name: &str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            self.params.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// The redirect URI with the parameters appended to any query it already has (RFC 6749 §3.1.2:
    /// the query component MUST be retained).
    pub fn url(&self) -> String {
        match Url::parse(&self.redirect_uri) {
            Ok(mut url) => {
                url.query_pairs_mut().extend_pairs(&self.params);
                url.to_string()
            }
            // Registered URIs were parsed at registration; this cannot happen for them.
            Err(_) => self.redirect_uri.clone(),
        }
    }
}
