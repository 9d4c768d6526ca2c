//! Key rotation that breaks no one: a rotated key is published before it signs, a replica that
//! learns of it late waits, and a retired key stays published until its tokens have expired.

use serde_json::Value;
use wecom_oidc::clock::{Clock, ManualClock};
use wecom_oidc::config::Config;
use wecom_oidc::keys::KeyManager;
use wecom_oidc::storage::Store;

use crate::helpers::{TestApp, TestDatabase};

const DELAY: i64 = 3660;

fn published_kids(keys: &KeyManager) -> Vec<String> {
    let jwks: Value = serde_json::from_str(&keys.jwks()).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn replica(
    db: &TestDatabase,
    settings: &[(&str, &str)],
    clock: &ManualClock,
) -> (KeyManager, Config) {
    let mut pairs = vec![("DATABASE_URL", db.url.as_str())];
    pairs.extend_from_slice(settings);
    let config = Config::from_pairs(pairs).unwrap();
    let store = Store::connect(&config.database).await.unwrap();
    let keys = KeyManager::load_or_create(store, &config, clock.now())
        .await
        .unwrap();
    (keys, config)
}

#[tokio::test]
async fn a_rotated_key_is_published_at_once_signs_after_the_delay_and_the_old_one_stays_until_its_tokens_expire(
) {
    let db = TestDatabase::create().await;
    let clock = ManualClock::default();
    let (keys, config) = replica(&db, &[], &clock).await;
    let old_kid = keys.current_kid().unwrap();

    let new_kid = keys.rotate(clock.now()).await.unwrap();

    assert_eq!(
        keys.current_kid().as_deref(),
        Some(old_kid.as_str()),
        "the old key signs until every cached JWKS holds the new one"
    );
    let kids = published_kids(&keys);
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );

    clock.advance(DELAY - 1);
    keys.reload(clock.now()).await.unwrap();
    assert_eq!(keys.current_kid().as_deref(), Some(old_kid.as_str()));

    clock.advance(1);
    keys.reload(clock.now()).await.unwrap();
    assert_eq!(keys.current_kid().as_deref(), Some(new_kid.as_str()));
    assert!(
        published_kids(&keys).contains(&old_kid),
        "tokens it signed are still valid"
    );

    // Once every ID token the old key signed has expired, it leaves the JWKS.
    clock.advance(config.lifetimes.id_token.as_secs() as i64 + 301);
    keys.reload(clock.now()).await.unwrap();
    assert_eq!(published_kids(&keys), vec![new_kid]);
}

#[tokio::test]
async fn a_replica_that_learns_of_a_key_late_never_signs_with_it_before_publishing_it_for_the_delay(
) {
    let db = TestDatabase::create().await;
    let clock = ManualClock::default();
    let (a, _) = replica(&db, &[], &clock).await;
    let (b, _) = replica(&db, &[], &clock).await;
    let old_kid = a.current_kid().unwrap();
    let new_kid = a.rotate(clock.now()).await.unwrap();

    // B could not read the table for longer than the delay (say, the database was away).
    clock.advance(DELAY + 10);
    a.reload(clock.now()).await.unwrap();
    b.reload(clock.now()).await.unwrap();

    assert_eq!(a.current_kid().as_deref(), Some(new_kid.as_str()));
    assert_eq!(
        b.current_kid(),
        None,
        "B signs neither with the retired key nor with one it has not published long enough"
    );
    assert!(b.sign(serde_json::Map::new()).is_err());
    assert!(published_kids(&b).contains(&new_kid));

    clock.advance(DELAY);
    b.reload(clock.now()).await.unwrap();
    assert_eq!(b.current_kid().as_deref(), Some(new_kid.as_str()));
    assert_ne!(old_kid, new_kid);
}

#[tokio::test]
async fn keys_rotate_by_themselves_when_key_rotation_days_is_set() {
    let db = TestDatabase::create().await;
    let clock = ManualClock::default();
    let (keys, _) = replica(
        &db,
        &[
            ("KEY_ROTATION_DAYS", "30"),
            ("KEY_ACTIVATION_DELAY_SECS", "600"),
        ],
        &clock,
    )
    .await;
    let first = keys.current_kid().unwrap();

    clock.advance(29 * 86_400);
    keys.rotate_if_due(clock.now()).await.unwrap();
    keys.reload(clock.now()).await.unwrap();
    assert_eq!(published_kids(&keys).len(), 1, "not due yet");

    clock.advance(86_400);
    keys.rotate_if_due(clock.now()).await.unwrap();
    keys.reload(clock.now()).await.unwrap();
    assert_eq!(published_kids(&keys).len(), 2);
    assert_eq!(keys.current_kid().as_deref(), Some(first.as_str()));

    clock.advance(600);
    keys.reload(clock.now()).await.unwrap();
    assert_ne!(keys.current_kid().as_deref(), Some(first.as_str()));
}

#[tokio::test]
async fn the_jwks_cache_lifetime_is_never_longer_than_the_activation_delay_allows() {
    let app = TestApp::spawn_with(&[("KEY_ACTIVATION_DELAY_SECS", "660")]).await;

    let response = app.http.get(app.url("/jwks")).send().await.unwrap();

    assert_eq!(response.headers()["cache-control"], "public, max-age=600");
    let default = TestApp::spawn().await;
    let response = default.http.get(default.url("/jwks")).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
}
