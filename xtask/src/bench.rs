//! `cargo xtask bench`: runs the criterion suites and rewrites their tables in
//! `docs/benchmarks.md` from the estimates criterion wrote (under `target/criterion`, or where
//! `CARGO_TARGET_DIR` puts it), so every figure in the document comes from a run, with the
//! machine, the date and the command beside it.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One criterion bench target and the groups it reports.
struct Suite {
    /// Region name in docs/benchmarks.md (`<!-- generated:bench:NAME:start -->`).
    name: &'static str,
    package: &'static str,
    bench: &'static str,
    features: &'static str,
    groups: &'static [&'static str],
    derive: fn(&BTreeMap<String, Estimate>) -> Vec<String>,
    /// Also run when this other suite is named (`cargo xtask bench fleet` runs `store` too).
    with: Option<&'static str>,
}

const SUITES: &[Suite] = &[
    Suite {
        name: "core",
        package: "auth-core",
        bench: "token_path",
        features: "",
        groups: &["warm_token", "warm_token_threads", "stampede"],
        derive: derive_core,
        with: None,
    },
    Suite {
        name: "pool",
        package: "auth-core",
        bench: "pool",
        features: "",
        groups: &["pool_warm"],
        derive: derive_pool,
        with: None,
    },
    Suite {
        name: "store",
        package: "auth-store",
        bench: "store",
        features: "redis,postgres",
        groups: &[
            "memory_store",
            "file_store_plain",
            "file_store_encrypted",
            "file_store_handover",
            "redis_store",
            "postgres_store",
        ],
        derive: |_| Vec::new(),
        with: Some("fleet"),
    },
    Suite {
        name: "middleware",
        package: "kunci",
        bench: "middleware",
        features: "reqwest-middleware",
        groups: &["middleware"],
        derive: derive_middleware,
        with: None,
    },
    Suite {
        name: "stampede",
        package: "kunci",
        bench: "stampede",
        features: "testing",
        groups: &["facade_stampede"],
        derive: derive_stampede,
        with: None,
    },
];

/// A `harness = false` bench that makes one long measurement and prints `report:` lines,
/// which become the region's bullet list.
struct ReportSuite {
    name: &'static str,
    package: &'static str,
    bench: &'static str,
    features: &'static str,
    /// Run only when named (`cargo xtask bench load`), not by a plain `cargo xtask bench`.
    explicit: bool,
    /// What the bench measures, printed above its report lines.
    what: &'static str,
    /// Also run when this other suite is named (`cargo xtask bench fleet` runs `outage` too).
    with: Option<&'static str>,
}

const REPORT_SUITES: &[ReportSuite] = &[
    ReportSuite {
        name: "boundary",
        package: "kunci",
        bench: "refresh_boundary",
        features: "testing",
        explicit: false,
        what: "For every provider compiled in, through its simulator: 8 callers in a loop for 10 s on a 2-worker runtime, tokens living 3 s, 50 ms upstream latency (`kunci::from_lookup`, memory store)",
        with: None,
    },
    ReportSuite {
        name: "fleet",
        package: "kunci",
        bench: "fleet",
        features: "testing,redis,postgres",
        explicit: false,
        what: "For every provider compiled in, through its simulator: 16 processes sharing one token (3 s lifetime, 50 ms upstream latency) through a store, counted over 3 lifetimes after every process had its first token, beside 16 processes each with its own memory store, whose count per process (what one process alone sends) is the target; `cargo xtask bench fleet` also reruns the `store` suite (load, save, fenced save, renewal and hand-over latency per backend) and the `outage` suite",
        with: None,
    },
    ReportSuite {
        name: "outage",
        package: "auth-store",
        bench: "outage",
        features: "redis,postgres",
        explicit: false,
        what: "load, save and fenced save per store alternating in one loop (200 rounds); hand-over with notification and with polling (before) alternating, and on PostgreSQL lock + release and hand-over on the unlogged lease table and on a logged one (before) alternating; then a manager (4 s tokens refreshed from half their life, 50 ms upstream latency) whose Redis or PostgreSQL store is reached through a TCP proxy the bench cuts and restores, its caller asking every 10 ms — no outage (baseline), an outage inside the token's life, one outliving it",
        with: Some("fleet"),
    },
    ReportSuite {
        name: "agent",
        package: "kunci-cli",
        bench: "agent",
        features: "",
        explicit: true,
        what: "`kunci agent` (release build) on a Unix socket, loaded by `oha` (installed by the command into the target directory's `tools/`) on the same 2 cores; for every provider compiled in, its simulator in the bench process with 3 s tokens, file store",
        with: None,
    },
    ReportSuite {
        name: "load",
        package: "kunci",
        bench: "load",
        features: "testing",
        explicit: true,
        what: "For every provider compiled in, through its simulator: 2 callers × 60 s of `token()` on a manager with a file store; tokens living 3 s, so a new token is fetched and saved every few seconds",
        with: None,
    },
];

#[derive(Debug, Clone)]
struct Estimate {
    mean_ns: f64,
    low_ns: f64,
    high_ns: f64,
    elements: Option<f64>,
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let doc_path = root.join("docs/benchmarks.md");
    let mut doc = fs::read_to_string(&doc_path).context("docs/benchmarks.md is missing")?;
    for suite in SUITES.iter().filter(|s| {
        only.is_empty()
            || only
                .iter()
                .any(|o| *o == s.name || Some(o.as_str()) == s.with)
    }) {
        let mut cmd: Vec<String> = vec![
            "bench".into(),
            "-p".into(),
            suite.package.into(),
            "--bench".into(),
            suite.bench.into(),
        ];
        if !suite.features.is_empty() {
            cmd.extend(["--features".into(), suite.features.into()]);
        }
        cmd.push("--".into());
        if quick {
            cmd.extend(["--warm-up-time", "1", "--measurement-time", "3"].map(String::from));
        }
        // results of benchmarks that no longer exist must not reach the tables
        for group in suite.groups {
            let _ = fs::remove_dir_all(criterion_dir(root).join(group));
        }
        let reports = run_capturing_reports(&cmd, &[])?;
        let estimates = read_estimates(&criterion_dir(root), suite.groups)?;
        if estimates.is_empty() {
            bail!("suite {}: criterion wrote no estimates", suite.name);
        }
        let body = render(suite, &cmd, &estimates, &reports)?;
        doc = replace_region(&doc, suite.name, &body)?;
    }
    for suite in REPORT_SUITES.iter().filter(|s| {
        if only.is_empty() {
            !s.explicit
        } else {
            only.iter()
                .any(|o| *o == s.name || Some(o.as_str()) == s.with)
        }
    }) {
        let mut cmd: Vec<String> = ["bench", "-p", suite.package, "--bench", suite.bench]
            .map(String::from)
            .to_vec();
        if !suite.features.is_empty() {
            cmd.extend(["--features".into(), suite.features.into()]);
        }
        let envs = if suite.name == "agent" {
            vec![("KUNCI_BENCH_OHA".to_owned(), install_oha(root)?)]
        } else {
            Vec::new()
        };
        let reports = run_capturing_reports(&cmd, &envs)?;
        if reports.is_empty() {
            bail!("suite {}: the bench printed no report lines", suite.name);
        }
        let mut body = String::new();
        writeln!(
            body,
            "Machine: {}. Date: {}. Command: `cargo xtask bench {}` (runs `cargo {}`). {}.",
            machine(),
            today(),
            suite.name,
            cmd.join(" "),
            suite.what
        )?;
        writeln!(body)?;
        for line in &reports {
            writeln!(body, "- {line}")?;
        }
        doc = replace_region(&doc, suite.name, &body)?;
    }
    if only.is_empty() || only.iter().any(|o| *o == "deps") {
        doc = replace_region(&doc, "deps", &dependency_weight()?)?;
    }
    if only.is_empty() || only.iter().any(|o| *o == "cli") {
        doc = replace_region(&doc, "cli", &cli_process_time(root)?)?;
    }
    fs::write(&doc_path, doc)?;
    eprintln!("docs/benchmarks.md updated");
    Ok(())
}

/// Where criterion writes its estimates: as criterion decides it, `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `target/criterion`.
fn criterion_dir(root: &Path) -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("criterion")
}

/// Warm `kunci token` from the file store: wall time of whole processes (release build) and
/// peak memory from `/usr/bin/time -v`.
/// Where cargo puts build output: `CARGO_TARGET_DIR` when set (relative to the workspace root
/// if relative), else `target/`. Criterion writes its estimates under it.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "measuring whole processes needs the wall clock"
)]
fn cli_process_time(root: &Path) -> Result<String> {
    const RUNS: usize = 100;
    crate::run("cargo", &["build", "--release", "-p", "kunci-cli"])?;
    let bin = target_dir(root).join("release/kunci");
    let dir = std::env::temp_dir().join(format!("kunci-cli-bench-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let store = dir.join("store");
    let command = |program: &Path| {
        let mut c = Command::new(program);
        c.env_clear()
            .env("HOME", &dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("STAMPS_STATIC_TOKEN", "bench-static-token")
            .env("KUNCI_STORE", &store);
        c
    };
    let token = |c: &mut Command| -> Result<std::process::Output> {
        let out = c.output()?;
        if !out.status.success() {
            bail!(
                "kunci token failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    };
    // the first run stores the entry; every later run is served from the file store
    token(command(&bin).args(["token", "stamps"]))?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = std::time::Instant::now();
        let out = token(command(&bin).args(["token", "stamps"]))?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        if String::from_utf8_lossy(&out.stdout).trim() != "bench-static-token" {
            bail!("kunci token printed something unexpected");
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let time_v = token(
        Command::new("/usr/bin/time")
            .arg("-v")
            .arg(&bin)
            .args(["token", "stamps"])
            .envs(
                command(&bin)
                    .get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .env_remove("PATH"),
    )?;
    let peak_kb = String::from_utf8_lossy(&time_v.stderr)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes):")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned());
    let _ = fs::remove_dir_all(&dir);
    let mut s = String::new();
    writeln!(
        s,
        "Machine: {}. Date: {}. Command: `cargo xtask bench cli` (release build; {RUNS} runs of `kunci token stamps` with a static token already in a file store; peak memory from `/usr/bin/time -v`).",
        machine(),
        today()
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| warm `kunci token` | min | median | p90 | max | peak RSS |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|")?;
    writeln!(
        s,
        "| whole process | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {peak_kb} KiB |",
        pct(0.0),
        pct(0.5),
        pct(0.9),
        pct(1.0)
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "- median process time **{:.2} ms** (target under 10 ms)",
        pct(0.5)
    )?;
    Ok(s)
}

/// Crates in the normal dependency tree (`cargo tree -e normal --prefix none`, deduplicated),
/// the crate itself included, for each provider alone, the facade with one provider, and
/// everything.
fn dependency_weight() -> Result<String> {
    let cases: &[(&str, &[&str])] = &[
        ("auth-krmpesan alone", &["-p", "auth-krmpesan"]),
        ("auth-kalsel alone", &["-p", "auth-kalsel"]),
        ("auth-stamps alone", &["-p", "auth-stamps"]),
        ("auth-sehatmu alone", &["-p", "auth-sehatmu"]),
        (
            "facade with one provider",
            &[
                "-p",
                "kunci",
                "--no-default-features",
                "--features",
                "stamps",
            ],
        ),
        ("facade, default features (4 providers)", &["-p", "kunci"]),
        ("facade, all features", &["-p", "kunci", "--all-features"]),
        (
            "everything (workspace, all features)",
            &["--workspace", "--all-features"],
        ),
    ];
    let mut s = String::new();
    writeln!(
        s,
        "Machine: {}. Date: {}. Command: `cargo xtask bench deps` (runs `cargo tree -e normal --prefix none <selection>` and counts distinct crates, the selected crates included).",
        machine(),
        today()
    )?;
    writeln!(s)?;
    writeln!(s, "| selection | `cargo tree` arguments | crates |")?;
    writeln!(s, "|---|---|---|")?;
    for (name, args) in cases {
        let mut cmd = vec!["tree", "-e", "normal", "--prefix", "none"];
        cmd.extend_from_slice(args);
        eprintln!("$ cargo {}", cmd.join(" "));
        let out = Command::new("cargo").args(&cmd).output()?;
        if !out.status.success() {
            bail!(
                "cargo {} failed: {}",
                cmd.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let crates: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                match (words.next(), words.next()) {
                    (Some(name), Some(version)) if version.starts_with('v') => Some(name),
                    _ => None,
                }
            })
            .collect();
        writeln!(
            s,
            "| {name} | `{}` | **{}** |",
            args.join(" "),
            crates.len()
        )?;
    }
    Ok(s)
}

/// The HTTP load generator of the agent suite: `oha`, installed with `cargo install --locked`
/// into `<target dir>/tools` when it is not there yet. Returns its path.
fn install_oha(root: &Path) -> Result<String> {
    const OHA_VERSION: &str = "1.16.0";
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let tools = target.join("tools");
    let bin = tools.join("bin/oha");
    let current = Command::new(&bin)
        .arg("--version")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(OHA_VERSION));
    if !current {
        let tools_arg = tools.to_string_lossy().into_owned();
        crate::run(
            "cargo",
            &[
                "install",
                "--locked",
                "oha",
                "--version",
                OHA_VERSION,
                "--root",
                &tools_arg,
            ],
        )?;
    }
    Ok(bin.to_string_lossy().into_owned())
}

/// Runs `cargo <args>` with `envs`, streaming its output, and returns the lines that start
/// with `report:`.
fn run_capturing_reports(args: &[String], envs: &[(String, String)]) -> Result<Vec<String>> {
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = Command::new("cargo")
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .spawn()?;
    let mut reports = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            eprintln!("{line}");
            if let Some(report) = line.strip_prefix("report:") {
                reports.push(report.trim().to_owned());
            }
        }
    }
    if !child.wait()?.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(reports)
}

fn read_estimates(dir: &Path, groups: &[&str]) -> Result<BTreeMap<String, Estimate>> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = groups
        .iter()
        .map(|g| dir.join(g))
        .filter(|p| p.exists())
        .collect();
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir()
                && path
                    .file_name()
                    .is_some_and(|n| n != "report" && n != "base" && n != "change")
            {
                stack.push(path);
            } else if path.ends_with("new/benchmark.json") {
                let bench: Value = serde_json::from_str(&fs::read_to_string(&path)?)?;
                let est: Value = serde_json::from_str(&fs::read_to_string(
                    path.with_file_name("estimates.json"),
                )?)?;
                let full_id = bench["full_id"].as_str().unwrap_or_default().to_owned();
                let mean = &est["mean"];
                out.insert(
                    full_id,
                    Estimate {
                        mean_ns: mean["point_estimate"].as_f64().unwrap_or(f64::NAN),
                        low_ns: mean["confidence_interval"]["lower_bound"]
                            .as_f64()
                            .unwrap_or(f64::NAN),
                        high_ns: mean["confidence_interval"]["upper_bound"]
                            .as_f64()
                            .unwrap_or(f64::NAN),
                        elements: bench["throughput"]["Elements"].as_f64(),
                    },
                );
            }
        }
    }
    Ok(out)
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn render(
    suite: &Suite,
    cmd: &[String],
    est: &BTreeMap<String, Estimate>,
    reports: &[String],
) -> Result<String> {
    let mut s = String::new();
    writeln!(
        s,
        "Machine: {}. Date: {}. Command: `cargo xtask bench {}` (runs `cargo {}`).",
        machine(),
        today(),
        suite.name,
        cmd.join(" ")
    )?;
    writeln!(s)?;
    writeln!(s, "| benchmark | mean | 95% interval | calls/s |")?;
    writeln!(s, "|---|---|---|---|")?;
    for (id, e) in est {
        let rate = e.elements.map_or_else(
            || "".to_owned(),
            |n| format!("{:.1} M", n / e.mean_ns * 1e3),
        );
        writeln!(
            s,
            "| `{id}` | {} | {} – {} | {rate} |",
            human(e.mean_ns),
            human(e.low_ns),
            human(e.high_ns)
        )?;
    }
    let derived = (suite.derive)(est);
    if !derived.is_empty() || !reports.is_empty() {
        writeln!(s)?;
        for line in derived.iter().chain(reports) {
            writeln!(s, "- {line}")?;
        }
    }
    Ok(s)
}

fn derive_core(est: &BTreeMap<String, Estimate>) -> Vec<String> {
    let mut out = Vec::new();
    let get = |id: &str| est.get(id).map(|e| e.mean_ns);
    if let (Some(m), Some(b)) = (
        get("warm_token/manager_token"),
        get("warm_token/arcswap_load_baseline"),
    ) {
        out.push(format!(
            "warm `token()` / `ArcSwap::load`: **{:.2}x** (target: within 1.5x)",
            m / b
        ));
    }
    if let (Some(c), Some(b), Some(m)) = (
        get("warm_token/clock_coarse_monotonic_and_realtime"),
        get("warm_token/arcswap_load_baseline"),
        get("warm_token/manager_token"),
    ) {
        out.push(format!(
            "of the warm path, reading the two coarse clocks costs {} ({:.2}x the `ArcSwap::load`); the rest of `token()` beyond the load and the clock reads: {}",
            human(c),
            c / b,
            human((m - b - c).max(0.0))
        ));
    }
    if let (Some(mono), Some(both), Some(boot)) = (
        get("warm_token/clock_coarse_monotonic"),
        get("warm_token/clock_coarse_monotonic_and_realtime"),
        get("warm_token/clock_boottime"),
    ) {
        out.push(format!(
            "suspend-aware time: the coarse monotonic clock alone {}, with the coarse realtime clock beside it {} (what the warm path reads), `CLOCK_BOOTTIME` {} ({:.2}x the two coarse reads)",
            human(mono),
            human(both),
            human(boot),
            boot / both
        ));
    }
    let rate = |id: &str, threads: f64| get(id).map(|ns| threads / ns);
    if let (Some(one), Some(two)) = (
        rate("warm_token_threads/manager_token/1", 1.0),
        rate("warm_token_threads/manager_token/2", 2.0),
    ) {
        out.push(format!(
            "`token()` calls/s with 2 threads / with 1: **{:.2}x** (target ≥ 1.5x)",
            two / one
        ));
    }
    if let (Some(one), Some(two)) = (
        rate("warm_token_threads/arcswap_load_baseline/1", 1.0),
        rate("warm_token_threads/arcswap_load_baseline/2", 2.0),
    ) {
        out.push(format!(
            "`ArcSwap::load` calls/s with 2 threads / with 1: {:.2}x (for comparison)",
            two / one
        ));
    }
    if let Some(ns) = get("stampede/cold_10000_callers_50ms_upstream") {
        out.push(format!("stampede: the last of 10,000 cold callers had its token after {} = **{:.2}x** the 50 ms upstream latency (target < 1.5x)", human(ns), ns / 50e6));
    }
    out
}

fn derive_pool(est: &BTreeMap<String, Estimate>) -> Vec<String> {
    let mut out = Vec::new();
    let get = |id: String| est.get(&id).map(|e| e.mean_ns);
    for threads in [1, 2] {
        let Some(manager) = get(format!("pool_warm/manager_token/{threads}")) else {
            continue;
        };
        for keys in ["10", "10000", "100000"] {
            if let (Some(pool), Some(map)) = (
                get(format!("pool_warm/pool_token/{keys}_keys/{threads}")),
                get(format!("pool_warm/map_get/{keys}_keys/{threads}")),
            ) {
                out.push(format!(
                    "{keys} keys, {threads} thread(s): warm `pool.token(&key)` {} = **{:.2}x** the map lookup plus a lone manager's warm path ({} + {}; target within 2x), {:.2}x the map lookup alone",
                    human(pool),
                    pool / (map + manager),
                    human(map),
                    human(manager),
                    pool / map
                ));
            }
        }
    }
    out
}

fn derive_stampede(est: &BTreeMap<String, Estimate>) -> Vec<String> {
    est.iter()
        .filter_map(|(id, e)| {
            let provider = id.strip_prefix("facade_stampede/cold_10000_callers_50ms_upstream/")?;
            Some(format!(
                "stampede through the facade, {provider} simulator over HTTP: the last of 10,000 cold callers had its token after {} = **{:.2}x** the 50 ms upstream latency (target < 1.5x)",
                human(e.mean_ns),
                e.mean_ns / 50e6
            ))
        })
        .collect()
}

fn derive_middleware(est: &BTreeMap<String, Estimate>) -> Vec<String> {
    let mut out = Vec::new();
    let plain = est.get("middleware/plain_reqwest_fixed_header");
    if let (Some(m), Some(p)) = (est.get("middleware/auth_middleware"), plain) {
        out.push(format!(
            "`AuthMiddleware` vs plain reqwest: {} per request (**{:+.1} %**; target within 5 %)",
            human(m.mean_ns - p.mean_ns),
            (m.mean_ns / p.mean_ns - 1.0) * 100.0
        ));
    }
    if let (Some(e), Some(p)) = (
        est.get("middleware/empty_middleware_chain_fixed_header"),
        plain,
    ) {
        out.push(format!(
            "reqwest-middleware's chain with no middleware in it: {} ({:+.1} %) — the spread between these three is the loopback round trip's own noise",
            human(e.mean_ns - p.mean_ns),
            (e.mean_ns / p.mean_ns - 1.0) * 100.0
        ));
    }
    out
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(String::new, |kb| {
            format!(", {:.0} GiB", kb / 1024.0 / 1024.0)
        });
    format!("{cpu}, {cores} cores{mem}")
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Replaces the text between `<!-- generated:bench:NAME:start -->` and `…:end -->`.
fn replace_region(doc: &str, name: &str, body: &str) -> Result<String> {
    let start = format!("<!-- generated:bench:{name}:start -->");
    let end = format!("<!-- generated:bench:{name}:end -->");
    let (Some(a), Some(b)) = (doc.find(&start), doc.find(&end)) else {
        bail!("docs/benchmarks.md has no `{start}` … `{end}` region");
    };
    Ok(format!("{}{start}\n{body}{}", &doc[..a], &doc[b..]))
}
