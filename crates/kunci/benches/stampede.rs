//! Stampede through the facade, for every provider compiled in (`support::providers`): 10,000
//! tasks call `token()` on a cold manager built by `kunci::from_lookup` (memory store) whose
//! simulator answers after 50 ms. Measures the time until the last caller has its token
//! (target < 1.5 × 50 ms) and prints how many requests reached the simulator per stampede
//! (target 1) as a `report:` line per provider.
#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark code")]
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time with Instant::now"
)]
#![allow(clippy::print_stdout, reason = "report lines for cargo xtask bench")]

mod support;

use std::time::{Duration, Instant};

use auth_testkit::SimServer;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const CALLERS: usize = 10_000;
const LATENCY: Duration = Duration::from_millis(50);

fn stampede(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("facade_stampede");
    g.sample_size(10);
    let mut reports = Vec::new();
    for kind in support::providers() {
        let sim = support::start(
            &rt,
            kind,
            SimServer::builder()
                .latency(LATENCY)
                .token_lifetime(Duration::from_secs(3600)),
        );
        let vars = support::variables(&*sim, "memory:");
        let mut stampedes = 0u64;
        let before = sim.server().request_count();
        g.bench_function(
            BenchmarkId::new("cold_10000_callers_50ms_upstream", kind.name()),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let manager = support::manager(&rt, kind, &vars);
                        total += rt.block_on(async {
                            let start = Instant::now();
                            let tasks: Vec<_> = (0..CALLERS)
                                .map(|_| {
                                    let m = manager.clone();
                                    tokio::spawn(async move { m.token().await.map(|_| ()) })
                                })
                                .collect();
                            for t in tasks {
                                t.await.unwrap().unwrap();
                            }
                            start.elapsed()
                        });
                        stampedes += 1;
                    }
                    total
                });
            },
        );
        let requests = sim.server().request_count() - before;
        reports.push(format!(
            "report: stampede through the facade, {}: {requests} requests reached the simulator in {stampedes} cold stampedes of {CALLERS} callers = **{:.2} per stampede** (target 1)",
            kind.display_name(),
            requests as f64 / stampedes as f64
        ));
    }
    g.finish();
    for report in reports {
        println!("{report}");
    }
}

criterion_group!(benches, stampede);
criterion_main!(benches);
