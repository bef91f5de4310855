//! A fleet of real processes (`kunci-store-probe fleet`) on real Redis and PostgreSQL (and the
//! file store): one request per token lifetime, a lease holder stopped past its lease
//! mid-request, a request longer than the lease, an ambiguous save. The provider is shared
//! through files, checks refresh material like a provider that revokes it once used, and counts
//! requests; the tests report the counts they see.

use std::{
    collections::HashSet,
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use auth_core::{
    ErrorKind, SharedTokenStore, StoreKey, TokenManager,
    testing::{Fault, FaultyStore, ScriptedSource, Step, StoreOp},
};
use secrecy::ExposeSecret as _;

const PROBE: &str = env!("CARGO_BIN_EXE_kunci-store-probe");

/// Where the fleet's store is, and the environment its processes need.
struct Backend {
    spec: String,
    env: Vec<(String, String)>,
}

struct Run<'a> {
    backend: &'a Backend,
    provider: tempfile::TempDir,
}

impl<'a> Run<'a> {
    fn new(backend: &'a Backend) -> Self {
        Self {
            backend,
            provider: tempfile::tempdir().unwrap(),
        }
    }

    fn dir(&self) -> &Path {
        self.provider.path()
    }

    /// Starts `n` processes, waiting for `go`.
    fn spawn(&self, n: usize, latency_ms: u64, lease_ms: u64, lifetime_s: u64) -> Vec<Child> {
        let _ = fs::remove_file(self.dir().join("go"));
        (0..n)
            .map(|_| {
                Command::new(PROBE)
                    .arg("fleet")
                    .arg(&self.backend.spec)
                    .arg(self.dir())
                    .arg(latency_ms.to_string())
                    .arg(lease_ms.to_string())
                    .arg(lifetime_s.to_string())
                    .envs(self.backend.env.iter().map(|(k, v)| (k, v)))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect()
    }

    fn go(&self) {
        fs::write(self.dir().join("go"), b"").unwrap();
    }

    /// Waits for every process; each must have printed a token (never an error).
    fn tokens(&self, children: Vec<Child>) -> Vec<String> {
        children
            .into_iter()
            .map(|child| {
                let out = child.wait_with_output().unwrap();
                let stdout = String::from_utf8(out.stdout).unwrap();
                assert!(
                    out.status.success() && !stdout.starts_with("error"),
                    "a process failed: {stdout} {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                stdout.split_whitespace().next().unwrap().to_owned()
            })
            .collect()
    }

    fn counter(&self, name: &str) -> u64 {
        fs::read_to_string(self.dir().join(name)).map_or(0, |t| t.trim().parse().unwrap())
    }

    fn requests(&self) -> u64 {
        self.counter("count")
    }

    fn rejected(&self) -> u64 {
        self.counter("rejected")
    }

    /// The first process of `children` whose request reached the provider.
    fn sender(&self, children: &[Child]) -> u32 {
        let pids: HashSet<u32> = children.iter().map(Child::id).collect();
        for _ in 0..30_000 {
            for entry in fs::read_dir(self.dir()).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if let Some(pid) = name.strip_prefix("sent-")
                    && let Ok(pid) = pid.parse::<u32>()
                    && pids.contains(&pid)
                {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no request reached the provider within 30 s");
    }
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

fn all_same(tokens: &[String], want: &str) {
    assert!(
        tokens.iter().all(|t| t == want),
        "every process holds {want}: {tokens:?}"
    );
}

/// 16 processes on a cold entry, then 16 on the expired entry: one request each time.
fn sixteen_processes_cold_then_expired(backend: &Backend) {
    let run = Run::new(backend);
    let children = run.spawn(16, 300, 2000, 2);
    run.go();
    let tokens = run.tokens(children);
    eprintln!("cold: {} request(s) for 16 processes", run.requests());
    assert_eq!(run.requests(), 1, "one request for a cold entry");
    all_same(&tokens, "tok-1");

    std::thread::sleep(Duration::from_millis(2500)); // the token expires
    let children = run.spawn(16, 300, 2000, 2);
    run.go();
    let tokens = run.tokens(children);
    eprintln!("expired: {} request(s) in all", run.requests());
    assert_eq!(run.requests(), 2, "one more request for the expired entry");
    all_same(&tokens, "tok-2");
    assert_eq!(run.rejected(), 0, "no refresh material was sent twice");
}

/// The holder is stopped (SIGSTOP) past its lease while its request is out, then continued:
/// nobody resends its refresh material, everyone adopts its token.
fn a_holder_stopped_past_its_lease_is_waited_for_and_adopted(backend: &Backend) {
    let run = Run::new(backend);
    let first = run.spawn(1, 0, 600, 2);
    run.go();
    all_same(&run.tokens(first), "tok-1");
    std::thread::sleep(Duration::from_millis(2500)); // the token expires

    let children = run.spawn(16, 1000, 600, 3600);
    run.go();
    let holder = run.sender(&children);
    signal(holder, "STOP");
    // Well past the lease (600 ms), which the stopped holder cannot renew.
    std::thread::sleep(Duration::from_millis(3000));
    signal(holder, "CONT");
    let tokens = run.tokens(children);
    eprintln!(
        "holder stopped past its lease: {} request(s) after the first token, {} rejected",
        run.requests() - 1,
        run.rejected()
    );
    all_same(&tokens, "tok-2");
    assert_eq!(run.requests(), 2, "one request for the expired entry");
    assert_eq!(run.rejected(), 0, "nobody was told to log in again");
}

/// A request three times longer than the lease's initial life: the watchdog renews the lease,
/// and the others wait instead of sending.
fn a_request_longer_than_the_lease_makes_one(backend: &Backend) {
    let run = Run::new(backend);
    let children = run.spawn(4, 1500, 500, 3600);
    run.go();
    let tokens = run.tokens(children);
    all_same(&tokens, "tok-1");
    assert_eq!(run.requests(), 1);
}

/// An ambiguous save (it lands, its reply is lost) of rotated material: the fleet converges on
/// the newest material and the provider never sees revoked material.
async fn an_ambiguous_save_converges_on_the_newest_material(
    open: impl AsyncFn() -> SharedTokenStore,
) {
    let key = StoreKey::new(format!("ambiguous:{:016x}", fastrand::u64(..))).unwrap();
    let provider = ScriptedSource::new("probe")
        .checking_rotation()
        .otherwise(Step::rotate(Duration::from_secs(2)));
    let faulty = FaultyStore::new(open().await);
    let manager = |store: SharedTokenStore| {
        let mut policy = auth_core::RefreshPolicy::default();
        policy.backoff_initial = Duration::from_millis(50);
        policy.refresh_timeout = Duration::from_secs(10);
        TokenManager::builder(provider.clone())
            .store(store)
            .policy(policy)
            .key(key.clone())
            .build()
            .unwrap()
    };
    let a = manager(SharedTokenStore::new(faulty.clone()));
    let b = manager(open().await);
    faulty.fail_next(StoreOp::Save, Fault::FailAfterWrite);
    let err = a.token().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Store,
        "not handed out before it is known saved"
    );
    assert_eq!(b.token().await.unwrap().secret().expose_secret(), "tok-1");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.token().await.unwrap().secret().expose_secret(), "tok-1");
    tokio::time::sleep(Duration::from_millis(2100)).await; // tok-1 expires
    assert_eq!(b.token().await.unwrap().secret().expose_secret(), "tok-2");
    assert_eq!(a.token().await.unwrap().secret().expose_secret(), "tok-2");
    assert!(!a.stats().pending_save);
    let stored = b.store().load(&key).await.unwrap().unwrap();
    assert_eq!(
        stored.refresh.map(|r| r.expose_secret().to_owned()),
        provider.valid_refresh()
    );
    assert_eq!(provider.calls(), 2, "no request was repeated or refused");
}

#[test]
fn on_the_file_store_sixteen_processes_make_one_request_per_token_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend {
        spec: dir.path().display().to_string(),
        env: Vec::new(),
    };
    sixteen_processes_cold_then_expired(&backend);
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    fn backend(test: &str) -> Option<Backend> {
        let Ok(url) = std::env::var("KUNCI_TEST_REDIS_URL") else {
            eprintln!("{test}: skipped, KUNCI_TEST_REDIS_URL is not set");
            return None;
        };
        Some(Backend {
            spec: url,
            env: vec![(
                "KUNCI_PROBE_REDIS_PREFIX".to_owned(),
                format!("kunci-test-{:016x}:", fastrand::u64(..)),
            )],
        })
    }

    #[test]
    fn on_redis_sixteen_processes_make_one_request_per_token_lifetime() {
        if let Some(b) = backend("redis fleet") {
            sixteen_processes_cold_then_expired(&b);
        }
    }

    #[test]
    fn on_redis_a_holder_stopped_past_its_lease_mid_request_is_adopted_by_everyone() {
        if let Some(b) = backend("redis sigstop") {
            a_holder_stopped_past_its_lease_is_waited_for_and_adopted(&b);
        }
    }

    #[test]
    fn on_redis_a_request_three_times_longer_than_the_lease_is_made_once() {
        if let Some(b) = backend("redis renewal") {
            a_request_longer_than_the_lease_makes_one(&b);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_redis_an_ambiguous_save_converges_on_the_newest_material() {
        let Some(b) = backend("redis ambiguous save") else {
            return;
        };
        let prefix = b.env[0].1.clone();
        an_ambiguous_save_converges_on_the_newest_material(async || {
            SharedTokenStore::new(
                auth_store::RedisStore::connect(
                    &b.spec,
                    auth_store::RedisOptions::default().prefix(prefix.clone()),
                )
                .await
                .unwrap(),
            )
        })
        .await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    struct Schema {
        url: String,
        name: String,
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let _ = Command::new("psql")
                .arg(&self.url)
                .arg("-qc")
                .arg(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    fn backend(test: &str) -> Option<(Backend, Schema)> {
        let Ok(url) = std::env::var("KUNCI_TEST_POSTGRES_URL") else {
            eprintln!("{test}: skipped, KUNCI_TEST_POSTGRES_URL is not set");
            return None;
        };
        let schema = format!("kunci_test_{:016x}", fastrand::u64(..));
        let joiner = if url.contains('?') { '&' } else { '?' };
        Some((
            Backend {
                spec: format!("{url}{joiner}kunci_table={schema}.tokens"),
                env: Vec::new(),
            },
            Schema { url, name: schema },
        ))
    }

    #[test]
    fn on_postgres_sixteen_processes_make_one_request_per_token_lifetime() {
        if let Some((b, _schema)) = backend("postgres fleet") {
            sixteen_processes_cold_then_expired(&b);
        }
    }

    #[test]
    fn on_postgres_a_holder_stopped_past_its_lease_mid_request_is_adopted_by_everyone() {
        if let Some((b, _schema)) = backend("postgres sigstop") {
            a_holder_stopped_past_its_lease_is_waited_for_and_adopted(&b);
        }
    }

    #[test]
    fn on_postgres_a_request_three_times_longer_than_the_lease_is_made_once() {
        if let Some((b, _schema)) = backend("postgres renewal") {
            a_request_longer_than_the_lease_makes_one(&b);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_an_ambiguous_save_converges_on_the_newest_material() {
        let Some((b, _schema)) = backend("postgres ambiguous save") else {
            return;
        };
        an_ambiguous_save_converges_on_the_newest_material(async || {
            SharedTokenStore::new(
                auth_store::PostgresStore::connect(&b.spec, auth_store::PostgresOptions::default())
                    .await
                    .unwrap(),
            )
        })
        .await;
    }
}
