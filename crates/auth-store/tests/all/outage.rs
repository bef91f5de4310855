//! Store faults in the middle of a refresh, on a fleet of real processes
//! (`kunci-store-probe serve`) sharing a store server the test owns: the server killed and
//! restarted while the holder's request is out, and a save that lands while its reply is lost
//! (a proxy swallows the replies). The fleet must converge on the newest token, no refresh
//! material may be lost or sent twice (the provider revokes material once used), and nobody
//! may be told to log in again.

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

const PROBE: &str = env!("CARGO_BIN_EXE_kunci-store-probe");

/// Token lifetime of the serving fleet: each token is refreshed in its second half, so the
/// holder's request goes out 3.2–4 s after the previous one and the token it replaces still
/// has about 4 s to live.
pub(crate) const LIFETIME_MS: u64 = 8000;
/// How long each process serves.
pub(crate) const RUN_MS: u64 = 18_000;
/// The provider's answer time: the window in which the fault strikes.
pub(crate) const LATENCY_MS: u64 = 1000;

/// A serving fleet; its processes are killed if the test ends early.
pub(crate) struct Fleet {
    pub(crate) provider: tempfile::TempDir,
    children: Vec<Child>,
}

/// Now, in milliseconds since the Unix epoch (the probes' time stamps).
#[allow(
    clippy::disallowed_methods,
    reason = "placed against the probes' wall-clock time stamps"
)]
pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What one `serve` process printed.
#[derive(Debug)]
pub(crate) struct Served {
    /// Each token the first time it was served, with the time (milliseconds since the Unix
    /// epoch).
    pub(crate) tokens: Vec<(u64, String)>,
    pub(crate) last: String,
    pub(crate) errors: u64,
    pub(crate) reauth: u64,
    pub(crate) pending_save: bool,
    pub(crate) output: String,
}

impl Fleet {
    /// Starts `n` processes serving from `spec` for `run_ms`, each through `wrap` (none, or
    /// `ip netns exec <ns>`), with `env`.
    pub(crate) fn serve(
        spec: &[String],
        env: &[(String, String)],
        wrap: &[Vec<String>],
        run_ms: u64,
    ) -> Self {
        let provider = tempfile::tempdir().unwrap();
        let mut fleet = Self {
            provider,
            children: Vec::new(),
        };
        for (i, spec) in spec.iter().enumerate() {
            let prefix = wrap.get(i).cloned().unwrap_or_default();
            let mut cmd = match prefix.split_first() {
                Some((program, args)) => {
                    let mut cmd = Command::new(program);
                    cmd.args(args).arg(PROBE);
                    cmd
                }
                None => Command::new(PROBE),
            };
            let child = cmd
                .arg("serve")
                .arg(spec)
                .arg(fleet.provider.path())
                .arg(LATENCY_MS.to_string())
                .arg(LIFETIME_MS.to_string())
                .arg(run_ms.to_string())
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            fleet.children.push(child);
        }
        fs::write(fleet.provider.path().join("go"), b"").unwrap();
        fleet
    }

    /// The processes' ids, in the order they were started.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    pub(crate) fn dir(&self) -> &Path {
        self.provider.path()
    }

    fn counter(&self, name: &str) -> u64 {
        fs::read_to_string(self.dir().join(name)).map_or(0, |t| t.trim().parse().unwrap_or(0))
    }

    /// Requests the provider received.
    pub(crate) fn requests(&self) -> u64 {
        self.counter("count")
    }

    /// Requests the provider refused because their refresh material was revoked.
    pub(crate) fn rejected(&self) -> u64 {
        self.counter("rejected")
    }

    /// The refresh material the provider would accept now.
    pub(crate) fn valid(&self) -> String {
        fs::read_to_string(self.dir().join("valid")).unwrap_or_default()
    }

    /// Waits (at most 30 s) until the provider has received `n` requests.
    pub(crate) fn wait_for_request(&self, n: u64) {
        for _ in 0..3000 {
            if self.requests() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the provider did not receive request {n} within 30 s");
    }

    /// From now on the provider's tokens live an hour: the fleet settles on the next one.
    pub(crate) fn settle(&self) {
        fs::write(self.dir().join("settle"), b"").unwrap();
    }

    /// Waits for every process and parses what it printed.
    pub(crate) fn finish(&mut self) -> Vec<Served> {
        std::mem::take(&mut self.children)
            .into_iter()
            .map(|child| {
                let out = child.wait_with_output().unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "a process failed: {stdout} {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                parse(&stdout)
            })
            .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse(stdout: &str) -> Served {
    let mut served = Served {
        tokens: Vec::new(),
        last: String::new(),
        errors: 0,
        reauth: 0,
        pending_save: false,
        output: stdout.to_owned(),
    };
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["token", ms, token] => served
                .tokens
                .push((ms.parse().unwrap(), (*token).to_owned())),
            ["done", last, rest @ ..] => {
                served.last = (*last).to_owned();
                for field in rest {
                    match field.split_once('=') {
                        Some(("errors", n)) => served.errors = n.parse().unwrap(),
                        Some(("reauth", n)) => served.reauth = n.parse().unwrap(),
                        Some(("pending_save", b)) => served.pending_save = b == "true",
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        !served.last.is_empty(),
        "a process did not finish: {stdout}"
    );
    served
}

/// The fleet converged on the newest token, lost no refresh material, sent none twice and told
/// nobody to log in again.
pub(crate) fn converged(fleet: &Fleet, served: &[Served], what: &str) {
    let requests = fleet.requests();
    let errors: u64 = served.iter().map(|s| s.errors).sum();
    eprintln!(
        "{what}: {requests} request(s), {} rejected, {errors} failed call(s) in {} processes",
        fleet.rejected(),
        served.len()
    );
    let newest = format!("tok-{requests}");
    for s in served {
        assert_eq!(s.reauth, 0, "{what}: told to log in again: {}", s.output);
        assert_eq!(
            s.last, newest,
            "{what}: every process ends on the newest token: {}",
            s.output
        );
        assert!(!s.pending_save, "{what}: a save left pending: {}", s.output);
    }
    assert_eq!(
        fleet.rejected(),
        0,
        "{what}: no refresh material sent twice"
    );
    assert_eq!(
        fleet.valid(),
        format!("r{requests}"),
        "{what}: the newest material is the one the provider accepts"
    );
}

/// Runs six processes; when the provider receives the second request (the first refresh, its
/// answer a second away), `fault` strikes; `heal` runs `down_ms` later; a second after that,
/// the provider's tokens start to live an hour, so the fleet settles on the next one.
fn fault_mid_refresh(
    spec: &str,
    env: &[(String, String)],
    what: &str,
    fault: impl FnOnce(),
    heal: impl FnOnce(),
    down_ms: u64,
) {
    let specs = vec![spec.to_owned(); 6];
    let mut fleet = Fleet::serve(&specs, env, &[], RUN_MS);
    fleet.wait_for_request(2);
    fault();
    std::thread::sleep(Duration::from_millis(down_ms));
    heal();
    std::thread::sleep(Duration::from_secs(1));
    fleet.settle();
    let served = fleet.finish();
    converged(&fleet, &served, what);
    // Each process served the provider's tokens in the order they were issued.
    for s in &served {
        let seen: Vec<u64> = s
            .tokens
            .iter()
            .map(|(_, t)| t.trim_start_matches("tok-").parse().unwrap())
            .collect();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "{what}: tokens served in order: {}",
            s.output
        );
    }
}

/// The replies of the store server behind `proxy` are dropped for 3.5 s (past the answer, a
/// second after the request, and the store's timeout on the save) while the requests reach it;
/// then every connection is closed and traffic flows again. `spec` reaches the store through
/// the proxy.
fn replies_lost_mid_refresh(
    proxy: &crate::servers::Proxy,
    spec: &str,
    env: &[(String, String)],
    what: &str,
) {
    fault_mid_refresh(
        spec,
        env,
        what,
        || proxy.swallow_replies(),
        || proxy.restore(),
        3500,
    );
    assert!(
        proxy.landed.load(std::sync::atomic::Ordering::SeqCst) > 0
            && proxy.swallowed.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "{what}: requests reached the server while their replies were dropped"
    );
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crate::servers::{Proxy, RedisServer};

    fn env() -> Vec<(String, String)> {
        vec![(
            "KUNCI_PROBE_REDIS_PREFIX".to_owned(),
            format!("kunci-test-{:016x}:", fastrand::u64(..)),
        )]
    }

    #[test]
    fn on_redis_a_server_killed_and_restarted_mid_refresh_loses_no_refresh_material() {
        let Some(server) = RedisServer::start("127.0.0.1", None) else {
            eprintln!("redis restart: skipped, no redis-server");
            return;
        };
        let url = server.url();
        let server = std::sync::Mutex::new(server);
        fault_mid_refresh(
            &url,
            &env(),
            "redis killed and restarted mid-refresh",
            || server.lock().unwrap().kill(),
            || server.lock().unwrap().restart(),
            2000,
        );
    }

    #[test]
    fn on_redis_a_save_that_lands_with_its_reply_lost_converges_on_the_newest_material() {
        let Some(server) = RedisServer::start("127.0.0.1", None) else {
            eprintln!("redis ambiguous save: skipped, no redis-server");
            return;
        };
        let proxy = Proxy::start(&server.addr());
        replies_lost_mid_refresh(
            &proxy,
            &format!("redis://{}", proxy.addr()),
            &env(),
            "redis save landed, reply lost",
        );
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::servers::{PgCluster, Proxy};

    fn spec(url: &str) -> String {
        format!("{url}?kunci_table=kunci_tokens")
    }

    #[test]
    fn on_postgres_a_server_crashed_and_restarted_mid_refresh_loses_no_refresh_material() {
        let Some(cluster) = PgCluster::start("127.0.0.1", None) else {
            eprintln!("postgres restart: skipped, no PostgreSQL binaries");
            return;
        };
        let cluster = std::sync::Mutex::new(cluster);
        let url = spec(&cluster.lock().unwrap().url());
        fault_mid_refresh(
            &url,
            &[],
            "postgres crashed and restarted mid-refresh",
            || cluster.lock().unwrap().crash(),
            || cluster.lock().unwrap().restart(),
            2000,
        );
    }

    #[test]
    fn on_postgres_a_save_that_lands_with_its_reply_lost_converges_on_the_newest_material() {
        let Some(cluster) = PgCluster::start("127.0.0.1", None) else {
            eprintln!("postgres ambiguous save: skipped, no PostgreSQL binaries");
            return;
        };
        let proxy = Proxy::start(&cluster.addr());
        replies_lost_mid_refresh(
            &proxy,
            &spec(&format!("postgres://postgres@{}/postgres", proxy.addr())),
            &[],
            "postgres save landed, reply lost",
        );
    }
}
