//! Group values: the strings of the `groups` claim and of a client's `allowed_groups`, written so
//! that no tag, department name, department id or department path can ever equal another kind.
//!
//! | kind             | value                 | example              |
//! |------------------|-----------------------|----------------------|
//! | department path  | escaped names, `/`    | `研发部/平台组`       |
//! | department name  | `dept:` + name        | `dept:平台组`         |
//! | department id    | `deptid:` + id        | `deptid:3`           |
//! | tag              | `tag:` + name         | `tag:SRE`            |
//!
//! Inside a path, each department name escapes `\` as `\\`, `/` as `\/` and `:` as `\:`. A path
//! therefore never holds a bare `:`, while every other kind starts with a prefix ending in one:
//! a department named `tag:x` is `tag\:x`, never `tag:x`, and a tag named `研发部/平台组` is
//! `tag:研发部/平台组`, never the department path. Tag names are free text any sub-administrator
//! may create, so an RBAC rule on a department path must not be reachable by naming a tag.

pub const NAME_PREFIX: &str = "dept:";
pub const ID_PREFIX: &str = "deptid:";
pub const TAG_PREFIX: &str = "tag:";

/// Which kinds of group values go into the `groups` claim (formats above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupKinds {
    /// Department full paths from the top-most visible department, `总部/研发部/平台组`.
    pub paths: bool,
    /// Department names alone.
    pub names: bool,
    /// Department ids, as decimal strings.
    pub ids: bool,
    /// Tag names.
    pub tags: bool,
}

impl GroupKinds {
    /// What a profile keeps: every kind, so that a client's `allowed_groups` and `groups_claim`
    /// can use any of them whatever GROUPS_CLAIM releases by default.
    pub const ALL: GroupKinds = GroupKinds {
        paths: true,
        names: true,
        ids: true,
        tags: true,
    };

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut kinds = GroupKinds::default();
        for item in raw
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
        {
            match item.as_str() {
                "paths" => kinds.paths = true,
                "names" => kinds.names = true,
                "ids" => kinds.ids = true,
                "tags" => kinds.tags = true,
                other => {
                    return Err(format!(
                        "unknown kind {other:?}; expected a comma list of paths, names, ids, tags"
                    ))
                }
            }
        }
        Ok(kinds)
    }

    pub fn any(&self) -> bool {
        self.paths || self.names || self.ids || self.tags
    }
}

/// Which of the four kinds a group value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Path,
    Name,
    Id,
    Tag,
}

impl GroupKind {
    /// The kind of a well-formed value: by prefix; a value without one is a path.
    pub fn of(value: &str) -> Self {
        if value.starts_with(TAG_PREFIX) {
            GroupKind::Tag
        } else if value.starts_with(ID_PREFIX) {
            GroupKind::Id
        } else if value.starts_with(NAME_PREFIX) {
            GroupKind::Name
        } else {
            GroupKind::Path
        }
    }

    pub fn selected_by(self, kinds: &GroupKinds) -> bool {
        match self {
            GroupKind::Path => kinds.paths,
            GroupKind::Name => kinds.names,
            GroupKind::Id => kinds.ids,
            GroupKind::Tag => kinds.tags,
        }
    }
}

/// One department name as a path segment.
pub fn escape_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '\\' | '/' | ':') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `研发部/平台组` from the names top-down.
pub fn path_value<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(escape_segment)
        .collect::<Vec<_>>()
        .join("/")
}

pub fn name_value(name: &str) -> String {
    format!("{NAME_PREFIX}{name}")
}

pub fn id_value(id: i64) -> String {
    format!("{ID_PREFIX}{id}")
}

pub fn tag_value(name: &str) -> String {
    format!("{TAG_PREFIX}{name}")
}

/// Whether `value` could have come from [`path_value`] (or carries a known prefix): used to refuse
/// `allowed_groups` entries that could never match anything.
pub fn is_well_formed(value: &str) -> bool {
    match GroupKind::of(value) {
        GroupKind::Tag => value.len() > TAG_PREFIX.len(),
        GroupKind::Name => value.len() > NAME_PREFIX.len(),
        GroupKind::Id => value[ID_PREFIX.len()..]
            .parse::<i64>()
            .is_ok_and(|id| id > 0),
        GroupKind::Path => {
            // Every segment non-empty; `\` only before `\`, `/` or `:`; no bare `:`.
            let mut segment_len = 0;
            let mut chars = value.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('\\' | '/' | ':') => segment_len += 1,
                        _ => return false,
                    },
                    ':' => return false,
                    '/' if segment_len == 0 => return false,
                    '/' => segment_len = 0,
                    _ => segment_len += 1,
                }
            }
            segment_len > 0
        }
    }
}

/// Whether a member holding `held` is admitted by the `allowed` entry: a department path admits
/// itself and every department below it (whole segments only: `研发部` admits `研发部/平台组`,
/// not `研发部门`); anything else admits exactly itself.
pub fn admits(allowed: &str, held: &str) -> bool {
    if allowed == held {
        return true;
    }
    // Both are well-formed paths here, so the `/` after a complete `allowed` is a separator, never
    // the second half of an escape.
    GroupKind::of(allowed) == GroupKind::Path
        && GroupKind::of(held) == GroupKind::Path
        && held
            .strip_prefix(allowed)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_never_equals_a_department_value() {
        // Names chosen to impersonate each other.
        let departments = [
            path_value(["研发部", "平台组"]),
            path_value(["tag:研发部/平台组"]),
            path_value(["dept:平台组"]),
            path_value(["deptid:3"]),
            name_value("tag:x"),
            id_value(3),
        ];
        let tags = [
            tag_value("研发部/平台组"),
            tag_value("x"),
            tag_value("dept:平台组"),
            tag_value("deptid:3"),
        ];
        for tag in &tags {
            assert_eq!(GroupKind::of(tag), GroupKind::Tag, "{tag}");
            for department in &departments {
                assert_ne!(tag, department);
                assert!(!admits(department, tag), "{department} admits {tag}");
                assert!(!admits(tag, department), "{tag} admits {department}");
            }
        }
        assert_eq!(departments[1], r"tag\:研发部\/平台组");
        assert_eq!(GroupKind::of(&departments[1]), GroupKind::Path);
        assert_eq!(GroupKind::of(&departments[4]), GroupKind::Name);
    }

    #[test]
    fn escapes_keep_segments_apart() {
        assert_eq!(path_value(["A/B", "C"]), r"A\/B/C");
        assert_eq!(path_value([r"back\slash"]), r"back\\slash");
        assert_ne!(path_value(["A/B", "C"]), path_value(["A", "B", "C"]));
        // `A\` + `B` vs `A` + `\B`: the escape char is itself escaped, so they differ.
        assert_ne!(path_value([r"A\", "B"]), path_value(["A", r"\B"]));
        for value in [
            path_value(["A/B", "C"]),
            path_value([r"x\"]),
            path_value(["t:1"]),
        ] {
            assert!(is_well_formed(&value), "{value}");
        }
        for bad in [
            "", "a//b", "/a", "a/", r"a\", r"a\b", "a:b", "tag:", "deptid:x",
        ] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_path_admits_its_subtree_by_whole_segments() {
        assert!(admits("研发部", "研发部"));
        assert!(admits("研发部", "研发部/平台组"));
        assert!(!admits("研发部", "研发部门"));
        assert!(!admits("研发部/平台组", "研发部"));
        assert!(!admits(r"A\/B", "A/B/C"));
        assert!(admits(r"A\/B", r"A\/B/C"));
        assert!(admits("tag:SRE", "tag:SRE"));
        assert!(!admits("tag:SRE", "tag:SRE/x"));
        assert!(!admits("dept:研发部", "dept:研发部/平台组"));
    }
}
