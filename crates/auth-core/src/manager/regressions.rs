//! Regression tests for the defects of issue 12, one or more per item; each failed before its
//! fix.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering::SeqCst},
};

use futures_util::FutureExt as _;
use secrecy::{ExposeSecret, SecretString};
use time::{UtcOffset, macros::datetime};
use tokio::time::{Duration, advance};

use super::{test_support::*, *};
use crate::{
    ErrorKind, Fetched, ManualClock, StaticSource, TokenSource,
    store::{MemoryStore, TokenStore},
    testing::{Fault, FaultyStore, StoreOp},
};

// ---- 1. A panicking or cancelled refresh disables the manager forever ----

#[tokio::test(start_paused = true)]
async fn a_panicking_fetch_is_a_recorded_failure_and_the_next_caller_after_backoff_fetches_again() {
    let script: Script = Arc::new(|n, req| {
        assert!(n != 1, "the source panics on its first call");
        Ok(Fetched::new(token(
            "tok-2",
            req.sent_at,
            Duration::from_secs(3600),
        )))
    });
    let (source, calls) = scripted(Duration::ZERO, script);
    let m = manager(source, MemoryStore::new());
    let err = m.token().await.unwrap_err();
    assert!(err.message().contains("panicked"), "{err}");
    assert_eq!(m.stats().failures, 1, "the panic is recorded as a failure");
    advance(Duration::from_millis(1001)).await;
    let t = m.token().await.unwrap();
    assert_eq!(secret_of(&t), "tok-2");
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_resumes_after_a_background_refresh_panicked() {
    let script: Script = Arc::new(|n, req| {
        assert!(n != 2, "the first background refresh panics");
        Ok(Fetched::new(token(
            &format!("tok-{n}"),
            req.sent_at,
            Duration::from_secs(100),
        )))
    });
    let (source, calls) = scripted(Duration::ZERO, script);
    let m = manager(source, MemoryStore::new());
    m.token().await.unwrap();
    advance(Duration::from_secs(88)).await;
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-1");
    settle().await;
    assert_eq!(
        calls.load(SeqCst),
        2,
        "the background refresh ran (and panicked)"
    );
    // after the back-off (capped at a quarter of the remaining life) the window retries
    advance(Duration::from_millis(1001)).await;
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-1");
    settle().await;
    assert_eq!(
        calls.load(SeqCst),
        3,
        "refresh-ahead was not left switched off"
    );
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-3");
}

#[test]
fn a_refresh_cancelled_by_its_runtime_shutting_down_does_not_disable_the_manager() {
    let clock = ManualClock::new(T0);
    let (source, calls) = scripted(Duration::from_secs(5), issuing(Duration::from_secs(3600)));
    let m = manager_with(source, MemoryStore::new(), SharedClock::from(clock.clone()));
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    first.block_on(async {
        let m = m.clone();
        tokio::spawn(async move { m.token().await.map(|_| ()) });
        settle().await;
    });
    assert_eq!(calls.load(SeqCst), 1, "the refresh was under way");
    drop(first); // the runtime shuts down with the refresh task in it

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    second.block_on(async {
        clock.advance(Duration::from_secs(2)); // past the back-off of one failure
        let t = tokio::time::timeout(Duration::from_secs(60), m.token())
            .await
            .expect("the manager answers")
            .expect("a new refresh runs on this runtime");
        assert_eq!(secret_of(&t), "tok-2");
    });
    assert_eq!(calls.load(SeqCst), 2);
}

#[test]
fn token_polled_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = TokenManager::builder(source).build().unwrap();
    let outcome = m.token().now_or_never();
    let err = outcome
        .expect("answers at once without a runtime")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(err.message().contains("runtime"), "{err}");
    assert_eq!(calls.load(SeqCst), 0);
}

// ---- 2. Absurd values panic the process ----

#[tokio::test(start_paused = true)]
async fn a_source_declaring_an_absurd_cooldown_does_not_panic() {
    #[derive(Debug)]
    struct Absurd;
    #[async_trait::async_trait]
    impl TokenSource for Absurd {
        async fn fetch(&self, _request: FetchRequest) -> Result<Fetched, Error> {
            Err(Error::transient("down"))
        }
        fn cooldown_after_failure(&self, _error: &Error) -> Option<Duration> {
            Some(Duration::MAX)
        }
    }
    let m = manager(SharedTokenSource::new(Absurd), MemoryStore::new());
    assert_eq!(m.token().await.unwrap_err().kind(), ErrorKind::Transient);
    assert!(matches!(
        m.token().await.unwrap_err().kind(),
        ErrorKind::RateLimited { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_token_expiring_at_the_end_of_year_9999_is_served_and_its_expiry_formats_in_wib() {
    let script: Script = Arc::new(|_, req| {
        let far = Token::bearer(
            SecretString::from("far"),
            req.sent_at,
            Some(datetime!(9999-12-31 23:59:59.999999999 UTC)),
        )?;
        Ok(Fetched::new(far))
    });
    let (source, _) = scripted(Duration::ZERO, script);
    let store = MemoryStore::new();
    let m = manager(source, store.clone());
    let t = m.token().await.unwrap();
    let wib = UtcOffset::from_hms(7, 0, 0).unwrap();
    // what `kunci status` does with an expiry: show it in the local offset
    let shown = t.expires_at().unwrap().to_offset(wib);
    assert_eq!(shown.offset(), wib);
    assert!(m.stats().time_to_expiry.unwrap() > Duration::from_secs(3600 * 24 * 365));
}

#[test]
fn tokens_from_before_year_0_or_after_9999_are_placed_without_panic() {
    let p = RefreshPolicy::default();
    let mono = MonoTime::from_nanos(1_000_000_000);
    for (issued, expires) in [
        (
            datetime!(-9999-01-01 00:00 UTC),
            datetime!(9999-12-31 23:59:59 UTC),
        ),
        (
            datetime!(9999-12-31 23:59:59 UTC),
            datetime!(-9999-01-01 00:00 UTC),
        ),
        (T0, datetime!(9999-12-31 23:59:59 -23:59)),
    ] {
        let d = p.deadlines(issued, Some(expires), T0, mono, 0.99);
        let _ = d.freshness(mono);
        // a token with such times can be built and its expiry shown in any offset
        let t = Token::bearer(SecretString::from("x"), issued, Some(expires)).unwrap();
        let _ = t
            .expires_at()
            .unwrap()
            .to_offset(UtcOffset::from_hms(7, 0, 0).unwrap());
        let _ = t
            .issued_at()
            .to_offset(UtcOffset::from_hms(-12, 0, 0).unwrap());
    }
}

// ---- 3. A valid token in the store is refused ----

#[tokio::test(start_paused = true)]
async fn a_valid_stored_token_is_served_although_a_cooldown_is_stored() {
    let store = MemoryStore::new();
    let mut entry = StoredEntry::with_token(token("stored", T0, Duration::from_secs(3600)));
    entry.cooldown_until = Some(T0 + Duration::from_secs(60));
    store.save(&key(), &entry, 0).await.unwrap();
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager(source, store);
    assert_eq!(secret_of(&m.token().await.unwrap()), "stored");
    assert_eq!(calls.load(SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cold_process_serves_a_stored_token_inside_its_window_when_the_refresh_fails() {
    // 100 s lifetime, 90 s gone: inside the window (10-15 s), still valid for 5 s (skew 5 s)
    let store = MemoryStore::new();
    let stored = token(
        "stored",
        T0 - Duration::from_secs(90),
        Duration::from_secs(100),
    );
    store
        .save(&key(), &StoredEntry::with_token(stored), 0)
        .await
        .unwrap();
    let script: Script = Arc::new(|_, _| Err(Error::transient("provider down")));
    let (source, _) = scripted(Duration::from_millis(10), script);
    let m = manager(source, store);
    let t = m.token().await.expect("the valid stored token is served");
    assert_eq!(secret_of(&t), "stored");
}

// ---- 4. A stored token is not tied to the credential that made it ----

#[tokio::test(start_paused = true)]
async fn a_stored_token_made_with_another_credential_is_not_adopted_and_is_replaced() {
    let store = MemoryStore::new();
    let static_token = |s: &str| {
        Token::new(
            SecretString::from(s.to_owned()),
            crate::AuthScheme::Token,
            T0,
            None,
        )
        .unwrap()
    };
    let leaked = manager(
        SharedTokenSource::new(StaticSource::new("stamps", static_token("leaked"))),
        store.clone(),
    );
    assert_eq!(secret_of(&leaked.token().await.unwrap()), "leaked");
    // the operator replaces the credential; a new process starts with the same store
    let replaced = manager(
        SharedTokenSource::new(StaticSource::new("stamps", static_token("replaced"))),
        store.clone(),
    );
    assert_eq!(secret_of(&replaced.token().await.unwrap()), "replaced");
    let stored = store.load(&key()).await.unwrap().unwrap();
    assert_eq!(secret_of(stored.token.as_ref().unwrap()), "replaced");
}

// ---- 5. An unsaved rotation overwrites newer store contents ----

fn rotating() -> Script {
    Arc::new(|n, req| {
        Ok(Fetched::rotated(
            token(
                &format!("access-{n}"),
                req.sent_at,
                Duration::from_secs(600),
            ),
            SecretString::from(format!("refresh-{n}")),
        ))
    })
}

fn refresh_of(entry: &StoredEntry) -> String {
    entry.refresh.as_ref().unwrap().expose_secret().to_owned()
}

#[tokio::test(start_paused = true)]
async fn an_unsaved_rotation_is_not_written_over_what_the_fleet_stored_since() {
    let store = FaultyStore::new(MemoryStore::new());
    let (source, calls) = scripted(Duration::ZERO, rotating());
    let m = manager(source, store.clone());
    store.fail_next(StoreOp::Save, Fault::Fail);
    assert_eq!(m.token().await.unwrap_err().kind(), ErrorKind::Store);
    // meanwhile another process rotated further and stored its material
    let newer = StoredEntry {
        token: Some(token("access-other", T0, Duration::from_secs(600))),
        refresh: Some(SecretString::from("refresh-other")),
        ..StoredEntry::default()
    };
    store.inner().save(&key(), &newer, 0).await.unwrap();
    advance(Duration::from_secs(2)).await;
    let t = m.token().await.unwrap();
    assert_eq!(
        secret_of(&t),
        "access-other",
        "the fleet's newer token is adopted"
    );
    let stored = store.load(&key()).await.unwrap().unwrap();
    assert_eq!(
        refresh_of(&stored),
        "refresh-other",
        "the newer material is kept"
    );
    assert_eq!(calls.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_save_that_landed_despite_its_error_is_not_saved_again() {
    let store = FaultyStore::new(MemoryStore::new());
    let (source, calls) = scripted(Duration::ZERO, rotating());
    let m = manager(source, store.clone());
    store.fail_next(StoreOp::Save, Fault::FailAfterWrite);
    assert_eq!(m.token().await.unwrap_err().kind(), ErrorKind::Store);
    assert_eq!(store.load(&key()).await.unwrap().unwrap().version, 1);
    advance(Duration::from_secs(2)).await;
    let t = m.token().await.unwrap();
    assert_eq!(secret_of(&t), "access-1");
    let stored = store.load(&key()).await.unwrap().unwrap();
    assert_eq!(stored.version, 1, "nothing was written a second time");
    assert_eq!(calls.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn logout_is_not_undone_by_a_pending_save() {
    let store = FaultyStore::new(MemoryStore::new());
    let (source, _) = scripted(Duration::ZERO, rotating());
    let m = manager(source, store.clone());
    m.token().await.unwrap(); // saved at version 1
    // the refresh after a 401 cannot save its rotation: it is kept pending (its in-flight
    // mark, the save before the request, lands)
    store.fail_next(StoreOp::Save, Fault::Delay(Duration::ZERO));
    store.fail_next(StoreOp::Save, Fault::Fail);
    assert!(m.invalidate(&m.token().await.unwrap()));
    settle().await;
    assert!(!store.has_faults(), "the save was tried");
    // the operator logs out
    store.delete(&key()).await.unwrap();
    advance(Duration::from_secs(2)).await;
    let _ = m.token().await;
    settle().await;
    let stored = store.load(&key()).await.unwrap();
    assert!(
        stored
            .as_ref()
            .and_then(|e| e.refresh.as_ref())
            .is_none_or(|r| r.expose_secret() != "refresh-2"),
        "the pending rotation from before the logout was written back"
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_pending_token_is_never_handed_out() {
    let store = FaultyStore::new(MemoryStore::new());
    let script: Script = Arc::new(|n, req| {
        Ok(Fetched::rotated(
            token(&format!("access-{n}"), req.sent_at, Duration::from_secs(10)),
            SecretString::from(format!("refresh-{n}")),
        ))
    });
    let (source, calls) = scripted(Duration::ZERO, script);
    let m = manager(source, store.clone());
    store.fail_next(StoreOp::Save, Fault::Fail);
    assert_eq!(m.token().await.unwrap_err().kind(), ErrorKind::Store);
    advance(Duration::from_secs(60)).await;
    let t = m.token().await.unwrap();
    assert_ne!(
        secret_of(&t),
        "access-1",
        "the pending token expired long ago"
    );
    assert_eq!(calls.load(SeqCst), 2);
    let stored = store.load(&key()).await.unwrap().unwrap();
    assert_eq!(refresh_of(&stored), "refresh-2");
}

// ---- 6. RateLimited { until } lies ----

#[tokio::test(start_paused = true)]
async fn at_the_until_a_rate_limited_error_names_the_next_call_sends_a_request() {
    // four transient failures, then a 429 asking for 1 s: the back-off (8-16 s) is longer
    let script: Script = Arc::new(|n, req| match n {
        1..=4 => Err(Error::transient("down")),
        5 => Err(Error::rate_limited(
            req.sent_at + Duration::from_secs(1),
            "429",
        )),
        _ => Ok(Fetched::new(token(
            "tok",
            req.sent_at,
            Duration::from_secs(3600),
        ))),
    });
    let (source, calls) = scripted(Duration::ZERO, script);
    let clock = ManualClock::new(T0);
    let m = manager_with(source, MemoryStore::new(), SharedClock::from(clock.clone()));
    for _ in 0..4 {
        let _ = m.token().await;
        clock.advance(Duration::from_secs(20));
    }
    let err = m.token().await.unwrap_err();
    assert_eq!(calls.load(SeqCst), 5);
    let ErrorKind::RateLimited { until } = err.kind() else {
        panic!("{err:?}")
    };
    // the callers told "until" are told the truth: nothing is sent before it, one request at it
    clock.set_wall_and_advance_to(until - Duration::from_millis(1));
    let early = m.token().await.unwrap_err();
    assert_eq!(early.kind(), ErrorKind::RateLimited { until }, "{early:?}");
    assert_eq!(calls.load(SeqCst), 5);
    clock.set_wall_and_advance_to(until);
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok");
    assert_eq!(calls.load(SeqCst), 6);
}

#[tokio::test(start_paused = true)]
async fn an_invalidate_during_a_cooldown_sends_nothing_and_does_not_lengthen_it() {
    #[derive(Debug)]
    struct CoolingSource(Arc<AtomicUsize>);
    #[async_trait::async_trait]
    impl TokenSource for CoolingSource {
        async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
            match self.0.fetch_add(1, SeqCst) {
                0 => Ok(Fetched::new(token(
                    "tok-1",
                    request.sent_at,
                    Duration::from_secs(100),
                ))),
                1 => Err(Error::transient("refused")),
                _ => Ok(Fetched::new(token(
                    "tok-3",
                    request.sent_at,
                    Duration::from_secs(100),
                ))),
            }
        }
        fn cooldown_after_failure(&self, _error: &Error) -> Option<Duration> {
            Some(Duration::from_secs(60))
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let m = manager(
        SharedTokenSource::new(CoolingSource(calls.clone())),
        MemoryStore::new(),
    );
    let first = m.token().await.unwrap();
    advance(Duration::from_secs(88)).await;
    drop(m.token().await.unwrap()); // background refresh: fails, 60 s cool-down from here
    settle().await;
    assert_eq!(calls.load(SeqCst), 2);
    advance(Duration::from_secs(30)).await;
    assert!(m.invalidate(&first));
    settle().await;
    assert_eq!(
        calls.load(SeqCst),
        2,
        "nothing is sent during the cool-down"
    );
    assert_eq!(m.stats().failures, 1, "an unsent request is not a failure");
    advance(Duration::from_secs(31)).await; // the cool-down of the real failure has ended
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-3");
    assert_eq!(calls.load(SeqCst), 3);
}

// ---- 7. Retry-After is unbounded ----

#[tokio::test(start_paused = true)]
async fn a_retry_after_in_the_year_9999_is_capped_at_an_hour() {
    let script: Script = Arc::new(|n, req| {
        if n == 1 {
            Err(Error::transient("503").with_retry_after(datetime!(9999-12-31 23:59:59 UTC)))
        } else {
            Ok(Fetched::new(token(
                "tok",
                req.sent_at,
                Duration::from_secs(3600),
            )))
        }
    });
    let (source, calls) = scripted(Duration::ZERO, script);
    let store = MemoryStore::new();
    let m = manager(source, store.clone());
    let _ = m.token().await.unwrap_err();
    let stored = store.load(&key()).await.unwrap().unwrap();
    assert!(
        stored.cooldown_until.unwrap() <= T0 + Duration::from_secs(3600),
        "{:?}",
        stored.cooldown_until
    );
    advance(Duration::from_secs(3601)).await;
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok");
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stored_cooldown_in_the_year_9999_is_capped_at_an_hour() {
    let store = MemoryStore::new();
    let entry = StoredEntry {
        cooldown_until: Some(datetime!(9999-12-31 23:59:59 UTC)),
        ..StoredEntry::default()
    };
    store.save(&key(), &entry, 0).await.unwrap();
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager(source, store);
    let err = m.token().await.unwrap_err();
    let ErrorKind::RateLimited { until } = err.kind() else {
        panic!("{err:?}")
    };
    assert!(until <= T0 + Duration::from_secs(3600), "{until}");
    advance(Duration::from_secs(3601)).await;
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-1");
    assert_eq!(calls.load(SeqCst), 1);
}

// ---- 8. Suspend makes expired tokens look fresh ----

#[tokio::test(start_paused = true)]
async fn after_a_suspend_longer_than_its_life_a_token_is_not_served() {
    let clock = ManualClock::new(T0);
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager_with(source, MemoryStore::new(), SharedClock::from(clock.clone()));
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-1");
    // the laptop sleeps two hours: the monotonic clock stands still, the wall clock does not
    clock.suspend(Duration::from_secs(2 * 3600));
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-2");
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn after_a_suspend_into_its_window_a_token_is_refreshed_ahead() {
    let clock = ManualClock::new(T0);
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager_with(source, MemoryStore::new(), SharedClock::from(clock.clone()));
    m.token().await.unwrap();
    clock.suspend(Duration::from_secs(3600 - 60)); // 60 s left: inside the 5-minute window
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-1", "still valid");
    settle().await;
    assert_eq!(calls.load(SeqCst), 2, "a refresh started in the background");
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-2");
}

// ---- 9. Re-adoption and late invalidation ----

#[tokio::test(start_paused = true)]
async fn a_background_refresh_never_readopts_the_managers_own_token() {
    for seed in 0..16 {
        fastrand::seed(seed);
        let script = one_token_then(Error::transient("down"));
        let (source, _) = scripted(Duration::ZERO, script);
        let m = manager(source, MemoryStore::new());
        let first = m.token().await.unwrap();
        let id = first.generation();
        drop(first);
        while m.freshness() == Some(Freshness::Fresh) {
            advance(Duration::from_millis(100)).await;
        }
        drop(m.token().await.unwrap());
        settle().await;
        assert_eq!(m.stats().adopted, 0, "seed {seed}");
        assert_eq!(m.token().await.unwrap().generation(), id, "seed {seed}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_rejected_with_a_401_is_not_republished_when_the_store_moved_on() {
    let store = MemoryStore::new();
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager(source, store.clone());
    let first = m.token().await.unwrap();
    // another process records something on the same entry (the token unchanged): version 2
    let mut entry = store.load(&key()).await.unwrap().unwrap();
    entry.cooldown_until = Some(T0 - Duration::from_secs(1));
    store.save(&key(), &entry, 1).await.unwrap();
    assert!(m.invalidate(&first));
    let next = m.token().await.unwrap();
    assert_eq!(
        secret_of(&next),
        "tok-2",
        "the rejected token is not handed out again"
    );
    assert_eq!(calls.load(SeqCst), 2);
}

// ---- 10. No damping for tokens that arrive already inside their window ----

#[tokio::test(start_paused = true)]
async fn a_token_arriving_inside_its_window_is_refetched_at_most_once_per_interval() {
    // the provider hands out its own cached day-long token with 4 minutes left
    let script: Script = Arc::new(|_, req| {
        let issued = req.sent_at - Duration::from_secs(24 * 3600 - 240);
        Ok(Fetched::new(token(
            "cached",
            issued,
            Duration::from_secs(24 * 3600),
        )))
    });
    let (source, calls) = scripted(Duration::ZERO, script);
    let m = manager(source, MemoryStore::new());
    m.token().await.unwrap();
    for _ in 0..100 {
        drop(m.token().await.unwrap());
        settle().await;
    }
    assert_eq!(calls.load(SeqCst), 1, "no fetch back to back");
    advance(Duration::from_secs(11)).await;
    for _ in 0..100 {
        drop(m.token().await.unwrap());
        settle().await;
    }
    assert_eq!(calls.load(SeqCst), 2, "one more after the interval");
}

// ---- 11. Guards held across requests defeat the cheap path ----

#[tokio::test(start_paused = true)]
async fn an_owned_token_outlives_its_replacement_and_invalidates_by_identity() {
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager(source, MemoryStore::new());
    // kept across a request: an ordinary reference count, no per-thread slot
    let held: OwnedToken = m.token().await.unwrap().into_owned();
    let id = held.id();
    let copy = held.clone();
    assert_eq!(copy.id(), id);
    assert!(m.invalidate(&held), "a 401 for the held token");
    let next = m.token().await.unwrap();
    assert_ne!(next.id(), id);
    assert_eq!(secret_of(&next), "tok-2");
    assert_eq!(
        secret_of(&held),
        "tok-1",
        "the owned handle still shows its token"
    );
    assert!(!m.invalidate(id), "a late 401 for it changes nothing");
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_identity_from_another_manager_invalidates_nothing() {
    let (a_source, _) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let (b_source, b_calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let a = manager(a_source, MemoryStore::new());
    let b = manager(b_source, MemoryStore::new());
    let from_a = a.token().await.unwrap().id();
    drop(b.token().await.unwrap());
    assert!(!b.invalidate(from_a));
    assert_eq!(b_calls.load(SeqCst), 1);
}
