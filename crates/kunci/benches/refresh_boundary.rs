//! Refresh boundary, for every provider compiled in (`support::providers`): 8 callers call
//! `token()` in a loop for 10 s on a multi-thread runtime with 2 workers; tokens live 3 s and
//! the provider's simulator answers after 50 ms. Prints `report:` lines per provider: requests
//! sent (target ≤ 5) and the callers' latency p50 / p99 / max (target: max under 1 ms — nobody
//! waits on the network while a token is valid); then one control run.
//!
//! One long measurement, not a criterion bench (`harness = false`).
#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark code")]
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time with Instant::now"
)]
#![allow(clippy::print_stdout, reason = "report lines for cargo xtask bench")]

mod support;

use std::time::{Duration, Instant};

use auth_testkit::SimServer;

const CALLERS: usize = 8;
const RUN: Duration = Duration::from_secs(10);
const LIFETIME: Duration = Duration::from_secs(3);
const LATENCY: Duration = Duration::from_millis(50);

/// Latencies in 10 ns buckets up to 1 ms, and an overflow count; the maximum is kept exactly.
struct Histogram {
    /// When (since the run started) each call over 1 ms happened, and how long it took.
    slow: Vec<(Duration, Duration)>,
    buckets: Vec<u64>,
    over_1ms: u64,
    max: Duration,
    count: u64,
}

impl Histogram {
    const BUCKET_NS: u128 = 10;
    fn new() -> Self {
        Self {
            slow: Vec::new(),
            buckets: vec![0; 100_000],
            over_1ms: 0,
            max: Duration::ZERO,
            count: 0,
        }
    }
    fn record(&mut self, d: Duration) {
        self.count += 1;
        self.max = self.max.max(d);
        match usize::try_from(d.as_nanos() / Self::BUCKET_NS) {
            Ok(i) if i < self.buckets.len() => self.buckets[i] += 1,
            _ => self.over_1ms += 1,
        }
    }
    fn merge(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.over_1ms += other.over_1ms;
        self.slow.extend_from_slice(&other.slow);
        self.max = self.max.max(other.max);
        self.count += other.count;
    }
    fn quantile(&self, q: f64) -> String {
        let rank = (q * self.count as f64).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return human(Duration::from_nanos(
                    (i as u64 + 1) * Self::BUCKET_NS as u64,
                ));
            }
        }
        "> 1 ms".to_owned()
    }
}

fn human(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.2} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this long measurement
    // is skipped, as criterion skips its own.
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench` or `cargo xtask bench`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut last = None;
    for kind in support::providers() {
        let sim = support::start(
            &rt,
            kind,
            SimServer::builder()
                .latency(LATENCY)
                .token_lifetime(LIFETIME),
        );
        let vars = support::variables(&*sim, "memory:");
        let manager = support::manager(&rt, kind, &vars);
        // The cold first call waits for the network by necessity; the run starts after it.
        rt.block_on(manager.token()).unwrap();
        let requests_before = sim.server().request_count();
        let (histogram, errors) = rt.block_on(run(&manager, false));
        let requests = sim.server().request_count() - requests_before;
        let stats = manager.stats();
        let name = kind.display_name();
        println!(
            "report: {name}, refresh boundary ({CALLERS} callers on 2 workers, {} s, tokens living {} s, {} ms upstream latency): **{requests} requests** sent during the run (target ≤ 5); {} calls, {errors} errors; manager counters: {} fetches, {} failures, {} cache hits",
            RUN.as_secs(),
            LIFETIME.as_secs(),
            LATENCY.as_millis(),
            histogram.count,
            stats.fetches,
            stats.failures,
            stats.cache_hits
        );
        let mut slow = histogram.slow.clone();
        slow.sort();
        println!(
            "report: {name}, caller latency p50 **{}**, p99 **{}**, max **{}** (target: max < 1 ms); {} of {} calls over 1 ms{}",
            histogram.quantile(0.50),
            histogram.quantile(0.99),
            human(histogram.max),
            histogram.over_1ms,
            histogram.count,
            if slow.is_empty() {
                String::new()
            } else {
                format!(
                    ", at (s into the run, duration): {}",
                    slow.iter()
                        .take(12)
                        .map(|(at, took)| format!("{:.3} s {}", at.as_secs_f64(), human(*took)))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
        last = Some(manager);
    }
    // Control: the same 8 tasks timing an empty statement instead of `token()`. Its outliers
    // are what the OS scheduler (and the other processes on the machine) add to any timing.
    if let Some(manager) = last {
        let (control, _) = rt.block_on(run(&manager, true));
        println!(
            "report: control, the same loop timing an empty statement: p50 {}, p99 {}, max **{}**; {} of {} timings over 1 ms (scheduler noise on this machine)",
            control.quantile(0.50),
            control.quantile(0.99),
            human(control.max),
            control.over_1ms,
            control.count,
        );
    }
}

async fn run(manager: &kunci::TokenManager, control: bool) -> (Histogram, u64) {
    {
        let begin = Instant::now();
        let deadline = begin + RUN;
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let m = manager.clone();
                tokio::spawn(async move {
                    let mut h = Histogram::new();
                    let mut errors = 0u64;
                    while Instant::now() < deadline {
                        let start = Instant::now();
                        let ok = if control {
                            std::hint::black_box(true)
                        } else {
                            m.token().await.is_ok()
                        };
                        let took = start.elapsed();
                        h.record(took);
                        if took > Duration::from_millis(1) {
                            h.slow.push((start - begin, took));
                        }
                        errors += u64::from(!ok);
                        // A caller does other work between calls; let the runtime run it.
                        tokio::task::yield_now().await;
                    }
                    (h, errors)
                })
            })
            .collect();
        let mut all = Histogram::new();
        let mut errors = 0;
        for t in tasks {
            let (h, e) = t.await.unwrap();
            all.merge(&h);
            errors += e;
        }
        (all, errors)
    }
}
