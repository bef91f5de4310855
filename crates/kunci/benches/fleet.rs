//! Fleet, for every provider compiled in (`support::providers`): 16 processes (this binary,
//! re-run as children) share one token through a store — the file store, then Redis
//! (`KUNCI_TEST_REDIS_URL`) and PostgreSQL (`KUNCI_TEST_POSTGRES_URL`, in a scratch schema),
//! each skipped with a report line when unset — and, first, for contrast, each process its own
//! memory store. Tokens live 3 s; over 3 lifetimes after every process has its first token,
//! the simulator counts the requests. Target with a shared store: what one process alone sends
//! in the same window (the contrast run's count / 16); with refresh ahead of expiry that is 3
//! or 4 in 3 lifetimes, not exactly 3. Prints `report:` lines. `harness = false`.
//! `KUNCI_BENCH_PROVIDERS=sehatmu` measures one provider (see `support::providers`).
#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark code")]
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time with Instant::now"
)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "report lines for cargo xtask bench; children talk to the parent on stdout"
)]

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

mod support;

use auth_testkit::SimServer;
use kunci::{HttpConfig, ProviderKind};

const PROCESSES: usize = 16;
const LIFETIME: Duration = Duration::from_secs(3);
const LIFETIMES: u32 = 3;
const LATENCY: Duration = Duration::from_millis(50);
const CHILD_ENV: &str = "KUNCI_FLEET_CHILD";
const PROVIDER_ENV: &str = "KUNCI_FLEET_PROVIDER";

fn main() {
    if let Ok(vars) = std::env::var(CHILD_ENV) {
        let provider = std::env::var(PROVIDER_ENV).unwrap();
        child(ProviderKind::from_name(&provider).unwrap(), &vars);
        return;
    }
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this long measurement
    // is skipped, as criterion skips its own.
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench` or `cargo xtask bench`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // First, for contrast, each process with its own memory store: what one process alone
    // sends in the window is the target of a fleet sharing a store.
    let mut modes = vec![
        (
            "no shared store (each process its own memory store)",
            "memory:".to_owned(),
        ),
        (
            "file store (one directory, 16 processes)",
            dir.path().to_string_lossy().into_owned(),
        ),
    ];
    match std::env::var("KUNCI_TEST_REDIS_URL") {
        Ok(url) => modes.push(("Redis store (16 processes)", url)),
        Err(_) => println!(
            "report: fleet, Redis store: skipped (set KUNCI_TEST_REDIS_URL=redis://127.0.0.1:6379 to run it)"
        ),
    }
    let schema = format!("kunci_bench_{:08x}", fastrand::u32(..));
    let postgres = std::env::var("KUNCI_TEST_POSTGRES_URL").ok();
    match &postgres {
        Some(url) => {
            let joiner = if url.contains('?') { '&' } else { '?' };
            modes.push((
                "PostgreSQL store (16 processes)",
                format!("{url}{joiner}kunci_table={schema}.tokens"),
            ));
        }
        None => println!(
            "report: fleet, PostgreSQL store: skipped (set KUNCI_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test to run it)"
        ),
    }
    for kind in support::providers() {
        let mut alone = None;
        for (name, store) in &modes {
            let run = fleet(&rt, kind, store);
            let requests = f64::from(u32::try_from(run.requests).unwrap_or(u32::MAX));
            let versus = match alone {
                None => {
                    alone = Some(requests / PROCESSES as f64);
                    format!(
                        "{:.2} per process (what one process alone sends: the target of a fleet sharing a store)",
                        requests / PROCESSES as f64
                    )
                }
                Some(one) => format!(
                    "**{:.2}x one process alone** ({one:.2}; target 1x)",
                    requests / one
                ),
            };
            println!(
                "report: fleet, {}, {name}: **{} requests** in {LIFETIMES} token lifetimes of {} s = {versus}; {} of {PROCESSES} processes had a first token, {} errors in the processes",
                kind.display_name(),
                run.requests,
                LIFETIME.as_secs(),
                run.ready,
                run.errors.len()
            );
            for e in run.errors.iter().take(3) {
                eprintln!("fleet child ({}): {e}", kind.name());
            }
        }
    }
    if let Some(url) = postgres {
        // Best effort: the scratch schema goes; a bench leaves nothing behind on success.
        let _ = Command::new("psql")
            .arg(url)
            .arg("-qc")
            .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .status();
    }
}

/// What a fleet run counted.
struct Run {
    /// Requests the simulator received over `LIFETIMES` lifetimes.
    requests: usize,
    /// Processes that had their first token.
    ready: usize,
    /// What the processes reported going wrong.
    errors: Vec<String>,
}

/// 16 processes of `kind` on `store`, counted over `LIFETIMES` token lifetimes once every one
/// had its first token.
fn fleet(rt: &tokio::runtime::Runtime, kind: ProviderKind, store: &str) -> Run {
    let sim = support::start(
        rt,
        kind,
        SimServer::builder()
            .latency(LATENCY)
            .token_lifetime(LIFETIME),
    );
    let vars = serde_json::to_string(&support::variables(&*sim, store)).unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let mut children: Vec<Child> = Vec::new();
    for _ in 0..PROCESSES {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, &vars)
            .env(PROVIDER_ENV, kind.name())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        children.push(child);
    }
    let mut ready = 0;
    let mut errors = Vec::new();
    let wait_until = Instant::now() + Duration::from_secs(60);
    while ready < PROCESSES && Instant::now() < wait_until {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line == "ready" => ready += 1,
            Ok(line) => errors.push(line),
            Err(_) => {}
        }
    }
    let before = sim.server().request_count();
    std::thread::sleep(LIFETIME * LIFETIMES);
    let requests = sim.server().request_count() - before;
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    errors.extend(rx.try_iter().filter(|l| l != "ready"));
    Run {
        requests,
        ready,
        errors,
    }
}

/// A process of the fleet: its first token, then `token()` every 5 ms until killed (at most
/// two minutes).
fn child(kind: ProviderKind, vars: &str) {
    let vars: HashMap<String, String> = serde_json::from_str(vars).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let manager =
            kunci::from_lookup(kind, &|name| vars.get(name).cloned(), HttpConfig::default())
                .await
                .unwrap();
        let mut out = std::io::stdout();
        if let Err(e) = manager.token().await {
            writeln!(out, "error: first token: {e}").unwrap();
            return;
        }
        writeln!(out, "ready").unwrap();
        let end = Instant::now() + Duration::from_secs(120);
        while Instant::now() < end {
            if let Err(e) = manager.token().await {
                writeln!(out, "error: {e}").unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}
