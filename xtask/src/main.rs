//! kunci's repository automation, run as `cargo xtask <command>`.
//!
//! * `ci` — everything CI checks: rustfmt, clippy with warnings denied on all targets, the tidy
//!   rules, generated files fresh, each facade feature building on its own, the CLI building
//!   without its demo (and with no simulator compiled in), the whole test
//!   suite with the real upstreams of `conformance/` running (so the conformance scenarios run
//!   in it), and rustdoc with warnings denied.
//! * `test` — the whole test suite alone.
//! * `examples` — builds and runs every example of the facade (also part of `ci`).
//! * `package` — `cargo package` of every published crate, failing on any warning (missing
//!   metadata) or an archive without README, CHANGELOG or licence texts (also part of `ci`).
//! * `tidy` — repository rules a reviewer would otherwise repeat.
//! * `codegen [--check]` — wires provider crates in from their `[package.metadata.kunci]`.
//! * `new-provider NAME` — scaffolds a provider crate and runs codegen.
//! * `new-provider-check` — in a copy of the workspace, `new-provider acme` then everything
//!   `ci` runs but the real upstreams; `acme` must be in the facade, the demo, the reliability
//!   suite and the docs with no hand edit.
//! * `conformance` — the provider crates against the real upstream libraries their servers are
//!   built on (`conformance/`): installs them (once, into a cache outside the checkout), starts
//!   them on loopback and runs the `kunci-conformance` scenarios against them.
//! * `man [DIR]` — writes the `kunci` man pages (`kunci.1`, `kunci-token.1`, …) into DIR
//!   (default `target/man`), generated from the CLI's clap definition by the CLI itself.
//! * `bench` — runs the criterion benchmarks and rewrites the generated tables in
//!   `docs/benchmarks.md` from criterion's own estimates.
#![allow(
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "xtask is a command-line tool"
)]

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

mod bench;
mod codegen;
mod conformance;
mod package;
mod scaffold;
mod tidy;

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
        Some("examples") => examples(),
        Some("package") => package::run(),
        Some("tidy") => tidy::run(&root),
        Some("conformance") => conformance::run(&root),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("new-provider") => scaffold::run(&root, &args[1..]),
        Some("new-provider-check") => scaffold::check(&root),
        Some("man") => man(&root, args.get(1).map(String::as_str)),
        Some("codegen") => {
            let mode = if args.iter().any(|a| a == "--check") {
                codegen::Mode::Check
            } else {
                codegen::Mode::Write
            };
            codegen::run(&root, mode)
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | test | examples | package | tidy | codegen [--check] | new-provider NAME | new-provider-check | conformance | man [DIR] | bench [--quick] [SUITE…]>"
            );
            bail!("unknown or missing command")
        }
    }
}

/// `cargo xtask man [DIR]`: the CLI writes its own man pages (hidden `kunci generate-man`),
/// with clap_mangen over its clap definition. xtask stays light: it does not link the CLI
/// (which would compile the whole workspace into xtask) and needs no clap_mangen of its own.
fn man(root: &Path, dir: Option<&str>) -> Result<()> {
    let dir = dir.map_or_else(|| root.join("target").join("man"), PathBuf::from);
    let dir = dir
        .to_str()
        .context("the man page directory is not valid UTF-8")?
        .to_owned();
    run(
        "cargo",
        &[
            "run",
            "--quiet",
            "-p",
            "kunci-cli",
            "--",
            "generate-man",
            &dir,
        ],
    )?;
    eprintln!("xtask man: wrote the man pages into {dir} (view one: man -l {dir}/kunci.1)");
    Ok(())
}

pub(crate) fn workspace_root() -> PathBuf {
    // Cargo names this package's directory at run time too (`cargo run`, `cargo test`); that
    // one wins over the directory it was compiled in: `new-provider-check` builds a copy of
    // the workspace in the same target directory, and the binary it leaves there must still
    // work on the checkout it is run from.
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Runs a command, echoing it, failing on a non-zero exit.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<()> {
    run_with_env(program, args, &[])
}

/// Like [`run`], with extra environment variables (named in the echo, their values not).
pub(crate) fn run_with_env(
    program: &str,
    args: &[&str],
    env: &[(&'static str, String)],
) -> Result<()> {
    let names: Vec<&str> = env.iter().map(|(name, _)| *name).collect();
    if names.is_empty() {
        eprintln!("$ {program} {}", args.join(" "));
    } else {
        eprintln!("$ {program} {} (with {})", args.join(" "), names.join(", "));
    }
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(name, value)| (*name, value)))
        .status()
        .with_context(|| format!("could not start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn ci() -> Result<()> {
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    tidy::run(&workspace_root())?;
    codegen::run(&workspace_root(), codegen::Mode::Check)?;
    features()?;
    // The whole suite runs with the real upstreams up, so the conformance scenarios run in it
    // (and fail there if an upstream is missing).
    conformance::with_upstreams(&workspace_root(), |env| test_with(env))?;
    examples()?;
    let status = Command::new("cargo")
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()?;
    if !status.success() {
        bail!("cargo doc reported warnings");
    }
    package::run()?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// Each facade feature builds on its own: a user of one provider compiles only that provider.
fn features() -> Result<()> {
    let providers = codegen::read_providers(&workspace_root())?;
    let mut sets: Vec<String> = providers.iter().map(|p| p.id.clone()).collect();
    sets.extend(
        [
            "redis",
            "postgres",
            "reqwest-middleware",
            "tower",
            "metrics",
            "",
        ]
        .into_iter()
        .map(str::to_owned),
    );
    for features in &sets {
        run(
            "cargo",
            &[
                "check",
                "-p",
                "kunci",
                "--no-default-features",
                "--features",
                features,
            ],
        )?;
    }
    one_tls_stack()?;
    cli_without_demo()
}

/// `kunci-cli --no-default-features` (a release build without the demo) builds, and compiles
/// no simulator in.
fn cli_without_demo() -> Result<()> {
    run(
        "cargo",
        &["check", "-p", "kunci-cli", "--no-default-features"],
    )?;
    not_in_tree(
        &["-p", "kunci-cli", "--no-default-features"],
        "auth-testkit",
        "kunci-cli without its `demo` feature still compiles the simulators",
    )
}

/// Exactly one TLS crypto stack is compiled in: *ring* by default, AWS-LC alone when chosen.
fn one_tls_stack() -> Result<()> {
    not_in_tree(
        &["-p", "kunci"],
        "aws-lc-rs",
        "kunci with its default features compiles aws-lc-rs beside ring",
    )?;
    not_in_tree(
        &[
            "-p",
            "kunci",
            "--no-default-features",
            "--features",
            "aws-lc-rs,stamps",
        ],
        "ring",
        "kunci with features [aws-lc-rs,stamps] compiles ring beside aws-lc-rs",
    )
}

/// `cargo tree <selection> -e normal -i <crate>` finds no `crate`: fails with `why` when it
/// does, and when cargo did not say plainly that it is absent (a renamed feature is not a pass).
fn not_in_tree(selection: &[&str], krate: &str, why: &str) -> Result<()> {
    let mut args = vec!["tree"];
    args.extend_from_slice(selection);
    args.extend(["-e", "normal", "-i", krate]);
    let output = Command::new("cargo")
        .args(&args)
        .output()
        .context("running cargo tree")?;
    let found = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    if found.lines().any(|l| l.starts_with(krate)) {
        bail!("{why}:\n{found}");
    }
    if !(errors.contains("did not match any packages") || errors.contains("nothing to print")) {
        bail!(
            "cargo {} did not run as expected:\n{errors}",
            args.join(" ")
        );
    }
    Ok(())
}

/// The features the facade's examples are built with: the defaults (every provider, *ring*)
/// plus the front-ends, Redis and the simulators (`testing`, for the `providers` example).
/// Not `--all-features`, which would compile AWS-LC too.
const EXAMPLE_FEATURES: &str = "reqwest-middleware,tower,redis,testing";

/// Runs every example of the facade (`crates/kunci/examples/*.rs`) and fails on a non-zero
/// exit. They run against loopback simulators; `redis_fleet` needs `KUNCI_TEST_REDIS_URL`
/// (skipped with a note without it, like the Redis tests).
fn examples() -> Result<()> {
    let dir = workspace_root().join("crates/kunci/examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no examples found in crates/kunci/examples");
    }
    run(
        "cargo",
        &[
            "build",
            "-q",
            "-p",
            "kunci",
            "--examples",
            "--features",
            EXAMPLE_FEATURES,
        ],
    )?;
    let redis = env::var("KUNCI_TEST_REDIS_URL").ok();
    for name in &names {
        let mut env = Vec::new();
        if name == "redis_fleet" {
            match &redis {
                Some(url) => env.push(("KUNCI_STORE", url.clone())),
                None => {
                    eprintln!(
                        "note: KUNCI_TEST_REDIS_URL is not set; not running the redis_fleet example"
                    );
                    continue;
                }
            }
        }
        run_with_env(
            "cargo",
            &[
                "run",
                "-q",
                "-p",
                "kunci",
                "--features",
                EXAMPLE_FEATURES,
                "--example",
                name,
            ],
            &env,
        )
        .with_context(|| format!("the example `{name}` failed"))?;
    }
    Ok(())
}

fn test() -> Result<()> {
    test_with(&[])
}

fn test_with(env: &[(&'static str, String)]) -> Result<()> {
    for (var, what) in [
        ("KUNCI_TEST_REDIS_URL", "Redis"),
        ("KUNCI_TEST_POSTGRES_URL", "PostgreSQL"),
    ] {
        if env::var_os(var).is_none() {
            eprintln!(
                "note: {var} is not set; {what} tests will print a reason and skip (.ci/run sets it)"
            );
        }
    }
    run_with_env(
        "cargo",
        &["test", "--workspace", "--all-features", "--all-targets"],
        env,
    )?;
    run_with_env(
        "cargo",
        &["test", "--workspace", "--all-features", "--doc"],
        env,
    )
}
