//! The warm `token()` path beside an `ArcSwap::load` baseline and the clock reads it could be
//! built on, 1 vs 2 threads, and a 10,000-caller stampede on a cold cache. Figures:
//! `docs/benchmarks.md` (`cargo xtask bench`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark code"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "benchmarks measure wall time with Instant"
)]

use std::{
    hint::black_box,
    sync::{
        Arc, Barrier,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use auth_core::{FetchRequest, Fetched, Token, TokenManager, source::from_fn};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use secrecy::SecretString;

fn warm_manager() -> TokenManager {
    let source = from_fn("bench", |req: FetchRequest| async move {
        let token = Token::bearer(
            SecretString::from("bench-token"),
            req.sent_at,
            Some(req.sent_at + Duration::from_secs(86_400)),
        )?;
        Ok(Fetched::new(token))
    });
    let manager = TokenManager::builder(source).build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { drop(manager.token().await.unwrap()) });
    manager
}

#[inline]
fn manager_call(m: &TokenManager) -> usize {
    let t = m.token().now_or_never().unwrap().unwrap();
    t.header_value().len()
}

#[inline]
fn baseline_call(s: &ArcSwap<String>) -> usize {
    let g = s.load();
    g.len()
}

/// `clock_gettime(CLOCK_BOOTTIME)`: monotonic and counting suspend, but with no coarse variant
/// (it reads the hardware counter).
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "one libc call with a valid out-pointer")]
fn boottime() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call writes only into it.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts
}

/// Runs `f` `iters` times on each of `threads` threads, started together; returns wall time.
fn on_threads<T: Sync>(threads: usize, iters: u64, shared: &T, f: fn(&T) -> usize) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    black_box(f(black_box(shared)));
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
    let manager = warm_manager();
    let baseline = ArcSwap::from_pointee("Bearer bench-token".to_owned());

    let mut g = c.benchmark_group("warm_token");
    g.bench_function("arcswap_load_baseline", |b| {
        b.iter(|| baseline_call(black_box(&baseline)))
    });
    g.bench_function("manager_token", |b| {
        b.iter(|| manager_call(black_box(&manager)))
    });
    // What reading the time costs here, for comparison: every time-based cache pays one read.
    // The warm path reads two coarse clocks (monotonic, and realtime so that a suspend the
    // monotonic clock did not see still expires a token); CLOCK_BOOTTIME, which counts suspend
    // by itself, is the alternative measured beside them.
    let system = auth_core::SystemClock::new();
    g.bench_function("clock_coarse_monotonic", |b| {
        b.iter(|| auth_core::Clock::monotonic(black_box(&system)))
    });
    let shared = auth_core::SharedClock::system();
    g.bench_function("clock_coarse_monotonic_and_realtime", |b| {
        b.iter(|| black_box(&shared).read_fast())
    });
    #[cfg(target_os = "linux")]
    g.bench_function("clock_boottime", |b| b.iter(boottime));
    g.bench_function("std_instant_now", |b| b.iter(Instant::now));
    g.finish();

    // Throughput with 1 and 2 threads: elements/s are calls/s over all threads.
    let mut g = c.benchmark_group("warm_token_threads");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_with_input(
            BenchmarkId::new("arcswap_load_baseline", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| on_threads(t, iters, &baseline, baseline_call));
            },
        );
        g.bench_with_input(
            BenchmarkId::new("manager_token", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| on_threads(t, iters, &manager, manager_call));
            },
        );
    }
    g.finish();
}

fn stampede(c: &mut Criterion) {
    const CALLERS: usize = 10_000;
    const LATENCY: Duration = Duration::from_millis(50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fetches = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut g = c.benchmark_group("stampede");
    g.sample_size(10);
    g.bench_function("cold_10000_callers_50ms_upstream", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let counter = fetches.clone();
                let source = from_fn("bench", move |req: FetchRequest| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async move {
                        tokio::time::sleep(LATENCY).await;
                        let token = Token::bearer(
                            SecretString::from("t"),
                            req.sent_at,
                            Some(req.sent_at + Duration::from_secs(3600)),
                        )?;
                        Ok(Fetched::new(token))
                    }
                });
                let manager = TokenManager::builder(source).build().unwrap();
                runs.fetch_add(1, Ordering::Relaxed);
                total += rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..CALLERS)
                        .map(|_| {
                            let m = manager.clone();
                            tokio::spawn(async move { m.token().await.map(|t| t.generation()) })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap().unwrap();
                    }
                    start.elapsed()
                });
            }
            total
        });
    });
    g.finish();
    let (f, r) = (
        fetches.load(Ordering::Relaxed),
        runs.load(Ordering::Relaxed),
    );
    println!(
        "report: stampede: {f} upstream requests over {r} cold runs of {CALLERS} callers = **{}** per run (target 1)",
        f as f64 / r as f64
    );
}

criterion_group!(benches, warm, stampede);
criterion_main!(benches);
