//! Store benchmarks: load and save on every backend — memory, file (plain and encrypted),
//! Redis, PostgreSQL — the fenced save a refresh makes under its lease, and the refresh-lock
//! hand-over (how long a waiter takes to get the lock once the holder frees it): woken by the
//! kernel (file), pub/sub (Redis) or `NOTIFY` (PostgreSQL), beside the polling that came
//! before, measured in the same run. PostgreSQL's lease statements are measured both ways:
//! on the UNLOGGED lease table (now) and on a logged one, each commit waiting for its WAL
//! flush (before).
//!
//! Redis benches read `KUNCI_TEST_REDIS_URL`, PostgreSQL benches `KUNCI_TEST_POSTGRES_URL`;
//! each is skipped, with a printed line, when its variable is unset.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "a benchmark harness; criterion_group! generates an undocumented function"
)]

mod support;
use support::entry;

use std::time::Duration;

#[cfg(any(feature = "redis", feature = "postgres"))]
use auth_core::Fence;
use auth_core::{MemoryStore, SharedTokenStore, StoreKey, TokenStore as _};
use auth_store::{Cipher, FileStore};
use criterion::{Criterion, criterion_group, criterion_main};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Under one lease held for both: the save fenced by it, then its renewal.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn lease_benches(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    store: &SharedTokenStore,
    key: &StoreKey,
    current: &mut u64,
    fenced_save: &str,
    renewal: &str,
) {
    let entry = entry();
    let lock = rt
        .block_on(store.lock(key, Duration::from_secs(600)))
        .unwrap();
    let fence = Fence::lease(lock.lease());
    group.bench_function(fenced_save, |b| {
        b.iter(|| {
            *current = rt
                .block_on(store.save_fenced(key, &entry, *current, &fence))
                .unwrap();
        });
    });
    renewal_bench(group, rt, &*lock, renewal);
    rt.block_on(lock.release()).unwrap();
}

/// Renewing `lock`'s lease.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn renewal_bench(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    lock: &dyn auth_core::StoreLock,
    name: &str,
) {
    group.bench_function(name, |b| {
        b.to_async(rt)
            .iter(|| async { assert!(lock.renew(Duration::from_secs(600)).await.unwrap()) });
    });
}

/// The hand-over itself: a holder keeps the lock 50 ms while `waiting` (another store, as
/// another process would be) waits for it; the time measured runs from the holder's call to
/// `release` to the moment the waiter holds the lock — the release's own round trip included.
#[allow(
    clippy::disallowed_methods,
    reason = "the hand-over is timed from the release to the waiter holding the lock"
)]
fn hand_over_latency(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    holding: SharedTokenStore,
    waiting: SharedTokenStore,
    key: &StoreKey,
) {
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(1));
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (holding, waiting, key) = (holding.clone(), waiting.clone(), key.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let held = holding.lock(&key, Duration::from_secs(10)).await.unwrap();
                    let waiter = {
                        let (waiting, key) = (waiting.clone(), key.clone());
                        tokio::spawn(async move {
                            let lock = waiting.lock(&key, Duration::from_secs(10)).await.unwrap();
                            (lock, std::time::Instant::now())
                        })
                    };
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let released_at = std::time::Instant::now();
                    held.release().await.unwrap();
                    let (lock, held_at) = waiter.await.unwrap();
                    total += held_at.saturating_duration_since(released_at);
                    lock.release().await.unwrap();
                }
                total
            }
        });
    });
}

fn memory(c: &mut Criterion) {
    let rt = runtime();
    let store = MemoryStore::new();
    let key = StoreKey::new("bench:memory").unwrap();
    let entry = entry();
    let mut current = rt.block_on(store.save(&key, &entry, 0)).unwrap();
    let mut group = c.benchmark_group("memory_store");
    group.bench_function("load", |b| {
        b.to_async(&rt)
            .iter(|| async { store.load(&key).await.unwrap() })
    });
    group.bench_function("save", |b| {
        b.iter(|| {
            current = rt.block_on(store.save(&key, &entry, current)).unwrap();
        });
    });
    group.finish();
}

fn file(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let key = StoreKey::new("bench:file").unwrap();
    let entry = entry();
    let cipher = Cipher::from_key_bytes(&[1u8; 32]).unwrap();
    for (name, store) in [
        ("plain", FileStore::new(dir.path().join("plain")).unwrap()),
        (
            "encrypted",
            FileStore::new(dir.path().join("encrypted"))
                .unwrap()
                .with_cipher(cipher.clone()),
        ),
    ] {
        let mut group = c.benchmark_group(format!("file_store/{name}"));
        let version = rt.block_on(store.save(&key, &entry, 0)).unwrap();
        group.bench_function("load", |b| {
            b.to_async(&rt)
                .iter(|| async { store.load(&key).await.unwrap() })
        });
        let mut current = version;
        group.bench_function("save (fsync + rename + dir fsync)", |b| {
            b.iter(|| {
                current = rt.block_on(store.save(&key, &entry, current)).unwrap();
            });
        });
        group.finish();
    }
    let mut group = c.benchmark_group("file_store_handover");
    let kernel = FileStore::new(dir.path().join("plain")).unwrap();
    hand_over_latency(
        &mut group,
        &rt,
        "hand-over latency, release to waiter holding (kernel wake-up)",
        SharedTokenStore::new(kernel.clone()),
        SharedTokenStore::new(FileStore::new(dir.path().join("plain")).unwrap()),
        &key,
    );
    hand_over_latency(
        &mut group,
        &rt,
        "hand-over latency, release to waiter holding (polling, before)",
        SharedTokenStore::new(kernel),
        SharedTokenStore::new(
            FileStore::new(dir.path().join("plain"))
                .unwrap()
                .with_polling_lock(true),
        ),
        &key,
    );
    group.finish();
}

#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    use auth_store::{RedisOptions, RedisStore};
    let Ok(url) = std::env::var("KUNCI_TEST_REDIS_URL") else {
        eprintln!("redis benches skipped: KUNCI_TEST_REDIS_URL is not set");
        return;
    };
    let rt = runtime();
    let prefix = format!("kunci-bench-{:08x}:", fastrand::u32(..));
    let store = rt
        .block_on(RedisStore::connect(
            &url,
            RedisOptions::default().prefix(&prefix),
        ))
        .unwrap();
    let key = StoreKey::new("bench:redis").unwrap();
    let entry = entry();
    let mut current = rt.block_on(store.save(&key, &entry, 0)).unwrap();
    let mut group = c.benchmark_group("redis_store");
    group.bench_function("load", |b| {
        b.to_async(&rt)
            .iter(|| async { store.load(&key).await.unwrap() })
    });
    group.bench_function("save (CAS script)", |b| {
        b.iter(|| {
            current = rt.block_on(store.save(&key, &entry, current)).unwrap();
        });
    });
    lease_benches(
        &mut group,
        &rt,
        &SharedTokenStore::new(store.clone()),
        &key,
        &mut current,
        "save fenced by the lease (CAS + owner check)",
        "lease renewal",
    );
    group.bench_function("lock + release (uncontended)", |b| {
        b.to_async(&rt)
            .iter(|| support::lock_and_release(&store, &key));
    });
    // Hand-over, timed from the release to the waiter holding the lock: woken by pub/sub, and
    // polling as before notifications (`notify(false)`), in the same run.
    let waiting = rt
        .block_on(RedisStore::connect(
            &url,
            RedisOptions::default().prefix(&prefix),
        ))
        .unwrap();
    hand_over_latency(
        &mut group,
        &rt,
        "hand-over latency, release to waiter holding (notification)",
        SharedTokenStore::new(store.clone()),
        SharedTokenStore::new(waiting),
        &key,
    );
    let polling = rt
        .block_on(RedisStore::connect(
            &url,
            RedisOptions::default().prefix(&prefix).notify(false),
        ))
        .unwrap();
    hand_over_latency(
        &mut group,
        &rt,
        "hand-over latency, release to waiter holding (polling, before)",
        SharedTokenStore::new(store.clone()),
        SharedTokenStore::new(polling),
        &key,
    );
    group.finish();
    rt.block_on(store.delete(&key)).unwrap();
}

#[cfg(not(feature = "redis"))]
fn redis(_: &mut Criterion) {
    eprintln!("redis benches skipped: built without the `redis` feature");
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    use auth_store::{PostgresOptions, PostgresStore};
    let Ok(url) = std::env::var("KUNCI_TEST_POSTGRES_URL") else {
        eprintln!("postgres benches skipped: KUNCI_TEST_POSTGRES_URL is not set");
        return;
    };
    let rt = runtime();
    let schema = format!("kunci_bench_{:08x}", fastrand::u32(..));
    let options = PostgresOptions::default().table(format!("{schema}.tokens"));
    let store = rt
        .block_on(PostgresStore::connect(&url, options.clone()))
        .unwrap();
    // The waiter of the hand-over is another store, as another process would be.
    let other = rt
        .block_on(PostgresStore::connect(&url, options.clone()))
        .unwrap();
    // Before: a logged lease table, every lease change waiting for its WAL flush (what the
    // store made until its lease table became UNLOGGED).
    let logged = PostgresOptions::default().table(format!("{schema}.logged"));
    let (store_before, other_before) = rt.block_on(async {
        (
            PostgresStore::connect(&url, logged.clone()).await.unwrap(),
            PostgresStore::connect(&url, logged).await.unwrap(),
        )
    });
    let status = std::process::Command::new("psql")
        .arg(&url)
        .arg("-qc")
        .arg(format!("ALTER TABLE {schema}.logged_lease SET LOGGED"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "psql could not make the baseline's lease table logged"
    );
    let key = StoreKey::new("bench:postgres").unwrap();
    let entry = entry();
    let mut current = rt.block_on(store.save(&key, &entry, 0)).unwrap();
    let mut group = c.benchmark_group("postgres_store");
    group.bench_function("load", |b| {
        b.to_async(&rt)
            .iter(|| async { store.load(&key).await.unwrap() })
    });
    group.bench_function("save (CAS statement)", |b| {
        b.iter(|| {
            current = rt.block_on(store.save(&key, &entry, current)).unwrap();
        });
    });
    lease_benches(
        &mut group,
        &rt,
        &SharedTokenStore::new(store.clone()),
        &key,
        &mut current,
        "save fenced by the lease (CAS + lease row check)",
        "lease renewal",
    );
    {
        let lock = rt
            .block_on(store_before.lock(&key, Duration::from_secs(600)))
            .unwrap();
        renewal_bench(
            &mut group,
            &rt,
            &*lock,
            "lease renewal (logged lease table, before)",
        );
        rt.block_on(lock.release()).unwrap();
    }
    for (name, store) in [
        ("lock + release (uncontended)", &store),
        (
            "lock + release (uncontended, logged lease table, before)",
            &store_before,
        ),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| support::lock_and_release(store, &key));
        });
    }
    hand_over_latency(
        &mut group,
        &rt,
        "hand-over latency, release to waiter holding (notification)",
        SharedTokenStore::new(store.clone()),
        SharedTokenStore::new(other.clone()),
        &key,
    );
    hand_over_latency(
        &mut group,
        &rt,
        "hand-over latency, release to waiter holding (notification, logged lease table, before)",
        SharedTokenStore::new(store_before.clone()),
        SharedTokenStore::new(other_before.clone()),
        &key,
    );
    group.finish();
    rt.block_on(store.delete(&key)).unwrap();
    drop((store, other, store_before, other_before));
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    });
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &mut Criterion) {
    eprintln!("postgres benches skipped: built without the `postgres` feature");
}

criterion_group!(benches, memory, file, redis, postgres);
criterion_main!(benches);
