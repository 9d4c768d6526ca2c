//! The stored snapshot of a member's WeCom profile and its mapping to standard claims.
//!
//! QR (web) login never yields a `user_ticket`, so email, mobile and avatar arrive only after an
//! in-client login with consent (or from `user/get` for apps created before 2022-06-20). The
//! snapshot keeps them, so later QR logins still carry them; a newer value always replaces an
//! older one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::LoginSettings;
use crate::domain::group::GroupKind;
use crate::domain::group::GroupKinds;
use crate::domain::{RegisteredClient, Scope, ScopeSet};
use crate::wecom::{Gender, Member, MemberDetail};

use super::membership::GroupsRead;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// The userid as WeCom spells it.
    pub userid: String,
    pub name: Option<String>,
    pub position: Option<String>,
    pub departments: Vec<i64>,
    /// The member's personal address (not managed by the corporation).
    pub email: Option<String>,
    /// The corporate mailbox the corporation manages.
    pub biz_mail: Option<String>,
    pub mobile: Option<String>,
    pub avatar: Option<String>,
    pub gender: Option<Gender>,
    /// Every group value of the member, all kinds (`domain::group`); each client is sent the
    /// kinds and prefixes it asked for.
    pub groups: Vec<String>,
    /// When `groups` was last read from WeCom (0 for profiles stored before this was kept).
    #[serde(default)]
    pub groups_read_at: i64,
    /// WeCom could not tell the groups and `GROUPS_ON_FAILURE=omit`: no `groups` claim at all,
    /// rather than a stale or empty list asserted as current.
    #[serde(default)]
    pub groups_unavailable: bool,
    /// [`GROUPS_FORMAT`] when `groups` holds values of the current format. Rows stored before it
    /// (0) hold bare department paths and tag names that cannot be told apart: they count as
    /// unknown until the next sign-in recomputes them.
    #[serde(default)]
    pub groups_format: u32,
    pub updated_at: i64,
}

/// The version of the group values profiles store now.
pub const GROUPS_FORMAT: u32 = 2;

/// Which of a member's group values one client receives.
#[derive(Debug, Clone, Copy)]
pub struct GroupRelease<'a> {
    pub kinds: GroupKinds,
    /// Prefixes; empty sends every value of the kinds.
    pub filter: &'a [String],
}

impl<'a> GroupRelease<'a> {
    pub fn for_client(client: &'a RegisteredClient, settings: &LoginSettings) -> Self {
        Self {
            kinds: client.group_kinds(settings.group_kinds),
            filter: &client.metadata.groups_filter,
        }
    }

    fn releases(&self, value: &str) -> bool {
        GroupKind::of(value).selected_by(&self.kinds)
            && (self.filter.is_empty() || self.filter.iter().any(|p| value.starts_with(p.as_str())))
    }
}

/// The address the `email` claim carries, and whether it is trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenEmail {
    pub address: String,
    /// True only for `biz_mail`: the corporation manages that mailbox.
    pub verified: bool,
    /// True for the made-up `{userid}@{domain}`; it bypasses ALLOWED_DOMAINS.
    pub synthetic: bool,
}

/// WeCom userids are case-insensitive; `sub` is the lowercase form so that it never changes when
/// an administrator retypes the id with other capitals.
pub fn subject_of(userid: &str) -> String {
    userid.to_lowercase()
}

impl UserProfile {
    /// Builds the new snapshot. A `getuserdetail` answer (`detail`, from a fresh `user_ticket`)
    /// is authoritative for the sensitive fields: what it returns empty is cleared unless
    /// `user/get` still has it. Without one, `user/get` (`member`) beats what was stored before —
    /// its empty strings for apps created after 2022-06-20 mean "withheld", not "empty".
    pub fn merge(
        member: &Member,
        detail: Option<&MemberDetail>,
        groups: GroupsRead,
        previous: Option<UserProfile>,
        now: i64,
    ) -> Self {
        let previous = previous.unwrap_or_default();
        let pick = |from_detail: Option<&Option<String>>,
                    from_member: &Option<String>,
                    stored: Option<String>| match from_detail {
            Some(authoritative) => authoritative.clone().or_else(|| from_member.clone()),
            None => from_member.clone().or(stored),
        };
        let (groups, groups_read_at, groups_unavailable, groups_format) = match groups {
            GroupsRead::Read(groups) => (groups, now, false, GROUPS_FORMAT),
            GroupsRead::Kept => (
                previous.groups,
                previous.groups_read_at,
                false,
                previous.groups_format,
            ),
            GroupsRead::Unavailable => (Vec::new(), previous.groups_read_at, true, GROUPS_FORMAT),
        };
        UserProfile {
            userid: member.userid.clone(),
            name: member.name.clone().or(previous.name),
            position: member.position.clone(),
            departments: member.departments.clone(),
            email: pick(detail.map(|d| &d.email), &member.email, previous.email),
            biz_mail: pick(
                detail.map(|d| &d.biz_mail),
                &member.biz_mail,
                previous.biz_mail,
            ),
            mobile: pick(detail.map(|d| &d.mobile), &member.mobile, previous.mobile),
            avatar: pick(detail.map(|d| &d.avatar), &member.avatar, previous.avatar),
            gender: match detail {
                Some(detail) => detail.gender.or(member.gender),
                None => member.gender.or(previous.gender),
            },
            groups,
            groups_read_at,
            groups_unavailable,
            groups_format,
            updated_at: now,
        }
    }

    pub fn sub(&self) -> String {
        subject_of(&self.userid)
    }

    /// The member's group values, or `None` while they are of the old, ambiguous format.
    pub fn current_groups(&self) -> Option<&[String]> {
        (self.groups_format == GROUPS_FORMAT).then_some(self.groups.as_slice())
    }

    /// `biz_mail`, else the personal `email`, else `{userid}@{synthetic domain}`.
    pub fn chosen_email(&self, settings: &LoginSettings) -> ChosenEmail {
        if let Some(address) = &self.biz_mail {
            return ChosenEmail {
                address: address.clone(),
                verified: true,
                synthetic: false,
            };
        }
        if let Some(address) = &self.email {
            return ChosenEmail {
                address: address.clone(),
                verified: false,
                synthetic: false,
            };
        }
        ChosenEmail {
            address: format!("{}@{}", self.sub(), settings.synthetic_email_domain),
            verified: false,
            synthetic: true,
        }
    }

    /// `ALLOWED_DOMAINS` applies to real addresses only: the app's visible range already limits
    /// who can sign in, and a member without a mailbox must still be able to.
    pub fn email_domain_allowed(&self, settings: &LoginSettings) -> bool {
        let email = self.chosen_email(settings);
        if email.synthetic || settings.allowed_domains.is_empty() {
            return true;
        }
        let domain = email
            .address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        settings.allowed_domains.contains(&domain)
    }

    /// The claims `scopes` release (OIDC Core §5.4). Unknown values are omitted, never sent empty
    /// — except `groups`, which is always there when granted (Vault and Jenkins fail a login
    /// whose requested groups claim is missing): `[]` for a member without groups.
    pub fn claims(
        &self,
        scopes: &ScopeSet,
        settings: &LoginSettings,
        groups: &GroupRelease<'_>,
    ) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::String(self.sub()));
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                claims.insert(name.to_owned(), value);
            }
        };
        if scopes.contains(Scope::Profile) {
            put(
                "name",
                self.name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .map(Value::String),
            );
            put(
                "preferred_username",
                Some(Value::String(self.userid.clone())),
            );
            put("picture", self.avatar.clone().map(Value::String));
            put(
                "gender",
                self.gender.map(|g| {
                    Value::String(match g {
                        Gender::Male => "male".into(),
                        Gender::Female => "female".into(),
                    })
                }),
            );
            put("updated_at", Some(Value::from(self.updated_at)));
        }
        if scopes.contains(Scope::Email) {
            let email = self.chosen_email(settings);
            put("email", Some(Value::String(email.address)));
            put("email_verified", Some(Value::Bool(email.verified)));
        }
        if scopes.contains(Scope::Phone) {
            if let Some(phone) = self.mobile.as_deref().and_then(e164) {
                put("phone_number", Some(Value::String(phone)));
                // WeCom activates a member through an SMS to this number.
                put("phone_number_verified", Some(Value::Bool(true)));
            }
        }
        if scopes.contains(Scope::Groups) && !self.groups_unavailable {
            let released = self
                .current_groups()
                .unwrap_or_default()
                .iter()
                .filter(|value| groups.releases(value))
                .cloned()
                .map(Value::String)
                .collect();
            put("groups", Some(Value::Array(released)));
        }
        claims
    }
}

/// E.164: `+` and digits only. WeCom writes mainland numbers bare (`13800138000`) and others with
/// their country code (`+852 91234567`); a number without one is taken as Chinese (+86).
pub fn e164(mobile: &str) -> Option<String> {
    let trimmed = mobile.trim();
    let (international, rest) = if let Some(rest) = trimmed.strip_prefix('+') {
        (true, rest)
    } else if let Some(rest) = trimmed.strip_prefix("00") {
        (true, rest)
    } else {
        (false, trimmed)
    };
    let digits: String = rest
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let number = if international {
        format!("+{digits}")
    } else {
        format!("+86{digits}")
    };
    // E.164 allows at most 15 digits after the plus.
    (number.len() <= 16 && number.len() >= 8).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_become_e164() {
        assert_eq!(e164("13800138000").as_deref(), Some("+8613800138000"));
        assert_eq!(e164("+852 91234567").as_deref(), Some("+85291234567"));
        assert_eq!(e164("0044 20 7946 0958").as_deref(), Some("+442079460958"));
        assert_eq!(e164("call me"), None);
        assert_eq!(e164(""), None);
    }

    fn settings(allowed: &[&str]) -> LoginSettings {
        LoginSettings {
            allowed_domains: allowed.iter().map(|d| d.to_string()).collect(),
            synthetic_email_domain: "wecom.local".into(),
            group_kinds: Default::default(),
        }
    }

    #[test]
    fn email_prefers_biz_mail_then_personal_then_synthetic() {
        let mut profile = UserProfile {
            userid: "ZhangSan".into(),
            email: Some("z@gmail.example".into()),
            biz_mail: Some("z@corp.example.com".into()),
            ..Default::default()
        };
        let s = settings(&["corp.example.com"]);
        assert_eq!(profile.chosen_email(&s).address, "z@corp.example.com");
        assert!(profile.chosen_email(&s).verified);
        profile.biz_mail = None;
        assert!(!profile.chosen_email(&s).verified);
        assert!(!profile.email_domain_allowed(&s));
        profile.email = None;
        assert_eq!(profile.chosen_email(&s).address, "zhangsan@wecom.local");
        assert!(profile.email_domain_allowed(&s));
    }

    #[test]
    fn claims_omit_what_is_unknown() {
        let profile = UserProfile {
            userid: "wangwu".into(),
            name: Some("王五".into()),
            ..Default::default()
        };
        let (scopes, _) = ScopeSet::parse("openid profile phone groups");
        let claims = profile.claims(&scopes, &settings(&[]), &release(GroupKinds::ALL, &[]));
        assert_eq!(claims["name"], "王五");
        for absent in ["picture", "gender", "phone_number", "email"] {
            assert!(!claims.contains_key(absent), "{absent} should be omitted");
        }
        assert_eq!(claims["groups"], serde_json::json!([]));
    }

    fn release(kinds: GroupKinds, filter: &[String]) -> GroupRelease<'_> {
        GroupRelease { kinds, filter }
    }

    #[test]
    fn groups_are_released_by_kind_and_prefix_and_old_rows_release_none() {
        let profile = UserProfile {
            userid: "u".into(),
            groups: vec![
                "总部/研发部".into(),
                "dept:研发部".into(),
                "deptid:2".into(),
                "tag:SRE".into(),
                "tag:oncall".into(),
            ],
            groups_format: GROUPS_FORMAT,
            ..Default::default()
        };
        let (scopes, _) = ScopeSet::parse("openid groups");
        let s = settings(&[]);
        let paths_and_tags = GroupKinds::parse("paths,tags").unwrap();
        let claims = profile.claims(&scopes, &s, &release(paths_and_tags, &[]));
        assert_eq!(
            claims["groups"],
            serde_json::json!(["总部/研发部", "tag:SRE", "tag:oncall"])
        );
        let filter = ["tag:S".to_owned()];
        let claims = profile.claims(&scopes, &s, &release(GroupKinds::ALL, &filter));
        assert_eq!(claims["groups"], serde_json::json!(["tag:SRE"]));

        // A row stored before the current format: its bare strings are ambiguous.
        let old: UserProfile = serde_json::from_value(serde_json::json!({
            "userid": "u", "name": null, "position": null, "departments": [2], "email": null,
            "biz_mail": null, "mobile": null, "avatar": null, "gender": null,
            "groups": ["总部/研发部", "研发部/平台组"], "updated_at": 1
        }))
        .unwrap();
        assert_eq!(old.current_groups(), None);
        let claims = old.claims(&scopes, &s, &release(GroupKinds::ALL, &[]));
        assert_eq!(claims["groups"], serde_json::json!([]));
    }
}
