//! App messages (`message/send`, wecom-api.md §10): a `textcard` to one member, for approval
//! links such as a device sign-in's.

use reqwest::Method;
use serde_json::json;

use super::{WeComClient, WeComError};

/// WeCom's 81013: none of the recipients can be reached (unknown, disabled, outside the visible
/// range).
const ALL_RECIPIENTS_INVALID: i64 = 81013;

/// Whether `userid` names exactly one member as WeCom spells userids (letters, digits and
/// `_-@.`, at most 64 bytes; `/` for an interconnected corporation's `CorpId/userid`). `touser`
/// also takes `a|b|c` and `@all`, so anything else handed to it from outside could message many
/// people, or the whole company, at once.
pub fn is_one_member(userid: &str) -> bool {
    (1..=64).contains(&userid.len())
        && !userid.starts_with('@')
        && userid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@' | b'.' | b'/'))
}

/// A card with a title, a few lines and a link opened in the WeCom client's browser.
#[derive(Debug, Clone)]
pub struct TextCard {
    /// At most 128 bytes (WeCom truncates beyond).
    pub title: String,
    /// At most 512 bytes.
    pub description: String,
    pub url: String,
    /// The button's label, at most 4 characters.
    pub button: String,
}

/// Whether the message reached the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// WeCom would not deliver to them (unknown, disabled, outside the app's visible range).
    NotReachable,
}

impl WeComClient {
    /// `POST /cgi-bin/message/send`: `card` to `userid`, from this app. A `userid` that is not
    /// one member ([`is_one_member`]) is not sent at all.
    #[tracing::instrument(name = "wecom.send_textcard", skip_all, fields(userid = %userid))]
    pub async fn send_textcard(
        &self,
        userid: &str,
        card: &TextCard,
    ) -> Result<Delivery, WeComError> {
        if !is_one_member(userid) {
            return Ok(Delivery::NotReachable);
        }
        // The agent id is a number in the body (§10); the config checked it is all digits.
        let agent_id: i64 = self.inner.agent_id.parse().unwrap_or_default();
        let body = json!({
            "touser": userid,
            "msgtype": "textcard",
            "agentid": agent_id,
            "textcard": {
                "title": truncate(&card.title, 128),
                "description": truncate(&card.description, 512),
                "url": card.url,
                "btntxt": card.button,
            },
        });
        match self
            .call(Method::POST, "/cgi-bin/message/send", &[], Some(&body), &[])
            .await
        {
            Ok(answer) => {
                let refused = answer.text(&["invaliduser"]).unwrap_or_default();
                Ok(
                    if refused.split('|').any(|u| u.eq_ignore_ascii_case(userid)) {
                        Delivery::NotReachable
                    } else {
                        Delivery::Sent
                    },
                )
            }
            Err(err) if err.errcode() == Some(ALL_RECIPIENTS_INVALID) => Ok(Delivery::NotReachable),
            Err(err) => Err(err),
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::{is_one_member, truncate};

    #[test]
    fn only_one_member_is_a_recipient() {
        for one in ["ZhangSan", "zhang.san@corp", "wx-1_2", "wwcorp/lisi"] {
            assert!(is_one_member(one), "{one}");
        }
        for many in ["@all", "a|b", "", "张三", "a b", &"x".repeat(65)] {
            assert!(!is_one_member(many), "{many}");
        }
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("设备登录", 7), "设备");
    }
}
