//! The simulated corporation: apps, departments, members, tags and non-member WeChat users, read
//! from TOML (`sample_corp.toml` is both the built-in sample and the documented format), plus the
//! visible-range rules every API and login page applies.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The built-in sample; also the documentation of the file format.
const SAMPLE_CORP: &str = include_str!("sample_corp.toml");

/// What `user/get` answers for a member outside the visible range unless an app says otherwise.
pub const DEFAULT_OUT_OF_RANGE_ERRCODE: i64 = 60011;

/// One simulated corporation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub corp_id: String,
    #[serde(default)]
    pub corp_name: String,
    /// Refuse the in-client OAuth pages unless the User-Agent contains `wxwork`.
    #[serde(default)]
    pub require_wxwork_ua: bool,
    #[serde(default)]
    pub apps: Vec<App>,
    #[serde(default)]
    pub departments: Vec<Department>,
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub non_members: Vec<NonMember>,
}

/// A self-built app (自建应用) and the admin settings WeCom keeps for it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub agent_id: String,
    #[serde(default)]
    pub name: String,
    pub secret: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub created_after_2022_06_20: bool,
    /// Fields the admin allowed the app to request with `snsapi_privateinfo`.
    #[serde(default)]
    pub sensitive_fields: Vec<SensitiveField>,
    #[serde(default)]
    pub visible_departments: Vec<u32>,
    #[serde(default)]
    pub hidden_departments: Vec<u32>,
    #[serde(default)]
    pub visible_users: Vec<String>,
    /// Simulator shorthand: members taken out of the range one by one, whatever their departments
    /// (what removing a single member from 可见范围 does).
    #[serde(default)]
    pub hidden_users: Vec<String>,
    /// Trusted domain / web-login callback domain, `host` or `host:port`.
    #[serde(default)]
    pub redirect_domain: Option<String>,
    #[serde(default)]
    pub trusted_ips: Option<Vec<String>>,
    #[serde(default = "default_out_of_range_errcode")]
    pub out_of_range_errcode: i64,
}

// Hand-written so that logs of a directory never show an app secret, even a simulated one.
impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("agent_id", &self.agent_id)
            .field("name", &self.name)
            .field("secret", &"[redacted]")
            .field("enabled", &self.enabled)
            .field("created_after_2022_06_20", &self.created_after_2022_06_20)
            .field("sensitive_fields", &self.sensitive_fields)
            .field("visible_departments", &self.visible_departments)
            .field("hidden_departments", &self.hidden_departments)
            .field("visible_users", &self.visible_users)
            .field("hidden_users", &self.hidden_users)
            .field("redirect_domain", &self.redirect_domain)
            .field("trusted_ips", &self.trusted_ips)
            .field("out_of_range_errcode", &self.out_of_range_errcode)
            .finish()
    }
}

fn yes() -> bool {
    true
}

fn default_out_of_range_errcode() -> i64 {
    DEFAULT_OUT_OF_RANGE_ERRCODE
}

fn default_status() -> u8 {
    1
}

/// The profile fields WeCom withholds since 2022-06-20 (the "S" fields of `user/get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveField {
    Avatar,
    Gender,
    Mobile,
    Email,
    BizMail,
    QrCode,
    Address,
}

impl SensitiveField {
    pub const ALL: [SensitiveField; 7] = [
        SensitiveField::Avatar,
        SensitiveField::Gender,
        SensitiveField::Mobile,
        SensitiveField::Email,
        SensitiveField::BizMail,
        SensitiveField::QrCode,
        SensitiveField::Address,
    ];

    /// The JSON key WeCom uses for the field.
    pub fn key(self) -> &'static str {
        match self {
            SensitiveField::Avatar => "avatar",
            SensitiveField::Gender => "gender",
            SensitiveField::Mobile => "mobile",
            SensitiveField::Email => "email",
            SensitiveField::BizMail => "biz_mail",
            SensitiveField::QrCode => "qr_code",
            SensitiveField::Address => "address",
        }
    }

    pub fn from_key(key: &str) -> Option<SensitiveField> {
        SensitiveField::ALL.into_iter().find(|f| f.key() == key)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    pub id: u32,
    pub name: String,
    #[serde(default)]
    pub name_en: String,
    /// 0 for the root.
    pub parentid: u32,
    #[serde(default)]
    pub order: u32,
    #[serde(default)]
    pub department_leader: Vec<String>,
}

/// A member, with the columns of `user/get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub userid: String,
    pub name: String,
    #[serde(default)]
    pub department: Vec<u32>,
    /// Per-department order; missing entries count as 0.
    #[serde(default)]
    pub order: Vec<u32>,
    #[serde(default)]
    pub position: String,
    #[serde(default)]
    pub mobile: String,
    /// 0 unknown, 1 male, 2 female; WeCom sends it as a string.
    #[serde(default)]
    pub gender: u8,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub biz_mail: String,
    #[serde(default)]
    pub avatar: String,
    #[serde(default)]
    pub thumb_avatar: String,
    #[serde(default)]
    pub telephone: String,
    #[serde(default)]
    pub alias: String,
    #[serde(default)]
    pub address: String,
    /// 1 active, 2 disabled, 4 not activated, 5 left the corporation.
    #[serde(default = "default_status")]
    pub status: u8,
    #[serde(default)]
    pub qr_code: String,
    #[serde(default)]
    pub main_department: Option<u32>,
    #[serde(default)]
    pub direct_leader: Vec<String>,
    #[serde(default)]
    pub external_position: String,
    #[serde(default)]
    pub extattr: Option<serde_json::Value>,
    #[serde(default)]
    pub external_profile: Option<serde_json::Value>,
}

impl Member {
    /// The member's value of a sensitive field, as WeCom writes it.
    pub fn sensitive(&self, field: SensitiveField) -> String {
        match field {
            SensitiveField::Avatar => self.avatar.clone(),
            SensitiveField::Gender => self.gender.to_string(),
            SensitiveField::Mobile => self.mobile.clone(),
            SensitiveField::Email => self.email.clone(),
            SensitiveField::BizMail => self.biz_mail.clone(),
            SensitiveField::QrCode => self.qr_code.clone(),
            SensitiveField::Address => self.address.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub tagid: u32,
    pub tagname: String,
    #[serde(default)]
    pub userlist: Vec<String>,
    #[serde(default)]
    pub partylist: Vec<u32>,
}

/// A personal WeChat user who is not a member; OAuth answers carry only an `openid` for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonMember {
    pub openid: String,
    /// Only for the picker page; WeCom never reveals it.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub external_userid: Option<String>,
}

impl Directory {
    /// The built-in sample corporation (`sample_corp.toml`).
    pub fn sample() -> Directory {
        match Directory::from_toml(SAMPLE_CORP) {
            Ok(directory) => directory,
            // Unreachable in a build whose unit tests pass (`sample_directory_is_valid`); an
            // empty corporation is a visible failure that still keeps the process alive.
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "the built-in sample corporation is invalid");
                Directory {
                    corp_id: "wwsim0000000001".to_owned(),
                    corp_name: String::new(),
                    require_wxwork_ua: false,
                    apps: Vec::new(),
                    departments: Vec::new(),
                    members: Vec::new(),
                    tags: Vec::new(),
                    non_members: Vec::new(),
                }
            }
        }
    }

    /// The TOML text of the built-in sample, for `--help` texts and documentation.
    pub fn sample_toml() -> &'static str {
        SAMPLE_CORP
    }

    /// Reads and validates a directory file of the same shape as `sample_corp.toml`.
    pub fn from_file(path: &Path) -> anyhow::Result<Directory> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the directory file {}", path.display()))?;
        Directory::from_toml(&text)
            .with_context(|| format!("in the directory file {}", path.display()))
    }

    /// Parses and validates directory TOML.
    pub fn from_toml(text: &str) -> anyhow::Result<Directory> {
        let directory: Directory = toml::from_str(text).context("parsing the directory TOML")?;
        directory.validate()?;
        Ok(directory)
    }

    /// Checks the references between the parts, so that the handlers can trust them.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.corp_id.trim().is_empty() {
            bail!("corp_id must not be empty");
        }
        let mut agent_ids = HashSet::new();
        let mut secrets = HashSet::new();
        for app in &self.apps {
            if app.agent_id.trim().is_empty() {
                bail!("an app has an empty agent_id");
            }
            if !agent_ids.insert(app.agent_id.as_str()) {
                bail!("agent_id {} appears twice", app.agent_id);
            }
            // gettoken finds the app by its secret, so two apps may not share one.
            if app.secret.is_empty() || !secrets.insert(app.secret.as_str()) {
                bail!(
                    "app {}: the secret must be non-empty and unique",
                    app.agent_id
                );
            }
        }

        let mut ids = HashSet::new();
        for department in &self.departments {
            if department.id == 0 {
                bail!("department id 0 is reserved for \"no parent\"");
            }
            if !ids.insert(department.id) {
                bail!("department id {} appears twice", department.id);
            }
        }
        for department in &self.departments {
            if department.parentid != 0 && !ids.contains(&department.parentid) {
                bail!(
                    "department {}: parentid {} does not exist",
                    department.id,
                    department.parentid
                );
            }
            if self.ancestors(department.id).is_none() {
                bail!("department {} is part of a parent cycle", department.id);
            }
        }

        let mut userids = HashSet::new();
        for member in &self.members {
            if member.userid.is_empty() || member.userid.len() > 64 {
                bail!("userid {:?} must be 1 to 64 bytes", member.userid);
            }
            // WeCom userids are case-insensitive, so "ZhangSan" and "zhangsan" are one member.
            if !userids.insert(member.userid.to_lowercase()) {
                bail!(
                    "userid {} appears twice (userids are case-insensitive)",
                    member.userid
                );
            }
            if ![1, 2, 4, 5].contains(&member.status) {
                bail!("member {}: status must be 1, 2, 4 or 5", member.userid);
            }
            if member.gender > 2 {
                bail!("member {}: gender must be 0, 1 or 2", member.userid);
            }
            for id in member
                .department
                .iter()
                .chain(member.main_department.iter())
            {
                if !ids.contains(id) {
                    bail!("member {}: department {id} does not exist", member.userid);
                }
            }
        }
        let known_user = |userid: &str| userids.contains(&userid.to_lowercase());
        for member in &self.members {
            if let Some(leader) = member.direct_leader.iter().find(|l| !known_user(l)) {
                bail!(
                    "member {}: direct_leader {leader} does not exist",
                    member.userid
                );
            }
        }
        for department in &self.departments {
            if let Some(leader) = department.department_leader.iter().find(|l| !known_user(l)) {
                bail!(
                    "department {}: leader {leader} does not exist",
                    department.id
                );
            }
        }
        for app in &self.apps {
            let listed = app
                .visible_departments
                .iter()
                .chain(&app.hidden_departments);
            if let Some(id) = listed.into_iter().find(|id| !ids.contains(id)) {
                bail!("app {}: department {id} does not exist", app.agent_id);
            }
            let listed = app.visible_users.iter().chain(&app.hidden_users);
            if let Some(userid) = listed.into_iter().find(|u| !known_user(u)) {
                bail!("app {}: user {userid} does not exist", app.agent_id);
            }
        }

        let mut tagids = HashSet::new();
        for tag in &self.tags {
            if tag.tagid == 0 || !tagids.insert(tag.tagid) {
                bail!("tagid {} must be positive and unique", tag.tagid);
            }
            if let Some(userid) = tag.userlist.iter().find(|u| !known_user(u)) {
                bail!("tag {}: user {userid} does not exist", tag.tagid);
            }
            if let Some(id) = tag.partylist.iter().find(|id| !ids.contains(id)) {
                bail!("tag {}: department {id} does not exist", tag.tagid);
            }
        }

        let mut openids = HashSet::new();
        for non_member in &self.non_members {
            if non_member.openid.is_empty() || !openids.insert(non_member.openid.as_str()) {
                bail!(
                    "non-member openid {:?} must be non-empty and unique",
                    non_member.openid
                );
            }
        }
        Ok(())
    }

    pub fn app(&self, agent_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.agent_id == agent_id.trim())
    }

    pub fn app_mut(&mut self, agent_id: &str) -> Option<&mut App> {
        self.apps.iter_mut().find(|a| a.agent_id == agent_id.trim())
    }

    /// Looks a member up the way WeCom does: userids are case-insensitive.
    pub fn member(&self, userid: &str) -> Option<&Member> {
        let wanted = userid.trim().to_lowercase();
        self.members
            .iter()
            .find(|m| m.userid.to_lowercase() == wanted)
    }

    pub fn non_member(&self, openid: &str) -> Option<&NonMember> {
        self.non_members.iter().find(|n| n.openid == openid)
    }

    pub fn department(&self, id: u32) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }

    pub fn tag(&self, tagid: u32) -> Option<&Tag> {
        self.tags.iter().find(|t| t.tagid == tagid)
    }

    /// `id` and its ancestors, nearest first; `None` if the parent chain loops.
    fn ancestors(&self, id: u32) -> Option<Vec<u32>> {
        let parents: HashMap<u32, u32> = self
            .departments
            .iter()
            .map(|d| (d.id, d.parentid))
            .collect();
        let mut chain = Vec::new();
        let mut current = id;
        while current != 0 {
            if chain.contains(&current) {
                return None;
            }
            chain.push(current);
            current = parents.get(&current).copied().unwrap_or(0);
        }
        Some(chain)
    }

    /// Whether `app` may see department `id`: the nearest ancestor (or itself) named in the
    /// app's visible or hidden list decides.
    pub fn department_visible(&self, app: &App, id: u32) -> bool {
        if self.department(id).is_none() {
            return false;
        }
        for ancestor in self.ancestors(id).unwrap_or_default() {
            if app.hidden_departments.contains(&ancestor) {
                return false;
            }
            if app.visible_departments.contains(&ancestor) {
                return true;
            }
        }
        false
    }

    /// Whether `member` is inside `app`'s visible range (可见范围).
    pub fn member_visible(&self, app: &App, member: &Member) -> bool {
        let is_member = |u: &String| u.to_lowercase() == member.userid.to_lowercase();
        if app.hidden_users.iter().any(is_member) {
            return false;
        }
        app.visible_users.iter().any(is_member)
            || member
                .department
                .iter()
                .any(|&id| self.department_visible(app, id))
    }

    /// Whether the member with this userid exists and is inside `app`'s visible range.
    pub fn userid_visible(&self, app: &App, userid: &str) -> bool {
        self.member(userid)
            .is_some_and(|member| self.member_visible(app, member))
    }

    /// Department `id` and all its descendants, in directory order.
    pub fn subtree(&self, id: u32) -> Vec<&Department> {
        self.departments
            .iter()
            .filter(|d| self.ancestors(d.id).unwrap_or_default().contains(&id))
            .collect()
    }

    /// Sets a member's status (1 active, 2 disabled, 4 not activated, 5 left); `false` when there
    /// is no such member.
    pub fn set_member_status(&mut self, userid: &str, status: u8) -> bool {
        let wanted = userid.trim().to_lowercase();
        match self
            .members
            .iter_mut()
            .find(|m| m.userid.to_lowercase() == wanted)
        {
            Some(member) => {
                member.status = status;
                true
            }
            None => false,
        }
    }

    /// Every list that names members by userid, so that a removal or rename reaches them all.
    fn userid_lists(&mut self) -> impl Iterator<Item = &mut Vec<String>> {
        let members = self.members.iter_mut().map(|m| &mut m.direct_leader);
        let departments = self
            .departments
            .iter_mut()
            .map(|d| &mut d.department_leader);
        let tags = self.tags.iter_mut().map(|t| &mut t.userlist);
        let apps = self
            .apps
            .iter_mut()
            .flat_map(|a| [&mut a.visible_users, &mut a.hidden_users]);
        members.chain(departments).chain(tags).chain(apps)
    }

    /// Deletes a member and every reference to them, as deleting a member in the admin console
    /// does: `user/get` answers 60111 from then on. `None` when there is no such member.
    pub fn remove_member(&mut self, userid: &str) -> Option<Member> {
        let wanted = userid.trim().to_lowercase();
        let index = self
            .members
            .iter()
            .position(|m| m.userid.to_lowercase() == wanted)?;
        let member = self.members.remove(index);
        for list in self.userid_lists() {
            list.retain(|u| u.to_lowercase() != wanted);
        }
        Some(member)
    }

    /// Changes a member's userid (WeCom allows it once for generated ids) everywhere it is
    /// referenced; the old userid then answers 60111.
    pub fn rename_member(&mut self, old: &str, new: &str) -> anyhow::Result<()> {
        let new = new.trim();
        if new.is_empty() || new.len() > 64 {
            bail!("userid {new:?} must be 1 to 64 bytes");
        }
        let wanted = old.trim().to_lowercase();
        if self.member(new).is_some() && new.to_lowercase() != wanted {
            bail!("userid {new} is taken (userids are case-insensitive)");
        }
        let Some(member) = self
            .members
            .iter_mut()
            .find(|m| m.userid.to_lowercase() == wanted)
        else {
            bail!("no member {old}");
        };
        new.clone_into(&mut member.userid);
        for list in self.userid_lists() {
            for userid in list.iter_mut().filter(|u| u.to_lowercase() == wanted) {
                new.clone_into(userid);
            }
        }
        Ok(())
    }

    /// The department names of a member, for the picker pages.
    pub fn department_names(&self, member: &Member, english: bool) -> Vec<String> {
        member
            .department
            .iter()
            .filter_map(|&id| self.department(id))
            .map(|d| {
                if english && !d.name_en.is_empty() {
                    d.name_en.clone()
                } else {
                    d.name.clone()
                }
            })
            .collect()
    }
}
