//! A WeCom JSON answer read leniently: every field is untrusted input, numbers may arrive as
//! strings, and a withheld field may be absent, `""` or null — all of which read as "not there".

use serde_json::{Map, Value};

use super::WeComError;

/// The top-level object of one answer.
#[derive(Debug, Clone, Default)]
pub(super) struct Answer(Map<String, Value>);

/// Longest id (userid, openid) accepted; WeCom documents ≤64 bytes, interconnected corps prefix
/// the corp id, and anything far beyond that is not an id WeCom sent.
const MAX_ID_BYTES: usize = 256;

impl Answer {
    /// Parses a body; a body that is not a JSON object is no API answer.
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, WeComError> {
        // serde_json's message names a position, never the content, so it is safe to keep.
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(WeComError::InvalidResponse(
                "the answer is JSON but not an object".into(),
            )),
            Err(e) => Err(WeComError::InvalidResponse(format!("not JSON ({e})"))),
        }
    }

    #[cfg(test)]
    pub(super) fn from_value(value: Value) -> Self {
        match value {
            Value::Object(map) => Self(map),
            _ => Self::default(),
        }
    }

    /// WeCom's verdict: success when `errcode` is absent, null or 0 [wecom-api.md §9]. Very old
    /// answers sent it as a string; anything else unreadable is an invalid answer, never a guess.
    pub(super) fn errcode(&self) -> Result<i64, WeComError> {
        match self.0.get("errcode") {
            None | Some(Value::Null) => Ok(0),
            Some(value) => match number(value) {
                Some(code) => Ok(code),
                None if value.as_str().is_some_and(|s| s.trim().is_empty()) => Ok(0),
                None => Err(WeComError::InvalidResponse(
                    "errcode is not a number".into(),
                )),
            },
        }
    }

    pub(super) fn errmsg(&self) -> String {
        self.0
            .get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// A non-blank string under the first of `keys` that has one (legacy APIs capitalise keys).
    pub(super) fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|key| text(self.0.get(*key)?))
    }

    /// Like [`Answer::text`], for ids that become identifiers downstream: also refuses control
    /// characters and absurd lengths.
    pub(super) fn id(&self, keys: &[&str]) -> Option<String> {
        self.text(keys).filter(|id| is_plausible_id(id))
    }

    pub(super) fn number(&self, key: &str) -> Option<i64> {
        number(self.0.get(key)?)
    }

    /// The items of an array field; an absent or non-array field reads as empty.
    pub(super) fn items(&self, key: &str) -> &[Value] {
        self.0
            .get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether `key` holds an array at all (an answer without its main list is invalid).
    pub(super) fn has_array(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(Value::is_array)
    }
}

/// A trimmed, non-empty string.
pub(super) fn text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An integer sent as a number or as a decimal string.
pub(super) fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            // `1.0` is still an integer; anything fractional or huge is not.
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn is_plausible_id(id: &str) -> bool {
    id.len() <= MAX_ID_BYTES && !id.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(value: Value) -> Answer {
        Answer::from_value(value)
    }

    #[test]
    fn errcode_is_read_leniently() {
        let cases = [
            (json!({"errcode": 42001}), Some(42001)),
            (json!({"errcode": "40029"}), Some(40029)),
            (json!({"errcode": " -1 "}), Some(-1)),
            (json!({"errcode": 0.0}), Some(0)),
            (json!({"errcode": null}), Some(0)),
            (json!({"errcode": ""}), Some(0)),
            (json!({"userid": "x"}), Some(0)),
            (json!({"errcode": "busy"}), None),
            (json!({"errcode": true}), None),
            (json!({"errcode": 1.5}), None),
        ];
        for (body, expected) in cases {
            assert_eq!(answer(body.clone()).errcode().ok(), expected, "{body}");
        }
    }

    #[test]
    fn only_json_objects_are_answers() {
        assert!(Answer::parse(br#"{"errcode":0}"#).is_ok());
        for body in [&b"<html>502</html>"[..], b"[]", b"\"ok\"", b""] {
            assert!(matches!(
                Answer::parse(body),
                Err(WeComError::InvalidResponse(_))
            ));
        }
    }

    #[test]
    fn blank_and_null_strings_are_absent() {
        let a = answer(json!({"a": "", "b": "  ", "c": null, "d": 7, "e": " x "}));
        for key in ["a", "b", "c", "d", "missing"] {
            assert_eq!(a.text(&[key]), None, "{key}");
        }
        assert_eq!(a.text(&["a", "e"]).as_deref(), Some("x"));
    }

    #[test]
    fn ids_with_control_characters_or_absurd_length_are_refused() {
        let long = "a".repeat(MAX_ID_BYTES + 1);
        let a = answer(json!({"ok": "ZhangSan", "ctl": "a\nb", "long": long}));
        assert_eq!(a.id(&["ok"]).as_deref(), Some("ZhangSan"));
        assert_eq!(a.id(&["ctl"]), None);
        assert_eq!(a.id(&["long"]), None);
    }
}
