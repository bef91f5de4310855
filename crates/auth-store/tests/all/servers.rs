//! Store servers a test owns — its own `redis-server` and its own PostgreSQL cluster, which it
//! may kill and restart — and a TCP proxy it can cut, or make swallow the replies while the
//! requests still reach the server (a write that lands with its reply lost). Every one of them
//! is stopped when dropped, a failed test included; the shared servers on 6379 and 5432 are
//! never touched.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// A free TCP port on `ip` (bound and let go: another process could take it in between, which
/// the callers' start-up checks would notice).
pub(crate) fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `program` can be run (it is on `PATH`).
pub(crate) fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A command, prefixed with `ip netns exec <ns>` when a namespace is given.
pub(crate) fn command_in(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, program]);
            cmd
        }
        None => Command::new(program),
    }
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..300 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not come up within 6 s");
}

/// A `redis-server` of the test's own, persisting every write (`appendfsync always`, as a
/// Redis that keeps refresh material must), so a restart loses nothing.
pub(crate) struct RedisServer {
    ip: String,
    port: u16,
    netns: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub(crate) fn start(ip: &str, netns: Option<&str>) -> Option<Self> {
        if !have("redis-server") {
            eprintln!("redis-server is not installed");
            return None;
        }
        let mut server = Self {
            ip: ip.to_owned(),
            port: free_port(if netns.is_some() { "127.0.0.1" } else { ip }),
            netns: netns.map(str::to_owned),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.up();
        Some(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://{}:{}", self.ip, self.port)
    }

    pub(crate) fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    fn up(&mut self) {
        let child = command_in(self.netns.as_deref(), "redis-server")
            .args(["--port", &self.port.to_string(), "--bind", &self.ip])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let (addr, ns) = (self.addr(), self.netns.clone());
        wait_until("redis-server", || redis_ping(&addr, ns.as_deref()));
    }

    /// Kills the server (`SIGKILL`: no goodbye to its clients).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same data.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.up();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_ping(addr: &str, netns: Option<&str>) -> bool {
    if let Some(ns) = netns {
        return Command::new("ip")
            .args(["netns", "exec", ns, "redis-cli", "-u"])
            .arg(format!("redis://{addr}"))
            .arg("ping")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"PONG"));
    }
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 5];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG"
}

/// Whether the tests run as root (then PostgreSQL, which refuses root, runs as `postgres`).
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The directory of `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian keeps them off `PATH`).
fn pg_bindir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("pg_ctl").exists() {
            return Some(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists() && bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// A PostgreSQL cluster of the test's own (`initdb` in a temporary directory, run as the
/// `postgres` user when the test runs as root, since PostgreSQL refuses root), trust
/// authentication.
pub(crate) struct PgCluster {
    ip: String,
    port: u16,
    netns: Option<String>,
    bin: PathBuf,
    root: bool,
    dir: PathBuf,
    keep: tempfile::TempDir,
    running: bool,
}

impl PgCluster {
    /// A cluster started on `ip` (inside `netns` if given); `None`, said on stderr, when
    /// PostgreSQL's server programs are not installed.
    pub(crate) fn start(ip: &str, netns: Option<&str>) -> Option<Self> {
        let mut cluster = Self::init(ip, netns)?;
        cluster.up();
        Some(cluster)
    }

    /// A cluster made but not started: [`configure`](Self::configure) it, then
    /// [`up`](Self::up).
    pub(crate) fn init(ip: &str, netns: Option<&str>) -> Option<Self> {
        let Some(bin) = pg_bindir() else {
            eprintln!("PostgreSQL's initdb and pg_ctl are not installed");
            return None;
        };
        let root = is_root();
        if root && !have("runuser") {
            eprintln!("runuser is not installed (PostgreSQL must not run as root)");
            return None;
        }
        let keep = tempfile::tempdir().unwrap();
        let dir = keep.path().join("data");
        if root {
            let chown = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(keep.path())
                .status()
                .unwrap();
            assert!(chown.success(), "chown of the cluster directory");
        }
        let cluster = Self {
            ip: ip.to_owned(),
            port: free_port(if netns.is_some() { "127.0.0.1" } else { ip }),
            netns: netns.map(str::to_owned),
            bin,
            root,
            dir,
            keep,
            running: false,
        };
        let init = cluster
            .command(None, "initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&cluster.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // Clients on the other test hosts too (trust, as the shared test server).
        let hba = cluster.dir.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).unwrap();
        rules.push_str("\nhost all all 0.0.0.0/0 trust\n");
        std::fs::write(&hba, rules).unwrap();
        Some(cluster)
    }

    /// Appends `lines` to the cluster's `postgresql.conf` (read at the next start).
    pub(crate) fn configure(&self, lines: &str) {
        let conf = self.dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push('\n');
        text.push_str(lines);
        text.push('\n');
        std::fs::write(&conf, text).unwrap();
    }

    /// A path in the cluster's temporary directory, beside its data directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.keep.path().join(name)
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@{}:{}/postgres", self.ip, self.port)
    }

    pub(crate) fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// One of PostgreSQL's programs, in the namespace, as `postgres` when running as root.
    fn command(&self, netns: Option<&str>, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.root {
            let mut cmd = command_in(netns, "runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            command_in(netns, &path_str(&path))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        self.command(self.netns.as_deref(), "pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    }

    /// Starts the server (again, after [`crash`](Self::crash)) on its port.
    pub(crate) fn up(&mut self) {
        let options = format!(
            "-p {} -c listen_addresses={} -c unix_socket_directories={} -c fsync=on",
            self.port,
            self.ip,
            self.dir.display()
        );
        let log = self.dir.join("log");
        let out = self.pg_ctl(&[
            "-w",
            "-t",
            "30",
            "-o",
            &options,
            "-l",
            &path_str(&log),
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stops the server the hard way (`-m immediate`: a crash, recovered from the WAL on the
    /// next start).
    pub(crate) fn crash(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
            self.running = false;
        }
    }

    /// Crashes it and starts it again on the same port.
    pub(crate) fn restart(&mut self) {
        self.crash();
        self.up();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.crash();
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// What the proxy does with the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Forward,
    /// Requests reach the server; its replies are dropped.
    SwallowReplies,
    /// Every connection is closed as soon as it is made.
    Cut,
}

struct ProxyState {
    mode: Mode,
    connections: Vec<TcpStream>,
}

/// A TCP proxy on `127.0.0.1` in front of a server (threads, one pair per connection).
pub(crate) struct Proxy {
    port: u16,
    state: Arc<Mutex<ProxyState>>,
    /// Bytes of replies dropped while swallowing.
    pub(crate) swallowed: Arc<AtomicU64>,
    /// Bytes of requests forwarded while the replies were swallowed.
    pub(crate) landed: Arc<AtomicU64>,
}

impl Proxy {
    pub(crate) fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ProxyState {
            mode: Mode::Forward,
            connections: Vec::new(),
        }));
        let (swallowed, landed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (st, sw, la) = (state.clone(), swallowed.clone(), landed.clone());
        let upstream = upstream.to_owned();
        // The accepting thread ends with the test process (the listener is never closed).
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if st.lock().unwrap().mode == Mode::Cut {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut state = st.lock().unwrap();
                    state.connections.push(client.try_clone().unwrap());
                    state.connections.push(server.try_clone().unwrap());
                }
                pump(client.try_clone().unwrap(), server.try_clone().unwrap(), {
                    let (st, la) = (st.clone(), la.clone());
                    move |n| {
                        if st.lock().unwrap().mode == Mode::SwallowReplies {
                            la.fetch_add(n, Ordering::SeqCst);
                        }
                        true
                    }
                });
                pump(server, client, {
                    let (st, sw) = (st.clone(), sw.clone());
                    move |n| {
                        let forward = st.lock().unwrap().mode != Mode::SwallowReplies;
                        if !forward {
                            sw.fetch_add(n, Ordering::SeqCst);
                        }
                        forward
                    }
                });
            }
        });
        Self {
            port,
            state,
            swallowed,
            landed,
        }
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn set(&self, mode: Mode, close: bool) {
        let mut state = self.state.lock().unwrap();
        state.mode = mode;
        if close {
            for conn in state.connections.drain(..) {
                let _ = conn.shutdown(Shutdown::Both);
            }
        }
    }

    /// From now on requests reach the server and the replies are dropped.
    pub(crate) fn swallow_replies(&self) {
        self.set(Mode::SwallowReplies, false);
    }

    /// Closes every connection and refuses new ones (the link is down).
    pub(crate) fn cut(&self) {
        self.set(Mode::Cut, true);
    }

    /// Closes every connection (those that lost replies cannot be trusted) and forwards again.
    pub(crate) fn restore(&self) {
        self.set(Mode::Forward, true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies `from` to `to` on a thread while `forward(bytes)` says so (dropping them otherwise),
/// until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, forward: impl Fn(u64) -> bool + Send + 'static) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if forward(n as u64) && to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
