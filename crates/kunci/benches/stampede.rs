//! Stampede through the facade: 10,000 tasks call `token()` on a cold manager built by
//! `kunci::from_lookup` (SehatMu, memory store) whose simulator answers after 50 ms. Measures
//! the time until the last caller has its token (target < 1.5 × 50 ms) and prints how many
//! requests reached the simulator per stampede (target 1) as a `report:` line.
#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark code")]
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time with Instant::now"
)]
#![allow(clippy::print_stdout, reason = "report lines for cargo xtask bench")]

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use auth_testkit::{SimServer, sehatmu::SehatMuSim};
use criterion::{Criterion, criterion_group, criterion_main};
use kunci::{HttpConfig, ProviderKind};

const CALLERS: usize = 10_000;
const LATENCY: Duration = Duration::from_millis(50);

fn stampede(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(SehatMuSim::start_with(
            SimServer::builder()
                .latency(LATENCY)
                .token_lifetime(Duration::from_secs(3600)),
        ))
        .unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("SEHATMU_CLIENT_ID", sim.client_id().to_owned()),
        ("SEHATMU_CLIENT_SECRET", sim.client_secret().to_owned()),
        ("SEHATMU_BASE_URL", sim.base_url()),
        ("KUNCI_STORE", "memory:".to_owned()),
    ]);
    let lookup = |name: &str| vars.get(name).cloned();
    let stampedes = AtomicU64::new(0);
    let before = sim.request_count();

    let mut g = c.benchmark_group("facade_stampede");
    g.sample_size(10);
    g.bench_function("cold_10000_callers_50ms_upstream", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let manager = rt
                    .block_on(kunci::from_lookup(
                        ProviderKind::SehatMu,
                        &lookup,
                        HttpConfig::default(),
                    ))
                    .unwrap();
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
                stampedes.fetch_add(1, Ordering::Relaxed);
            }
            total
        });
    });
    g.finish();
    let requests = sim.request_count() - before;
    let n = stampedes.load(Ordering::Relaxed);
    println!(
        "report: stampede through the facade: {requests} requests reached the simulator in {n} cold stampedes of {CALLERS} callers = **{:.2} per stampede** (target 1)",
        requests as f64 / n as f64
    );
}

criterion_group!(benches, stampede);
criterion_main!(benches);
