//! Key rotation that breaks no one: a rotated key is published before it signs, a replica that
//! learns of it late keeps signing with the previous key meanwhile, sign-ins are sealed whichever
//! key signs, and a retired key stays published until its tokens have expired.

use serde_json::Value;
use wecom_oidc::clock::{Clock, ManualClock};
use wecom_oidc::config::Config;
use wecom_oidc::keys::KeyManager;
use wecom_oidc::storage::Store;

use crate::claims::tokens_for;
use crate::helpers::{TestApp, TestClient, TestDatabase};

const DELAY: i64 = 3660;

fn published_kids(keys: &KeyManager) -> Vec<String> {
    kids_in(&serde_json::from_str(&keys.jwks()).unwrap())
}

fn kids_in(jwks: &Value) -> Vec<String> {
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

    // Once every ID token the old key signed has expired, it leaves the JWKS: even those a replica
    // that learned of the new key late signed up to five minutes after the activation.
    clock.advance(config.lifetimes.id_token.as_secs() as i64 + 300 + 299);
    keys.reload(clock.now()).await.unwrap();
    assert!(published_kids(&keys).contains(&old_kid));
    clock.advance(1);
    keys.reload(clock.now()).await.unwrap();
    assert_eq!(published_kids(&keys), vec![new_kid]);
}

#[tokio::test]
async fn a_replica_that_learns_of_a_key_late_keeps_signing_with_the_previous_one_until_it_has_published_the_new_one_for_the_delay(
) {
    let db = TestDatabase::create().await;
    let clock = ManualClock::default();
    let (a, _) = replica(&db, &[], &clock).await;
    let (b, _) = replica(&db, &[], &clock).await;
    let old_kid = a.current_kid().unwrap();
    let new_kid = a.rotate(clock.now()).await.unwrap();

    // B missed a reload or two (say, the database was slow): it learns of the new key 120 s late.
    clock.advance(120);
    b.reload(clock.now()).await.unwrap();
    clock.advance(DELAY - 120);
    a.reload(clock.now()).await.unwrap();
    b.reload(clock.now()).await.unwrap();

    assert_eq!(a.current_kid().as_deref(), Some(new_kid.as_str()));
    assert_eq!(
        b.current_kid().as_deref(),
        Some(old_kid.as_str()),
        "B has not published the new key for the delay: it keeps signing with the previous one"
    );
    assert!(b.sign(serde_json::Map::new()).is_ok());
    assert!(published_kids(&b).contains(&new_kid));
    assert!(published_kids(&a).contains(&old_kid));

    clock.advance(119);
    b.reload(clock.now()).await.unwrap();
    assert_eq!(b.current_kid().as_deref(), Some(old_kid.as_str()));
    clock.advance(1);
    b.reload(clock.now()).await.unwrap();
    assert_eq!(b.current_kid().as_deref(), Some(new_kid.as_str()));
}

#[tokio::test]
async fn a_replica_cut_off_for_long_signs_with_nothing_but_still_seals_sign_ins() {
    let db = TestDatabase::create().await;
    let clock = ManualClock::default();
    let (a, _) = replica(&db, &[], &clock).await;
    let (b, _) = replica(&db, &[], &clock).await;
    let new_kid = a.rotate(clock.now()).await.unwrap();

    // B missed every reload for an hour past the activation: the previous key has been retired
    // too long for what it signs now to stay verifiable.
    clock.advance(2 * DELAY);
    b.reload(clock.now()).await.unwrap();

    assert_eq!(
        b.current_kid(),
        None,
        "B signs neither with the long-retired key nor with one it has not published long enough"
    );
    assert!(b.sign(serde_json::Map::new()).is_err());
    let sealed = b
        .seal_for_browser(b"a sign-in")
        .expect("sealing does not depend on which key may sign");
    assert_eq!(
        a.open_from_browser(&sealed).as_deref(),
        Some(&b"a sign-in"[..]),
        "another replica opens it"
    );

    clock.advance(DELAY);
    b.reload(clock.now()).await.unwrap();
    assert_eq!(b.current_kid().as_deref(), Some(new_kid.as_str()));
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

/// The `kid` in the header of a JWT.
fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// A person's whole round at `app`: authorize, WeCom, the callback, the code exchange and a
/// refresh, each of which must succeed. The `kid`s that signed the two ID tokens.
async fn round(app: &TestApp, client: &TestClient, when: &str) -> (String, String) {
    // prompt=login: through WeCom and the callback every time, despite the session.
    let tokens = tokens_for(
        app,
        client,
        "wangwu",
        &[("scope", "openid offline_access"), ("prompt", "login")],
    )
    .await;
    let response = app
        .token_request(
            client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(response.status(), 200, "refresh {when}");
    let refreshed: Value = response.json().await.unwrap();
    (
        kid_of(tokens["id_token"].as_str().unwrap()),
        kid_of(refreshed["id_token"].as_str().unwrap()),
    )
}

/// The kids the provider's `/jwks` publishes.
async fn served_kids(app: &TestApp) -> Vec<String> {
    let response = app.http.get(app.url("/jwks")).send().await.unwrap();
    kids_in(&response.json().await.unwrap())
}

#[tokio::test]
async fn no_request_fails_across_a_rotation_on_another_replica_and_the_new_key_signs_only_after_the_delay(
) {
    let app = TestApp::spawn_with(&[("KEY_ACTIVATION_DELAY_SECS", "600")]).await;
    let client = app.confidential_client().await;
    let (other, _) = replica(
        &TestDatabase::borrowed(&app.database_url()),
        &[("KEY_ACTIVATION_DELAY_SECS", "600")],
        &app.clock,
    )
    .await;
    let old = app.keys.current_kid().unwrap();
    let old_pair = (old.clone(), old.clone());
    assert_eq!(round(&app, &client, "before the rotation").await, old_pair);

    // `keys rotate` on another replica at t0; this one has not re-read the table yet.
    let new = other.rotate(app.clock.now()).await.unwrap();
    assert_eq!(
        round(&app, &client, "just after the rotation").await,
        old_pair
    );

    // Its reloader comes round 30 s later: the new key is published from then on.
    app.clock.advance(30);
    app.keys.reload(app.clock.now()).await.unwrap();
    assert!(served_kids(&app).await.contains(&new));
    assert_eq!(round(&app, &client, "at t0 + 30 s").await, old_pair);

    // At t0 + 600 s the replica that rotated switches; this one has published the new key for
    // 570 s only, so it keeps signing with the old one, which stays published.
    app.clock.advance(570);
    app.keys.reload(app.clock.now()).await.unwrap();
    other.reload(app.clock.now()).await.unwrap();
    assert_eq!(other.current_kid().as_deref(), Some(new.as_str()));
    assert_eq!(round(&app, &client, "at t0 + 600 s").await, old_pair);
    app.clock.advance(29);
    app.keys.reload(app.clock.now()).await.unwrap();
    assert_eq!(round(&app, &client, "at t0 + 629 s").await, old_pair);
    let kids = served_kids(&app).await;
    assert!(kids.contains(&old) && kids.contains(&new), "{kids:?}");

    // 600 s after it first published the new key, this replica signs with it.
    app.clock.advance(1);
    app.keys.reload(app.clock.now()).await.unwrap();
    assert_eq!(
        round(&app, &client, "at t0 + 630 s").await,
        (new.clone(), new)
    );
}
