//! A user pool with refresh-token rotation: the new refresh token is saved before the IdToken is
//! handed out, and sent next time.

use std::time::Duration;

use auth_core::{
    ErrorKind, FetchRequest, MemoryStore, SharedClock, StoreError, StoreKey, StoreLock,
    StoredEntry, TokenManager, TokenSource as _, TokenStore,
};
use auth_krmpesan::KrmPesanSource;
use auth_testkit::krmpesan::{KrmPesanSim, REVOKED_TEXT};
use secrecy::ExposeSecret as _;

use crate::support::{clock, config, http_config, setup, sim_builder};

#[tokio::test]
async fn a_rotated_refresh_token_is_returned_as_a_rotation() {
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock)).await.unwrap();
    sim.set_rotation(true);
    let source = KrmPesanSource::new(config(&sim), http_config(Duration::from_secs(30))).unwrap();
    let fetched = source
        .fetch(FetchRequest::new(None, auth_core::Clock::now(&*clock)))
        .await
        .unwrap();
    let rotated = fetched.refresh.expect("a rotation");
    assert_eq!(rotated.expose_secret(), sim.current_refresh_token());
    assert_ne!(rotated.expose_secret(), sim.refresh_token());
    // Without rotation, nothing: the configured refresh token stays in use.
    sim.set_rotation(false);
    let fetched = source
        .fetch(FetchRequest::new(
            Some(rotated),
            auth_core::Clock::now(&*clock),
        ))
        .await
        .unwrap();
    assert!(fetched.refresh.is_none());
}

#[tokio::test]
async fn the_rotated_token_is_stored_before_the_id_token_is_handed_out_and_used_next() {
    let s = setup().await;
    s.sim.set_rotation(true);
    let first = s.manager.token().await.unwrap();
    let stored = s.stored().await.unwrap();
    let rotated = stored
        .refresh
        .clone()
        .expect("the rotated refresh token is stored");
    assert_eq!(rotated.expose_secret(), s.sim.current_refresh_token());
    assert!(stored.token.unwrap().same_secret(&first));

    // The next refresh sends the rotated token; the configured one is refused by now.
    s.clock.advance(Duration::from_secs(25 * 3600));
    let second = s.manager.token().await.unwrap();
    assert!(!second.same_secret(&first));
    let sent = s.sim.last_request().unwrap();
    assert_eq!(
        sent.query_value("refresh_token"),
        Some(rotated.expose_secret())
    );
    let stored = s.stored().await.unwrap();
    assert_eq!(
        stored.refresh.unwrap().expose_secret(),
        s.sim.current_refresh_token()
    );

    // A second process sharing the store adopts the token and sends nothing.
    let other = TokenManager::builder(
        KrmPesanSource::new(config(&s.sim), http_config(Duration::from_secs(30))).unwrap(),
    )
    .store(s.store.clone())
    .clock(SharedClock::from(s.clock.clone()))
    .build()
    .unwrap();
    let requests = s.sim.request_count();
    assert!(other.token().await.unwrap().same_secret(&second));
    assert_eq!(s.sim.request_count(), requests);

    // The configured (rotated-away) token is what a process without the store would send:
    // Cognito refuses it as revoked, and kunci says so.
    let lone = KrmPesanSource::new(config(&s.sim), http_config(Duration::from_secs(30))).unwrap();
    let err = lone
        .fetch(FetchRequest::new(None, auth_core::Clock::now(&*s.clock)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    assert!(err.to_string().contains(REVOKED_TEXT), "{err}");
}

#[tokio::test]
async fn a_rotation_that_cannot_be_saved_is_not_handed_out() {
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock)).await.unwrap();
    sim.set_rotation(true);
    let store = NoSaves(MemoryStore::new());
    let manager = TokenManager::builder(
        KrmPesanSource::new(config(&sim), http_config(Duration::from_secs(30))).unwrap(),
    )
    .store(store)
    .clock(SharedClock::from(clock.clone()))
    .build()
    .unwrap();
    let err = manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    assert_eq!(sim.request_count(), 1);
}

/// A store that refuses every save, as a full disk or a Redis that went away.
#[derive(Debug)]
struct NoSaves(MemoryStore);

#[async_trait::async_trait]
impl TokenStore for NoSaves {
    async fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError> {
        self.0.load(key).await
    }

    async fn save(&self, _: &StoreKey, _: &StoredEntry, _: u64) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable {
            message: "the disk is full".to_owned(),
            source: None,
        })
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.0.delete(key).await
    }

    async fn lock(&self, key: &StoreKey, ttl: Duration) -> Result<Box<dyn StoreLock>, StoreError> {
        self.0.lock(key, ttl).await
    }

    fn describe(&self) -> String {
        "no-saves".to_owned()
    }
}
