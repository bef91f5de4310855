//! The token pool: warm `pool.token(&key)` beside a plain lookup in the same concurrent map
//! (`papaya`) and beside `ArcSwap::load` / a lone manager's warm path, at 10, 10,000 and
//! 100,000 keys, on 1 and 2 threads; then `report:` figures — memory per idle account
//! (counting global allocator), the same for accounts whose sources send through one shared
//! HTTP client or a client each (against a loopback server), and the refresh spread of 10,000
//! same-age tokens under paused time. Figures: `docs/benchmarks.md` (`cargo xtask bench pool`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    reason = "benchmark code"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "benchmarks measure wall time with Instant"
)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    sync::{
        Arc, Barrier, Mutex,
        atomic::{AtomicIsize, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use auth_core::{
    AccountSpec, Budget, Fetched, MemoryStore, MonoTime, RefreshPolicy, SharedClock, StoreKey,
    StoredEntry, Token, TokenManager, TokenPool, TokenStore as _, TokioClock,
    http::{HttpClient, HttpConfig, Method, Url},
    source::from_fn,
    time::{OffsetDateTime, macros::datetime},
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use secrecy::SecretString;

/// The loopback servers of the exchange's tests (a keep-alive responder).
#[allow(dead_code, reason = "the bench uses one of the test servers")]
#[path = "../tests/all/servers.rs"]
mod servers;

/// Counts the bytes allocated and not yet freed, to measure what an idle account holds.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

#[allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only counts and forwards to System"
)]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

const T0: OffsetDateTime = datetime!(2026-11-22 08:00 UTC);

fn store_key(key: u64) -> StoreKey {
    StoreKey::new(format!("bench:{key}")).unwrap()
}

fn day_token(secret: String, at: OffsetDateTime) -> Token {
    Token::bearer(
        SecretString::from(secret),
        at,
        Some(at + Duration::from_secs(86_400)),
    )
    .unwrap()
}

/// A pool whose every key's source answers a day-long token at once.
fn pool_builder() -> auth_core::TokenPoolBuilder<u64> {
    TokenPool::builder()
        .max_accounts(1_000_000)
        .factory(|key: &u64| {
            let key = *key;
            let source = from_fn("bench", move |req: auth_core::FetchRequest| async move {
                Ok(Fetched::new(day_token(format!("tok-{key}"), req.sent_at)))
            });
            Ok(AccountSpec::new(source, store_key(key)))
        })
}

fn warm_pool(keys: u64, rt: &tokio::runtime::Runtime) -> TokenPool<u64> {
    let pool = pool_builder().concurrency(64).build().unwrap();
    rt.block_on(async {
        for key in 0..keys {
            drop(pool.token(&key).await.unwrap());
        }
    });
    pool
}

/// A fixed pseudo-random walk over the keys, so large maps are read the way a service reads
/// them (scattered), not in insertion order.
fn walk(keys: u64) -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..4096).map(|_| rng.u64(..keys)).collect()
}

/// Runs `f(i)` `iters` times on each of `threads` threads, started together; returns the
/// wall time.
fn on_threads(threads: usize, iters: u64, f: &(dyn Fn(usize) -> usize + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                let mut i = t * 1031;
                for _ in 0..iters {
                    black_box(f(black_box(i)));
                    i = i.wrapping_add(1);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn warm(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("pool_warm");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));

    // the baselines that do not depend on the number of keys
    let baseline = ArcSwap::from_pointee("Bearer bench-token".to_owned());
    let manager = {
        let source = from_fn("bench", |req: auth_core::FetchRequest| async move {
            Ok(Fetched::new(day_token("bench".into(), req.sent_at)))
        });
        let manager = TokenManager::builder(source).build().unwrap();
        rt.block_on(async { drop(manager.token().await.unwrap()) });
        manager
    };
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(BenchmarkId::new("arcswap_load", threads), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, &|_| baseline.load().len()));
        });
        g.bench_function(BenchmarkId::new("manager_token", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, &|_| {
                    let t = manager.token().now_or_never().unwrap().unwrap();
                    t.header_value().len()
                })
            });
        });
    }

    for keys in [10u64, 10_000, 100_000] {
        let pool = warm_pool(keys, &rt);
        let map: papaya::HashMap<u64, Arc<ArcSwap<String>>> = papaya::HashMap::new();
        for key in 0..keys {
            map.pin()
                .insert(key, Arc::new(ArcSwap::from_pointee(format!("tok-{key}"))));
        }
        let walk = walk(keys);
        for threads in [1usize, 2] {
            g.throughput(Throughput::Elements(threads as u64));
            let id = format!("{keys}_keys/{threads}");
            g.bench_function(BenchmarkId::new("map_get", &id), |b| {
                b.iter_custom(|iters| {
                    on_threads(threads, iters, &|i| {
                        let key = walk[i % walk.len()];
                        map.pin().get(&key).map_or(0, |v| v.load().len())
                    })
                });
            });
            g.bench_function(BenchmarkId::new("pool_token", &id), |b| {
                b.iter_custom(|iters| {
                    on_threads(threads, iters, &|i| {
                        let key = walk[i % walk.len()];
                        let t = pool.token(&key).now_or_never().unwrap().unwrap();
                        t.header_value().len()
                    })
                });
            });
        }
    }
    g.finish();
}

/// Bytes an idle account holds: a pool with 10,000 warm accounts against a store already
/// holding their entries, minus the store, per account; the token's own share beside it.
fn memory_per_account() {
    const KEYS: u64 = 10_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let store = MemoryStore::new();
    rt.block_on(async {
        for key in 0..KEYS {
            let entry = StoredEntry::with_token(day_token(format!("tok-{key}"), now));
            store.save(&store_key(key), &entry, 0).await.unwrap();
        }
    });
    // the token's own bytes: its size inline plus what a copy of it allocates
    let sample = day_token("tok-1234".into(), now);
    let before = live_bytes();
    let copy = sample.clone();
    let token_bytes = (live_bytes() - before) as usize + std::mem::size_of::<Token>();
    drop(copy);

    let pool = pool_builder().store(store).build().unwrap();
    let before = live_bytes();
    rt.block_on(async {
        for key in 0..KEYS {
            drop(pool.token(&key).await.unwrap());
        }
    });
    let per_account = (live_bytes() - before) as f64 / KEYS as f64;
    assert_eq!(pool.pool_stats().totals.fetches, 0, "served from the store");
    println!(
        "report: memory per idle account (10,000 accounts, served from the store, scheduler queue included): **{per_account:.0} bytes**, of which the token itself {token_bytes} bytes: **{:.0} bytes** of pool and manager bookkeeping (target ≤ 1024)",
        per_account - token_bytes as f64
    );
    drop(pool);
}

/// Bytes an idle account holds when its source sends through an HTTP client: a clone of one
/// client shared by the pool (`shared`), or a client of its own — each account fetched once
/// from a loopback server, so each client is built and keeps its idle connection, as in a
/// service. Everything the accounts hold is counted: pool, manager, source, client, token and
/// the memory store's copy of the entry.
fn memory_per_account_with_http(shared: bool) -> f64 {
    const KEYS: usize = 200;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = servers::Responder::keep_alive("{}").await;
        let url = Url::parse(&format!("http://127.0.0.1:{}/token", server.addr.port())).unwrap();
        let one = HttpClient::new(HttpConfig::default());
        // A running service's shared client is built already.
        one.send("bench", one.request(Method::GET, url.clone()).unwrap())
            .await
            .unwrap();
        let before = live_bytes();
        let pool = TokenPool::builder()
            .store(MemoryStore::new())
            .scheduler(false)
            .max_accounts(KEYS * 2)
            .factory(move |key: &usize| {
                let http = if shared {
                    one.clone()
                } else {
                    HttpClient::new(HttpConfig::default())
                };
                let http = http.with_secrets([&SecretString::from(format!("secret-{key}"))]);
                let (url, key) = (url.clone(), *key);
                let source = from_fn("bench", move |req: auth_core::FetchRequest| {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        http.send("bench", http.request(Method::GET, url)?).await?;
                        Ok(Fetched::new(day_token(format!("tok-{key}"), req.sent_at)))
                    }
                });
                Ok(AccountSpec::new(
                    source,
                    StoreKey::new(format!("http:{key}"))?,
                ))
            })
            .build()
            .unwrap();
        for key in 0..KEYS {
            drop(pool.token(&key).await.unwrap());
        }
        // Let connections settle into the idle pools.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let per_account = (live_bytes() - before) as f64 / KEYS as f64;
        drop(pool);
        per_account
    })
}

/// 10,000 tokens issued at once, stored; a pool serves them and its scheduler refreshes them.
/// Answers the largest number of requests in any one second and in any minute, and the span.
fn spread(jitter: f64, budget: Option<Budget>) -> (usize, usize, Duration) {
    const KEYS: u64 = 10_000;
    const LIFETIME: Duration = Duration::from_secs(3600);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = SharedClock::from(TokioClock::new(T0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let store = MemoryStore::new();
        for key in 0..KEYS {
            let token = Token::bearer(
                SecretString::from(format!("stored-{key}")),
                T0,
                Some(T0 + LIFETIME),
            )
            .unwrap();
            store
                .save(&store_key(key), &StoredEntry::with_token(token), 0)
                .await
                .unwrap();
        }
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (factory_sent, factory_clock) = (Arc::clone(&sent), clock.clone());
        let mut builder = TokenPool::builder()
            .store(store)
            .clock(clock.clone())
            .policy({
                let mut policy = RefreshPolicy::default();
                policy.jitter = jitter;
                policy
            })
            .concurrency(64)
            .max_queue_wait(Duration::from_secs(600))
            .factory(move |key: &u64| {
                let (sent, clock, in_flight) = (
                    Arc::clone(&factory_sent),
                    factory_clock.clone(),
                    Arc::clone(&in_flight),
                );
                let source = from_fn("bench", move |req: auth_core::FetchRequest| {
                    sent.lock().unwrap().push(clock.monotonic());
                    let in_flight = Arc::clone(&in_flight);
                    async move {
                        in_flight.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        Ok(Fetched::new(Token::bearer(
                            SecretString::from("new"),
                            req.sent_at,
                            Some(req.sent_at + LIFETIME),
                        )?))
                    }
                });
                Ok(AccountSpec::new(source, store_key(*key)))
            });
        if let Some(budget) = budget {
            builder = builder.budget(budget);
        }
        let pool = builder.build().unwrap();
        let start = clock.monotonic();
        for key in 0..KEYS {
            drop(pool.token(&key).await.unwrap());
        }
        tokio::time::sleep(LIFETIME - Duration::from_secs(30)).await;
        let mut times: Vec<Duration> = sent
            .lock()
            .unwrap()
            .iter()
            .map(|t: &MonoTime| t.saturating_duration_since(start))
            .collect();
        assert_eq!(times.len(), KEYS as usize, "every token refreshed once");
        times.sort();
        (
            auth_core::testing::max_in_window(&times, Duration::from_secs(1)),
            auth_core::testing::max_in_window(&times, Duration::from_secs(60)),
            times[times.len() - 1] - times[0],
        )
    })
}

fn figures(_: &mut Criterion) {
    memory_per_account();
    let shared = memory_per_account_with_http(true);
    let own = memory_per_account_with_http(false);
    println!(
        "report: memory per idle account whose source sends over HTTP (200 accounts, each fetched once from a loopback server; pool, source, client, token and the memory store's entry counted): one client shared by the pool **{shared:.0} bytes**, a client per account {own:.0} bytes ({:.0}x)",
        own / shared
    );
    let what = "10,000 one-hour tokens issued at once (stored), refreshed by the pool's scheduler alone; 64 requests at once at most, 100 ms upstream latency, paused tokio time";
    for (label, jitter, budget) in [
        ("no jitter (baseline)", 0.0, None),
        ("default jitter (50 % of the window)", 0.5, None),
        (
            "default jitter, budget 3,000 per minute",
            0.5,
            Some(Budget::new(3_000, Duration::from_secs(60)).unwrap()),
        ),
    ] {
        let (per_second, per_minute, span) = spread(jitter, budget);
        println!(
            "report: refresh spread, {label}: largest number of requests in any one second **{per_second}**, in any minute {per_minute}, all within {:.0} s ({what})",
            span.as_secs_f64()
        );
    }
}

criterion_group!(benches, warm, figures);
criterion_main!(benches);
