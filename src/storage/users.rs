//! Members: the stored snapshot of each WeCom profile, keyed by a `sub` that never changes, found
//! by the member's current userid (`userid_key`, lowercase), and when WeCom last confirmed them.
//!
//! A row is never deleted, so a `sub` (the primary key) is never issued to anyone else. When WeCom
//! says a userid no longer exists, the row is released from it (`released_at`, `release_reason`)
//! for good: the schema refuses a userid on a released row, and a later holder of the userid
//! gets a new row and a new `sub`.

use serde::{de::DeserializeOwned, Serialize};

use super::{column, from_json, to_json, StorageError, StorageResult, Store};
use crate::crypto::random_hex;

/// A stored member.
#[derive(Debug, Clone)]
pub struct MemberRecord<P> {
    pub sub: String,
    pub profile: P,
    /// When WeCom last confirmed the member (`user/get`), Unix seconds; 0 = never.
    pub checked_at: i64,
    /// When and why the binding to the userid ended (`None` while it holds): the `sub` is
    /// retired, and no token is issued for it again.
    pub released: Option<Release>,
}

/// When a member's binding to their userid ended, and why (an audit reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub at: i64,
    pub reason: String,
}

/// The columns `member_from_row` reads.
const MEMBER_COLUMNS: &str = "sub, profile, checked_at, released_at, release_reason";

/// How many holders of one userid get the `{userid}~{n}` form before a random suffix is used.
const NUMBERED_HOLDERS: u32 = 50;

fn member_from_row<P: DeserializeOwned>(row: &sqlx::any::AnyRow) -> StorageResult<MemberRecord<P>> {
    Ok(MemberRecord {
        sub: column(row, "sub")?,
        profile: from_json(&column::<String>(row, "profile")?)?,
        checked_at: column(row, "checked_at")?,
        released: match column::<Option<i64>>(row, "released_at")? {
            Some(at) => Some(Release {
                at,
                reason: column::<Option<String>>(row, "release_reason")?.unwrap_or_default(),
            }),
            None => None,
        },
    })
}

/// The `sub` of the `holder`-th member to hold a userid whose first holder got `first`: the
/// first keeps the plain form; later ones get `~n`. `~` never appears in a WeCom userid
/// (letters, digits and `_-@.` only), so no later member's first `sub` can equal it, and it
/// needs no escaping in a URL (RFC 3986 §2.3).
fn holder_sub(first: &str, holder: u32) -> String {
    match holder {
        1 => first.to_owned(),
        n if n <= NUMBERED_HOLDERS => format!("{first}~{n}"),
        _ => format!("{first}~{}", random_hex(4)),
    }
}

impl Store {
    /// Stores the profile of the member whose lowercase userid is `userid_key`, as confirmed by
    /// WeCom at `now`, and returns their `sub`: the one they already have, or `preferred_sub` for
    /// a new member — unless that `sub` was ever issued (an earlier holder of the userid who was
    /// deleted or renamed away keeps it for life), then `{preferred_sub}~2`, `~3`, … A `sub` is
    /// never reassigned: the primary key refuses it.
    #[tracing::instrument(skip_all)]
    pub async fn save_member<P: Serialize>(
        &self,
        userid_key: &str,
        preferred_sub: &str,
        profile: &P,
        now: i64,
    ) -> StorageResult<String> {
        let document = to_json(profile)?;
        let updated = sqlx::query(
            "UPDATE users SET profile = $1, updated_at = $2, checked_at = $2
             WHERE userid_key = $3 RETURNING sub",
        )
        .bind(&document)
        .bind(now)
        .bind(userid_key)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = updated {
            return column(&row, "sub");
        }
        for holder in 1..=NUMBERED_HOLDERS + 3 {
            let sub = holder_sub(preferred_sub, holder);
            let inserted = sqlx::query(
                "INSERT INTO users (sub, userid_key, profile, updated_at, checked_at)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&sub)
            .bind(userid_key)
            .bind(&document)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(sub);
            }
            // Either this userid was stored meanwhile (a concurrent first sign-in), or the sub is
            // someone else's.
            let row = sqlx::query("SELECT sub FROM users WHERE userid_key = $1")
                .bind(userid_key)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                return column(&row, "sub");
            }
        }
        Err(StorageError::Conflict)
    }

    /// Replaces the stored profile of `sub` as confirmed by WeCom at `now`.
    #[tracing::instrument(skip_all)]
    pub async fn update_member<P: Serialize>(
        &self,
        sub: &str,
        profile: &P,
        now: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "UPDATE users SET profile = $1, updated_at = $2, checked_at = $2, sweep_lease_until = 0
             WHERE sub = $3",
        )
        .bind(to_json(profile)?)
        .bind(now)
        .bind(sub)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_member<P: DeserializeOwned>(
        &self,
        sub: &str,
    ) -> StorageResult<Option<MemberRecord<P>>> {
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM users WHERE sub = $1"
        ))
        .bind(sub)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(member_from_row)
        .transpose()
    }

    pub async fn find_member_by_userid<P: DeserializeOwned>(
        &self,
        userid_key: &str,
    ) -> StorageResult<Option<MemberRecord<P>>> {
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM users WHERE userid_key = $1"
        ))
        .bind(userid_key)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(member_from_row)
        .transpose()
    }

    /// Members whose `sub` or userid contains `needle`, or whose stored profile does (the caller
    /// narrows that to the fields it searches, such as the name), at most `limit`, by userid.
    /// Case-insensitive for ASCII; `%`, `_` and `\` in the needle match themselves.
    pub async fn search_members<P: DeserializeOwned>(
        &self,
        needle: &str,
        limit: i64,
    ) -> StorageResult<Vec<MemberRecord<P>>> {
        let escaped = needle
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM users
             WHERE LOWER(sub) LIKE $1 ESCAPE '\\' OR userid_key LIKE $1 ESCAPE '\\'
                OR LOWER(profile) LIKE $1 ESCAPE '\\'
             ORDER BY userid_key, sub LIMIT $2"
        ))
        .bind(&pattern)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(member_from_row)
        .collect()
    }

    pub async fn get_user<P: DeserializeOwned>(&self, sub: &str) -> StorageResult<P> {
        self.get_member(sub)
            .await?
            .map(|member| member.profile)
            .ok_or(StorageError::NotFound)
    }

    /// Moves a member to a new userid (an administrator may change a userid once): the member
    /// keeps `sub`, `rewrite` updates the stored profile. `None` when no member had `old_key`.
    #[tracing::instrument(skip_all)]
    pub async fn rename_member<P: Serialize + DeserializeOwned>(
        &self,
        old_key: &str,
        new_key: &str,
        rewrite: impl FnOnce(&mut P),
        now: i64,
    ) -> StorageResult<Option<String>> {
        let Some(mut member) = self.find_member_by_userid::<P>(old_key).await? else {
            return Ok(None);
        };
        rewrite(&mut member.profile);
        // WeCom keeps userids unique among current members: whoever held `new_key` here before
        // has left, and keeps their `sub`, retired, without a userid.
        sqlx::query(
            "UPDATE users SET userid_key = NULL, released_at = $3, release_reason = 'userid_given_to_another'
             WHERE userid_key = $1 AND sub <> $2",
        )
        .bind(new_key)
        .bind(&member.sub)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let result = sqlx::query(
            "UPDATE users SET userid_key = $1, profile = $2, updated_at = $3 WHERE sub = $4",
        )
        .bind(new_key)
        .bind(to_json(&member.profile)?)
        .bind(now)
        .bind(&member.sub)
        .execute(&self.pool)
        .await?;
        Ok((result.rows_affected() == 1).then_some(member.sub))
    }

    /// Ends `sub`'s binding to its userid for good (WeCom says the userid no longer exists): the
    /// `sub` stays retired on its row, and a later member given the same userid gets a new one.
    /// A binding ended before keeps its first date and reason.
    #[tracing::instrument(skip_all)]
    pub async fn release_userid(&self, sub: &str, reason: &str, now: i64) -> StorageResult<()> {
        sqlx::query(
            "UPDATE users SET userid_key = NULL, released_at = $2, release_reason = $3
             WHERE sub = $1 AND released_at IS NULL",
        )
        .bind(sub)
        .bind(now)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps the sweep away from a member WeCom refused until `until` (their `checked_at` stays
    /// the last time WeCom admitted them).
    pub async fn hold_member_from_sweep(&self, sub: &str, until: i64) -> StorageResult<()> {
        sqlx::query("UPDATE users SET sweep_lease_until = $2 WHERE sub = $1")
            .bind(sub)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes one member due for a WeCom check.
    pub async fn mark_member_unchecked(&self, sub: &str) -> StorageResult<()> {
        sqlx::query("UPDATE users SET checked_at = 0 WHERE sub = $1")
            .bind(sub)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes every member due for a WeCom check (after WeCom reported a bulk change).
    pub async fn mark_all_members_unchecked(&self) -> StorageResult<u64> {
        Ok(sqlx::query("UPDATE users SET checked_at = 0")
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Takes `chunk` calls from the sweep's budget for the minute starting at `window_start`,
    /// shared by every replica; `false` when the minute's `limit` is spent.
    pub async fn take_sweep_budget(
        &self,
        window_start: i64,
        chunk: i64,
        limit: i64,
    ) -> StorageResult<bool> {
        sqlx::query(
            "INSERT INTO member_sweep_budget (id, window_start, used) VALUES (1, $1, 0)
             ON CONFLICT (id) DO UPDATE SET window_start = excluded.window_start, used = 0
             WHERE member_sweep_budget.window_start <> excluded.window_start",
        )
        .bind(window_start)
        .execute(&self.pool)
        .await?;
        let taken = sqlx::query(
            "UPDATE member_sweep_budget SET used = used + $1
             WHERE id = 1 AND window_start = $2 AND used + $1 <= $3",
        )
        .bind(chunk)
        .bind(window_start)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Leases up to `limit` members still bound to a userid whom WeCom has not confirmed since
    /// `checked_before`, until `lease_until`: a member leased by one replica is not picked by
    /// another. Members holding a live session or refresh token come first; the others follow,
    /// because a userid deleted in WeCom must release its binding before WeCom can give it to
    /// someone new, whether or not its holder is signed in anywhere.
    #[tracing::instrument(skip_all)]
    pub async fn lease_members_due<P: DeserializeOwned>(
        &self,
        checked_before: i64,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StorageResult<Vec<MemberRecord<P>>> {
        let skip_locked = match self.backend {
            super::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE users SET sweep_lease_until = $1
             WHERE sub IN (
                 SELECT u.sub FROM users u
                 WHERE u.checked_at < $2 AND u.sweep_lease_until < $3 AND u.released_at IS NULL
                 ORDER BY CASE WHEN EXISTS (SELECT 1 FROM sessions s
                                            WHERE s.sub = u.sub AND s.expires_at > $3)
                                 OR EXISTS (SELECT 1 FROM refresh_tokens r
                                            WHERE r.sub = u.sub AND r.used_at IS NULL AND r.expires_at > $3)
                               THEN 0 ELSE 1 END,
                          u.checked_at
                 LIMIT $4 {skip_locked})
             RETURNING {MEMBER_COLUMNS}"
        ))
        .bind(lease_until)
        .bind(checked_before)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }
}
