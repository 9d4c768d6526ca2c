//! The `groups` claim: department paths from the root (`总部/研发部/平台组`, since names alone are
//! not unique), department names or ids, and tag names. WeCom has no "tags of a member" call, so
//! the departments and tags the app can see are read once and cached for GROUPS_CACHE_SECS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use reqwest::Method;
use serde_json::Value;

use super::{number_of, Department, Member, WeComClient, WeComError};
use crate::config::GroupKinds;

/// A tag and who carries it.
struct Tag {
    name: String,
    userids: Vec<String>,
    departments: Vec<i64>,
}

/// Departments and tags as the app sees them.
pub(super) struct Directory {
    departments: HashMap<i64, Department>,
    tags: Vec<Tag>,
}

pub(super) struct DirectoryCache {
    cache: Option<Cache<(), Arc<Directory>>>,
}

impl DirectoryCache {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            cache: (!ttl.is_zero())
                .then(|| Cache::builder().max_capacity(1).time_to_live(ttl).build()),
        }
    }

    /// The cached directory; concurrent callers on a cold cache share one load.
    pub(super) async fn get(&self, client: &WeComClient) -> Result<Arc<Directory>, WeComError> {
        match &self.cache {
            None => Directory::load(client).await.map(Arc::new),
            Some(cache) => cache
                .try_get_with((), async { Directory::load(client).await.map(Arc::new) })
                .await
                .map_err(|shared| match shared.as_ref() {
                    WeComError::Api { errcode, errmsg } => WeComError::Api {
                        errcode: *errcode,
                        errmsg: errmsg.clone(),
                    },
                    other => WeComError::Unreachable(other.to_string()),
                }),
        }
    }
}

impl Directory {
    async fn load(client: &WeComClient) -> Result<Self, WeComError> {
        let departments = client
            .departments()
            .await?
            .into_iter()
            .map(|d| (d.id, d))
            .collect();
        let list = client
            .call(Method::GET, "/cgi-bin/tag/list", &[], None)
            .await?;
        let mut tags = Vec::new();
        for item in list
            .get("taglist")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(name)) = (
                item.get("tagid").and_then(number_of),
                item.get("tagname").and_then(Value::as_str),
            ) else {
                continue;
            };
            let id = id.to_string();
            let members = match client
                .call(Method::GET, "/cgi-bin/tag/get", &[("tagid", &id)], None)
                .await
            {
                Ok(members) => members,
                // A tag deleted between the two calls is simply skipped.
                Err(WeComError::Api { errcode: 40068, .. }) => continue,
                Err(other) => return Err(other),
            };
            let userids = members
                .get("userlist")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|u| u.get("userid").and_then(Value::as_str))
                .map(str::to_lowercase)
                .collect();
            let departments = members
                .get("partylist")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(number_of)
                .collect();
            tags.push(Tag {
                name: name.to_owned(),
                userids,
                departments,
            });
        }
        Ok(Directory { departments, tags })
    }

    /// `总部/研发部/平台组`: names from the root down; `None` for a department the app cannot see.
    fn path(&self, id: i64) -> Option<String> {
        let mut names = Vec::new();
        let mut current = self.departments.get(&id)?;
        // The depth bound guards against a cycle in what WeCom sent.
        for _ in 0..64 {
            names.push(current.name.as_str());
            match self.departments.get(&current.parent_id) {
                Some(parent) if parent.id != current.id => current = parent,
                _ => break,
            }
        }
        names.reverse();
        Some(names.join("/"))
    }

    pub(super) fn groups_of(&self, member: &Member, kinds: GroupKinds) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        let visible: Vec<i64> = member
            .departments
            .iter()
            .copied()
            .filter(|id| self.departments.contains_key(id))
            .collect();
        if kinds.paths {
            groups.extend(visible.iter().filter_map(|id| self.path(*id)));
        }
        if kinds.names {
            groups.extend(
                visible
                    .iter()
                    .filter_map(|id| self.departments.get(id))
                    .map(|d| d.name.clone()),
            );
        }
        if kinds.ids {
            groups.extend(visible.iter().map(|id| id.to_string()));
        }
        if kinds.tags {
            let userid = member.userid.to_lowercase();
            groups.extend(
                self.tags
                    .iter()
                    .filter(|tag| {
                        tag.userids.contains(&userid)
                            || tag
                                .departments
                                .iter()
                                .any(|d| member.departments.contains(d))
                    })
                    .map(|tag| tag.name.clone()),
            );
        }
        let mut seen = std::collections::HashSet::new();
        groups.retain(|g| seen.insert(g.clone()));
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wecom_api::MemberStatus;

    fn directory() -> Directory {
        let departments = [
            (1, "总部", 0),
            (2, "研发部", 1),
            (3, "平台组", 2),
            (4, "销售部", 1),
        ]
        .into_iter()
        .map(|(id, name, parent_id)| {
            (
                id,
                Department {
                    id,
                    name: name.into(),
                    parent_id,
                },
            )
        })
        .collect();
        Directory {
            departments,
            tags: vec![
                Tag {
                    name: "管理员".into(),
                    userids: vec!["zhangsan".into()],
                    departments: vec![],
                },
                Tag {
                    name: "研发".into(),
                    userids: vec![],
                    departments: vec![2],
                },
            ],
        }
    }

    fn member(userid: &str, departments: Vec<i64>) -> Member {
        Member {
            userid: userid.into(),
            name: None,
            departments,
            main_department: None,
            position: None,
            status: MemberStatus::Active,
            email: None,
            biz_mail: None,
            mobile: None,
            avatar: None,
            gender: None,
        }
    }

    #[test]
    fn paths_run_from_the_root_and_tags_come_by_user_or_department() {
        let all = GroupKinds {
            paths: true,
            names: true,
            ids: true,
            tags: true,
        };
        let groups = directory().groups_of(&member("ZhangSan", vec![3, 99]), all);
        assert_eq!(groups, vec!["总部/研发部/平台组", "平台组", "3", "管理员"]);
        let groups = directory().groups_of(
            &member("wangwu", vec![2]),
            GroupKinds {
                paths: true,
                tags: true,
                ..Default::default()
            },
        );
        assert_eq!(groups, vec!["总部/研发部", "研发"]);
    }
}
