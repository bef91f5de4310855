//! Rejected credentials, the one-request-per-minute rule, and the shared cool-down.

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
    assert_eq!(
        right.cooldown_after_failure(&err),
        Some(Duration::from_secs(60))
    );

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
async fn gateway_timeout_is_transient_with_text_and_cools_down() {
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    sim.fail_next(gateway_timeout());
    let manager = manager(&source(&sim, &clock), &MemoryStore::new(), &clock);
    let err = manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.to_string().contains("Gateway Timeout"), "{err}");
    let err = manager.token().await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Gateway Timeout"), "{err}");
    assert_eq!(sim.request_count(), 1);
}
