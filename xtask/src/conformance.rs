//! `cargo xtask conformance`: the provider crates against the real upstream libraries.
//!
//! 1. Installs the pinned Python and Node packages of `conformance/` into a cache folder outside
//!    the checkout (`$KUNCI_CONFORMANCE_CACHE`, else `~/.cache/kunci/conformance`), in a
//!    subfolder named by a hash of the pin files and the interpreters' versions, so a second run
//!    (or a fresh clone on the same machine) installs nothing.
//! 2. Starts each upstream on a free loopback port (the server picks it and prints
//!    `ready http://127.0.0.1:PORT` once it listens), waiting for all of them.
//! 3. Runs `cargo test -p kunci-conformance` (under `cargo xtask ci`: the whole workspace's
//!    tests) with their URLs in the environment and `KUNCI_CONFORMANCE_REQUIRED=1`, under which
//!    a scenario whose upstream is missing fails instead of skipping.
//! 4. Stops the servers, also when something failed: each is killed when its guard drops, and
//!    each exits by itself when its standard input (a pipe from this process) closes.

use std::{
    env, fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The files whose content decides what is installed.
const PIN_FILES: &[&str] = &[
    "conformance/requirements.txt",
    "conformance/sehatmu/package.json",
    "conformance/sehatmu/package-lock.json",
];

/// How long an upstream may take to print its ready line (a cold Python start on a busy
/// machine takes seconds).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The marker written last into a finished installation.
const INSTALLED_MARKER: &str = ".installed";

/// What the upstreams run with.
struct Toolchain {
    python: PathBuf,
    node_modules: PathBuf,
}

/// One upstream: how to start it, and the variable its URL is handed to the tests in.
struct UpstreamSpec {
    name: &'static str,
    variable: &'static str,
    program: PathBuf,
    script: &'static str,
}

/// The environment a test run gets: each upstream's URL, and [`REQUIRED`].
pub(crate) type TestEnv = Vec<(&'static str, String)>;

/// Makes a missing upstream fail a scenario instead of skipping it.
const REQUIRED: &str = "KUNCI_CONFORMANCE_REQUIRED";

/// `cargo xtask conformance`: the scenarios of `kunci-conformance` alone.
pub(crate) fn run(root: &Path) -> Result<()> {
    with_upstreams(root, |env| {
        crate::run_with_env("cargo", &["test", "-p", "kunci-conformance"], env)
            .context("the conformance scenarios failed")
    })
}

/// Installs (if needed) and starts the upstreams, runs `body` with the environment that points
/// the scenarios at them, and stops them, whatever `body` returned. `cargo xtask ci` runs the
/// whole workspace's tests in `body`, so the scenarios are built with the same features as
/// every other test (no second build of the shared dependencies).
pub(crate) fn with_upstreams(root: &Path, body: impl FnOnce(&TestEnv) -> Result<()>) -> Result<()> {
    #[allow(
        clippy::disallowed_methods,
        reason = "xtask reports how long its own run took; no token's time is read here"
    )]
    let started = Instant::now();
    let tools = install(root)?;
    let installed = started.elapsed();
    let logs = env::temp_dir().join(format!("kunci-conformance-{}", std::process::id()));
    fs::create_dir_all(&logs)?;
    let result = start_and_run(root, &tools, &logs, body);
    if result.is_ok() {
        let _ = fs::remove_dir_all(&logs);
    } else {
        eprintln!("conformance: the upstreams' logs are in {}", logs.display());
    }
    eprintln!(
        "conformance: the run with the upstreams {} (install or cache check {:.1}s, total {:.1}s)",
        if result.is_ok() { "passed" } else { "failed" },
        installed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    result
}

fn start_and_run(
    root: &Path,
    tools: &Toolchain,
    logs: &Path,
    body: impl FnOnce(&TestEnv) -> Result<()>,
) -> Result<()> {
    let python = tools.python.clone();
    let specs = [
        UpstreamSpec {
            name: "stamps",
            variable: "KUNCI_CONFORMANCE_STAMPS_URL",
            program: python.clone(),
            script: "conformance/stamps/server.py",
        },
        UpstreamSpec {
            name: "sehatmu",
            variable: "KUNCI_CONFORMANCE_SEHATMU_URL",
            program: PathBuf::from("node"),
            script: "conformance/sehatmu/server.js",
        },
        UpstreamSpec {
            name: "krmpesan",
            variable: "KUNCI_CONFORMANCE_KRMPESAN_URL",
            program: python,
            script: "conformance/krmpesan/server.py",
        },
    ];
    // Start all, then wait for each: they boot in parallel. Dropping `servers` stops them, on
    // every path out of this function.
    let mut servers = Vec::new();
    for spec in &specs {
        servers.push(Server::start(root, spec, tools, logs)?);
    }
    let mut env: TestEnv = vec![(REQUIRED, "1".to_owned())];
    for server in &mut servers {
        let url = server.wait_ready()?;
        eprintln!("conformance: {} upstream at {url}", server.name);
        env.push((server.variable, url));
    }
    body(&env)
}

/// A running upstream; killed when dropped.
struct Server {
    name: &'static str,
    variable: &'static str,
    child: Child,
    ready: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Server {
    fn start(root: &Path, spec: &UpstreamSpec, tools: &Toolchain, logs: &Path) -> Result<Self> {
        let log = logs.join(format!("{}.log", spec.name));
        let stderr = fs::File::create(&log)?;
        let mut child = Command::new(&spec.program)
            .arg(root.join(spec.script))
            .current_dir(root)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("NODE_PATH", &tools.node_modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| {
                format!(
                    "could not start the {} upstream ({})",
                    spec.name,
                    spec.program.display()
                )
            })?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, ready) = mpsc::channel();
        let mut copy = fs::OpenOptions::new().append(true).open(&log)?;
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("ready ") {
                    let _ = tx.send(url.trim().to_owned());
                } else {
                    let _ = writeln!(copy, "{line}");
                }
            }
        });
        Ok(Self {
            name: spec.name,
            variable: spec.variable,
            child,
            ready,
            log,
        })
    }

    fn wait_ready(&mut self) -> Result<String> {
        match self.ready.recv_timeout(READY_TIMEOUT) {
            Ok(url) if url.starts_with("http://127.0.0.1:") => Ok(url),
            Ok(other) => bail!("the {} upstream is not on loopback: {other}", self.name),
            Err(_) => {
                let status = self.child.try_wait().ok().flatten();
                let tail = fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(30).collect();
                eprintln!("--- last lines of {} ---", self.log.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
                bail!(
                    "the {} upstream did not become ready within {}s (exit: {})",
                    self.name,
                    READY_TIMEOUT.as_secs(),
                    status.map_or_else(|| "still running".to_owned(), |s| s.to_string())
                )
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its standard input asks the upstream to clean up (Stamps removes its database
        // folder) and exit; one that has not done so within three seconds is killed.
        drop(self.child.stdin.take());
        for _ in 0..60 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cache folder: `$KUNCI_CONFORMANCE_CACHE`, else `~/.cache/kunci/conformance` (else a
/// folder in the temporary directory, when there is no home).
fn cache_root() -> PathBuf {
    if let Some(dir) = env::var_os("KUNCI_CONFORMANCE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache/kunci/conformance"),
        None => {
            let dir = env::temp_dir().join("kunci-conformance-cache");
            eprintln!(
                "conformance: HOME is not set; caching in {} (set KUNCI_CONFORMANCE_CACHE to choose)",
                dir.display()
            );
            dir
        }
    }
}

fn version_of(program: &str) -> Result<String> {
    let out = Command::new(program)
        .arg("--version")
        .output()
        .with_context(|| format!("`{program}` is needed by the conformance harness"))?;
    if !out.status.success() {
        bail!("`{program} --version` failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The cache subfolder's name: the pin files and the interpreters they are installed for.
fn fingerprint(root: &Path) -> Result<String> {
    let mut hash = Sha256::new();
    for file in PIN_FILES {
        let text = fs::read(root.join(file)).with_context(|| format!("reading {file}"))?;
        hash.update(file.as_bytes());
        hash.update([0]);
        hash.update(&text);
        hash.update([0]);
    }
    for program in ["python3", "node"] {
        hash.update(version_of(program)?.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Installs the pinned packages unless a finished installation of the same pins exists.
fn install(root: &Path) -> Result<Toolchain> {
    let cache = cache_root();
    let dir = cache.join(fingerprint(root)?);
    let tools = |dir: &Path| Toolchain {
        python: dir.join("venv/bin/python"),
        node_modules: dir.join("node/node_modules"),
    };
    if dir.join(INSTALLED_MARKER).exists() {
        eprintln!(
            "conformance: using the installed upstreams in {}",
            dir.display()
        );
        return Ok(tools(&dir));
    }
    eprintln!(
        "conformance: installing the pinned upstreams into {}",
        dir.display()
    );
    fs::create_dir_all(&cache)?;
    // Built beside the final folder and renamed into place when complete, so an interrupted
    // install is never taken for a finished one. The venv is run only as `venv/bin/python`,
    // which keeps working after the rename.
    let partial = cache.join(format!(
        "{}.partial-{}",
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("install"),
        std::process::id()
    ));
    remove_abandoned_partials(&cache);
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(partial.join("node"))?;
    let venv = partial.join("venv");
    crate::run("python3", &["-m", "venv", &path_str(&venv)?])?;
    let python = path_str(&venv.join("bin/python"))?;
    let requirements = path_str(&root.join("conformance/requirements.txt"))?;
    crate::run(
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
            &requirements,
        ],
    )?;
    crate::run(&python, &["-m", "pip", "check"])?;
    for file in ["package.json", "package-lock.json"] {
        fs::copy(
            root.join("conformance/sehatmu").join(file),
            partial.join("node").join(file),
        )?;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(partial.join("node"))
        .status()
        .context("`npm` is needed by the conformance harness")?;
    if !status.success() {
        bail!("`npm ci` failed with {status}");
    }
    fs::write(partial.join(INSTALLED_MARKER), "")?;
    if fs::rename(&partial, &dir).is_err() {
        // Another run finished the same installation first; use that one.
        let _ = fs::remove_dir_all(&partial);
        if !dir.join(INSTALLED_MARKER).exists() {
            bail!("could not move the installation into {}", dir.display());
        }
    }
    Ok(tools(&dir))
}

/// Removes the `*.partial-<pid>` folders of installs whose process is gone (interrupted).
fn remove_abandoned_partials(cache: &Path) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some((_, pid)) = name.to_str().and_then(|n| n.rsplit_once(".partial-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            eprintln!(
                "conformance: removing an interrupted install, {}",
                entry.path().display()
            );
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not valid UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pin_file_exists_and_the_python_pins_are_exact() {
        let root = crate::workspace_root();
        for file in PIN_FILES {
            assert!(root.join(file).exists(), "{file} is missing");
        }
        let requirements = fs::read_to_string(root.join(PIN_FILES[0])).unwrap();
        for line in requirements.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            assert!(
                line.contains("==") && !line.contains(['>', '<', '~', '*']),
                "not an exact pin: {line}"
            );
        }
        let package: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(root.join(PIN_FILES[1])).unwrap()).unwrap();
        let dependencies = package["dependencies"].as_object().unwrap();
        assert!(!dependencies.is_empty());
        for (name, version) in dependencies {
            let version = version.as_str().unwrap();
            assert!(
                version.split('.').count() == 3
                    && version.split('.').all(|p| p.parse::<u32>().is_ok()),
                "not an exact pin: {name} {version}"
            );
        }
    }
}
