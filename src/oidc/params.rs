//! Request parameters as a map, refusing repeats (RFC 6749 §3.1 and §3.2: "Request and response
//! parameters MUST NOT be included more than once").

use std::collections::HashMap;

#[derive(Debug, Default, Clone)]
pub struct Params {
    values: HashMap<String, String>,
    repeated: Vec<String>,
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query string or a form body).
    pub fn parse(encoded: &[u8]) -> Self {
        let mut params = Params::default();
        for (key, value) in url::form_urlencoded::parse(encoded) {
            if params.values.contains_key(key.as_ref()) {
                params.repeated.push(key.into_owned());
            } else {
                params.values.insert(key.into_owned(), value.into_owned());
            }
        }
        params
    }

    /// The value, with an empty value treated as absent (OIDC Core §3.1.2.1 / RFC 6749 §3.1:
    /// "Parameters sent without a value MUST be treated as if they were omitted").
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|r| r == name)
    }

    /// The first repeated parameter, if any.
    pub fn first_repeated(&self) -> Option<&str> {
        self.repeated.first().map(String::as_str)
    }
}
