//! Identities, members and departments as WeCom returns them (wecom-api.md §4–§7), parsed
//! leniently. The sensitive fields WeCom withholds from apps created after 2022-06-20 (absent,
//! `""`, null, gender `"0"`) all read as `None`, so a caller can merge profiles from several calls.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::answer::{self, Answer};
use super::WeComError;

/// Who a login code belongs to (`auth/getuserinfo`).
#[derive(Clone, PartialEq, Eq)]
pub enum Identity {
    /// A member of the corporation. `user_ticket` comes only from in-client sign-in with
    /// `snsapi_privateinfo` by a member inside the visible range; it is valid for 1800 s.
    Member {
        userid: String,
        user_ticket: Option<String>,
    },
    /// Someone who is not a member, such as a personal WeChat user.
    NonMember { openid: String },
}

/// The ticket is a credential for the member's sensitive data: `Debug` must not print it.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Member {
                userid,
                user_ticket,
            } => f
                .debug_struct("Member")
                .field("userid", userid)
                .field("user_ticket", &user_ticket.as_ref().map(|_| "[redacted]"))
                .finish(),
            Identity::NonMember { openid } => {
                f.debug_struct("NonMember").field("openid", openid).finish()
            }
        }
    }
}

/// A member's `status` in `user/get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// 1: activated.
    Active,
    /// 2: disabled by an administrator.
    Disabled,
    /// 4: invited but not yet activated.
    NotActivated,
    /// 5: left the corporation.
    Left,
    /// Any other value; 0 when WeCom sent none, so an unreadable status is never taken as active.
    Other(i64),
}

/// Serialised as the OIDC `gender` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
}

/// A member as `user/get` returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub userid: String,
    pub name: Option<String>,
    /// Only the departments the app may view.
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

/// The sensitive profile `auth/getuserdetail` releases with a member's consent. It has no name:
/// that comes from `user/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDetail {
    pub userid: String,
    pub email: Option<String>,
    pub biz_mail: Option<String>,
    pub mobile: Option<String>,
    pub avatar: Option<String>,
    pub gender: Option<Gender>,
}

/// One department of `department/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub id: i64,
    pub name: String,
    /// 0 (or absent) for the root.
    pub parent_id: i64,
}

/// Gender is the string `"1"`/`"2"` in WeCom's answers (a number in some SDKs); `"0"` means
/// unknown or withheld.
fn gender(answer: &Answer) -> Option<Gender> {
    match answer.number("gender") {
        Some(1) => Some(Gender::Male),
        Some(2) => Some(Gender::Female),
        _ => None,
    }
}

impl Identity {
    /// Accepts the current (`userid`, `openid`) and the legacy (`UserId`, `OpenId`) spellings;
    /// an answer with neither names nobody.
    pub(super) fn from_answer(answer: &Answer) -> Result<Self, WeComError> {
        if let Some(userid) = answer.id(&["userid", "UserId"]) {
            return Ok(Identity::Member {
                userid,
                user_ticket: answer.text(&["user_ticket"]),
            });
        }
        if let Some(openid) = answer.id(&["openid", "OpenId"]) {
            return Ok(Identity::NonMember { openid });
        }
        Err(WeComError::InvalidResponse(
            "auth/getuserinfo answered neither a userid nor an openid".into(),
        ))
    }
}

impl MemberStatus {
    fn from_code(code: Option<i64>) -> Self {
        match code {
            Some(1) => MemberStatus::Active,
            Some(2) => MemberStatus::Disabled,
            Some(4) => MemberStatus::NotActivated,
            Some(5) => MemberStatus::Left,
            other => MemberStatus::Other(other.unwrap_or(0)),
        }
    }
}

impl Member {
    /// `asked` is the userid the caller asked for: WeCom compares userids case-insensitively,
    /// and an answer about anybody else is refused rather than taken as that member.
    pub(super) fn from_answer(answer: &Answer, asked: &str) -> Result<Self, WeComError> {
        let userid = answer
            .id(&["userid"])
            .ok_or_else(|| WeComError::InvalidResponse("user/get answered no userid".into()))?;
        if userid.to_lowercase() != asked.trim().to_lowercase() {
            return Err(WeComError::InvalidResponse(
                "user/get answered about another userid than the one asked for".into(),
            ));
        }
        Ok(Member {
            userid,
            name: answer.text(&["name"]),
            departments: answer
                .items("department")
                .iter()
                .filter_map(answer::number)
                .collect(),
            main_department: answer.number("main_department").filter(|id| *id > 0),
            position: answer.text(&["position"]),
            status: MemberStatus::from_code(answer.number("status")),
            email: answer.text(&["email"]),
            biz_mail: answer.text(&["biz_mail"]),
            mobile: answer.text(&["mobile"]),
            avatar: answer.text(&["avatar"]),
            gender: gender(answer),
        })
    }
}

impl MemberDetail {
    pub(super) fn from_answer(answer: &Answer) -> Result<Self, WeComError> {
        Ok(MemberDetail {
            userid: answer.id(&["userid"]).ok_or_else(|| {
                WeComError::InvalidResponse("auth/getuserdetail answered no userid".into())
            })?,
            email: answer.text(&["email"]),
            biz_mail: answer.text(&["biz_mail"]),
            mobile: answer.text(&["mobile"]),
            avatar: answer.text(&["avatar"]),
            gender: gender(answer),
        })
    }
}

impl Department {
    /// The `department` list; entries without an id or a name are left out, so a member's
    /// department among them is treated like one outside the app's range.
    pub(super) fn list_from_answer(answer: &Answer) -> Result<Vec<Self>, WeComError> {
        if !answer.has_array("department") {
            return Err(WeComError::InvalidResponse(
                "department/list answered no department list".into(),
            ));
        }
        Ok(answer
            .items("department")
            .iter()
            .filter_map(|item| {
                Some(Department {
                    id: item.get("id").and_then(answer::number)?,
                    name: item.get("name").and_then(answer::text)?,
                    parent_id: item.get("parentid").and_then(answer::number).unwrap_or(0),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(value: serde_json::Value) -> Answer {
        Answer::from_value(value)
    }

    #[test]
    fn identities_accept_both_spellings() {
        let member = |userid: &str, ticket: Option<&str>| Identity::Member {
            userid: userid.into(),
            user_ticket: ticket.map(Into::into),
        };
        let cases = [
            (
                json!({"errcode": 0, "userid": "zhangsan"}),
                Some(member("zhangsan", None)),
            ),
            (
                json!({"userid": "zhangsan", "user_ticket": "t1"}),
                Some(member("zhangsan", Some("t1"))),
            ),
            (
                json!({"UserId": "ZhangSan", "DeviceId": ""}),
                Some(member("ZhangSan", None)),
            ),
            (
                json!({"openid": "o1", "external_userid": "e1"}),
                Some(Identity::NonMember {
                    openid: "o1".into(),
                }),
            ),
            (
                json!({"OpenId": "o2", "DeviceId": ""}),
                Some(Identity::NonMember {
                    openid: "o2".into(),
                }),
            ),
            (
                json!({"userid": "", "openid": "o3"}),
                Some(Identity::NonMember {
                    openid: "o3".into(),
                }),
            ),
            (json!({"errcode": 0, "errmsg": "ok"}), None),
            (json!({"userid": null, "OpenId": ""}), None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                Identity::from_answer(&answer(body.clone())).ok(),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn identity_debug_hides_the_ticket() {
        let identity = Identity::Member {
            userid: "u".into(),
            user_ticket: Some("ticket-value".into()),
        };
        let printed = format!("{identity:?}");
        assert!(
            !printed.contains("ticket-value") && printed.contains("redacted"),
            "{printed}"
        );
    }

    #[test]
    fn statuses_map_and_a_missing_status_is_not_active() {
        for (raw, status) in [
            (json!(1), MemberStatus::Active),
            (json!("2"), MemberStatus::Disabled),
            (json!(4), MemberStatus::NotActivated),
            (json!(5), MemberStatus::Left),
            (json!(3), MemberStatus::Other(3)),
            (json!(null), MemberStatus::Other(0)),
        ] {
            let member = Member::from_answer(&answer(json!({"userid": "u", "status": raw})), "u");
            assert_eq!(member.unwrap().status, status, "{raw}");
        }
    }

    #[test]
    fn member_answers_about_someone_else_are_refused() {
        let body = answer(json!({"userid": "ZhangSan", "status": 1}));
        assert!(Member::from_answer(&body, "zhangsan").is_ok());
        assert!(matches!(
            Member::from_answer(&body, "lisi"),
            Err(WeComError::InvalidResponse(_))
        ));
    }

    #[test]
    fn gender_reads_strings_and_numbers_and_zero_is_unknown() {
        for (raw, expected) in [
            (json!("1"), Some(Gender::Male)),
            (json!(2), Some(Gender::Female)),
            (json!("0"), None),
            (json!(""), None),
            (json!(null), None),
            (json!("x"), None),
        ] {
            let detail = MemberDetail::from_answer(&answer(json!({"userid": "u", "gender": raw})));
            assert_eq!(detail.unwrap().gender, expected, "{raw}");
        }
        assert_eq!(
            serde_json::to_string(&Gender::Female).unwrap(),
            "\"female\""
        );
    }

    #[test]
    fn departments_without_id_or_name_are_left_out() {
        let list = Department::list_from_answer(&answer(json!({"department": [
            {"id": 1, "name": "总部", "parentid": 0},
            {"id": "2", "name": "研发部", "parentid": "1"},
            {"id": 3, "name": ""},
            {"name": "无编号"},
            {"id": 4, "name": "根"}
        ]})))
        .unwrap();
        let ids: Vec<(i64, i64)> = list.iter().map(|d| (d.id, d.parent_id)).collect();
        assert_eq!(ids, vec![(1, 0), (2, 1), (4, 0)]);
        assert!(Department::list_from_answer(&answer(json!({"errcode": 0}))).is_err());
    }
}
