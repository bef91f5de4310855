//! Load, for every provider compiled in (`support::providers`), one after the other in this
//! process: 2 callers on a 2-worker runtime call `token()` for 60 s (`KUNCI_LOAD_SECONDS`)
//! on a manager with a file store: tokens live 3 s, so every ~2.5 s a refresh fetches a new
//! token and saves it. Reports calls, errors (target 0), refreshes, and the resident set size
//! at the start and the end of each run (target: flat). `harness = false`; `cargo xtask bench
//! load` only.
#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark code")]
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time with Instant::now"
)]
#![allow(clippy::print_stdout, reason = "report lines for cargo xtask bench")]

mod support;

use std::time::{Duration, Instant};

use auth_testkit::SimServer;
use kunci::ProviderKind;

const CALLERS: usize = 2;
const LIFETIME: Duration = Duration::from_secs(3);

/// Resident set size in KiB (`VmRSS` of /proc/self/status).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this long measurement
    // is skipped, as criterion skips its own.
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench` or `cargo xtask bench`");
        return;
    }
    let seconds: u64 = std::env::var("KUNCI_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for kind in support::providers() {
        load(&rt, kind, seconds);
    }
}

/// One provider's run.
fn load(rt: &tokio::runtime::Runtime, kind: ProviderKind, seconds: u64) {
    let sim = support::start(
        rt,
        kind,
        SimServer::builder()
            .latency(Duration::from_millis(5))
            .token_lifetime(LIFETIME),
    );
    let dir = tempfile::tempdir().unwrap();
    let vars = support::variables(&*sim, &dir.path().to_string_lossy());
    let manager = support::manager(rt, kind, &vars);
    rt.block_on(manager.token()).unwrap();
    let rss_start = rss_kib();
    let mut samples = vec![rss_start];
    let (calls, errors) = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let m = manager.clone();
                tokio::spawn(async move {
                    let (mut calls, mut errors) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        for _ in 0..1000 {
                            errors += u64::from(m.token().await.is_err());
                            calls += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                    (calls, errors)
                })
            })
            .collect();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(10)).await;
            // the simulator keeps every request it receives: drop them, they are not kunci's
            sim.server().clear_requests();
            samples.push(rss_kib());
        }
        let mut total = (0, 0);
        for t in tasks {
            let (c, e) = t.await.unwrap();
            total.0 += c;
            total.1 += e;
        }
        total
    });
    let rss_end = rss_kib();
    let stats = manager.stats();
    println!(
        "report: load, {}: {CALLERS} callers × {seconds} s: **{calls} calls, {errors} errors** (target 0); {} refreshes (tokens living {} s, each saved to the file store), {} failed",
        kind.display_name(),
        stats.fetches,
        LIFETIME.as_secs(),
        stats.failures
    );
    let warmed = samples.get(1).copied().unwrap_or(rss_start);
    println!(
        "report: load, {}: resident set size in steady state: **{warmed} KiB after the first 10 s, {rss_end} KiB at the end ({:+} KiB)** (target: flat); {rss_start} KiB before the load started (the first seconds grow the allocator's and runtime's per-thread caches); every 10 s: {}",
        kind.display_name(),
        i128::from(rss_end) - i128::from(warmed),
        samples
            .iter()
            .map(|k| format!("{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
