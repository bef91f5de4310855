//! kunci's repository automation, run as `cargo xtask <command>`.
//!
//! * `ci` — everything CI checks: rustfmt, clippy with warnings denied on all targets, the tidy
//!   rules, generated files fresh, each facade feature building on its own, the whole test
//!   suite with the real upstreams of `conformance/` running (so the conformance scenarios run
//!   in it), and rustdoc with warnings denied.
//! * `test` — the whole test suite alone.
//! * `tidy` — repository rules a reviewer would otherwise repeat.
//! * `codegen [--check]` — wires provider crates in from their `[package.metadata.kunci]`.
//! * `new-provider NAME` — scaffolds a provider crate and runs codegen.
//! * `new-provider-check` — in a copy of the workspace, `new-provider acme` then everything
//!   `ci` runs but the real upstreams; `acme` must be in the facade, the demo, the reliability
//!   suite and the docs with no hand edit.
//! * `conformance` — the provider crates against the real upstream libraries their servers are
//!   built on (`conformance/`): installs them (once, into a cache outside the checkout), starts
//!   them on loopback and runs the `kunci-conformance` scenarios against them.
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
mod scaffold;
mod tidy;

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
        Some("tidy") => tidy::run(&root),
        Some("conformance") => conformance::run(&root),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("new-provider") => scaffold::run(&root, &args[1..]),
        Some("new-provider-check") => scaffold::check(&root),
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
                "usage: cargo xtask <ci | test | tidy | codegen [--check] | new-provider NAME | new-provider-check | conformance | bench [--quick] [SUITE…]>"
            );
            bail!("unknown or missing command")
        }
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
    let status = Command::new("cargo")
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()?;
    if !status.success() {
        bail!("cargo doc reported warnings");
    }
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// Each facade feature builds on its own: a user of one provider compiles only that provider.
fn features() -> Result<()> {
    let providers = codegen::read_providers(&workspace_root())?;
    let mut sets: Vec<String> = providers.iter().map(|p| p.id.clone()).collect();
    sets.extend(
        ["redis", "postgres", "middleware", "metrics", ""]
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
