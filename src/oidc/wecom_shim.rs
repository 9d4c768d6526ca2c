//! TEMPORARY: the agreed `crate::wecom` API, until that module lands. Removed before commit.
#![allow(dead_code, unused_variables)]
use serde::{Deserialize, Serialize};
use crate::config::{GroupKinds, WeComCredentials, WeComSettings};
#[derive(Clone)] pub struct WeComClient;
#[derive(Debug, thiserror::Error)] #[error("x")] pub struct WeComError;
pub enum FailureCategory { Misconfigured, Unavailable, RateLimited, CodeInvalid, OutsideVisibleRange, UserNotFound }
impl WeComError { pub fn errcode(&self) -> Option<i64> { None } pub fn category(&self) -> FailureCategory { FailureCategory::Unavailable } pub fn admin_explanation(&self) -> String { String::new() } }
pub enum Identity { Member { userid: String, user_ticket: Option<String> }, NonMember { openid: String } }
pub struct Member { pub userid: String, pub name: Option<String>, pub departments: Vec<i64>, pub main_department: Option<i64>, pub position: Option<String>, pub status: MemberStatus, pub email: Option<String>, pub biz_mail: Option<String>, pub mobile: Option<String>, pub avatar: Option<String>, pub gender: Option<Gender> }
pub struct MemberDetail { pub userid: String, pub email: Option<String>, pub biz_mail: Option<String>, pub mobile: Option<String>, pub avatar: Option<String>, pub gender: Option<Gender> }
pub enum MemberStatus { Active, Disabled, NotActivated, Left, Other(i64) }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)] pub enum Gender { Male, Female }
impl WeComClient {
    pub fn new(settings: &WeComSettings, credentials: &WeComCredentials) -> Result<Self, WeComError> { Ok(Self) }
    pub async fn identify(&self, code: &str) -> Result<Identity, WeComError> { Err(WeComError) }
    pub async fn member(&self, userid: &str) -> Result<Member, WeComError> { Err(WeComError) }
    pub async fn member_detail(&self, t: &str) -> Result<MemberDetail, WeComError> { Err(WeComError) }
    pub async fn groups(&self, member: &Member, kinds: GroupKinds) -> Result<Vec<String>, WeComError> { Err(WeComError) }
}
pub fn web_login_url(settings: &WeComSettings, credentials: &WeComCredentials, state: &str, lang: Option<&str>) -> url::Url { settings.login_base.clone() }
pub fn in_client_login_url(settings: &WeComSettings, credentials: &WeComCredentials, state: &str) -> url::Url { settings.oauth_base.clone() }
pub fn is_wecom_client(ua: &str) -> bool { false }
