//! Repository rules checked by `cargo xtask tidy` (and `ci`).

use std::{fs, path::Path};

use anyhow::{Result, bail};

/// Every crate has a README and a `//!` crate doc; no `#[ignore]` without a reason; provider
/// crates depend on no other provider and no store backend.
pub(crate) fn run(root: &Path) -> Result<()> {
    let mut problems = provider_dependency_problems(root)?;
    let mut crates: Vec<_> = fs::read_dir(root.join("crates"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    crates.push(root.join("xtask"));
    crates.sort();
    for dir in &crates {
        if !dir.join("Cargo.toml").exists() {
            continue;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name != "xtask" && !dir.join("README.md").exists() {
            problems.push(format!("{name}: no README.md"));
        }
        for entry in ["src/lib.rs", "src/main.rs"] {
            let path = dir.join(entry);
            if let Ok(text) = fs::read_to_string(&path)
                && !text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .is_some_and(|l| l.starts_with("//!"))
            {
                problems.push(format!(
                    "{name}/{entry}: does not start with a `//!` crate doc"
                ));
            }
        }
        check_ignores(dir, &name, &mut problems)?;
    }
    if problems.is_empty() {
        eprintln!("tidy: {} crates checked", crates.len());
        Ok(())
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        bail!("{} tidy problem(s)", problems.len())
    }
}

/// Crates a provider crate must not depend on (normal or build dependencies): every other
/// provider, the store backends, the facade, the CLI.
const FORBIDDEN_FOR_PROVIDERS: &[&str] = &["auth-store", "redis", "kunci", "kunci-cli"];

fn provider_dependency_problems(root: &Path) -> Result<Vec<String>> {
    let providers = crate::codegen::read_providers(root)?;
    let names: Vec<&str> = providers.iter().map(|p| p.package.as_str()).collect();
    let out = std::process::Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut problems = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default();
        if !names.contains(&name) {
            continue;
        }
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if (names.contains(&dep_name) && dep_name != name)
                || FORBIDDEN_FOR_PROVIDERS.contains(&dep_name)
            {
                problems.push(format!(
                    "{name}: provider crates must not depend on `{dep_name}`"
                ));
            }
        }
    }
    Ok(problems)
}

const BARE_IGNORE: &str = "#[ignore]"; // the attribute without `= "reason"`

fn check_ignores(dir: &Path, name: &str, problems: &mut Vec<String>) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path)?;
                for (i, line) in text.lines().enumerate() {
                    let t = line.trim();
                    if t.starts_with(BARE_IGNORE) {
                        problems.push(format!(
                            "{name}: {}:{}: #[ignore] without a reason",
                            path.display(),
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `cargo test -p xtask` (and so `cargo xtask test` and `ci`) checks the rules too: the
    /// same function `cargo xtask tidy` runs, on this checkout.
    #[test]
    fn the_repository_is_tidy() {
        if let Err(e) = super::run(&crate::workspace_root()) {
            panic!("`cargo xtask tidy` fails: {e:#} (its problems are printed above)");
        }
    }
}
