//! The corp access token cache: one token for the app, kept until shortly before it expires and
//! refreshed single-flight, so a burst of sign-ins on a cold cache makes one `gettoken` call —
//! and a wrong secret makes one failing call per burst, not one per caller (WeCom blocks an IP
//! for an hour after many failed `gettoken` calls, wecom-api.md §1).
//!
//! Time is a parameter: callers pass `now`, so expiry is tested without sleeping.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::WeComError;

/// Refresh this long before WeCom's `expires_in` runs out, so a token never expires in flight.
const MARGIN: Duration = Duration::from_secs(300);

/// A token as `gettoken` answered it.
pub(super) struct Fetched {
    pub token: SecretString,
    pub lifetime: Duration,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

pub(super) struct TokenCache {
    current: Mutex<Option<Cached>>,
    /// Held while fetching; holds the failure of the latest fetch, for the callers that waited.
    refresh: tokio::sync::Mutex<Option<WeComError>>,
    /// How many fetches have finished; tells a waiting caller that one finished meanwhile.
    fetches: AtomicU64,
}

/// The longest lifetime believed: WeCom documents 7200 s; a gateway claiming more (or a huge
/// number) gets a day at most, so no arithmetic on it can overflow an `Instant`.
pub(super) const MAX_LIFETIME: Duration = Duration::from_secs(86_400);

/// How long a token with WeCom's `lifetime` is used: until five minutes before it expires, or
/// until half its lifetime when that is short (odd deployments, tests).
pub(super) fn usable_for(lifetime: Duration) -> Duration {
    let lifetime = lifetime.min(MAX_LIFETIME);
    lifetime - MARGIN.min(lifetime / 2)
}

impl TokenCache {
    pub(super) fn new() -> Self {
        Self {
            current: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// The cached token if it is still to be used at `now`.
    fn valid(&self, now: Instant) -> Option<SecretString> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .filter(|cached| now < cached.refresh_at)
            .map(|cached| cached.token.clone())
    }

    /// The cached token, or one fetched with `fetch` by exactly one caller at a time. Callers that
    /// waited for a fetch take its token, or its failure, instead of fetching again.
    pub(super) async fn get<F, Fut>(
        &self,
        now: Instant,
        fetch: F,
    ) -> Result<SecretString, WeComError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, WeComError>>,
    {
        // Read before looking at the cache, so a fetch finishing in between is noticed below.
        let seen = self.fetches.load(Ordering::Acquire);
        if let Some(token) = self.valid(now) {
            return Ok(token);
        }
        let mut last_failure = self.refresh.lock().await;
        if let Some(token) = self.valid(now) {
            return Ok(token);
        }
        if self.fetches.load(Ordering::Acquire) != seen {
            if let Some(failure) = last_failure.as_ref() {
                return Err(failure.clone());
            }
        }
        self.fetch_locked(now, fetch, &mut last_failure).await
    }

    /// Fetches a token whatever the cache holds (`wecom-oidc check`), still one fetch at a time.
    pub(super) async fn refetch<F, Fut>(
        &self,
        now: Instant,
        fetch: F,
    ) -> Result<SecretString, WeComError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, WeComError>>,
    {
        let mut last_failure = self.refresh.lock().await;
        self.fetch_locked(now, fetch, &mut last_failure).await
    }

    async fn fetch_locked<F, Fut>(
        &self,
        now: Instant,
        fetch: F,
        last_failure: &mut Option<WeComError>,
    ) -> Result<SecretString, WeComError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, WeComError>>,
    {
        let result = fetch().await;
        self.fetches.fetch_add(1, Ordering::Release);
        match result {
            Ok(Fetched { token, lifetime }) => {
                // `now` is from before the request, so the token is dropped a little early,
                // never late.
                let refresh_at = now.checked_add(usable_for(lifetime)).unwrap_or(now);
                *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
                    token: token.clone(),
                    refresh_at,
                });
                *last_failure = None;
                Ok(token)
            }
            Err(failure) => {
                *last_failure = Some(failure.clone());
                Err(failure)
            }
        }
    }

    /// Drops the cached token if it is still `failed`: after a burst of rejections only the first
    /// caller drops it, and a token fetched meanwhile by another caller survives.
    pub(super) fn forget(&self, failed: &SecretString) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|cached| cached.token.expose_secret() == failed.expose_secret())
        {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn fetched(token: &str, lifetime_secs: u64) -> Fetched {
        Fetched {
            token: SecretString::from(token),
            lifetime: Duration::from_secs(lifetime_secs),
        }
    }

    #[test]
    fn tokens_are_used_until_five_minutes_before_expiry_or_half_their_life() {
        assert_eq!(
            usable_for(Duration::from_secs(7200)),
            Duration::from_secs(6900)
        );
        assert_eq!(
            usable_for(Duration::from_secs(400)),
            Duration::from_secs(200)
        );
        assert_eq!(usable_for(Duration::from_secs(10)), Duration::from_secs(5));
        assert_eq!(usable_for(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            usable_for(Duration::MAX),
            MAX_LIFETIME - MARGIN,
            "a huge expires_in is clamped"
        );
    }

    #[tokio::test]
    async fn a_cached_token_is_refetched_only_once_it_is_due() {
        let cache = TokenCache::new();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            Ok(fetched(&format!("t{n}"), 7200))
        };
        let start = Instant::now();
        let first = cache.get(start, fetch).await.unwrap();
        let later = start + Duration::from_secs(6899);
        assert_eq!(
            cache.get(later, fetch).await.unwrap().expose_secret(),
            first.expose_secret()
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let due = start + Duration::from_secs(6900);
        assert_eq!(cache.get(due, fetch).await.unwrap().expose_secret(), "t1");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn forgetting_drops_only_the_token_that_failed() {
        let cache = TokenCache::new();
        let now = Instant::now();
        let old = cache
            .get(now, || async { Ok(fetched("old", 7200)) })
            .await
            .unwrap();
        cache.forget(&old);
        let new = cache
            .get(now, || async { Ok(fetched("new", 7200)) })
            .await
            .unwrap();
        cache.forget(&old);
        let kept = cache
            .get(now, || async { Ok(fetched("unexpected", 7200)) })
            .await
            .unwrap();
        assert_eq!(kept.expose_secret(), new.expose_secret());
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_remembered_for_later_callers() {
        let cache = TokenCache::new();
        let now = Instant::now();
        let failure = WeComError::HttpStatus(502);
        let first = cache
            .get(now, || async { Err(WeComError::HttpStatus(502)) })
            .await;
        assert_eq!(first.err(), Some(failure));
        let second = cache.get(now, || async { Ok(fetched("t", 7200)) }).await;
        assert_eq!(second.unwrap().expose_secret(), "t");
    }

    #[tokio::test]
    async fn refetch_ignores_a_valid_cached_token() {
        let cache = TokenCache::new();
        let now = Instant::now();
        cache
            .get(now, || async { Ok(fetched("a", 7200)) })
            .await
            .unwrap();
        let fresh = cache
            .refetch(now, || async { Ok(fetched("b", 7200)) })
            .await
            .unwrap();
        assert_eq!(fresh.expose_secret(), "b");
        let cached = cache
            .get(now, || async { Ok(fetched("c", 7200)) })
            .await
            .unwrap();
        assert_eq!(cached.expose_secret(), "b");
    }
}
