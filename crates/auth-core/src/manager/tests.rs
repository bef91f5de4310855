//! The manager's behaviour, with mocked sources, stores and clocks and tokio's paused time.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering::SeqCst},
};

use mockall::predicate::always;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::{Duration, advance};

use super::{test_support::*, *};
use crate::{
    ErrorKind, Fetched, StoreError, TokioClock,
    source::MockTokenSource,
    store::{MemoryStore, MockTokenStore, StoreLock, TokenStore},
};

#[tokio::test(start_paused = true)]
async fn thousand_cold_callers_cause_one_fetch() {
    let (source, calls) = scripted(
        Duration::from_millis(50),
        issuing(Duration::from_secs(3600)),
    );
    let m = manager(source, MemoryStore::new());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.token().await.map(|t| (secret_of(&t), t.generation())) })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().unwrap());
    }
    assert_eq!(calls.load(SeqCst), 1);
    assert!(
        results.iter().all(|r| r == &results[0]),
        "every caller got the same token"
    );
    assert_eq!(results[0].0, "tok-1");
    assert_eq!(m.stats().fetches, 1);
}

/// A caller that found the cache empty just before a refresh published its token, and reaches
/// the flight slot just after that refresh cleared it, is served the published token: nothing
/// is sent. (Found by the pool's stampede test under load: two requests for one key.)
#[tokio::test(start_paused = true)]
async fn a_caller_arriving_just_after_a_refresh_finished_is_served_its_token_without_a_request() {
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager(source, MemoryStore::new());
    let first = m.token().await.unwrap().into_owned();
    // the slow path, as a caller takes it that saw the empty cache before the refresh published
    let late = m.inner.token_slow().await.unwrap();
    assert_eq!(calls.load(SeqCst), 1, "no second request");
    assert!(late.same_secret(&first));
    assert_eq!(m.stats().fetches, 1);
}

#[tokio::test(start_paused = true)]
async fn thousand_cold_callers_share_one_error() {
    let script: Script = Arc::new(|_, _| Err(Error::transient("provider down")));
    let (source, calls) = scripted(Duration::from_millis(50), script);
    let m = manager(source, MemoryStore::new());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.token().await.map(|_| ()).unwrap_err() })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(err.message().contains("provider down"));
    }
    assert_eq!(calls.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn warm_token_is_served_without_fetching() {
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager(source, MemoryStore::new());
    let first = m.token().await.unwrap();
    for _ in 0..100 {
        let again = m.token().await.unwrap();
        assert_eq!(again.generation(), first.generation());
    }
    assert_eq!(calls.load(SeqCst), 1);
    let stats = m.stats();
    assert_eq!(stats.cache_hits, 100);
    assert_eq!(stats.freshness, Some(Freshness::Fresh));
    assert!(stats.time_to_expiry.unwrap() > Duration::from_secs(3500));
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_runs_in_background_while_callers_keep_the_current_token() {
    let (source, calls) = scripted(Duration::from_secs(2), issuing(Duration::from_secs(100)));
    let m = manager(source, MemoryStore::new());
    let first = m.token().await.unwrap();
    assert_eq!(secret_of(&first), "tok-1");
    // 100 s token: skew 5 s, window 10 s (+ up to 5 s jitter): at 90 s it is expiring, not expired
    advance(Duration::from_secs(88)).await;
    assert_eq!(m.freshness(), Some(Freshness::Expiring));
    for _ in 0..50 {
        let t = m.token().await.unwrap();
        assert_eq!(secret_of(&t), "tok-1", "callers are not made to wait");
    }
    settle().await;
    assert_eq!(
        calls.load(SeqCst),
        1 + 1,
        "one background refresh, however many callers"
    );
    // the background fetch takes 2 s of (paused) time; callers meanwhile still get tok-1
    advance(Duration::from_secs(1)).await;
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-1");
    advance(Duration::from_millis(1100)).await;
    settle().await;
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-2");
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_background_refresh_keeps_serving_and_backs_off() {
    let script: Script = Arc::new(|n, req| {
        if n == 1 || n >= 4 {
            Ok(Fetched::new(token(
                &format!("tok-{n}"),
                req.sent_at,
                Duration::from_secs(100),
            )))
        } else {
            Err(Error::transient("temporarily down"))
        }
    });
    let (source, calls) = scripted(Duration::ZERO, script);
    let m = manager(source, MemoryStore::new());
    m.token().await.unwrap();
    advance(Duration::from_secs(88)).await;
    // first attempt in the window fails; the valid token is still served
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-1");
    settle().await;
    assert_eq!(calls.load(SeqCst), 2);
    // immediately again: back-off in force, no new request, still tok-1
    for _ in 0..10 {
        assert_eq!(secret_of(&m.token().await.unwrap()), "tok-1");
    }
    settle().await;
    assert_eq!(
        calls.load(SeqCst),
        2,
        "back-off: no request right after a failure"
    );
    // after the back-off (at most 1 s for the first failure) the next caller triggers a retry
    advance(Duration::from_millis(1001)).await;
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-1");
    settle().await;
    assert_eq!(calls.load(SeqCst), 3);
    // second failure: back-off at most 2 s; then success
    advance(Duration::from_millis(2001)).await;
    m.token().await.unwrap();
    settle().await;
    assert_eq!(calls.load(SeqCst), 4);
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-4");
    assert_eq!(m.stats().failures, 2);
}

#[tokio::test(start_paused = true)]
async fn after_expiry_callers_get_the_typed_error() {
    let script = one_token_then(Error::reauthentication_required("refresh token rejected"));
    let (source, _calls) = scripted(Duration::ZERO, script);
    let m = manager(source, MemoryStore::new());
    m.token().await.unwrap();
    advance(Duration::from_secs(101)).await;
    let err = m.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    // and again at once (inside the back-off), without a request: the same error
    let err = m.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    assert_eq!(m.stats().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn cooldown_is_honoured_and_nothing_is_sent_before_it_ends() {
    let mut source = MockTokenSource::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    source.expect_fetch().returning(move |req| {
        if c.fetch_add(1, SeqCst) == 0 {
            Err(Error::reauthentication_required("invalid client"))
        } else {
            Ok(Fetched::new(token(
                "tok-ok",
                req.sent_at,
                Duration::from_secs(3600),
            )))
        }
    });
    source
        .expect_cooldown_after_failure()
        .returning(|_| Some(Duration::from_secs(60)));
    source.expect_name().return_const("mock".to_owned());
    source.expect_credential_expires_at().return_const(None);
    source.expect_credential().returning(|| None);
    let store = MemoryStore::new();
    let m = manager(SharedTokenSource::new(source), store.clone());

    let err = m.token().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::ReauthenticationRequired,
        "the failure itself is reported as is"
    );
    let until = T0 + Duration::from_secs(60);
    for _ in 0..5 {
        let err = m.token().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited { until });
        assert!(err.message().contains("invalid client"), "{err}");
    }
    assert_eq!(calls.load(SeqCst), 1, "nothing sent during the cool-down");
    // the cool-down is in the store for other processes
    let stored = store.load(m.key()).await.unwrap().unwrap();
    assert_eq!(stored.cooldown_until, Some(until));
    assert_eq!(
        m.stats().cooldown_until,
        Some(until),
        "stats show the cool-down"
    );

    advance(Duration::from_secs(59)).await;
    assert!(matches!(
        m.token().await.unwrap_err().kind(),
        ErrorKind::RateLimited { .. }
    ));
    advance(Duration::from_secs(2)).await;
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-ok");
    assert_eq!(calls.load(SeqCst), 2);
    assert_eq!(m.stats().cooldown_until, None, "over once a token came");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_like_a_cooldown() {
    let script: Script = Arc::new(|n, req| {
        if n == 1 {
            Err(Error::transient("503").with_retry_after(req.sent_at + Duration::from_secs(30)))
        } else {
            Ok(Fetched::new(token(
                "tok-2",
                req.sent_at,
                Duration::from_secs(3600),
            )))
        }
    });
    let (source, calls) = scripted(Duration::ZERO, script);
    let m = manager(source, MemoryStore::new());
    assert_eq!(m.token().await.unwrap_err().kind(), ErrorKind::Transient);
    advance(Duration::from_secs(20)).await;
    let err = m.token().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited {
            until: T0 + Duration::from_secs(30)
        }
    );
    assert_eq!(calls.load(SeqCst), 1);
    advance(Duration::from_secs(11)).await;
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-2");
}

#[tokio::test(start_paused = true)]
async fn cooldown_recorded_by_another_process_is_honoured() {
    let store = MemoryStore::new();
    let key = StoreKey::new("test:default").unwrap();
    let entry = StoredEntry {
        cooldown_until: Some(T0 + Duration::from_secs(45)),
        ..StoredEntry::default()
    };
    store.save(&key, &entry, 0).await.unwrap();
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(60)));
    let m = manager(source, store);
    let err = m.token().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited {
            until: T0 + Duration::from_secs(45)
        }
    );
    assert_eq!(
        m.token().await.unwrap_err().kind(),
        ErrorKind::RateLimited {
            until: T0 + Duration::from_secs(45)
        }
    );
    assert_eq!(calls.load(SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn hundred_concurrent_401s_make_one_refresh_and_late_ones_are_ignored() {
    let (source, calls) = scripted(
        Duration::from_millis(10),
        issuing(Duration::from_secs(3600)),
    );
    let m = manager(source, MemoryStore::new());
    // the middleware keeps the token's identity, not the guard, across its request
    let old = m.token().await.unwrap().id();
    let invalidated: usize = (0..100).filter(|_| m.invalidate(old)).count();
    assert_eq!(invalidated, 1);
    let new = m.token().await.unwrap();
    assert_eq!(secret_of(&new), "tok-2");
    assert_eq!(calls.load(SeqCst), 2);
    // a late 401 for the old token leaves the new one alone
    assert!(!m.invalidate(old));
    let again = m.token().await.unwrap();
    assert_eq!(again.generation(), new.generation());
    assert_eq!(calls.load(SeqCst), 2);
    assert_eq!(m.stats().invalidations, 1);
}

#[tokio::test(start_paused = true)]
async fn invalidated_token_is_not_adopted_back_from_the_store() {
    let store = MemoryStore::new();
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager(source, store.clone());
    let first = m.token().await.unwrap();
    assert!(m.invalidate(&first));
    let second = m.token().await.unwrap();
    assert_eq!(
        secret_of(&second),
        "tok-2",
        "the rejected token stayed in the store but was not reused"
    );
    assert_eq!(calls.load(SeqCst), 2);
}

#[derive(Debug)]
struct NoLock;

#[async_trait::async_trait]
impl StoreLock for NoLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn rotated_refresh_material_is_saved_before_the_token_is_handed_out() {
    let saved = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = saved.clone();
    let mut store = MockTokenStore::new();
    store.expect_lock().returning(|_, _| Ok(Box::new(NoLock)));
    store.expect_load().returning(|_| {
        Ok(Some(StoredEntry {
            refresh: Some(SecretString::from("refresh-0")),
            version: 7,
            ..StoredEntry::default()
        }))
    });
    store
        .expect_save_fenced()
        .with(always(), always(), mockall::predicate::eq(7), always())
        .times(1)
        .returning(|_, entry, _, _| {
            assert!(
                entry.fetching_until.is_some(),
                "the in-flight mark comes first"
            );
            Ok(8)
        });
    store
        .expect_save_fenced()
        .with(always(), always(), mockall::predicate::eq(8), always())
        .times(1)
        .returning(move |_, entry, _, _| {
            log.lock()
                .unwrap()
                .push(entry.refresh.as_ref().unwrap().expose_secret().to_owned());
            Ok(9)
        });
    store.expect_describe().return_const("mock".to_owned());

    let script: Script = Arc::new(|_, req| {
        assert_eq!(
            req.refresh.as_ref().unwrap().expose_secret(),
            "refresh-0",
            "the held material is used"
        );
        Ok(Fetched::rotated(
            token("access-1", req.sent_at, Duration::from_secs(600)),
            SecretString::from("refresh-1"),
        ))
    });
    let (source, _) = scripted(Duration::ZERO, script);
    let m = manager(source, store);
    let t = m.token().await.unwrap();
    assert_eq!(secret_of(&t), "access-1");
    assert_eq!(
        *saved.lock().unwrap(),
        vec!["refresh-1".to_owned()],
        "saved before token() returned"
    );
}

#[tokio::test(start_paused = true)]
async fn rotation_whose_save_fails_is_kept_and_saved_first_next_time() {
    let saves = Arc::new(AtomicUsize::new(0));
    let s = saves.clone();
    let mut store = MockTokenStore::new();
    store.expect_lock().returning(|_, _| Ok(Box::new(NoLock)));
    store.expect_load().returning(|_| Ok(None));
    store
        .expect_save_fenced()
        .times(2)
        .returning(move |_, entry, _, _| {
            if s.fetch_add(1, SeqCst) == 0 {
                Err(StoreError::Unavailable {
                    message: "disk on fire".into(),
                    source: None,
                })
            } else {
                assert_eq!(entry.refresh.as_ref().unwrap().expose_secret(), "refresh-1");
                Ok(1)
            }
        });
    store.expect_describe().return_const("mock".to_owned());
    let script: Script = Arc::new(|n, req| {
        Ok(Fetched::rotated(
            token(
                &format!("access-{n}"),
                req.sent_at,
                Duration::from_secs(600),
            ),
            SecretString::from(format!("refresh-{n}")),
        ))
    });
    let (source, calls) = scripted(Duration::ZERO, script);
    let m = manager(source, store);
    let err = m.token().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Store,
        "not handed out before it is saved"
    );
    advance(Duration::from_secs(2)).await;
    let t = m.token().await.unwrap();
    assert_eq!(
        secret_of(&t),
        "access-1",
        "the kept token is saved and served"
    );
    assert_eq!(
        calls.load(SeqCst),
        1,
        "no second request with the already rotated material"
    );
}

#[tokio::test(start_paused = true)]
async fn starts_from_what_the_store_holds() {
    let store = MemoryStore::new();
    let key = StoreKey::new("test:default").unwrap();
    store
        .save(
            &key,
            &StoredEntry::with_token(token("from-store", T0, Duration::from_secs(3600))),
            0,
        )
        .await
        .unwrap();
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = manager(source, store);
    assert_eq!(secret_of(&m.token().await.unwrap()), "from-store");
    assert_eq!(calls.load(SeqCst), 0);
    assert_eq!(m.stats().adopted, 1);
}

#[tokio::test(start_paused = true)]
async fn expiry_counts_from_when_the_request_was_sent() {
    // 10 s on the wire, 60 s lifetime from the send: expired (minus 3 s skew) at 57 s after send
    let (source, _) = scripted(Duration::from_secs(10), issuing(Duration::from_secs(60)));
    let m = manager(source, MemoryStore::new());
    m.token().await.unwrap();
    let left = m.stats().time_to_expiry.unwrap();
    assert_eq!(left, Duration::from_secs(60 - 10 - 3));
}

#[tokio::test(start_paused = true)]
async fn an_already_expired_token_from_the_provider_is_a_protocol_error() {
    let script: Script = Arc::new(|_, req| {
        Ok(Fetched::new(token(
            "old",
            req.sent_at - Duration::from_secs(7200),
            Duration::from_secs(3600),
        )))
    });
    let (source, _) = scripted(Duration::ZERO, script);
    let m = manager(source, MemoryStore::new());
    let err = m.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.message().contains("already expired"));
}

#[tokio::test(start_paused = true)]
async fn permanent_tokens_never_refresh() {
    let static_token = Token::new(
        SecretString::from("static"),
        crate::AuthScheme::Token,
        T0,
        None,
    )
    .unwrap();
    let m = manager(
        SharedTokenSource::new(crate::StaticSource::new("static", static_token)),
        MemoryStore::new(),
    );
    let t = m.token().await.unwrap();
    assert_eq!(t.header_value().to_str().unwrap(), "Token static");
    advance(Duration::from_secs(10 * 365 * 86400)).await;
    assert_eq!(m.token().await.unwrap().generation(), t.generation());
    assert_eq!(m.stats().time_to_expiry, None);
}

#[test]
fn building_needs_no_runtime() {
    let (source, _) = scripted(Duration::ZERO, issuing(Duration::from_secs(1)));
    let m = TokenManager::builder(source).build().unwrap();
    assert_eq!(m.key().as_str(), "test:default");
    assert_eq!(m.freshness(), None);
}

#[test]
fn a_manager_is_keyed_by_its_sources_store_key_unless_given_another() {
    let by_source = TokenManager::builder(crate::testing::ProbeSource)
        .build()
        .unwrap();
    assert_eq!(
        Some(by_source.key().clone()),
        crate::TokenSource::store_key(&crate::testing::ProbeSource),
        "no .key(..): the account the source serves"
    );
    let chosen = StoreKey::new("probe:chosen").unwrap();
    let overridden = TokenManager::builder(crate::testing::ProbeSource)
        .key(chosen.clone())
        .build()
        .unwrap();
    assert_eq!(overridden.key(), &chosen, ".key(..) wins over the source's");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_manager_lets_a_running_refresh_save_and_starts_nothing_new() {
    let store = MemoryStore::new();
    let (source, calls) = scripted(Duration::from_secs(1), issuing(Duration::from_secs(3600)));
    let m = manager(source, store.clone());
    let key = m.key().clone();
    let m2 = m.clone();
    let caller = tokio::spawn(async move { m2.token().await.map(|_| ()) });
    settle().await;
    caller.abort();
    drop(m);
    advance(Duration::from_secs(2)).await;
    settle().await;
    let stored = store
        .load(&key)
        .await
        .unwrap()
        .expect("the refresh under way finished its save");
    assert!(stored.token.is_some());
    assert_eq!(calls.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_wall_clock_set_back_does_not_make_a_token_live_longer() {
    // the monotonic deadline holds: the wall clock is set back a day, an hour passes
    let clock = crate::ManualClock::new(T0);
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = TokenManager::builder(source)
        .clock(SharedClock::from(clock.clone()))
        .build()
        .unwrap();
    let a = m.token().await.unwrap();
    clock.step_wall(-time::Duration::days(1));
    assert_eq!(m.token().await.unwrap().generation(), a.generation());
    clock.advance_monotonic(Duration::from_secs(3600));
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-2");
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_wall_clock_past_the_stated_expiry_counts_as_expired() {
    // the earlier of the two deadlines wins: the wall clock jumps a day ahead (an NTP step,
    // or a suspend the monotonic clock did not see) while no monotonic time passes
    let clock = crate::ManualClock::new(T0);
    let (source, calls) = scripted(Duration::ZERO, issuing(Duration::from_secs(3600)));
    let m = TokenManager::builder(source)
        .clock(SharedClock::from(clock.clone()))
        .build()
        .unwrap();
    let a = m.token().await.unwrap();
    clock.step_wall(time::Duration::minutes(10));
    assert_eq!(
        m.token().await.unwrap().generation(),
        a.generation(),
        "a wall step inside the token's life changes nothing"
    );
    clock.step_wall(time::Duration::days(1));
    assert_eq!(secret_of(&m.token().await.unwrap()), "tok-2");
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn debug_output_holds_no_secret() {
    let (source, _) = scripted(Duration::ZERO, issuing(Duration::from_secs(60)));
    let m = manager(source, MemoryStore::new());
    let t = m.token().await.unwrap();
    let printed = format!("{t:?} {m:?} {:?}", m.stats());
    assert!(!printed.contains("tok-1"), "{printed}");
    assert!(printed.contains("[redacted]"));
}

#[tokio::test(start_paused = true)]
async fn clock_trait_is_usable_as_object() {
    let clock = SharedClock::from(TokioClock::new(T0));
    let before = clock.monotonic();
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        clock.monotonic().saturating_duration_since(before),
        Duration::from_secs(1)
    );
    assert_eq!(clock.now(), T0 + Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn keep_fresh_refreshes_without_callers_and_stops_with_its_guard() {
    let (source, calls) = scripted(Duration::from_millis(50), issuing(Duration::from_secs(100)));
    let m = manager(source, MemoryStore::new());
    let guard = m.keep_fresh();
    settle().await;
    advance(Duration::from_millis(60)).await;
    settle().await;
    assert_eq!(
        calls.load(SeqCst),
        1,
        "the first token is fetched without a caller"
    );
    // no caller at all for 5 lifetimes: the token is renewed each lifetime, never expires
    for _ in 0..50 {
        advance(Duration::from_secs(10)).await;
        settle().await;
    }
    let fetched = calls.load(SeqCst);
    assert!(
        (5..=7).contains(&fetched),
        "about one refresh per lifetime, got {fetched}"
    );
    assert_eq!(m.freshness(), Some(Freshness::Fresh));
    drop(guard);
    for _ in 0..30 {
        advance(Duration::from_secs(10)).await;
        settle().await;
    }
    assert_eq!(
        calls.load(SeqCst),
        fetched,
        "nothing is fetched after the guard is dropped"
    );
}
