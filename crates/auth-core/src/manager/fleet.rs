//! The refresh under a lease (issue 14): the deadline, the watchdog, fenced saves and the
//! failure shared through the entry — with a store that misbehaves on purpose. The protocol on
//! real Redis and PostgreSQL is tested in `auth-store`.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering::SeqCst},
};

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use time::{OffsetDateTime, macros::datetime};
use tokio::time::Duration;

use super::*;
use crate::{
    ErrorKind, TokioClock,
    store::{Fence, Lease, MemoryStore, StoreError, TokenStore},
    testing::{Fault, FaultyStore, ScriptedSource, Step, StoreOp},
};

const T0: OffsetDateTime = datetime!(2026-11-22 08:00 UTC);

fn key() -> StoreKey {
    StoreKey::new("test:fleet").unwrap()
}

fn policy(lease: Duration) -> RefreshPolicy {
    RefreshPolicy {
        refresh_timeout: Duration::from_secs(10),
        lease_life: Some(lease),
        ..RefreshPolicy::default()
    }
}

/// One "process": a manager of its own on the shared store.
fn process(
    source: &ScriptedSource,
    store: impl Into<SharedTokenStore>,
    policy: RefreshPolicy,
) -> TokenManager {
    TokenManager::builder(source.clone())
        .store(store)
        .clock(SharedClock::from(TokioClock::new(T0)))
        .policy(policy)
        .key(key())
        .build()
        .unwrap()
}

/// One "process" on a clock shared with the others.
fn process_on(
    source: &ScriptedSource,
    store: impl Into<SharedTokenStore>,
    policy: RefreshPolicy,
    clock: &SharedClock,
) -> TokenManager {
    TokenManager::builder(source.clone())
        .store(store)
        .clock(clock.clone())
        .policy(policy)
        .key(key())
        .build()
        .unwrap()
}

fn secret(token: &Token) -> String {
    token.secret().expose_secret().to_owned()
}

#[tokio::test(start_paused = true)]
async fn twenty_waiters_on_a_failing_refresh_take_its_recorded_outcome_instead_of_sending() {
    let store = MemoryStore::new();
    let source = ScriptedSource::new("kalsel").otherwise(Step::after(
        Duration::from_millis(200),
        Step::Fail(Error::reauthentication_required(
            "the refresh token was revoked",
        )),
    ));
    let fleet: Vec<_> = (0..21)
        .map(|_| process(&source, store.clone(), policy(Duration::from_secs(20))))
        .collect();
    let calls = fleet.iter().map(|m| {
        let m = m.clone();
        tokio::spawn(async move { m.token().await.map(|t| secret(&t)) })
    });
    let results = futures_util::future::join_all(calls).await;
    assert_eq!(source.calls(), 1, "one request for 21 processes");
    for result in results {
        let err = result.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err}");
    }
    let stored = store.load(&key()).await.unwrap().unwrap();
    let failure = stored
        .failure
        .expect("the outcome is recorded with the entry");
    assert_eq!(failure.kind, FailureKind::ReauthenticationRequired);
    assert!(failure.message.contains("revoked"), "{}", failure.message);

    // After the shared back-off the next caller asks again, and a success clears the record.
    tokio::time::advance(Duration::from_secs(2)).await;
    source.clear();
    source.push(Step::issue(Duration::from_secs(3600)));
    let token = fleet[3].token().await.unwrap();
    assert_eq!(secret(&token), "tok-2");
    assert!(store.load(&key()).await.unwrap().unwrap().failure.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_fetch_three_times_longer_than_the_lease_renews_it_and_sends_one_request() {
    let store = FaultyStore::new(MemoryStore::new());
    let lease = Duration::from_millis(300);
    let source = ScriptedSource::new("slow").otherwise(Step::after(
        lease * 3,
        Step::issue(Duration::from_secs(3600)),
    ));
    let a = process(&source, store.clone(), policy(lease));
    let b = process(&source, store.clone(), policy(lease));
    let (ta, tb) = tokio::join!(a.token(), b.token());
    assert_eq!(secret(&ta.unwrap()), "tok-1");
    assert_eq!(secret(&tb.unwrap()), "tok-1");
    assert_eq!(source.calls(), 1);
    assert!(
        store.calls(StoreOp::Renew) >= 3,
        "renewed every third of the lease's life: {}",
        store.calls(StoreOp::Renew)
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_lost_before_the_request_is_sent_sends_nothing_and_is_taken_again() {
    let store = FaultyStore::new(MemoryStore::new());
    let lease = Duration::from_millis(300);
    let source = ScriptedSource::new("p").otherwise(Step::issue(Duration::from_secs(3600)));
    let m = process(&source, store.clone(), policy(lease));
    // The load outlasts a third of the lease, so the watchdog renews before the request; that
    // renewal finds the lease lost.
    store.fail_next(StoreOp::Load, Fault::Delay(lease / 2));
    store.fail_next(StoreOp::Renew, Fault::LoseLock);
    let token = m.token().await.unwrap();
    assert_eq!(secret(&token), "tok-1");
    assert_eq!(source.calls(), 1, "nothing was sent under the lost lease");
    assert_eq!(store.calls(StoreOp::Lock), 2, "the lease was taken again");

    // When every renewal fails, nothing is ever sent.
    let store = FaultyStore::new(MemoryStore::new());
    let source = ScriptedSource::new("p").otherwise(Step::issue(Duration::from_secs(3600)));
    let m = process(&source, store.clone(), policy(lease));
    store.always(StoreOp::Load, Fault::Delay(lease / 2));
    store.always(StoreOp::Renew, Fault::Fail);
    let err = m.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    assert_eq!(source.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn once_sent_the_answer_is_saved_although_the_lease_was_lost_during_the_fetch() {
    let store = FaultyStore::new(MemoryStore::new());
    let lease = Duration::from_millis(300);
    let source = ScriptedSource::new("rot")
        .checking_rotation()
        .otherwise(Step::after(
            lease * 2,
            Step::rotate(Duration::from_secs(3600)),
        ));
    let m = process(&source, store.clone(), policy(lease));
    store.always(StoreOp::Renew, Fault::LoseLock);
    let token = m.token().await.unwrap();
    assert_eq!(secret(&token), "tok-1");
    let stored = store.load(&key()).await.unwrap().unwrap();
    assert_eq!(
        stored
            .refresh
            .as_ref()
            .map(|r| r.expose_secret().to_owned()),
        source.valid_refresh(),
        "the rotated material reached the store"
    );
}

/// A store whose lease is lost while the fetch runs: another holder saves its token, and the
/// first holder's fenced save of a plain token is refused.
#[derive(Debug, Clone)]
struct Overtaken {
    inner: MemoryStore,
    overtake: Arc<AtomicBool>,
}

#[derive(Debug)]
struct LeaseLock(Box<dyn StoreLock>);

#[async_trait]
impl StoreLock for LeaseLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        self.0.release().await
    }
    fn lease(&self) -> Option<Lease> {
        Some(Lease {
            holder: "first".into(),
            fence: 1,
        })
    }
}

#[async_trait]
impl TokenStore for Overtaken {
    async fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError> {
        self.inner.load(key).await
    }
    async fn save(&self, k: &StoreKey, e: &StoredEntry, v: u64) -> Result<u64, StoreError> {
        self.inner.save(k, e, v).await
    }
    async fn save_fenced(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
        fence: &Fence,
    ) -> Result<u64, StoreError> {
        if fence.lease.is_some() && self.overtake.swap(false, SeqCst) {
            let mut theirs = StoredEntry::with_token(
                Token::bearer(
                    SecretString::from("second-holders"),
                    T0,
                    Some(T0 + Duration::from_secs(7200)),
                )
                .unwrap(),
            );
            theirs.credential = entry.credential.clone();
            self.inner.save(key, &theirs, expected).await?;
            return Err(StoreError::LeaseLost { key: key.clone() });
        }
        self.inner.save(key, entry, expected).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn lock(&self, key: &StoreKey, ttl: Duration) -> Result<Box<dyn StoreLock>, StoreError> {
        Ok(Box::new(LeaseLock(self.inner.lock(key, ttl).await?)))
    }
    fn describe(&self) -> String {
        "overtaken".into()
    }
}

#[tokio::test(start_paused = true)]
async fn a_holder_whose_fenced_save_is_refused_adopts_the_token_the_new_holder_saved() {
    let store = Overtaken {
        inner: MemoryStore::new(),
        overtake: Arc::new(AtomicBool::new(true)),
    };
    let source = ScriptedSource::new("p").otherwise(Step::issue(Duration::from_secs(3600)));
    let m = process(&source, store.clone(), policy(Duration::from_secs(20)));
    let token = m.token().await.unwrap();
    assert_eq!(
        secret(&token),
        "second-holders",
        "one token for the whole fleet"
    );
    assert_eq!(m.stats().adopted, 1);
    assert_eq!(source.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rotation_lands_over_a_version_moved_on_by_a_failure_record() {
    // Another process recorded a failure (a new version, the same refresh material) while this
    // one fetched: the rotated material still lands, over the newer version.
    let store = FaultyStore::new(MemoryStore::new());
    let seed = StoredEntry {
        refresh: Some(SecretString::from("refresh-0")),
        ..StoredEntry::default()
    };
    store.inner().save(&key(), &seed, 0).await.unwrap();
    let source = ScriptedSource::new("rot").otherwise(Step::after(
        Duration::from_millis(100),
        Step::rotate(Duration::from_secs(3600)),
    ));
    let m = process(&source, store.clone(), policy(Duration::from_secs(20)));
    let bump = {
        let inner = store.inner().clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut e = inner.load(&key()).await.unwrap().unwrap();
            e.failure = Some(SharedFailure::new(T0, FailureKind::Transient, "x"));
            inner.save(&key(), &e, e.version).await.unwrap();
        })
    };
    let token = m.token().await.unwrap();
    bump.await.unwrap();
    assert_eq!(secret(&token), "tok-1");
    let stored = store.load(&key()).await.unwrap().unwrap();
    assert_eq!(stored.refresh.unwrap().expose_secret(), "refresh-1");
    assert_eq!(
        stored.version, 4,
        "the in-flight mark, the failure record, the rotation"
    );
    assert!(stored.fetching_until.is_none(), "the save clears the mark");
    assert!(!m.stats().pending_save);
}

#[tokio::test(start_paused = true)]
async fn a_process_that_takes_a_lost_lease_waits_for_the_unanswered_request_instead_of_resending() {
    // The holder is stopped mid-request past its lease; another process takes the lease. It
    // must not send the same refresh material (the provider revokes it once used): it waits
    // for the holder's answer and adopts it.
    let memory = MemoryStore::new();
    let source = ScriptedSource::new("rot")
        .checking_rotation()
        .then(Step::rotate(Duration::from_secs(60)))
        .otherwise(Step::after(
            Duration::from_secs(3),
            Step::rotate(Duration::from_secs(3600)),
        ));
    let clock = SharedClock::from(TokioClock::new(T0));
    let holder = process_on(
        &source,
        memory.clone(),
        policy(Duration::from_secs(1)),
        &clock,
    );
    assert_eq!(secret(&holder.token().await.unwrap()), "tok-1");
    tokio::time::advance(Duration::from_secs(120)).await; // tok-1 expired
    let stolen = FaultyStore::new(memory.clone());
    stolen.fail_next(StoreOp::Lock, Fault::LoseLock);
    let second = process_on(
        &source,
        stolen.clone(),
        policy(Duration::from_secs(1)),
        &clock,
    );
    let first = tokio::spawn(async move { holder.token().await.map(|t| secret(&t)) });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = second.token().await.unwrap();
    assert_eq!(first.await.unwrap().unwrap(), "tok-2");
    assert_eq!(
        secret(&late),
        "tok-2",
        "the waiting process adopted the holder's token"
    );
    assert_eq!(source.calls(), 2, "the same material was not sent twice");
    assert_eq!(second.stats().adopted, 1);
    let stored = memory.load(&key()).await.unwrap().unwrap();
    assert_eq!(
        stored.refresh.map(|r| r.expose_secret().to_owned()),
        source.valid_refresh()
    );
}
