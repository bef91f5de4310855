//! Stress in real time: two managers sharing a store on a four-worker runtime, for two seconds,
//! with callers on every worker, 401s, a keep-fresh task, tokens living 300 ms (so dozens of
//! rotations), and a source that now and then fails, panics or is slow. Nothing is timed:
//! the test checks that no expired token is handed out, that one request at most is in flight
//! for the key, that the rotated refresh material is never lost, and that both managers serve
//! tokens again once the faults stop.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test helpers fail loudly and report what they did"
)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use auth_core::{
    Clock as _, Credential, Error, MemoryStore, RefreshPolicy, StoreKey, SystemClock, TokenManager,
    testing::{ScriptedSource, Step},
};
use secrecy::{ExposeSecret as _, SecretString};

const LIFETIME: Duration = Duration::from_millis(300);
const RUN: Duration = Duration::from_secs(2);

fn policy() -> RefreshPolicy {
    let mut policy = RefreshPolicy::default();
    policy.backoff_initial = Duration::from_millis(5);
    policy.backoff_max = Duration::from_millis(50);
    policy.min_refresh_interval = Duration::from_millis(20);
    policy.refresh_timeout = Duration::from_secs(5);
    policy
}

#[test]
fn callers_invalidations_and_background_refreshes_on_every_worker_keep_the_invariants() {
    auth_core::testing::silence_scripted_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(stress());
}

async fn stress() {
    let store = MemoryStore::new();
    let source = ScriptedSource::new("stress")
        .otherwise(Step::after(
            Duration::from_millis(3),
            Step::rotate(LIFETIME),
        ))
        .checking_rotation()
        .with_credential(Credential::new("stress").secret("k", &SecretString::from("refresh-0")));
    let key = StoreKey::new("stress:default").unwrap();
    let managers: Vec<TokenManager> = (0..2)
        .map(|_| {
            TokenManager::builder(source.clone())
                .store(store.clone())
                .key(key.clone())
                .policy(policy())
                .build()
                .unwrap()
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let expired = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let _keep_fresh = managers[0].keep_fresh();

    let mut tasks = Vec::new();
    for manager in &managers {
        for _ in 0..6 {
            let (m, stop, served, errors, expired) = (
                manager.clone(),
                stop.clone(),
                served.clone(),
                errors.clone(),
                expired.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let clock = SystemClock::new();
                while !stop.load(SeqCst) {
                    // read before the call: a token expired at this moment must never come back
                    let asked_at = clock.now();
                    match m.token().await {
                        Ok(token) => {
                            served.fetch_add(1, SeqCst);
                            if token.expires_at().is_some_and(|e| e <= asked_at) {
                                expired
                                    .lock()
                                    .unwrap()
                                    .push(token.secret().expose_secret().to_owned());
                            }
                        }
                        Err(_) => {
                            errors.fetch_add(1, SeqCst);
                        }
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        // a 401 now and then for whatever token is current
        let (m, stop) = (manager.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(SeqCst) {
                if let Ok(token) = m.token().await {
                    let id = token.id();
                    drop(token);
                    m.invalidate(id);
                }
                tokio::time::sleep(Duration::from_millis(37)).await;
            }
        }));
    }
    // the provider misbehaves now and then
    let (faults, stop_faults) = (source.clone(), stop.clone());
    tasks.push(tokio::spawn(async move {
        let mut n = 0u32;
        while !stop_faults.load(SeqCst) {
            n += 1;
            faults.push(match n % 4 {
                0 => Step::Panic,
                1 => Step::Fail(Error::transient("stress: 503")),
                2 => Step::after(Duration::from_millis(40), Step::rotate(LIFETIME)),
                _ => Step::Fail(Error::transient("stress: connection reset")),
            });
            tokio::time::sleep(Duration::from_millis(90)).await;
        }
    }));

    tokio::time::sleep(RUN).await;
    stop.store(true, SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    source.clear();

    assert!(
        expired.lock().unwrap().is_empty(),
        "expired tokens handed out: {:?}",
        expired.lock().unwrap()
    );
    assert_eq!(
        source.max_in_flight(),
        1,
        "one request at a time for the key"
    );
    assert!(served.load(SeqCst) > 0);
    assert!(source.calls() > 10, "tokens rotated: {}", source.calls());

    // The faults stop: both managers serve again, each after a refresh of its own (a 401),
    // and the provider's current refresh material is the stored one.
    for manager in &managers {
        if let Ok(token) = manager.token().await {
            manager.invalidate(&token);
        }
        let mut outcome = manager.token().await;
        for _ in 0..50 {
            if outcome.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
            outcome = manager.token().await;
        }
        outcome.expect("the manager recovers once the faults stop");
        assert!(!manager.stats().pending_save);
    }
    let stored = store_refresh(&store, &key).await;
    assert_eq!(
        stored,
        source.valid_refresh(),
        "the newest refresh material is stored"
    );
    eprintln!(
        "stress: {} tokens served, {} errors, {} requests, {} invalidations",
        served.load(SeqCst),
        errors.load(SeqCst),
        source.calls(),
        managers
            .iter()
            .map(|m| m.stats().invalidations)
            .sum::<u64>()
    );
}

async fn store_refresh(store: &MemoryStore, key: &StoreKey) -> Option<String> {
    auth_core::TokenStore::load(store, key)
        .await
        .unwrap()
        .and_then(|e| e.refresh)
        .map(|r| r.expose_secret().to_owned())
}
