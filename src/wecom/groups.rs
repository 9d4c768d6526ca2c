//! The `groups` claim: department paths from the top (`总部/研发部/平台组`, since names alone
//! are not unique), department names, department ids and tag names, each written as the
//! unambiguous group value of `domain::group`.
//!
//! WeCom has no "groups of a member" call (wecom-api.md §7): departments come from
//! `department/list`, tags from `tag/list`, and who carries a tag from `tag/get` per tag. All
//! three are cached for GROUPS_CACHE_SECS (0 = no cache); moka also makes concurrent callers on a
//! cold cache share one load.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use moka::future::Cache;
use reqwest::Method;

use super::answer::{self, Answer};
use super::{Department, Member, WeComClient, WeComError};
use crate::domain::group;
use crate::domain::group::GroupKinds;

/// `tag/get` calls in flight at once on a cold cache: quick enough for hundreds of tags, far
/// below WeCom's concurrency limit (45033).
const TAG_FETCHES_IN_FLIGHT: usize = 4;

/// Errcodes that mean "no such department, or none the app may see": the departments are then
/// skipped rather than failing the sign-in.
const NO_DEPARTMENT: [i64; 3] = [60003, 60011, 60123];

/// The departments the app can see, by id.
type Departments = HashMap<i64, Department>;

#[derive(Debug, Clone)]
struct Tag {
    id: i64,
    name: String,
}

/// Who carries a tag: members by lowercased userid (userids are case-insensitive) and
/// departments. A tag on a department applies to the members whose own departments include it;
/// whether WeCom means it for sub-departments too is not documented, so that is not assumed.
#[derive(Debug, Default)]
struct TagMembers {
    userids: HashSet<String>,
    departments: HashSet<i64>,
}

impl TagMembers {
    fn include(&self, userid: &str, departments: &[i64]) -> bool {
        self.userids.contains(userid) || departments.iter().any(|d| self.departments.contains(d))
    }
}

/// A moka cache, or none when the TTL is zero.
struct Memo<K, V>(Option<Cache<K, V>>);

impl<K, V> Memo<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(ttl: Duration, capacity: u64) -> Self {
        Self((!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build()
        }))
    }

    fn clear(&self) {
        if let Some(cache) = &self.0 {
            cache.invalidate_all();
        }
    }

    async fn get(
        &self,
        key: K,
        load: impl Future<Output = Result<V, WeComError>>,
    ) -> Result<V, WeComError> {
        match &self.0 {
            None => load.await,
            Some(cache) => cache
                .try_get_with(key, load)
                .await
                .map_err(Arc::unwrap_or_clone),
        }
    }
}

pub(super) struct DirectoryCache {
    departments: Memo<(), Arc<Departments>>,
    tags: Memo<(), Arc<Vec<Tag>>>,
    tag_members: Memo<i64, Arc<TagMembers>>,
}

impl DirectoryCache {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            departments: Memo::new(ttl, 1),
            tags: Memo::new(ttl, 1),
            // WeCom allows a few thousand tags; beyond the capacity the oldest are read again.
            tag_members: Memo::new(ttl, 10_000),
        }
    }
}

impl DirectoryCache {
    /// Forgets every department and tag read so far (WeCom said they changed).
    pub(super) fn clear(&self) {
        self.departments.clear();
        self.tags.clear();
        self.tag_members.clear();
    }
}

impl WeComClient {
    /// See [`WeComClient::groups`].
    pub(super) async fn resolve_groups(
        &self,
        member: &Member,
        kinds: GroupKinds,
    ) -> Result<Vec<String>, WeComError> {
        let mut groups = Vec::new();
        if kinds.paths || kinds.names || kinds.ids {
            let departments = self.visible_departments().await?;
            // A department missing from the list (deleted, or outside the app's range) is skipped.
            let own: Vec<&Department> = member
                .departments
                .iter()
                .filter_map(|id| departments.get(id))
                .collect();
            if kinds.paths {
                groups.extend(own.iter().map(|d| path(&departments, d)));
            }
            if kinds.names {
                groups.extend(own.iter().map(|d| group::name_value(&d.name)));
            }
            if kinds.ids {
                groups.extend(own.iter().map(|d| group::id_value(d.id)));
            }
        }
        if kinds.tags {
            let tags = self.tags().await?;
            // The futures are built before they become a stream: a stream mapping through a
            // closure is not provably `Send` (rust-lang/rust#64552), and the member sweep runs
            // this on a spawned task.
            let fetches: Vec<_> = tags.iter().map(|tag| self.tag_members(tag.id)).collect();
            let carriers: Vec<Arc<TagMembers>> = futures_util::stream::iter(fetches)
                .buffered(TAG_FETCHES_IN_FLIGHT)
                .try_collect()
                .await?;
            let userid = member.userid.to_lowercase();
            groups.extend(
                tags.iter()
                    .zip(carriers)
                    .filter(|(_, carriers)| carriers.include(&userid, &member.departments))
                    .map(|(tag, _)| group::tag_value(&tag.name)),
            );
        }
        let mut seen = HashSet::new();
        groups.retain(|group| seen.insert(group.clone()));
        Ok(groups)
    }

    async fn visible_departments(&self) -> Result<Arc<Departments>, WeComError> {
        self.inner
            .directory
            .departments
            .get((), async {
                let list = match self.departments().await {
                    Ok(list) => list,
                    Err(err) if err.errcode().is_some_and(|c| NO_DEPARTMENT.contains(&c)) => {
                        tracing::warn!(error = %err, "department/list refused; groups carry no departments");
                        Vec::new()
                    }
                    Err(err) => return Err(err),
                };
                Ok(Arc::new(list.into_iter().map(|d| (d.id, d)).collect()))
            })
            .await
    }

    /// `GET /cgi-bin/tag/list`: self-built apps see every tag.
    async fn tags(&self) -> Result<Arc<Vec<Tag>>, WeComError> {
        self.inner
            .directory
            .tags
            .get((), async {
                let answer = self
                    .call(Method::GET, "/cgi-bin/tag/list", &[], None, &[])
                    .await?;
                Ok(Arc::new(tags_from_answer(&answer)?))
            })
            .await
    }

    /// `GET /cgi-bin/tag/get`. A tag deleted since `tag/list` (40068) has nobody.
    async fn tag_members(&self, tagid: i64) -> Result<Arc<TagMembers>, WeComError> {
        self.inner
            .directory
            .tag_members
            .get(tagid, async {
                let id = tagid.to_string();
                match self
                    .call(
                        Method::GET,
                        "/cgi-bin/tag/get",
                        &[("tagid", &id)],
                        None,
                        &[],
                    )
                    .await
                {
                    Ok(answer) => Ok(Arc::new(tag_members_from_answer(&answer))),
                    Err(WeComError::Api { errcode: 40068, .. }) => {
                        Ok(Arc::new(TagMembers::default()))
                    }
                    Err(err) => Err(err),
                }
            })
            .await
    }
}

fn tags_from_answer(answer: &Answer) -> Result<Vec<Tag>, WeComError> {
    if !answer.has_array("taglist") {
        return Err(WeComError::InvalidResponse(
            "tag/list answered no taglist".into(),
        ));
    }
    Ok(answer
        .items("taglist")
        .iter()
        .filter_map(|item| {
            Some(Tag {
                id: item.get("tagid").and_then(answer::number)?,
                name: item.get("tagname").and_then(answer::text)?,
            })
        })
        .collect())
}

fn tag_members_from_answer(answer: &Answer) -> TagMembers {
    TagMembers {
        userids: answer
            .items("userlist")
            .iter()
            .filter_map(|user| user.get("userid").and_then(answer::text))
            .map(|userid| userid.to_lowercase())
            .collect(),
        departments: answer
            .items("partylist")
            .iter()
            .filter_map(answer::number)
            .collect(),
    }
}

/// `总部/研发部/平台组`: names from the topmost department the app can see down to `department`,
/// each escaped as a path segment. When the app sees only a subtree, the path starts at the
/// subtree's top.
fn path(departments: &Departments, department: &Department) -> String {
    let mut names = vec![department.name.as_str()];
    let mut visited = HashSet::from([department.id]);
    let mut current = department;
    // `visited` stops a cycle in what WeCom sent.
    while let Some(parent) = departments.get(&current.parent_id) {
        if !visited.insert(parent.id) {
            break;
        }
        names.push(parent.name.as_str());
        current = parent;
    }
    names.reverse();
    group::path_value(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn departments(list: &[(i64, &str, i64)]) -> Departments {
        list.iter()
            .map(|&(id, name, parent_id)| {
                (
                    id,
                    Department {
                        id,
                        name: name.into(),
                        parent_id,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn paths_run_from_the_top_and_survive_cycles() {
        let tree = departments(&[
            (1, "总部", 0),
            (2, "研发部", 1),
            (3, "平台组", 2),
            (7, "甲", 8),
            (8, "乙", 7),
        ]);
        assert_eq!(path(&tree, &tree[&3]), "总部/研发部/平台组");
        assert_eq!(path(&tree, &tree[&1]), "总部");
        assert_eq!(path(&tree, &tree[&7]), "乙/甲");
        let subtree = departments(&[(2, "研发部", 1), (3, "平台组", 2)]);
        assert_eq!(path(&subtree, &subtree[&3]), "研发部/平台组");
        let slashed = departments(&[(2, "R/D", 0), (3, "tag:x", 2)]);
        assert_eq!(path(&slashed, &slashed[&3]), r"R\/D/tag\:x");
    }
}
