//! `kunci demo`: every provider compiled in, each through its simulator in this process on
//! 127.0.0.1, and one walk through a token's life with each: a burst of callers that sends one
//! request, the cache, the token in the store and what is saved beside it (rotating refresh
//! material or none, the login's expiry), another process served from the store, refresh
//! ahead of expiry, a refused credential and what the manager does on the next call (a
//! provider's cool-down shows here). One line per step, a summary table at the end.
//!
//! The demo knows no provider by name: it loops over `ProviderKind::ALL` and sees each
//! simulator through `auth_testkit::Simulator` (the variables it accepts, its refusal), so a
//! provider added by `cargo xtask new-provider` is in it with no edit here. Everything goes
//! through the same path as `kunci token`: the source is built from variables by
//! `ProviderKind::source_from_lookup`, the manager by `ManagerBuilder`; the store is in
//! memory. No secret or token is printed.

use std::{collections::HashMap, time::Duration};

use auth_core::{
    Clock as _, Freshness, MemoryStore, MonoTime, SystemClock, TokenGuard, TokenStore,
};
use auth_testkit::SimServer;
use kunci::{ErrorKind, HttpConfig, ManagerBuilder, ProviderKind, TokenManager};
use tokio::task::JoinSet;

use crate::{
    failure::{Failure, code, exit_code},
    output::{human, out_line, relative},
};

mod spinner;

use spinner::Spinner;

/// How long the simulators' tokens live: short, so refresh-ahead shows.
const SHORT_LIFETIME: Duration = Duration::from_secs(4);
/// Simulated network latency of every token request, so requests are visible in the timings.
const LATENCY: Duration = Duration::from_millis(25);
/// Calls on the warm path, averaged.
const CACHE_CALLS: u32 = 200_000;
/// Concurrent callers in a burst.
const BURST: usize = 1_000;

/// A provider's line in the summary.
#[derive(Debug, Default)]
struct Summary {
    provider: &'static str,
    requests: usize,
    tokens: u64,
    checks: u32,
    failed: Vec<String>,
}

impl Summary {
    fn new(provider: &'static str) -> Self {
        Self {
            provider,
            ..Self::default()
        }
    }

    /// Records an expectation; a broken one is reported and fails the demo.
    fn check(&mut self, ok: bool, what: &str) -> Result<(), Failure> {
        self.checks += 1;
        if !ok {
            self.failed.push(what.to_owned());
            out_line(&format!("    UNEXPECTED: {what}"))?;
        }
        Ok(())
    }
}

/// The demo's clock readings.
#[derive(Debug)]
struct Timer {
    clock: SystemClock,
}

impl Timer {
    /// The precise monotonic clock: the coarse one the token manager's deadlines use rounds
    /// to a scheduler tick (4 ms on Linux).
    fn now(&self) -> MonoTime {
        self.clock.precise_monotonic()
    }

    fn since(&self, start: MonoTime) -> Duration {
        self.now().saturating_duration_since(start)
    }
}

fn short(d: Duration) -> String {
    if d < Duration::from_micros(1) {
        format!("{} ns", d.as_nanos())
    } else if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else if d < Duration::from_secs(1) {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `in 4s`, `in 23h 59m`, `never`.
fn in_time(timer: &Timer, at: Option<time::OffsetDateTime>) -> String {
    at.map_or_else(|| "never".to_owned(), |at| relative(at - timer.clock.now()))
}

fn requests(n: usize) -> String {
    if n == 1 {
        "1 request".to_owned()
    } else {
        format!("{n} requests")
    }
}

fn step(what: &str, sent: usize, time: &str, note: &str) -> Result<(), Failure> {
    out_line(&format!(
        "  {what:<36} {:<12} {time:>8}   {note}",
        requests(sent)
    ))
}

fn demo_error(e: kunci::Error) -> Failure {
    Failure::new(code::OTHER, format!("the demo failed unexpectedly: {e}"))
}

/// A manager for `kind` from `vars`, on `store`: the same path as `kunci token`.
async fn manager(
    kind: ProviderKind,
    vars: &[(&str, String)],
    store: &MemoryStore,
) -> Result<TokenManager, Failure> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let source = kind
        .source_from_lookup(&|name| vars.get(name).cloned(), http())
        .map_err(demo_error)?;
    ManagerBuilder::new(source)
        .store(store.clone())
        .build()
        .await
        .map_err(demo_error)
}

fn http() -> HttpConfig {
    HttpConfig::default().with_timeout(Duration::from_secs(5))
}

fn sim_builder() -> auth_testkit::SimBuilder {
    SimServer::builder()
        .latency(LATENCY)
        .token_lifetime(SHORT_LIFETIME)
}

fn io_error(e: std::io::Error) -> Failure {
    Failure::new(code::OTHER, format!("cannot start a simulator: {e}"))
}

/// One provider's walk, through its simulator and the variables it gives.
async fn walk(timer: &Timer, kind: ProviderKind) -> Result<Summary, Failure> {
    let declaration = kind.declaration();
    let mut s = Summary::new(declaration.display_name);
    let sim = kind
        .start_simulator(sim_builder())
        .await
        .map_err(io_error)?;
    let server = sim.server();
    out_line("")?;
    out_line(&format!(
        "{}: {} tokens, living {} here; {}",
        declaration.display_name,
        declaration.schemes.join("/"),
        human(SHORT_LIFETIME),
        declaration.docs_url
    ))?;
    let store = MemoryStore::new();
    let vars = sim.variables();
    let m = manager(kind, &vars, &store).await?;

    let (sent, waited, same) = burst(timer, &m, server).await;
    step(
        &format!("first token, {BURST} concurrent callers"),
        sent,
        &short(waited),
        &format!("{same} of {BURST} callers got the same token from one request"),
    )?;
    s.check(sent == 1, "a burst of callers sends one request")?;
    s.check(same == BURST, "every caller of the burst gets the token")?;

    let before = server.request_count();
    let t = timer.now();
    for _ in 0..CACHE_CALLS {
        let token = m.token().await.map_err(demo_error)?;
        std::hint::black_box(&token);
    }
    let each = timer.since(t) / CACHE_CALLS;
    step(
        &format!("served from cache x{CACHE_CALLS}"),
        server.request_count() - before,
        &short(each),
        "per call: no lock, no allocation, no request",
    )?;
    s.check(server.request_count() == before, "cache hits send nothing")?;

    let token = m.token().await.map_err(demo_error)?;
    let stored = TokenStore::load(&store, m.key())
        .await
        .map_err(|e| demo_error(e.into()))?;
    let saved = stored
        .as_ref()
        .and_then(|e| e.token.as_ref())
        .is_some_and(|t| t.same_secret(&token));
    let beside = if stored.as_ref().is_some_and(|e| e.refresh.is_some()) {
        "with the rotated refresh material it came with"
    } else {
        "no refresh material: the configured credential is reused"
    };
    let login = m
        .stats()
        .credential_expires_at
        .map_or_else(String::new, |at| {
            format!("; log in again {}", in_time(timer, Some(at)))
        });
    step(
        "saved in the store",
        0,
        "-",
        &format!("before it was handed out, {beside}{login}"),
    )?;
    s.check(saved, "the token is in the store")?;

    // Another process: a new manager with the same variables on the same store.
    let other = manager(kind, &vars, &store).await?;
    let before = server.request_count();
    let t = timer.now();
    let shared = other.token().await.map_err(demo_error)?;
    let waited = timer.since(t);
    step(
        "another process, same store",
        server.request_count() - before,
        &short(waited),
        "served the stored token",
    )?;
    s.check(
        shared.same_secret(&token) && server.request_count() == before,
        "another process is served the stored token without a request",
    )?;
    drop((other, shared));

    let current = match token.expires_at() {
        Some(expires) => refresh_ahead(timer, &m, server, &token, expires, &mut s).await?,
        None => {
            step("no expiry", 0, "-", "a permanent token: never refreshed")?;
            token
        }
    };

    // The server refuses the credential: the token is rejected and the next fetch refused.
    server.fail_next(sim.refusal("refused by the demo"));
    m.invalidate(&current);
    drop(current);
    let before = server.request_count();
    let t = timer.now();
    let refused = m.token().await;
    let waited = timer.since(t);
    let reauthenticate =
        matches!(&refused, Err(e) if e.kind() == ErrorKind::ReauthenticationRequired);
    step(
        "credential refused",
        server.request_count() - before,
        &short(waited),
        &format!(
            "log in again (`kunci token` exits {})",
            refused.as_ref().err().map_or(0, |e| exit_code(e.kind()))
        ),
    )?;
    s.check(
        reauthenticate && server.request_count() == before + 1,
        "a refused credential means logging in again, after one request",
    )?;

    let before = server.request_count();
    let t = timer.now();
    let again = m.token().await;
    let waited = timer.since(t);
    let sent = server.request_count() - before;
    let (note, expected) = match &again {
        Ok(_) => ("sent again, and served a new token".to_owned(), sent == 1),
        Err(e) => match e.kind() {
            ErrorKind::RateLimited { until } => (
                format!(
                    "refused locally: the provider's cool-down ends {} (exit {}); nothing sent",
                    in_time(timer, Some(until)),
                    exit_code(e.kind())
                ),
                sent == 0,
            ),
            ErrorKind::ReauthenticationRequired if sent == 0 => (
                format!(
                    "still refused, without a request: the refusal holds until the credential changes (exit {})",
                    exit_code(e.kind())
                ),
                true,
            ),
            kind => (
                format!("{kind:?} (exit {})", exit_code(kind)),
                kind == ErrorKind::ReauthenticationRequired && sent == 1,
            ),
        },
    };
    step("trying again at once", sent, &short(waited), &note)?;
    s.check(
        expected,
        "the next call is served, held back by a cool-down without a request, or refused again",
    )?;
    s.requests = server.request_count();
    s.tokens = m.stats().cache_hits + m.stats().fetches;
    Ok(s)
}

/// Waits for `token` to enter its refresh-ahead window, then checks that the caller is
/// served it at once while one background request replaces it. Returns the token in place
/// afterwards.
async fn refresh_ahead(
    timer: &Timer,
    m: &TokenManager,
    server: &SimServer,
    token: &TokenGuard,
    expires: time::OffsetDateTime,
    s: &mut Summary,
) -> Result<TokenGuard, Failure> {
    let spinner = Spinner::start("waiting for the token to enter its refresh-ahead window");
    let waited_from = timer.now();
    while m.freshness() == Some(Freshness::Fresh) && timer.since(waited_from) < SHORT_LIFETIME {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    spinner.stop();
    let before = server.request_count();
    let t = timer.now();
    let served = m.token().await.map_err(demo_error)?;
    let caller = timer.since(t);
    let old_served = served.same_secret(token);
    let spinner = Spinner::start("the background refresh is under way");
    let mut replaced = None;
    while timer.since(t) < Duration::from_secs(3) {
        let now = m.token().await.map_err(demo_error)?;
        if !now.same_secret(token) {
            replaced = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    spinner.stop();
    let margin = if replaced.is_some() {
        let left = expires - timer.clock.now();
        format!(
            "the new token was in place {} before the old one expired",
            short(Duration::from_millis(
                u64::try_from(left.whole_milliseconds()).unwrap_or(0)
            ))
        )
    } else {
        "the new token did not arrive".to_owned()
    };
    step(
        "refresh ahead of expiry",
        server.request_count() - before,
        &short(caller),
        &format!("caller got the valid old token at once; {margin}"),
    )?;
    s.check(
        old_served,
        "the expiring token is served while the refresh runs",
    )?;
    s.check(
        replaced.is_some(),
        "the background refresh replaces the token",
    )?;
    s.check(
        server.request_count() == before + 1,
        "refresh-ahead sends one request",
    )?;
    Ok(replaced.unwrap_or(served))
}

/// `kunci demo`.
pub(crate) async fn run() -> Result<(), Failure> {
    let timer = Timer {
        clock: SystemClock::new(),
    };
    let start = timer.now();
    out_line("kunci demo: every provider simulated in this process on 127.0.0.1 (no credentials,")?;
    out_line(&format!(
        "no network), tokens kept in memory; every token request takes {} of simulated latency.",
        short(LATENCY)
    ))?;
    out_line(
        "Each line: the step, the requests the simulator received, how long the caller waited.",
    )?;
    let mut summaries = Vec::with_capacity(ProviderKind::ALL.len());
    for &kind in ProviderKind::ALL {
        summaries.push(walk(&timer, kind).await?);
    }
    out_line("")?;
    out_line(&format!(
        "{:<10} {:>9} {:>14} {:>8}   result",
        "provider", "requests", "tokens served", "checks"
    ))?;
    let mut failed = 0;
    for s in &mut summaries {
        let result = if s.failed.is_empty() {
            "ok".to_owned()
        } else {
            failed += s.failed.len();
            format!("UNEXPECTED: {}", s.failed.join("; "))
        };
        out_line(&format!(
            "{:<10} {:>9} {:>14} {:>8}   {result}",
            s.provider, s.requests, s.tokens, s.checks
        ))?;
    }
    out_line("")?;
    out_line(&format!(
        "done in {}. Next: `kunci --help`, and docs/cli.md for real providers.",
        short(timer.since(start))
    ))?;
    if failed > 0 {
        return Err(Failure::new(
            code::OTHER,
            format!("{failed} demo expectation(s) did not hold"),
        ));
    }
    Ok(())
}

/// `BURST` callers at once on a cold manager: (requests sent, time until the last caller had
/// its token, callers that got the same token).
async fn burst(timer: &Timer, m: &TokenManager, sim: &SimServer) -> (usize, Duration, usize) {
    let before = sim.request_count();
    let spinner = Spinner::start(format!("{BURST} callers are waiting for one request"));
    let t = timer.now();
    let mut set = JoinSet::new();
    for _ in 0..BURST {
        let m = m.clone();
        // The token's identity (its generation), not its secret: the same token is the same id.
        set.spawn(async move { m.token().await.ok().map(|t| t.id()) });
    }
    let mut tokens = Vec::with_capacity(BURST);
    while let Some(result) = set.join_next().await {
        tokens.push(result.ok().flatten());
    }
    let waited = timer.since(t);
    spinner.stop();
    let first = tokens.first().copied().flatten();
    let same = tokens
        .iter()
        .filter(|t| t.is_some() && **t == first)
        .count();
    (sim.request_count() - before, waited, same)
}
