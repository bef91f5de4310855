//! The token pool: exactly one request per key on a cold cache, the concurrency bound on a
//! stampede across keys, eviction that keeps the stored entry, the one scheduler spreading
//! 10,000 same-age refreshes under the bound and the budget, and a model-based test of random
//! operations with faults over many keys checking the manager's invariants per key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use auth_core::{
    AccountSpec, Budget, Error, Fetched, MemoryStore, MonoTime, RefreshPolicy, SharedClock,
    SharedTokenStore, StoreKey, StoredEntry, Token, TokenId, TokenPool, TokioClock,
    source::from_fn,
    testing::{Fault, FaultyStore, ScriptedSource, Step, StoreOp},
    time::{OffsetDateTime, macros::datetime},
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use secrecy::{ExposeSecret as _, SecretString};

const T0: OffsetDateTime = datetime!(2026-11-22 08:00 UTC);

/// A provider serving many accounts: counts requests per key, in flight and when each was
/// sent (on the clock it is given).
#[derive(Debug)]
struct Upstream {
    calls: Vec<AtomicUsize>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    sent: Mutex<Vec<(usize, MonoTime)>>,
    clock: SharedClock,
    lifetime: Duration,
    latency: Duration,
}

impl Upstream {
    fn new(keys: usize, clock: SharedClock, lifetime: Duration, latency: Duration) -> Arc<Self> {
        Arc::new(Self {
            calls: (0..keys).map(|_| AtomicUsize::new(0)).collect(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            sent: Mutex::new(Vec::new()),
            clock,
            lifetime,
            latency,
        })
    }

    fn calls(&self, key: usize) -> usize {
        self.calls[key].load(Ordering::SeqCst)
    }

    fn total(&self) -> usize {
        self.calls.iter().map(|c| c.load(Ordering::SeqCst)).sum()
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// The account of `key`: a source answering `tok-<key>-<n>` after the latency.
    fn account(self: &Arc<Self>, key: usize) -> AccountSpec {
        let upstream = Arc::clone(self);
        let source = from_fn("pool-test", move |request: auth_core::FetchRequest| {
            let upstream = Arc::clone(&upstream);
            async move {
                let n = upstream.calls[key].fetch_add(1, Ordering::SeqCst) + 1;
                upstream
                    .sent
                    .lock()
                    .unwrap()
                    .push((key, upstream.clock.monotonic()));
                let now = upstream.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                upstream.max_in_flight.fetch_max(now, Ordering::SeqCst);
                if !upstream.latency.is_zero() {
                    tokio::time::sleep(upstream.latency).await;
                }
                upstream.in_flight.fetch_sub(1, Ordering::SeqCst);
                let token = Token::bearer(
                    SecretString::from(format!("tok-{key}-{n}")),
                    request.sent_at,
                    Some(request.sent_at + upstream.lifetime),
                )?;
                Ok::<_, Error>(Fetched::new(token))
            }
        });
        AccountSpec::new(source, store_key(key))
    }
}

fn store_key(key: usize) -> StoreKey {
    StoreKey::new(format!("pool-test:{key}")).unwrap()
}

fn pool_of(
    upstream: &Arc<Upstream>,
    store: impl Into<SharedTokenStore>,
    clock: SharedClock,
) -> auth_core::TokenPoolBuilder<usize> {
    let upstream = Arc::clone(upstream);
    TokenPool::builder()
        .store(store)
        .clock(clock)
        .factory(move |key: &usize| Ok(upstream.account(*key)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_cold_keys_with_concurrent_callers_cause_one_request_per_key() {
    const KEYS: usize = 2_000;
    const CALLERS: usize = 4;
    let clock = SharedClock::system();
    let upstream = Upstream::new(
        KEYS,
        clock.clone(),
        Duration::from_secs(3600),
        Duration::ZERO,
    );
    let pool = pool_of(&upstream, MemoryStore::new(), clock)
        .concurrency(16)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            // each caller walks the keys from another place, so callers of one key overlap
            for i in 0..KEYS {
                let key = (i + caller * KEYS / CALLERS) % KEYS;
                let token = pool.token(&key).await.unwrap();
                assert!(
                    token
                        .secret()
                        .expose_secret()
                        .starts_with(&format!("tok-{key}-"))
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for key in 0..KEYS {
        assert_eq!(upstream.calls(key), 1, "key {key}");
    }
    assert!(upstream.max_in_flight() <= 16);
    let stats = pool.pool_stats();
    assert_eq!(stats.live_accounts, KEYS);
    assert_eq!(stats.created, KEYS as u64);
    assert_eq!(stats.totals.fetches, KEYS as u64);
}

#[tokio::test(start_paused = true)]
async fn a_cold_stampede_across_keys_never_exceeds_the_concurrency_bound() {
    const KEYS: usize = 500;
    let clock = SharedClock::from(TokioClock::new(T0));
    let upstream = Upstream::new(
        KEYS,
        clock.clone(),
        Duration::from_secs(3600),
        Duration::from_millis(50),
    );
    let pool = pool_of(&upstream, MemoryStore::new(), clock)
        .concurrency(4)
        .build()
        .unwrap();
    let calls = (0..KEYS).flat_map(|key| {
        let pool = pool.clone();
        (0..3).map(move |_| {
            let pool = pool.clone();
            async move {
                pool.token(&key)
                    .await
                    .map(|t| t.secret().expose_secret().to_owned())
            }
        })
    });
    let results = futures_util::future::join_all(calls.map(tokio::spawn)).await;
    for result in results {
        assert!(result.unwrap().unwrap().starts_with("tok-"));
    }
    assert_eq!(upstream.total(), KEYS);
    // the bound was reached (so it is what held the stampede back), never passed
    assert_eq!(upstream.max_in_flight(), 4);
    assert_eq!(pool.pool_stats().refused, 0);
}

#[tokio::test(start_paused = true)]
async fn accounts_evicted_under_the_bound_come_back_from_the_store_without_a_request() {
    const KEYS: usize = 40;
    let clock = SharedClock::from(TokioClock::new(T0));
    let upstream = Upstream::new(
        KEYS,
        clock.clone(),
        Duration::from_secs(3600),
        Duration::ZERO,
    );
    let store = FaultyStore::new(MemoryStore::new());
    let pool = pool_of(&upstream, store.clone(), clock)
        .max_accounts(10)
        .build()
        .unwrap();
    for key in 0..KEYS {
        pool.token(&key).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(pool.live_accounts() <= 10);
    }
    let stats = pool.pool_stats();
    assert_eq!(stats.evicted, (KEYS - 10) as u64);
    assert!(!pool.is_live(&0));
    // every key again: the evicted ones are served from the store
    for key in 0..KEYS {
        let token = pool.token(&key).await.unwrap();
        assert_eq!(token.secret().expose_secret(), format!("tok-{key}-1"));
        assert_eq!(upstream.calls(key), 1, "key {key} was fetched again");
    }
    let stats = pool.pool_stats();
    assert!(stats.totals.adopted >= (KEYS - 10) as u64);
    assert_eq!(stats.totals.fetches, KEYS as u64);
}

#[tokio::test(start_paused = true)]
async fn idle_accounts_are_evicted_by_the_scheduler_and_their_stored_token_is_served() {
    let clock = SharedClock::from(TokioClock::new(T0));
    let upstream = Upstream::new(3, clock.clone(), Duration::from_secs(3600), Duration::ZERO);
    let pool = pool_of(&upstream, MemoryStore::new(), clock)
        .idle_after(Duration::from_secs(60))
        .build()
        .unwrap();
    for key in 0..3 {
        pool.token(&key).await.unwrap();
    }
    assert_eq!(pool.live_accounts(), 3);
    // key 2 stays in use; the others idle past a minute and the scheduler's sweep takes them
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        pool.token(&2).await.unwrap();
    }
    assert!(!pool.is_live(&0) && !pool.is_live(&1));
    assert!(pool.is_live(&2));
    let again = pool.token(&0).await.unwrap();
    assert_eq!(again.secret().expose_secret(), "tok-0-1");
    assert_eq!(upstream.total(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_key_neither_registered_nor_made_by_a_factory_is_a_configuration_error() {
    let pool = TokenPool::<String>::builder().build().unwrap();
    let error = pool.token(&"merchant-7".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), auth_core::ErrorKind::Configuration);
    assert!(!error.to_string().contains("merchant-7"));
    // a registered key works, and its key never appears in the pool's printed form
    let source = ScriptedSource::new("registered");
    pool.register(
        "merchant-7".to_owned(),
        AccountSpec::new(source.clone(), StoreKey::new("stamps:m7").unwrap()),
    );
    assert!(pool.token(&"merchant-7".to_owned()).await.is_ok());
    assert_eq!(source.calls(), 1);
    assert!(!format!("{pool:?}").contains("merchant-7"));
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_same_age_tokens_refresh_spread_over_their_windows_within_bound_and_budget() {
    const KEYS: usize = 10_000;
    const LIFETIME: Duration = Duration::from_secs(3600);
    const BOUND: usize = 8;
    let clock = SharedClock::from(TokioClock::new(T0));
    let upstream = Upstream::new(KEYS, clock.clone(), LIFETIME, Duration::from_millis(100));
    let store = MemoryStore::new();
    // 10,000 tokens issued at the same moment, already stored (a restart of a busy service)
    for key in 0..KEYS {
        let token = Token::bearer(
            SecretString::from(format!("stored-{key}")),
            T0,
            Some(T0 + LIFETIME),
        )
        .unwrap();
        auth_core::TokenStore::save(&store, &store_key(key), &StoredEntry::with_token(token), 0)
            .await
            .unwrap();
    }
    let budget = Budget::new(3_000, Duration::from_secs(60)).unwrap();
    let pool = pool_of(&upstream, store, clock.clone())
        .concurrency(BOUND)
        .budget(budget)
        .max_queue_wait(Duration::from_secs(120))
        .build()
        .unwrap();
    let start = clock.monotonic();
    for key in 0..KEYS {
        assert_eq!(
            pool.token(&key).await.unwrap().secret().expose_secret(),
            format!("stored-{key}")
        );
    }
    assert_eq!(
        upstream.total(),
        0,
        "stored tokens are served without a request"
    );
    // the scheduler alone refreshes them, with no caller
    tokio::time::sleep(LIFETIME - Duration::from_secs(60)).await;
    for key in 0..KEYS {
        assert_eq!(upstream.calls(key), 1, "key {key}");
    }
    assert!(upstream.max_in_flight() <= BOUND);
    assert_eq!(pool.pool_stats().refused, 0);
    let mut sent: Vec<Duration> = upstream
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(_, at)| at.saturating_duration_since(start))
        .collect();
    sent.sort();
    // a 1-hour token: skew allowance 30 s, window 5 min, jitter 50 %: the refresh points lie
    // between 8 min and 5 min 30 s before the expiry; every refresh lands before it expires
    let earliest = LIFETIME - Duration::from_secs(8 * 60);
    let expired = LIFETIME - Duration::from_secs(30);
    assert!(sent[0] >= earliest, "first refresh at {:?}", sent[0]);
    assert!(
        sent[KEYS - 1] < expired,
        "last refresh at {:?}",
        sent[KEYS - 1]
    );
    // spread, not bunched: never more than the bound allows in one second (8 slots × 100 ms)
    let per_second = auth_core::testing::max_in_window(&sent, Duration::from_secs(1));
    assert!(
        per_second <= BOUND * 10,
        "{per_second} requests in one second"
    );
    // and never past the budget in any window of its length
    let per_window = auth_core::testing::max_in_window(&sent, budget.per());
    assert!(per_window <= 3_000, "{per_window} requests in one minute");
}

#[test]
fn the_scheduler_starts_again_on_a_new_runtime_when_its_runtime_shut_down() {
    let paused = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let first = paused();
    let (pool, upstream) = first.block_on(async {
        let clock = SharedClock::from(TokioClock::new(T0));
        let upstream = Upstream::new(2, clock.clone(), Duration::from_secs(3600), Duration::ZERO);
        let pool = pool_of(&upstream, MemoryStore::new(), clock)
            .build()
            .unwrap();
        pool.token(&0).await.unwrap();
        (pool, upstream)
    });
    drop(first);
    paused().block_on(async {
        pool.token(&1).await.unwrap();
        // no caller: only a running scheduler refreshes key 1 before its token expires
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(upstream.calls(1), 2);
    });
}

#[tokio::test(start_paused = true)]
async fn an_invalidated_key_refreshes_once_and_other_keys_are_untouched() {
    let clock = SharedClock::from(TokioClock::new(T0));
    let upstream = Upstream::new(2, clock.clone(), Duration::from_secs(3600), Duration::ZERO);
    let pool = pool_of(&upstream, MemoryStore::new(), clock)
        .build()
        .unwrap();
    let first = pool.token(&0).await.unwrap().id();
    pool.token(&1).await.unwrap();
    assert!(pool.invalidate(&0, first));
    assert!(!pool.invalidate(&0, first), "a late 401 for the same token");
    assert!(!pool.invalidate(&1, first), "another key's token id");
    let next = pool.token(&0).await.unwrap();
    assert_eq!(next.secret().expose_secret(), "tok-0-2");
    assert_eq!((upstream.calls(0), upstream.calls(1)), (2, 1));
    assert_eq!(pool.stats(&0).unwrap().invalidations, 1);
    assert_eq!(pool.stats(&1).unwrap().invalidations, 0);
}

// ---------------------------------------------------------------------------------------------
// Model-based: random operations over many keys with store and source faults.

const MODEL_KEYS: usize = 5;
/// Tokens live 10 minutes: skew allowance 30 s, window 60-90 s.
const MODEL_LIFETIME: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
enum Op {
    Call(usize),
    Invalidate(usize),
    Advance(u64),
    StoreFault(StoreOp, Fault),
    SourceFails(usize),
    SourcePanics(usize),
    EvictIdle,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..MODEL_KEYS;
    prop_oneof![
        8 => key.clone().prop_map(Op::Call),
        2 => key.clone().prop_map(Op::Invalidate),
        4 => prop_oneof![Just(1u64), Just(20), Just(80), Just(300), Just(700)].prop_map(Op::Advance),
        3 => (
            prop_oneof![Just(StoreOp::Load), Just(StoreOp::Save), Just(StoreOp::Lock)],
            prop_oneof![Just(Fault::Fail), Just(Fault::FailAfterWrite)],
        )
            .prop_map(|(op, fault)| Op::StoreFault(op, fault)),
        2 => key.clone().prop_map(Op::SourceFails),
        1 => key.prop_map(Op::SourcePanics),
        1 => Just(Op::EvictIdle),
    ]
}

struct World {
    pool: TokenPool<usize>,
    store: FaultyStore,
    sources: Vec<ScriptedSource>,
    clock: SharedClock,
    /// The last token each key handed out.
    last: HashMap<usize, TokenId>,
}

impl World {
    fn new() -> Self {
        let clock = SharedClock::from(TokioClock::new(T0));
        let store = FaultyStore::new(MemoryStore::new());
        let sources: Vec<_> = (0..MODEL_KEYS)
            .map(|_| {
                ScriptedSource::new("model")
                    .otherwise(Step::rotate(MODEL_LIFETIME))
                    .checking_rotation()
            })
            .collect();
        let pool = TokenPool::builder()
            .store(store.clone())
            .clock(clock.clone())
            .policy(RefreshPolicy::default())
            .max_accounts(3)
            .idle_after(Duration::from_secs(240))
            .concurrency(2)
            .budget(Budget::new(20, Duration::from_secs(60)).unwrap())
            .build()
            .unwrap();
        for (key, source) in sources.iter().enumerate() {
            pool.register(key, AccountSpec::new(source.clone(), store_key(key)));
        }
        Self {
            pool,
            store,
            sources,
            clock,
            last: HashMap::new(),
        }
    }

    /// Lets the refreshes under way finish (tokio's time is paused and the sources answer at
    /// once, so a few turns of the runtime suffice).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    async fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Call(key) => {
                if let Ok(token) = self.pool.token(&key).await {
                    let expires = token.expires_at().unwrap();
                    prop_assert!(
                        expires > self.clock.now(),
                        "key {key}: an expired token was served"
                    );
                    self.last.insert(key, token.id());
                }
            }
            Op::Invalidate(key) => {
                if let Some(id) = self.last.get(&key) {
                    self.pool.invalidate(&key, *id);
                }
            }
            Op::Advance(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            Op::StoreFault(op, fault) => self.store.fail_next(op, fault),
            Op::SourceFails(key) => self.sources[key].push(Step::Fail(Error::transient("down"))),
            Op::SourcePanics(key) => self.sources[key].push(Step::Panic),
            Op::EvictIdle => {
                self.pool.evict_idle();
            }
        }
        Self::settle().await;
        self.check().await
    }

    async fn check(&self) -> Result<(), TestCaseError> {
        prop_assert!(self.pool.live_accounts() <= 3 + MODEL_KEYS);
        for (key, source) in self.sources.iter().enumerate() {
            prop_assert!(
                source.max_in_flight() <= 1,
                "key {key}: more than one request in flight"
            );
            // the refresh material the provider accepts now is stored, or held pending a save
            // by the live account (which is then never evicted)
            if let Some(valid) = source.valid_refresh() {
                let stored = self
                    .store
                    .inner()
                    .load(&store_key(key))
                    .await
                    .unwrap()
                    .and_then(|e| e.refresh)
                    .map(|r| r.expose_secret().to_owned());
                let pending = self.pool.stats(&key).is_some_and(|s| s.pending_save);
                prop_assert!(
                    stored.as_deref() == Some(valid.as_str()) || pending,
                    "key {key}: the provider's refresh material {valid} was lost (stored {stored:?})"
                );
            }
        }
        Ok(())
    }
}

#[test]
fn random_operations_over_many_keys_with_faults_hold_the_managers_invariants_per_key() {
    let cases = std::env::var("KUNCI_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..60), |ops| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut world = World::new();
                for op in &ops {
                    world.apply(op).await?;
                }
                // once the faults stop, every key is served
                world.store.clear();
                for source in &world.sources {
                    source.clear();
                }
                tokio::time::sleep(Duration::from_secs(3600)).await;
                for key in 0..MODEL_KEYS {
                    let token = world.pool.token(&key).await;
                    prop_assert!(token.is_ok(), "key {key} did not recover: {token:?}");
                }
                world.check().await
            })
        })
        .unwrap();
}
