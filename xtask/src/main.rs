//! kunci's repository automation, run as `cargo xtask <command>`.
//!
//! * `ci` — everything CI checks: rustfmt, clippy with warnings denied on all targets, the tidy
//!   rules, generated files fresh, each facade feature building on its own, the whole test
//!   suite, and rustdoc with warnings denied.
//! * `test` — the whole test suite alone.
//! * `tidy` — repository rules a reviewer would otherwise repeat.
//! * `codegen [--check]` — wires provider crates in from their `[package.metadata.kunci]`.
//! * `new-provider NAME` — scaffolds a provider crate and runs codegen.
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
        Some("bench") => bench::run(&root, &args[1..]),
        Some("new-provider") => scaffold::run(&root, &args[1..]),
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
                "usage: cargo xtask <ci | test | tidy | codegen [--check] | new-provider NAME | bench [--quick] [SUITE…]>"
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
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
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
    test()?;
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
    sets.extend([
        "redis".to_owned(),
        "middleware".to_owned(),
        "metrics".to_owned(),
        String::new(),
    ]);
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
    if env::var_os("KUNCI_TEST_REDIS_URL").is_none() {
        eprintln!(
            "note: KUNCI_TEST_REDIS_URL is not set; Redis tests will print a reason and skip (.ci/run sets it)"
        );
    }
    run(
        "cargo",
        &["test", "--workspace", "--all-features", "--all-targets"],
    )?;
    run("cargo", &["test", "--workspace", "--all-features", "--doc"])
}
