//! `cargo xtask package`: every published crate packages cleanly.
//!
//! Runs `cargo package --no-verify` over the crates whose manifest does not say
//! `publish = false`, in one invocation (cargo orders them by dependency and resolves the
//! unpublished path dependencies among them through a local overlay of the packages it just
//! made), and fails on any warning — missing metadata included — and on an archive without its
//! README, licence texts or CHANGELOG.
//!
//! `--no-verify`: verifying builds every crate again from its archive, the whole workspace a
//! second time; `cargo publish` (run by release-plz) verifies each crate when it is released.

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Files every published archive must hold.
const REQUIRED: &[&str] = &[
    "Cargo.toml",
    "README.md",
    "CHANGELOG.md",
    "LICENSE-MIT",
    "LICENSE-APACHE",
];

/// The packages to publish and the target directory, from `cargo metadata`.
fn publishable() -> Result<(Vec<(String, String)>, String)> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("could not run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("cargo metadata output")?;
    let target = meta["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?
        .to_owned();
    let mut crates = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        // `publish` is null for "any registry", `[]` for `publish = false`.
        let private = package["publish"].as_array().is_some_and(Vec::is_empty);
        if private {
            continue;
        }
        let name = package["name"]
            .as_str()
            .context("a package without a name")?;
        let version = package["version"]
            .as_str()
            .context("a package without a version")?;
        crates.push((name.to_owned(), version.to_owned()));
    }
    if crates.is_empty() {
        bail!("no publishable crate found");
    }
    Ok((crates, target))
}

pub(crate) fn run() -> Result<()> {
    let (crates, target) = publishable()?;
    let mut args = vec!["package", "--no-verify", "--allow-dirty"];
    for (name, _) in &crates {
        args.extend(["-p", name]);
    }
    eprintln!("$ cargo {}", args.join(" "));
    let out = Command::new("cargo")
        .args(&args)
        .output()
        .context("could not run cargo package")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    if !out.status.success() {
        bail!("cargo package failed");
    }
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("warning:"))
        .collect();
    if !warnings.is_empty() {
        bail!(
            "cargo package warned (metadata missing?):\n{}",
            warnings.join("\n")
        );
    }
    for (name, version) in &crates {
        let archive = format!("{target}/package/{name}-{version}.crate");
        let out = Command::new("tar")
            .args(["-tzf", &archive])
            .output()
            .with_context(|| format!("could not list {archive}"))?;
        if !out.status.success() {
            bail!("could not list {archive}");
        }
        let listing = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("{name}-{version}/");
        for file in REQUIRED {
            let path = format!("{prefix}{file}");
            if !listing.lines().any(|l| l == path) {
                bail!("{name} {version}: the archive has no {file}");
            }
        }
    }
    let names: Vec<&str> = crates.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!(
        "xtask package: {} crates packaged: {}",
        names.len(),
        names.join(", ")
    );
    Ok(())
}
