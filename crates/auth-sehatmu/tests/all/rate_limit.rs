//! Rejected credentials, the one-request-per-minute rule, and the shared cool-down — which
//! follows credential rejections and rate-limit answers only.

use std::time::Duration;

use auth_core::{ErrorKind, FetchRequest, MemoryStore, TokenSource, TokenStore};
use auth_sehatmu::{CREDENTIALS_REJECTED_TEXT, RATE_LIMIT_TEXT};
use auth_testkit::sehatmu::gateway_timeout;

use crate::support::{clock, manager, sim, source, source_with_secret};

const HOUR: Duration = Duration::from_secs(3600);

fn now(clock: &std::sync::Arc<auth_core::ManualClock>) -> auth_core::time::OffsetDateTime {
    auth_core::Clock::now(&**clock)
}

#[tokio::test(flavor = "current_thread")]
async fn wrong_secret_then_an_immediate_call_is_rate_limited_without_a_request() {
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    let store = MemoryStore::new();
    let wrong = source_with_secret(&sim, "wrong-secret", &clock);
    let failing = manager(&wrong, &store, &clock);

    let err = failing.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err}");
    assert!(err.to_string().contains(CREDENTIALS_REJECTED_TEXT), "{err}");
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        CREDENTIALS_REJECTED_TEXT
    );
    assert_eq!(sim.request_count(), 1);

    let failed_at = now(&clock);
    let err = failing.token().await.unwrap_err();
    let ErrorKind::RateLimited { until } = err.kind() else {
        panic!("{err:?}")
    };
    assert_eq!(until, failed_at + Duration::from_secs(60));
    assert!(
        err.to_string().contains(CREDENTIALS_REJECTED_TEXT),
        "the cause is kept: {err}"
    );
    assert_eq!(sim.request_count(), 1, "nothing sent during the cool-down");

    // The cool-down is in the store, so another process sharing it sends nothing either.
    let stored = store.load(failing.key()).await.unwrap().unwrap();
    assert_eq!(stored.cooldown_until, Some(until));
    let other_process = manager(
        &source_with_secret(&sim, sim.client_secret(), &clock),
        &store,
        &clock,
    );
    let err = other_process.token().await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "{err:?}"
    );
    assert_eq!(sim.request_count(), 1);

    // After the minute, the right secret works.
    clock.advance(Duration::from_secs(61));
    let fixed = manager(&source(&sim, &clock), &store, &clock);
    fixed.token().await.unwrap();
    assert_eq!(sim.request_count(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn the_simulators_rate_limit_answer_is_rate_limited() {
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    sim.set_rate_limit_window(Duration::from_secs(5));
    // Two processes that do not share a store: the first fails, the second is refused by SehatMu.
    let wrong = source_with_secret(&sim, "wrong-secret", &clock);
    let err = wrong
        .fetch(FetchRequest::new(None, now(&clock)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);

    let right = source(&sim, &clock);
    let err = right
        .fetch(FetchRequest::new(None, now(&clock)))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited {
            until: now(&clock) + Duration::from_secs(60)
        },
        "{err}"
    );
    assert!(err.to_string().contains(RATE_LIMIT_TEXT), "{err}");
    // The answer carries its own minute; the source declares nothing more on top of it.
    assert_eq!(right.cooldown_after_failure(&err), None);

    // Through a manager: rate limited, then nothing is sent until the cool-down ends.
    let refused = manager(&right, &MemoryStore::new(), &clock);
    let err = refused.token().await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "{err:?}"
    );
    let count = sim.request_count();
    assert!(refused.token().await.is_err());
    assert_eq!(sim.request_count(), count);

    // The simulator's (shortened) window has passed, and the manager's minute too.
    clock.advance(Duration::from_secs(61));
    refused.token().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn too_many_tokens_in_a_window_are_refused() {
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    sim.set_max_tokens_per_window(Some(1));
    let source = source(&sim, &clock);
    source
        .fetch(FetchRequest::new(None, now(&clock)))
        .await
        .unwrap();
    let err = source
        .fetch(FetchRequest::new(None, now(&clock)))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_gateway_timeout_gets_back_off_not_the_minute_and_stops_no_other_process() {
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    let store = MemoryStore::new();
    sim.fail_next(gateway_timeout());
    let first = manager(&source(&sim, &clock), &store, &clock);
    let err = first.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.to_string().contains("Gateway Timeout"), "{err}");
    // No cool-down is recorded for the fleet…
    let stored = store.load(first.key()).await.unwrap();
    assert!(
        stored.is_none_or(|e| e.cooldown_until.is_none()),
        "a 5xx is no failed authentication"
    );
    // …so another process tries at once, and gets a token.
    let second = manager(&source(&sim, &clock), &store, &clock);
    second.token().await.unwrap();
    assert_eq!(sim.request_count(), 2);
    // The first one waits out its ordinary back-off (about a second), not a minute.
    clock.advance(Duration::from_secs(2));
    first.token().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn no_failure_but_a_refusal_starts_the_minute() {
    use auth_testkit::Fault;
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    let faults = [
        (
            "503",
            Fault::status(503, Some("text/plain"), "Service Unavailable"),
        ),
        ("timeout", Fault::Delay(Duration::from_secs(3))),
        ("dropped connection", Fault::CloseConnection),
        ("unparsable answer", Fault::MalformedJson),
        ("html", Fault::Html),
    ];
    for (name, fault) in faults {
        let store = MemoryStore::new();
        sim.fail_next(fault);
        let failing = manager(&source(&sim, &clock), &store, &clock);
        let err = failing.token().await.unwrap_err();
        assert!(
            !matches!(err.kind(), ErrorKind::RateLimited { .. }),
            "{name}: {err:?}"
        );
        let stored = store.load(failing.key()).await.unwrap();
        assert!(
            stored.is_none_or(|e| e.cooldown_until.is_none()),
            "{name}: no cool-down stored"
        );
        let before = sim.request_count();
        manager(&source(&sim, &clock), &store, &clock)
            .token()
            .await
            .unwrap_or_else(|e| panic!("{name}: the next process is stopped: {e:?}"));
        assert_eq!(sim.request_count(), before + 1, "{name}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_store_error_where_nothing_was_sent_starts_no_cool_down() {
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    let store = FlakyStore::default();
    store.fail_locks(true);
    let manager = auth_core::TokenManager::builder(auth_core::SharedTokenSource::from_arc(source(
        &sim, &clock,
    )))
    .store(store.clone())
    .clock(auth_core::SharedClock::from(clock.clone()))
    .build()
    .unwrap();
    let err = manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    assert_eq!(sim.request_count(), 0, "nothing was sent");

    // The store is back and the ordinary back-off (about a second) has passed: SehatMu is asked
    // at once, not a minute later.
    store.fail_locks(false);
    clock.advance(Duration::from_secs(2));
    manager
        .token()
        .await
        .unwrap_or_else(|e| panic!("held back after a store error: {e:?}"));
    assert_eq!(sim.request_count(), 1);
}

/// A memory store whose lock can be made to fail, as a Redis or file store that is down.
#[derive(Clone, Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyStore {
    fn fail_locks(&self, fail: bool) {
        self.fail.store(fail, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl TokenStore for FlakyStore {
    async fn load(
        &self,
        key: &auth_core::StoreKey,
    ) -> Result<Option<auth_core::StoredEntry>, auth_core::StoreError> {
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &auth_core::StoreKey,
        entry: &auth_core::StoredEntry,
        expected: u64,
    ) -> Result<u64, auth_core::StoreError> {
        self.inner.save(key, entry, expected).await
    }

    async fn delete(&self, key: &auth_core::StoreKey) -> Result<(), auth_core::StoreError> {
        self.inner.delete(key).await
    }

    async fn lock(
        &self,
        key: &auth_core::StoreKey,
        ttl: Duration,
    ) -> Result<Box<dyn auth_core::StoreLock>, auth_core::StoreError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(auth_core::StoreError::Unavailable {
                message: "the lock service is down".to_owned(),
                source: None,
            });
        }
        self.inner.lock(key, ttl).await
    }

    fn describe(&self) -> String {
        "flaky-memory".to_owned()
    }
}
