//! Running the built `kunci` binary in an isolated environment.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use tempfile::TempDir;

/// A sandbox: a temporary HOME with XDG directories, a store directory, and the variables
/// every child gets.
pub(crate) struct Kunci {
    pub(crate) home: TempDir,
    envs: Vec<(String, String)>,
}

impl Kunci {
    pub(crate) fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        Self {
            home,
            envs: Vec::new(),
        }
    }

    /// A sandbox in `home` (another's, taken over), with no variables: a new shell.
    pub(crate) fn reusing(home: TempDir) -> Self {
        Self {
            home,
            envs: Vec::new(),
        }
    }

    /// The store directory of this sandbox (passed as `KUNCI_STORE`).
    pub(crate) fn store(&self) -> PathBuf {
        self.home.path().join("store")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Adds a variable for every child.
    pub(crate) fn env(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.envs.push((name.to_owned(), value.into()));
        self
    }

    /// A command with a cleared environment: PATH, HOME and XDG dirs in the sandbox,
    /// `KUNCI_STORE` the sandbox store, no session bus (so no keychain), and the variables
    /// added with [`env`](Self::env).
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kunci"));
        let home = self.home.path();
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("KUNCI_STORE", self.store())
            // No session bus: with feature `keychain`, a `kunci login` under test must never
            // reach the developer's own keyring (zbus would otherwise find
            // /run/user/<uid>/bus); it falls back to the store, as on CI.
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
            .stdin(Stdio::null());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `kunci ARGS` to completion (off the async runtime, so simulators keep serving).
    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        run_command(self.command(args)).await
    }

    /// Runs `kunci ARGS` with `input` on stdin.
    pub(crate) async fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write as _;
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let input = input.to_owned();
        let output = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            // A command refused before it reads stdin may be gone already: a broken pipe.
            match child.stdin.take().unwrap().write_all(input.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.unwrap(),
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        Run::from(output)
    }
}

/// A finished run.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub(crate) fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts one `error: ` line (and at most a `hint: ` line besides) on stderr.
    #[track_caller]
    pub(crate) fn expect_error(&self, code: i32, containing: &str) -> &Self {
        self.expect(code);
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "one error line wanted:\n{}", self.stderr);
        assert!(
            errors[0].contains(containing),
            "`{containing}` not in: {}",
            errors[0]
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }

    /// Asserts that no `secret` appears in either stream.
    #[track_caller]
    pub(crate) fn expect_no_secret(&self, secrets: &[&str]) -> &Self {
        for secret in secrets {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "a secret leaked:\nstdout:\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr
            );
        }
        self
    }

    pub(crate) fn line(&self) -> &str {
        let mut lines = self.stdout.lines();
        let line = lines.next().unwrap_or("");
        assert!(lines.next().is_none(), "one line wanted: {}", self.stdout);
        line
    }
}

/// Runs a command made by [`Kunci::command`] (and changed) to completion.
pub(crate) async fn run_command(mut cmd: Command) -> Run {
    Run::from(
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap(),
    )
}

/// Every path under `dir`, relative to it, sorted.
pub(crate) fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            found.push(path.strip_prefix(dir).unwrap().to_owned());
        }
    }
    found.sort();
    found
}

/// The mode bits of a file.
pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A loopback port nothing listens on.
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
