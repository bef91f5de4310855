#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed setup should fail the test"
)]

use std::{sync::Arc, time::Duration};

use auth_core::{ManualClock, MemoryStore, RefreshPolicy, TokenManager};
use auth_kalsel::{KalselConfig, KalselSource};
use auth_testkit::{SimBuilder, kalsel::KalselSim, setup};
use secrecy::SecretString;

/// The shared setup ([`setup::Setup`]) on Kalsel's simulator.
pub(crate) type Setup = setup::Setup<KalselSim>;

pub(crate) use auth_testkit::setup::manual_clock as clock;

/// How far into a token's hour the tests move the clock to make the manager refresh: past the
/// manager's hard deadline (see [`policy`]), before the token really expires.
pub(crate) const REFRESH_POINT: Duration = Duration::from_secs(3100);

/// Access tokens live one hour unless a test says otherwise (refresh tokens 7 days, as on the
/// server).
const LIFETIME: Duration = Duration::from_secs(3600);

/// A 10-minute skew allowance: the manager treats a one-hour token as expired 10 minutes
/// early, which leaves the tests room for back-offs and cool-downs.
pub(crate) fn policy() -> RefreshPolicy {
    let mut policy = RefreshPolicy::default();
    policy.clock_skew = Duration::from_secs(600);
    policy.clock_skew_ratio = 0.3;
    policy
}

pub(crate) fn sim_builder(clock: &Arc<ManualClock>) -> SimBuilder {
    setup::sim_builder(clock, LIFETIME)
}

pub(crate) fn config(sim: &KalselSim) -> KalselConfig {
    KalselConfig::new(SecretString::from(sim.initial_refresh_token().to_owned()))
        .unwrap()
        .with_base_url(&sim.base_url())
        .unwrap()
}

/// A client for requests the tests send themselves.
#[allow(unused_imports, reason = "not every test module sends requests itself")]
pub(crate) use auth_testkit::setup::http_client as client;
/// The HTTP settings of a source in these tests.
pub(crate) use auth_testkit::setup::http_config;

pub(crate) fn manager(
    config: KalselConfig,
    store: &MemoryStore,
    clock: &Arc<ManualClock>,
    timeout: Duration,
) -> TokenManager {
    setup::manager_builder(
        KalselSource::new(config, http_config(timeout)).unwrap(),
        store,
        clock,
    )
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
    Setup::start(
        LIFETIME,
        builder,
        KalselSim::start_with,
        |sim, store, clock| manager(config(sim), store, clock, timeout),
    )
    .await
}
