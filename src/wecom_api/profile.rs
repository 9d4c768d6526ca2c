//! Members, identities and departments as WeCom returns them, parsed leniently: every field is
//! untrusted input, and the sensitive fields WeCom withholds (absent, `""`, null, gender `"0"`)
//! all become `None`, so that a caller can merge profiles.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::WeComError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Member {
        userid: String,
        user_ticket: Option<String>,
    },
    /// A WeChat user who is not a member of the corporation.
    NonMember { openid: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    Active,
    Disabled,
    NotActivated,
    Left,
    Other(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub userid: String,
    pub name: Option<String>,
    pub departments: Vec<i64>,
    pub main_department: Option<i64>,
    pub position: Option<String>,
    pub status: MemberStatus,
    pub email: Option<String>,
    pub biz_mail: Option<String>,
    pub mobile: Option<String>,
    pub avatar: Option<String>,
    pub gender: Option<Gender>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDetail {
    pub userid: String,
    pub email: Option<String>,
    pub biz_mail: Option<String>,
    pub mobile: Option<String>,
    pub avatar: Option<String>,
    pub gender: Option<Gender>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub id: i64,
    pub name: String,
    pub parent_id: i64,
}

/// A non-empty string field, under any of `names` (WeCom's legacy APIs capitalise keys).
fn text(answer: &Value, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| answer.get(*name).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A number WeCom may also send as a string.
pub(super) fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Gender is a string `"0"`/`"1"`/`"2"` in WeCom's samples, a number in some SDKs.
fn gender(answer: &Value) -> Option<Gender> {
    match answer.get("gender").and_then(number) {
        Some(1) => Some(Gender::Male),
        Some(2) => Some(Gender::Female),
        _ => None,
    }
}

impl Identity {
    pub(super) fn from_answer(answer: &Value) -> Result<Self, WeComError> {
        if let Some(userid) = text(answer, &["userid", "UserId"]) {
            return Ok(Identity::Member {
                userid,
                user_ticket: text(answer, &["user_ticket"]),
            });
        }
        if let Some(openid) = text(answer, &["openid", "OpenId"]) {
            return Ok(Identity::NonMember { openid });
        }
        Err(WeComError::InvalidResponse(
            "getuserinfo answered neither userid nor openid".into(),
        ))
    }
}

impl Member {
    pub(super) fn from_answer(answer: &Value) -> Result<Self, WeComError> {
        let userid = text(answer, &["userid"])
            .ok_or_else(|| WeComError::InvalidResponse("user/get answered no userid".into()))?;
        let departments = answer
            .get("department")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(number).collect())
            .unwrap_or_default();
        let status = match answer.get("status").and_then(number) {
            Some(1) | None => MemberStatus::Active,
            Some(2) => MemberStatus::Disabled,
            Some(4) => MemberStatus::NotActivated,
            Some(5) => MemberStatus::Left,
            Some(other) => MemberStatus::Other(other),
        };
        Ok(Member {
            userid,
            name: text(answer, &["name"]),
            departments,
            main_department: answer.get("main_department").and_then(number),
            position: text(answer, &["position"]),
            status,
            email: text(answer, &["email"]),
            biz_mail: text(answer, &["biz_mail"]),
            mobile: text(answer, &["mobile"]),
            avatar: text(answer, &["avatar"]),
            gender: gender(answer),
        })
    }
}

impl MemberDetail {
    pub(super) fn from_answer(answer: &Value) -> Result<Self, WeComError> {
        Ok(MemberDetail {
            userid: text(answer, &["userid"]).ok_or_else(|| {
                WeComError::InvalidResponse("getuserdetail answered no userid".into())
            })?,
            email: text(answer, &["email"]),
            biz_mail: text(answer, &["biz_mail"]),
            mobile: text(answer, &["mobile"]),
            avatar: text(answer, &["avatar"]),
            gender: gender(answer),
        })
    }
}

impl Department {
    pub(super) fn list_from_answer(answer: &Value) -> Result<Vec<Self>, WeComError> {
        let items = answer
            .get("department")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                WeComError::InvalidResponse("department/list answered no department list".into())
            })?;
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(Department {
                    id: item.get("id").and_then(number)?,
                    name: text(item, &["name"])?,
                    parent_id: item.get("parentid").and_then(number).unwrap_or(0),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identities_accept_both_spellings() {
        assert_eq!(
            Identity::from_answer(&json!({"errcode": 0, "UserId": "ZhangSan"})).unwrap(),
            Identity::Member {
                userid: "ZhangSan".into(),
                user_ticket: None
            }
        );
        assert_eq!(
            Identity::from_answer(&json!({"OpenId": "o1"})).unwrap(),
            Identity::NonMember {
                openid: "o1".into()
            }
        );
        assert!(Identity::from_answer(&json!({"errcode": 0})).is_err());
    }

    #[test]
    fn withheld_sensitive_fields_become_none() {
        let member = Member::from_answer(&json!({
            "userid": "wangwu", "name": "王五", "department": [2], "status": 1,
            "email": "", "biz_mail": null, "mobile": "", "gender": "0", "avatar": ""
        }))
        .unwrap();
        assert_eq!(member.name.as_deref(), Some("王五"));
        assert_eq!(member.departments, vec![2]);
        assert_eq!(
            (
                member.email,
                member.biz_mail,
                member.mobile,
                member.avatar,
                member.gender
            ),
            (None, None, None, None, None)
        );
    }
}
