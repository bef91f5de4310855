//! The agent under load, for every provider compiled in, each through its simulator
//! (`ProviderKind::start_simulator`; `KUNCI_BENCH_PROVIDERS=stamps` measures fewer): a real
//! HTTP load generator (`oha`, path in `KUNCI_BENCH_OHA`, installed by `cargo xtask bench
//! agent`) on the warm token route over the Unix socket, while the token refreshes every ~3 s
//! (3 s tokens, file store); `kunci token` per call beside it, through the agent and alone;
//! and the resident memory of an idle agent serving 100 profiles (alone: `cargo bench -p
//! kunci-cli --bench agent -- idle-memory`). Prints `report:` lines; `harness = false`, run
//! only under `cargo bench`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark code"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time with Instant::now"
)]
#![allow(clippy::print_stdout, reason = "report lines for cargo xtask bench")]

use std::{
    fmt::Write as _,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use auth_testkit::{SimServer, Simulator};
use kunci::ProviderKind;

const BIN: &str = env!("CARGO_BIN_EXE_kunci");
const LOAD_SECONDS: u64 = 20;
const CONNECTIONS: usize = 16;
const CLI_RUNS: usize = 100;
const PROFILES: usize = 100;

struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
    }
}

/// Starts `kunci agent` and waits for its readiness notification.
fn agent(dir: &Path, socket: &Path, envs: &[(&str, String)], args: &[&str]) -> Agent {
    let notify = dir.join(format!("notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&notify);
    let ready = UnixDatagram::bind(&notify).unwrap();
    ready
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let child = Command::new(BIN)
        .arg("agent")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_clear()
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("KUNCI_STORE", dir.join("store"))
        .env("NOTIFY_SOCKET", &notify)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = ready.recv(&mut buf).expect("the agent never became ready");
    assert!(buf[..n].starts_with(b"READY=1"));
    Agent { child }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The providers measured: every one compiled in, or those named in `KUNCI_BENCH_PROVIDERS`
/// (comma-separated).
fn providers() -> Vec<ProviderKind> {
    match std::env::var("KUNCI_BENCH_PROVIDERS") {
        Ok(names) => names
            .split(',')
            .map(|n| {
                ProviderKind::from_name(n.trim()).expect("KUNCI_BENCH_PROVIDERS names a provider")
            })
            .collect(),
        Err(_) => ProviderKind::ALL.to_vec(),
    }
}

/// `kind`'s simulator with `lifetime` tokens, without the provider's own rate limit (the bench
/// measures the agent, not the provider's limit).
fn simulator(
    rt: &tokio::runtime::Runtime,
    kind: ProviderKind,
    lifetime: Duration,
) -> Box<dyn Simulator> {
    rt.block_on(
        kind.start_simulator(
            SimServer::builder()
                .token_lifetime(lifetime)
                .without_rate_limits(),
        ),
    )
    .unwrap()
}

/// Part 3: the resident memory of an idle agent serving 100 profiles of `kind` (24 h
/// tokens, every setting read from the environment), beside one serving 1.
fn idle_memory(rt: &tokio::runtime::Runtime, dir: &Path, kind: ProviderKind) {
    let sim = simulator(rt, kind, Duration::from_secs(86_400));
    let envs = sim.variables();
    // The resident memory of an agent serving `profiles` (config file `name`), 3 s after ready.
    let rss_serving = |name: &str, profiles: usize| {
        let mut config = String::new();
        for i in 0..profiles {
            write!(config, "[profiles.p{i}]\nprovider = \"{}\"\n", kind.name()).unwrap();
            for (variable, _) in &envs {
                writeln!(config, "{variable} = \"env:{variable}\"").unwrap();
            }
            config.push('\n');
        }
        let config_path = dir.join(name);
        std::fs::write(&config_path, config).unwrap();
        let running = agent(
            dir,
            &dir.join("run/idle.sock"),
            &envs,
            &[
                "--config",
                config_path.to_str().unwrap(),
                "--store",
                "memory:",
            ],
        );
        std::thread::sleep(Duration::from_secs(3));
        rss_kib(running.child.id())
    };
    let rss_many = rss_serving("many.toml", PROFILES);
    let fetched = sim.server().request_count();
    let rss_one = rss_serving("one.toml", 1);
    println!(
        "report: {}, idle agent, resident memory (`VmRSS`) 3 s after ready: **{rss_many} KiB** serving {PROFILES} profiles of one account ({fetched} tokens fetched at start), {rss_one} KiB serving 1 — about {:.1} KiB per profile",
        kind.display_name(),
        (rss_many.saturating_sub(rss_one)) as f64 / (PROFILES - 1) as f64
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench` or `cargo xtask bench agent`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // `cargo bench -p kunci-cli --bench agent -- idle-memory`: only the memory figure (no
    // load generator needed).
    if std::env::args().any(|a| a == "idle-memory") {
        for kind in providers() {
            idle_memory(&rt, dir.path(), kind);
        }
        return;
    }
    let oha = std::env::var_os("KUNCI_BENCH_OHA")
        .map(PathBuf::from)
        .expect("KUNCI_BENCH_OHA names the oha binary (cargo xtask bench agent installs it)");
    for kind in providers() {
        under_load(&rt, dir.path(), &oha, kind);
    }
    for kind in providers() {
        idle_memory(&rt, dir.path(), kind);
    }
}

/// Parts 1 and 2 for `kind`: the warm token route under load while the token refreshes every
/// ~3 s, then `kunci token` per call through the agent and alone.
fn under_load(rt: &tokio::runtime::Runtime, dir: &Path, oha: &Path, kind: ProviderKind) {
    let socket = dir.join("run/agent.sock");
    let name = kind.name();
    let sim = simulator(rt, kind, Duration::from_secs(3));
    let envs = sim.variables();
    let running = agent(dir, &socket, &envs, &[]);
    // Other work on the machine shows in the figures: say how busy it was.
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    let before = sim.server().request_count();
    let out = Command::new(oha)
        .args(["--no-tui", "--output-format", "json", "-z"])
        .arg(format!("{LOAD_SECONDS}s"))
        .args(["-c", &CONNECTIONS.to_string(), "--unix-socket"])
        .arg(&socket)
        .arg(format!("http://localhost/v1/token/{name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refreshes = sim.server().request_count() - before;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &json["summary"];
    let pct = &json["latencyPercentiles"];
    let ms = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN) * 1000.0;
    let codes = &json["statusCodeDistribution"];
    let ok = codes["200"].as_u64().unwrap_or(0);
    let total: u64 = codes
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    let mut report = String::new();
    write!(
        report,
        "{}, warm `GET /v1/token/{name}` (JSON), oha, {CONNECTIONS} connections × {LOAD_SECONDS} s: **{:.0} requests/s** (target ≥ 50,000), p50 **{:.3} ms**, p99 **{:.3} ms** (target < 1 ms), max {:.3} ms; {ok} of {total} answered 200; {refreshes} refreshes during the run; 1-minute load average before the run {loadavg}",
        kind.display_name(),
        summary["requestsPerSec"].as_f64().unwrap_or(f64::NAN),
        ms(&pct["p50"]),
        ms(&pct["p99"]),
        ms(&summary["slowest"]),
    )
    .unwrap();
    println!("report: {report}");

    // 2. `kunci token` per call: through the agent, and alone from the file store
    let time_cli = |agent_socket: Option<&Path>| -> Vec<f64> {
        let mut times = Vec::with_capacity(CLI_RUNS);
        for _ in 0..CLI_RUNS {
            let mut cmd = Command::new(BIN);
            cmd.args(["token", name])
                .env_clear()
                .env("HOME", dir)
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("XDG_DATA_HOME", dir.join("data"))
                .env("KUNCI_STORE", dir.join("store"))
                .envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
            match agent_socket {
                Some(s) => cmd.env("KUNCI_AGENT", s),
                None => cmd.env("KUNCI_AGENT", "off"),
            };
            let start = Instant::now();
            let out = cmd.output().unwrap();
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        times.sort_by(f64::total_cmp);
        times
    };
    let through = time_cli(Some(&socket));
    drop(running);
    // alone: a long-lived token in the store, so every run is a warm read of the file store
    sim.server().set_token_lifetime(Duration::from_secs(3600));
    let alone = time_cli(None);
    println!(
        "report: `kunci token {name}` per call ({CLI_RUNS} processes each): through the agent median **{:.2} ms** (p90 {:.2} ms), alone from the file store median **{:.2} ms** (p90 {:.2} ms)",
        percentile(&through, 0.5),
        percentile(&through, 0.9),
        percentile(&alone, 0.5),
        percentile(&alone, 0.9),
    );
}
