//! Scopes: the fixed set this provider understands and the claims each one releases.

use std::fmt;

/// The scopes the provider supports, in the order discovery lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    OpenId,
    Profile,
    Email,
    Phone,
    Groups,
    OfflineAccess,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::OpenId,
        Scope::Profile,
        Scope::Email,
        Scope::Phone,
        Scope::Groups,
        Scope::OfflineAccess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OpenId => "openid",
            Scope::Profile => "profile",
            Scope::Email => "email",
            Scope::Phone => "phone",
            Scope::Groups => "groups",
            Scope::OfflineAccess => "offline_access",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Scope::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The claims a scope releases (OIDC Core §5.4, plus `groups`); discovery lists the union.
    pub fn claims(self) -> &'static [&'static str] {
        match self {
            Scope::OpenId => &["sub"],
            Scope::Profile => &[
                "name",
                "preferred_username",
                "picture",
                "gender",
                "updated_at",
            ],
            Scope::Email => &["email", "email_verified"],
            Scope::Phone => &["phone_number", "phone_number_verified"],
            Scope::Groups => &["groups"],
            Scope::OfflineAccess => &[],
        }
    }
}

/// A set of supported scopes, kept sorted so that its string form is canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// Every supported scope; what a client may ask for when registered without a `scope`.
    pub fn all() -> Self {
        Self(Scope::ALL.to_vec())
    }

    /// Parses a space-delimited list (RFC 6749 §3.3). Unknown scopes are reported separately so
    /// that the caller decides between refusing and ignoring them.
    pub fn parse(raw: &str) -> (Self, Vec<String>) {
        let mut scopes = Vec::new();
        let mut unknown = Vec::new();
        for item in raw.split(' ').filter(|s| !s.is_empty()) {
            match Scope::parse(item) {
                Some(scope) => scopes.push(scope),
                None => unknown.push(item.to_owned()),
            }
        }
        scopes.sort();
        scopes.dedup();
        (Self(scopes), unknown)
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// The scopes of `self` that `allowed` also holds.
    pub fn intersect(&self, allowed: &ScopeSet) -> ScopeSet {
        ScopeSet(
            self.0
                .iter()
                .copied()
                .filter(|s| allowed.contains(*s))
                .collect(),
        )
    }

    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.contains(*s))
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_sorts_dedups_and_reports_unknown_scopes() {
        let (set, unknown) = ScopeSet::parse("email openid  email  unknown");
        assert_eq!(set.to_string(), "openid email");
        assert_eq!(unknown, vec!["unknown"]);
    }

    #[test]
    fn intersection_keeps_only_allowed_scopes() {
        let (requested, _) = ScopeSet::parse("openid email groups");
        let (allowed, _) = ScopeSet::parse("openid email");
        assert_eq!(requested.intersect(&allowed).to_string(), "openid email");
    }
}
