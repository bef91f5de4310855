//! `kunci demo`: the four providers' simulators, in this process, on 127.0.0.1, and a walk
//! through a token's life with each: first token, served from cache, refresh ahead of expiry,
//! Kalsel's refresh token reused without rotation and its expiry, a SehatMu wrong secret and
//! its cool-down, bursts of
//! concurrent callers that send one request. One line per step, a summary table at the end.
//!
//! Everything goes through the same path as `kunci token`: the provider is built from
//! variables by `ProviderKind::source_from_lookup`, the manager by `ManagerBuilder`; the store
//! is in memory. No secret or token is printed.

use std::{collections::HashMap, time::Duration};

use auth_core::{Clock as _, Freshness, MemoryStore, MonoTime, SystemClock};
use auth_testkit::{
    SimServer, kalsel::KalselSim, krmpesan::KrmPesanSim, sehatmu::SehatMuSim, stamps::StampsSim,
};
use kunci::{
    EnvProvider as _, ErrorKind, HttpConfig, ManagerBuilder, ProviderKind, SharedTokenSource,
    TokenManager, providers::stamps,
};
use secrecy::ExposeSecret as _;
use tokio::task::JoinSet;

use crate::{
    failure::{Failure, code, exit_code},
    output::{human, out_line, relative},
};

mod spinner;

use spinner::Spinner;

/// How long the KrmPesan simulator's tokens live: short, so refresh-ahead shows.
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
    SimServer::builder().latency(LATENCY)
}

fn io_error(e: std::io::Error) -> Failure {
    Failure::new(code::OTHER, format!("cannot start a simulator: {e}"))
}

/// The providers with a scenario of their own below.
const DETAILED: &[ProviderKind] = &[
    ProviderKind::KrmPesan,
    ProviderKind::Kalsel,
    ProviderKind::SehatMu,
    ProviderKind::Stamps,
];

/// Any provider, by its simulator and the variables it gives: a burst of callers shares one
/// request, and the token is then served from the cache.
async fn any_provider(timer: &Timer, kind: ProviderKind) -> Result<Summary, Failure> {
    let mut s = Summary::new(kind.display_name());
    out_line("")?;
    out_line(&format!(
        "{}: its simulator, configured by the variables it declares",
        kind.display_name()
    ))?;
    let sim = kind
        .start_simulator(sim_builder())
        .await
        .map_err(io_error)?;
    let store = MemoryStore::new();
    let m = manager(kind, &sim.variables(), &store).await?;
    let (sent, waited, same) = burst(timer, &m, sim.server()).await;
    step(
        &format!("first token, {BURST} concurrent callers"),
        sent,
        &short(waited),
        &format!("{same} of {BURST} got the same token"),
    )?;
    s.check(sent == 1, "one request for a burst of callers")?;
    s.check(same == BURST, "every caller got the token")?;
    let before = sim.server().request_count();
    let cached = m.token().await.is_ok();
    step(
        "again",
        sim.server().request_count() - before,
        "-",
        "from the cache",
    )?;
    s.check(
        cached && sim.server().request_count() == before,
        "served from the cache",
    )?;
    s.requests = sim.server().request_count();
    s.tokens = m.stats().cache_hits + m.stats().fetches;
    Ok(s)
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
    let mut summaries = vec![
        krmpesan(&timer).await?,
        kalsel(&timer).await?,
        sehatmu(&timer).await?,
        stamps(&timer).await?,
    ];
    // Every other provider compiled in gets the same scenario, through its simulator
    // (`ProviderKind::start_simulator`): a provider added by `cargo xtask new-provider` is in
    // the demo with no edit here.
    for &kind in ProviderKind::ALL {
        if !DETAILED.contains(&kind) {
            summaries.push(any_provider(&timer, kind).await?);
        }
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

async fn krmpesan(timer: &Timer) -> Result<Summary, Failure> {
    let mut s = Summary::new("KrmPesan");
    let sim = KrmPesanSim::start_with(sim_builder().token_lifetime(SHORT_LIFETIME))
        .await
        .map_err(io_error)?;
    out_line("")?;
    out_line(&format!(
        "KrmPesan: GET /tokens with refresh_token and device_key; tokens live {} here (24 h for real)",
        human(SHORT_LIFETIME)
    ))?;
    let store = MemoryStore::new();
    let m = manager(
        ProviderKind::KrmPesan,
        &[
            ("KRMPESAN_BASE_URL", sim.base_url()),
            ("KRMPESAN_REFRESH_TOKEN", sim.refresh_token().to_owned()),
            ("KRMPESAN_DEVICE_KEY", sim.device_key().to_owned()),
        ],
        &store,
    )
    .await?;

    let t = timer.now();
    let first = m.token().await.map_err(demo_error)?;
    let waited = timer.since(t);
    let first_secret = first.secret().expose_secret().to_owned();
    let expires = first.expires_at();
    step(
        "first token",
        sim.request_count(),
        &short(waited),
        &format!("expires {}", in_time(timer, expires)),
    )?;
    s.check(
        sim.request_count() == 1,
        "the first token takes one request",
    )?;
    drop(first);

    let before = sim.request_count();
    let t = timer.now();
    for _ in 0..CACHE_CALLS {
        let token = m.token().await.map_err(demo_error)?;
        std::hint::black_box(&token);
    }
    let each = timer.since(t) / CACHE_CALLS;
    step(
        &format!("served from cache x{CACHE_CALLS}"),
        sim.request_count() - before,
        &short(each),
        "per call: no lock, no allocation, no request",
    )?;
    s.check(sim.request_count() == before, "cache hits send nothing")?;

    // Wait for the refresh-ahead window.
    let spinner = Spinner::start("waiting for the token to enter its refresh-ahead window");
    let waited_from = timer.now();
    while m.freshness() == Some(Freshness::Fresh) && timer.since(waited_from) < SHORT_LIFETIME {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    spinner.stop();
    let before = sim.request_count();
    let t = timer.now();
    let served = m.token().await.map_err(demo_error)?;
    let caller = timer.since(t);
    let old_served = served.secret().expose_secret() == first_secret;
    drop(served);
    let spinner = Spinner::start("the background refresh is under way");
    let mut new_secret = None;
    while timer.since(t) < Duration::from_secs(3) {
        let token = m.token().await.map_err(demo_error)?;
        if token.secret().expose_secret() != first_secret {
            new_secret = Some(token.expires_at());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    spinner.stop();
    let margin = match (expires, new_secret) {
        (Some(old), Some(_)) => {
            let left = old - timer.clock.now();
            format!(
                "the new token was in place {} before the old one expired",
                short(Duration::from_millis(
                    u64::try_from(left.whole_milliseconds()).unwrap_or(0)
                ))
            )
        }
        _ => "the new token did not arrive".to_owned(),
    };
    step(
        "refresh ahead of expiry",
        sim.request_count() - before,
        &short(caller),
        &format!("caller got the valid old token at once; {margin}"),
    )?;
    s.check(
        old_served,
        "the expiring token is served while the refresh runs",
    )?;
    s.check(
        new_secret.is_some(),
        "the background refresh replaces the token",
    )?;
    s.check(
        sim.request_count() == before + 1,
        "refresh-ahead sends one request",
    )?;
    s.requests = sim.request_count();
    s.tokens = m.stats().cache_hits + m.stats().fetches;
    Ok(s)
}

async fn kalsel(timer: &Timer) -> Result<Summary, Failure> {
    let mut s = Summary::new("Kalsel");
    let sim = KalselSim::start_with(sim_builder())
        .await
        .map_err(io_error)?;
    out_line("")?;
    out_line(
        "Kalsel.dev: POST /api/v1/refresh with the login's refresh token, which never rotates and lives 7 days",
    )?;
    let store = MemoryStore::new();
    let refresh_token = sim.refresh_token();
    let vars = |refresh_token: String| {
        vec![
            ("KALSEL_BASE_URL", sim.base_url()),
            ("KALSEL_REFRESH_TOKEN", refresh_token),
        ]
    };
    let m = manager(ProviderKind::Kalsel, &vars(refresh_token.clone()), &store).await?;
    let t = timer.now();
    let token = m.token().await.map_err(demo_error)?;
    let waited = timer.since(t);
    let stored = auth_core::TokenStore::load(&store, m.key())
        .await
        .map_err(|e| demo_error(e.into()))?;
    let token_saved = stored
        .as_ref()
        .and_then(|e| e.token.as_ref())
        .is_some_and(|t| t.same_secret(&token));
    let no_rotation = stored.as_ref().is_some_and(|e| e.refresh.is_none());
    let login_before = m.stats().credential_expires_at;
    step(
        "first token",
        sim.request_count(),
        &short(waited),
        &format!(
            "stored before it was handed out; log in again {}",
            in_time(timer, login_before)
        ),
    )?;
    s.check(token_saved, "the token is in the store")?;
    s.check(
        no_rotation,
        "no refresh material is stored: nothing rotates",
    )?;
    s.check(
        login_before.is_some(),
        "the refresh token's expiry is read from it",
    )?;
    let mut tokens = m.stats().fetches + m.stats().cache_hits;

    // A second refresh (as after a 401 from the API) sends the same refresh token again.
    m.invalidate(&token);
    drop(token);
    let before = sim.request_count();
    let t = timer.now();
    let second = m.token().await;
    let waited = timer.since(t);
    let sent: Vec<String> = sim
        .requests()
        .iter()
        .filter_map(|r| r.json()?["refresh_token"].as_str().map(str::to_owned))
        .collect();
    let same_refresh_token = sent.len() == 2 && sent.iter().all(|t| *t == refresh_token);
    step(
        "second refresh",
        sim.request_count() - before,
        &short(waited),
        "the same refresh token, accepted again",
    )?;
    s.check(second.is_ok(), "the second refresh succeeds")?;
    s.check(
        same_refresh_token,
        "both refreshes send the configured refresh token",
    )?;
    tokens += 1;

    // Seven days after the login the server refuses the refresh token: 422 jwt_error.
    let m2 = manager(
        ProviderKind::Kalsel,
        &vars(sim.expired_refresh_token()),
        &MemoryStore::new(),
    )
    .await?;
    let before = sim.request_count();
    let t = timer.now();
    let result = m2.token().await;
    let waited = timer.since(t);
    let reauth = matches!(&result, Err(e) if e.kind() == ErrorKind::ReauthenticationRequired
        && e.message().contains("Token is expired"));
    step(
        "expired refresh token: 422",
        sim.request_count() - before,
        &short(waited),
        &format!(
            "\"Token is expired\": log in again (`kunci token` exits {})",
            code::REAUTHENTICATE
        ),
    )?;
    s.check(reauth, "an expired refresh token means logging in again")?;

    // The login's access token configured by mistake: refused before any request.
    let before = sim.request_count();
    let mistaken = kunci::ProviderKind::Kalsel
        .source_from_lookup(
            &|name| (name == "KALSEL_REFRESH_TOKEN").then(|| sim.access_token()),
            http(),
        )
        .err();
    step(
        "an access token as refresh token",
        sim.request_count() - before,
        "-",
        &format!(
            "a configuration error naming KALSEL_REFRESH_TOKEN (exit {})",
            code::CONFIGURATION
        ),
    )?;
    s.check(
        mistaken.is_some_and(|e| {
            exit_code(e.kind()) == code::CONFIGURATION
                && e.message().contains("KALSEL_REFRESH_TOKEN")
        }),
        "an access token is refused as refresh token, without a request",
    )?;
    s.requests = sim.request_count();
    s.tokens = tokens;
    Ok(s)
}

async fn sehatmu(timer: &Timer) -> Result<Summary, Failure> {
    let mut s = Summary::new("SehatMu");
    let sim = SehatMuSim::start_with(sim_builder())
        .await
        .map_err(io_error)?;
    out_line("")?;
    out_line(
        "SehatMu: OAuth2 client credentials; after a rejected secret, one request per minute per client",
    )?;
    let vars = |secret: String| {
        vec![
            ("SEHATMU_BASE_URL", sim.base_url()),
            ("SEHATMU_CLIENT_ID", sim.client_id().to_owned()),
            ("SEHATMU_CLIENT_SECRET", secret),
        ]
    };
    let m = manager(
        ProviderKind::SehatMu,
        &vars(sim.client_secret().to_owned()),
        &MemoryStore::new(),
    )
    .await?;
    let t = timer.now();
    let token = m.token().await.map_err(demo_error)?;
    let waited = timer.since(t);
    step(
        "first token",
        sim.request_count(),
        &short(waited),
        &format!("expires {}", in_time(timer, token.expires_at())),
    )?;
    drop(token);
    s.check(
        sim.request_count() == 1,
        "the first token takes one request",
    )?;
    let mut tokens = 1;

    // A burst on a cold cache.
    let cold = manager(
        ProviderKind::SehatMu,
        &vars(sim.client_secret().to_owned()),
        &MemoryStore::new(),
    )
    .await?;
    let (sent, waited, ok) = burst(timer, &cold, &sim).await;
    step(
        &format!("{BURST} concurrent callers, cold cache"),
        sent,
        &short(waited),
        &format!("{ok} of {BURST} callers got the same token from one request"),
    )?;
    s.check(sent == 1 && ok == BURST, "a burst sends one request")?;
    tokens += ok as u64;

    // A wrong secret, then the cool-down.
    let shared = MemoryStore::new();
    let wrong = manager(
        ProviderKind::SehatMu,
        &vars("not-the-secret".to_owned()),
        &shared,
    )
    .await?;
    let before = sim.request_count();
    let t = timer.now();
    let result = wrong.token().await;
    let waited = timer.since(t);
    let rejected = matches!(&result, Err(e) if e.kind() == ErrorKind::ReauthenticationRequired);
    step(
        "wrong client secret",
        sim.request_count() - before,
        &short(waited),
        &format!(
            "credentials rejected (exit {}); a 60 s cool-down starts",
            code::REAUTHENTICATE
        ),
    )?;
    s.check(rejected, "a wrong secret is 'credentials rejected'")?;

    let before = sim.request_count();
    let t = timer.now();
    let again = wrong.token().await;
    let waited = timer.since(t);
    let until = match &again {
        Err(e) => match e.kind() {
            ErrorKind::RateLimited { until } => Some(until),
            _ => None,
        },
        Ok(_) => None,
    };
    step(
        "trying again at once",
        sim.request_count() - before,
        &short(waited),
        &format!(
            "refused locally, cool-down ends {} (exit {}); nothing sent",
            in_time(timer, until),
            again.as_ref().err().map_or(0, |e| exit_code(e.kind()))
        ),
    )?;
    s.check(
        until.is_some() && sim.request_count() == before,
        "the cool-down refuses without a request",
    )?;

    // Another "process": a new manager on the same store honours the recorded cool-down.
    let other = manager(
        ProviderKind::SehatMu,
        &vars("not-the-secret".to_owned()),
        &shared,
    )
    .await?;
    let before = sim.request_count();
    let t = timer.now();
    let third = other.token().await;
    let waited = timer.since(t);
    let limited = matches!(&third, Err(e) if matches!(e.kind(), ErrorKind::RateLimited { .. }));
    step(
        "another process, same store",
        sim.request_count() - before,
        &short(waited),
        "the cool-down recorded in the store is honoured too",
    )?;
    s.check(
        limited && sim.request_count() == before,
        "the stored cool-down is shared",
    )?;
    s.requests = sim.request_count();
    s.tokens = tokens;
    Ok(s)
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
        set.spawn(async move {
            m.token()
                .await
                .ok()
                .map(|t| t.secret().expose_secret().to_owned())
        });
    }
    let mut tokens = Vec::with_capacity(BURST);
    while let Some(result) = set.join_next().await {
        tokens.push(result.ok().flatten());
    }
    let waited = timer.since(t);
    spinner.stop();
    let first = tokens.first().cloned().flatten();
    let same = tokens
        .iter()
        .filter(|t| t.is_some() && **t == first)
        .count();
    (sim.request_count() - before, waited, same)
}

async fn stamps(timer: &Timer) -> Result<Summary, Failure> {
    let mut s = Summary::new("Stamps");
    let sim = StampsSim::start_with(sim_builder())
        .await
        .map_err(io_error)?;
    out_line("")?;
    out_line(
        "Stamps: POST /api/auth/get-access-token/; the expiry is read from the JWT's exp claim",
    )?;
    let vars: HashMap<String, String> = [
        ("STAMPS_BASE_URL", sim.base_url()),
        ("STAMPS_TOKEN", sim.auth_token().to_owned()),
        ("STAMPS_MERCHANT_ID", sim.merchant_id().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let source =
        stamps::StampsSource::from_lookup(&|n| vars.get(n).cloned(), http()).map_err(demo_error)?;
    let key = source.config().store_key();
    let m = ManagerBuilder::from_source(SharedTokenSource::new(source.clone()), key.clone())
        .store(MemoryStore::new())
        .build()
        .await
        .map_err(demo_error)?;

    let (sent, waited, ok) = burst(timer, &m, &sim).await;
    step(
        &format!("first token, {BURST} concurrent callers"),
        sent,
        &short(waited),
        &format!("{ok} of {BURST} callers got the same token from one request"),
    )?;
    s.check(sent == 1 && ok == BURST, "a burst sends one request")?;
    let mut tokens = ok as u64;

    let token = m.token().await.map_err(demo_error)?;
    tokens += 1;
    let before = sim.request_count();
    let t = timer.now();
    let verified = source.verify(token.secret()).await;
    let waited = timer.since(t);
    let note = match &verified {
        Ok(stamps::Verification::Valid(claims)) => format!(
            "valid: merchant_id {}, user_id {}, exp claim {}",
            claims.merchant_id,
            claims.user_id,
            in_time(timer, Some(claims.exp))
        ),
        Ok(other) => format!("not valid: {other:?}"),
        Err(e) => format!("failed: {e}"),
    };
    step(
        "verify-token",
        sim.request_count() - before,
        &short(waited),
        &note,
    )?;
    let exp_matches = match &verified {
        Ok(stamps::Verification::Valid(claims)) => token.expires_at() == Some(claims.exp),
        _ => false,
    };
    s.check(exp_matches, "the token's expiry is its exp claim")?;
    drop(token);

    let before = sim.request_count();
    let static_manager = manager(
        ProviderKind::Stamps,
        &[
            ("STAMPS_BASE_URL", sim.base_url()),
            ("STAMPS_STATIC_TOKEN", sim.static_token().to_owned()),
        ],
        &MemoryStore::new(),
    )
    .await?;
    let t = timer.now();
    let token = static_manager.token().await.map_err(demo_error)?;
    let waited = timer.since(t);
    let scheme = token.scheme().to_string();
    let permanent = token.expires_at().is_none();
    step(
        "static token",
        sim.request_count() - before,
        &short(waited),
        &format!("permanent, sent as `Authorization: {scheme} …`; no token endpoint"),
    )?;
    s.check(
        permanent && scheme == "Token" && sim.request_count() == before,
        "a static token needs no request",
    )?;
    tokens += 1;
    s.requests = sim.request_count();
    s.tokens = tokens;
    Ok(s)
}
