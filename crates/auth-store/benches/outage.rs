//! Store latency and outage behaviour, each beside its baseline in the same run
//! (`harness = false`; prints `report:` lines for `cargo xtask bench fleet`):
//!
//! * load, save and fenced save per backend (memory, file, Redis, PostgreSQL), the three
//!   operations alternating in one loop so they share the machine's and the disk's conditions;
//!   on PostgreSQL also lock + release and the hand-over on the unlogged lease table (now) and
//!   on a logged one (before), alternating too; the hand-over with notification and with
//!   polling (before) on the file store and Redis;
//! * outage behaviour on Redis and PostgreSQL: a manager whose store is reached through a TCP
//!   proxy that the bench cuts (every connection closed, new ones refused) and restores; its
//!   caller asks for a token every 10 ms. Measured: calls served from memory while the store is
//!   away, failed calls, and the time from the store's return to the first token refreshed
//!   through it — for an outage inside the token's life, one that outlives it, and (baseline)
//!   no outage.
//!
//! Redis and PostgreSQL parts read `KUNCI_TEST_REDIS_URL` / `KUNCI_TEST_POSTGRES_URL` and are
//! skipped with a report line when unset. The load average is reported before and after.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "a benchmark harness: it times with Instant::now and reports on stdout"
)]

#[allow(
    dead_code,
    reason = "the tests' servers module; this bench uses its proxy"
)]
#[path = "../tests/all/servers.rs"]
mod servers;

mod support;
use support::entry;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use auth_core::{
    Fence, FetchRequest, Fetched, MemoryStore, RefreshPolicy, SharedTokenSource, SharedTokenStore,
    StoreKey, Token, TokenManager, source,
};
use auth_store::FileStore;
use secrecy::{ExposeSecret as _, SecretString};

const ROUNDS: usize = 200;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench` or `cargo xtask bench fleet`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("report: load average before: {}", load_average());
    rt.block_on(async {
        latencies().await;
        outages().await;
    });
    println!("report: load average after: {}", load_average());
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// Median and 90th percentile, in milliseconds.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let at = |p: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a few hundred samples"
        )]
        let i = ((times.len() - 1) as f64 * p).round() as usize;
        times[i].as_secs_f64() * 1e3
    };
    format!("median {:.3} ms, p90 {:.3} ms", at(0.5), at(0.9))
}

async fn timed<T>(into: &mut Vec<Duration>, call: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = call.await;
    into.push(start.elapsed());
    out
}

/// Load, save and fenced save, alternating, `ROUNDS` times.
async fn store_latency(name: &str, store: SharedTokenStore) {
    let key = StoreKey::new(format!("bench:latency:{:08x}", fastrand::u32(..))).unwrap();
    let entry = entry();
    let mut version = store.save(&key, &entry, 0).await.unwrap();
    let lock = store.lock(&key, Duration::from_secs(600)).await.unwrap();
    let fence = Fence::lease(lock.lease());
    let (mut load, mut save, mut fenced) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        timed(&mut load, store.load(&key)).await.unwrap();
        version = timed(&mut save, store.save(&key, &entry, version))
            .await
            .unwrap();
        version = timed(
            &mut fenced,
            store.save_fenced(&key, &entry, version, &fence),
        )
        .await
        .unwrap();
    }
    lock.release().await.unwrap();
    store.delete(&key).await.unwrap();
    println!(
        "report: {name}: load {}; save {}; fenced save {} ({ROUNDS} rounds, the three alternating)",
        summary(load),
        summary(save),
        summary(fenced)
    );
}

/// One hand-over: `holding` keeps the lock 20 ms while `waiting` waits for it; the time from
/// the holder's call to `release` to the waiter holding it.
async fn hand_over(
    holding: &SharedTokenStore,
    waiting: &SharedTokenStore,
    key: &StoreKey,
) -> Duration {
    let held = holding.lock(key, Duration::from_secs(10)).await.unwrap();
    let waiter = {
        let (waiting, key) = (waiting.clone(), key.clone());
        tokio::spawn(async move {
            let lock = waiting.lock(&key, Duration::from_secs(10)).await.unwrap();
            (lock, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let released_at = Instant::now();
    held.release().await.unwrap();
    let (lock, held_at) = waiter.await.unwrap();
    lock.release().await.unwrap();
    held_at.saturating_duration_since(released_at)
}

const HAND_OVERS: usize = 40;

/// A side of a hand-over comparison: its name, the holder's store and the waiter's.
type Side<'a> = (&'a str, SharedTokenStore, SharedTokenStore);

/// Hand-overs on `now` and on `before`, alternating.
async fn hand_overs(name: &str, now: Side<'_>, before: Side<'_>) {
    let key = StoreKey::new(format!("bench:handover:{:08x}", fastrand::u32(..))).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..HAND_OVERS {
        a.push(hand_over(&now.1, &now.2, &key).await);
        b.push(hand_over(&before.1, &before.2, &key).await);
    }
    println!(
        "report: {name} hand-over, release to waiter holding: {} **{}**; {} {} ({HAND_OVERS} each, alternating)",
        now.0,
        summary(a),
        before.0,
        summary(b)
    );
}

async fn latencies() {
    store_latency("memory store", SharedTokenStore::new(MemoryStore::new())).await;
    let dir = tempfile::tempdir().unwrap();
    store_latency(
        "file store",
        SharedTokenStore::new(FileStore::new(dir.path()).unwrap()),
    )
    .await;
    let file = || SharedTokenStore::new(FileStore::new(dir.path()).unwrap());
    hand_overs(
        "file store",
        ("kernel wake-up", file(), file()),
        (
            "polling (before)",
            file(),
            SharedTokenStore::new(FileStore::new(dir.path()).unwrap().with_polling_lock(true)),
        ),
    )
    .await;
    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("KUNCI_TEST_REDIS_URL") {
        let options = auth_store::RedisOptions::default()
            .prefix(format!("kunci-bench-{:08x}:", fastrand::u32(..)));
        let open = async |options: auth_store::RedisOptions| {
            SharedTokenStore::new(
                auth_store::RedisStore::connect(&url, options)
                    .await
                    .unwrap(),
            )
        };
        let store = open(options.clone()).await;
        store_latency("Redis store", store.clone()).await;
        hand_overs(
            "Redis store",
            (
                "pub/sub notification",
                store.clone(),
                open(options.clone()).await,
            ),
            ("polling (before)", store, open(options.notify(false)).await),
        )
        .await;
    } else {
        println!("report: Redis store: skipped (KUNCI_TEST_REDIS_URL is not set)");
    }
    #[cfg(feature = "postgres")]
    if let Some(scratch) = Scratch::new() {
        let options = auth_store::PostgresOptions::default().table(&scratch.table);
        let store = auth_store::PostgresStore::connect(&scratch.url, options.clone())
            .await
            .unwrap();
        store_latency("PostgreSQL store", SharedTokenStore::new(store.clone())).await;
        // Before: a logged lease table (each lease change waits for its WAL flush).
        let logged =
            auth_store::PostgresOptions::default().table(format!("{}.logged", scratch.schema));
        let before = auth_store::PostgresStore::connect(&scratch.url, logged.clone())
            .await
            .unwrap();
        assert!(
            scratch.psql(&format!(
                "ALTER TABLE {}.logged_lease SET LOGGED",
                scratch.schema
            )),
            "psql could not make the baseline's lease table logged"
        );
        let key = StoreKey::new("bench:lease").unwrap();
        let (mut now, mut then) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for (store, times) in [(&store, &mut now), (&before, &mut then)] {
                timed(times, support::lock_and_release(store, &key)).await;
            }
        }
        println!(
            "report: PostgreSQL lock + release: unlogged lease table **{}**; logged, each commit waiting for its WAL flush (before) {} ({ROUNDS} rounds, alternating)",
            summary(now),
            summary(then)
        );
        let other = |options: auth_store::PostgresOptions| async {
            SharedTokenStore::new(
                auth_store::PostgresStore::connect(&scratch.url, options)
                    .await
                    .unwrap(),
            )
        };
        hand_overs(
            "PostgreSQL store",
            (
                "NOTIFY, unlogged lease table",
                SharedTokenStore::new(store),
                other(options.clone()).await,
            ),
            (
                "NOTIFY, logged lease table (before)",
                SharedTokenStore::new(before),
                other(logged).await,
            ),
        )
        .await;
    }
}

/// A scratch schema on the shared PostgreSQL server, dropped at the end.
#[cfg(feature = "postgres")]
struct Scratch {
    url: String,
    schema: String,
    table: String,
}

#[cfg(feature = "postgres")]
impl Scratch {
    fn new() -> Option<Self> {
        let Ok(url) = std::env::var("KUNCI_TEST_POSTGRES_URL") else {
            println!("report: PostgreSQL store: skipped (KUNCI_TEST_POSTGRES_URL is not set)");
            return None;
        };
        let schema = format!("kunci_bench_{:08x}", fastrand::u32(..));
        Some(Self {
            table: format!("{schema}.tokens"),
            url,
            schema,
        })
    }
}

#[cfg(feature = "postgres")]
impl Scratch {
    /// Runs one SQL command with `psql`.
    fn psql(&self, sql: &str) -> bool {
        std::process::Command::new("psql")
            .arg(&self.url)
            .arg("-qc")
            .arg(sql)
            .status()
            .is_ok_and(|s| s.success())
    }
}

#[cfg(feature = "postgres")]
impl Drop for Scratch {
    fn drop(&mut self) {
        self.psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}

const LIFETIME: Duration = Duration::from_secs(4);

/// A provider answering a token living `LIFETIME` after 50 ms, counting its requests.
fn provider() -> (SharedTokenSource, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&calls);
    let source = source::from_fn("bench", move |request: FetchRequest| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Fetched::new(Token::bearer(
                SecretString::from(format!("tok-{n}")),
                request.sent_at,
                Some(request.sent_at + LIFETIME),
            )?))
        }
    });
    (SharedTokenSource::new(source), calls)
}

/// What one outage run saw.
struct Outage {
    served_during: u64,
    failed_during: u64,
    failed_after: u64,
    resumed_after: Option<Duration>,
    requests: u64,
}

/// A manager on `store` (reached through `proxy`), its caller asking every 10 ms: the store is
/// cut for `down` (if any) from 200 ms before the first token enters its refresh window (half
/// its life), then restored; the run ends 6 s after that, or when a token refreshed after the
/// return is served.
async fn outage(store: SharedTokenStore, proxy: &servers::Proxy, down: Option<Duration>) -> Outage {
    let (source, calls) = provider();
    let mut policy = RefreshPolicy::default();
    policy.refresh_ahead_ratio = 0.5;
    policy.jitter = 0.0;
    policy.min_refresh_interval = Duration::from_millis(100);
    policy.backoff_initial = Duration::from_millis(100);
    policy.backoff_max = Duration::from_secs(1);
    policy.refresh_timeout = Duration::from_secs(5);
    let manager = TokenManager::builder(source)
        .store(store)
        .policy(policy)
        .key(StoreKey::new(format!("bench:outage:{:08x}", fastrand::u32(..))).unwrap())
        .build()
        .unwrap();
    let first = manager
        .token()
        .await
        .unwrap()
        .secret()
        .expose_secret()
        .to_owned();
    let start = Instant::now();
    // Just before the refresh window opens, so no refresh is under way when the store goes.
    let cut_at = LIFETIME / 2 - Duration::from_millis(200);
    // Without an outage: the refresh window's opening.
    let back_at = down.map_or(LIFETIME / 2, |down| cut_at + down);
    let end_at = back_at + Duration::from_secs(6);
    let mut result = Outage {
        served_during: 0,
        failed_during: 0,
        failed_after: 0,
        resumed_after: None,
        requests: 0,
    };
    let (mut cut, mut restored) = (false, down.is_none());
    while start.elapsed() < end_at {
        let at = start.elapsed();
        if !cut && down.is_some() && at >= cut_at {
            proxy.cut();
            cut = true;
        }
        if cut && !restored && at >= back_at {
            proxy.restore();
            restored = true;
        }
        let during = cut && !restored;
        let answer = tokio::time::timeout(Duration::from_secs(5), manager.token()).await;
        match answer {
            Ok(Ok(token)) => {
                if during {
                    result.served_during += 1;
                } else if restored && at >= back_at && token.secret().expose_secret() != first {
                    result.resumed_after = Some(start.elapsed().saturating_sub(back_at));
                    break;
                }
            }
            _ if during => result.failed_during += 1,
            _ => result.failed_after += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.restore();
    result.requests = calls.load(Ordering::SeqCst);
    result
}

async fn outage_report(
    name: &str,
    proxy: &servers::Proxy,
    open: impl AsyncFn() -> SharedTokenStore,
) {
    for (what, down) in [
        ("no outage (baseline)", None),
        (
            "store away 1.5 s, inside the token's life",
            Some(Duration::from_millis(1500)),
        ),
        (
            "store away 4 s, outliving the token",
            Some(Duration::from_secs(4)),
        ),
    ] {
        let o = outage(open().await, proxy, down).await;
        let resumed = o.resumed_after.map_or_else(
            || "no refreshed token within 6 s".to_owned(),
            |d| format!("**{:.0} ms**", d.as_secs_f64() * 1e3),
        );
        match down {
            None => println!(
                "report: outage, {name}, {what}: first refreshed token served {resumed} after the refresh window opened; {} failed calls; {} requests",
                o.failed_after, o.requests
            ),
            Some(_) => println!(
                "report: outage, {name}, {what}: **{} calls served from memory**, {} failed while it was away; first refreshed token served {resumed} after it returned; {} failed calls after; {} requests",
                o.served_during, o.failed_during, o.failed_after, o.requests
            ),
        }
    }
}

async fn outages() {
    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("KUNCI_TEST_REDIS_URL") {
        let upstream = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let proxy = servers::Proxy::start(&upstream);
        let via = format!("redis://{}", proxy.addr());
        outage_report("Redis", &proxy, async || {
            let options = auth_store::RedisOptions::default()
                .prefix(format!("kunci-bench-{:08x}:", fastrand::u32(..)));
            SharedTokenStore::new(
                auth_store::RedisStore::connect(&via, options)
                    .await
                    .unwrap(),
            )
        })
        .await;
    }
    #[cfg(feature = "postgres")]
    if let Some(scratch) = Scratch::new() {
        let rest = scratch.url.split_once('@').map_or("", |(_, rest)| rest);
        let (host, db) = rest.split_once('/').unwrap_or((rest, "postgres"));
        let user = scratch
            .url
            .trim_start_matches("postgres://")
            .split_once('@')
            .map_or("postgres", |(user, _)| user)
            .to_owned();
        let proxy = servers::Proxy::start(host);
        let via = format!("postgres://{user}@{}/{db}", proxy.addr());
        let table = scratch.table.clone();
        outage_report("PostgreSQL", &proxy, async || {
            let options = auth_store::PostgresOptions::default().table(&table);
            SharedTokenStore::new(
                auth_store::PostgresStore::connect(&via, options)
                    .await
                    .unwrap(),
            )
        })
        .await;
    }
}
