#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed setup should fail the test"
)]

use std::{sync::Arc, time::Duration};

use auth_core::{
    ManualClock, MemoryStore, RefreshPolicy, SharedClock, StoredEntry, TokenManager,
    TokenStore as _,
    http::{HttpClient, HttpConfig},
    time::macros::datetime,
};
use auth_kalsel::{KalselConfig, KalselSource};
use auth_testkit::{SimBuilder, SimServer, kalsel::KalselSim};
use secrecy::SecretString;

pub(crate) struct Setup {
    pub(crate) sim: KalselSim,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) store: MemoryStore,
    pub(crate) manager: TokenManager,
}

pub(crate) fn clock() -> Arc<ManualClock> {
    ManualClock::new(datetime!(2026-03-01 08:00 UTC))
}

/// How far into a token's hour the tests move the clock to make the manager refresh: past the
/// manager's hard deadline (see [`policy`]), before the token really expires.
pub(crate) const REFRESH_POINT: Duration = Duration::from_secs(3100);

/// A 10-minute skew allowance: the manager treats a one-hour token as expired 10 minutes
/// early, which leaves the tests room for back-offs and cool-downs.
pub(crate) fn policy() -> RefreshPolicy {
    let mut policy = RefreshPolicy::default();
    policy.clock_skew = Duration::from_secs(600);
    policy.clock_skew_ratio = 0.3;
    policy
}

/// Access tokens live one hour unless a test says otherwise (refresh tokens 7 days, as on the
/// server).
pub(crate) fn sim_builder(clock: &Arc<ManualClock>) -> SimBuilder {
    SimServer::builder()
        .clock(SharedClock::from(clock.clone()))
        .token_lifetime(Duration::from_secs(3600))
}

pub(crate) fn config(sim: &KalselSim) -> KalselConfig {
    KalselConfig::new(SecretString::from(sim.initial_refresh_token().to_owned()))
        .unwrap()
        .with_base_url(&sim.base_url())
        .unwrap()
}

/// The HTTP settings of a source in these tests.
pub(crate) fn http_config(timeout: Duration) -> HttpConfig {
    HttpConfig::default().with_timeout(timeout)
}

/// A client for requests the tests send themselves.
#[allow(dead_code, reason = "not every test module sends requests itself")]
pub(crate) fn client(timeout: Duration) -> HttpClient {
    HttpClient::new(http_config(timeout))
}

pub(crate) fn manager(
    config: KalselConfig,
    store: &MemoryStore,
    clock: &Arc<ManualClock>,
    timeout: Duration,
) -> TokenManager {
    TokenManager::builder(KalselSource::new(config, http_config(timeout)).unwrap())
        .store(store.clone())
        .clock(SharedClock::from(clock.clone()))
        .policy(policy())
        .build()
        .unwrap()
}

pub(crate) async fn setup() -> Setup {
    setup_with(|b| b, Duration::from_secs(30)).await
}

pub(crate) async fn setup_with(
    builder: impl FnOnce(SimBuilder) -> SimBuilder,
    timeout: Duration,
) -> Setup {
    let clock = clock();
    let sim = KalselSim::start_with(builder(sim_builder(&clock)))
        .await
        .unwrap();
    let store = MemoryStore::new();
    let manager = manager(config(&sim), &store, &clock, timeout);
    Setup {
        sim,
        clock,
        store,
        manager,
    }
}

impl Setup {
    pub(crate) async fn stored(&self) -> Option<StoredEntry> {
        self.store.load(self.manager.key()).await.unwrap()
    }
}
