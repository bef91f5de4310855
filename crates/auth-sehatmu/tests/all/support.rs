//! Helpers shared by the integration tests.
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failure here is a test failure"
)]

use std::{sync::Arc, time::Duration};

use auth_core::{
    ManualClock, MemoryStore, SharedClock, SharedTokenSource, TokenManager, http::HttpConfig,
};
use auth_sehatmu::{SehatMuConfig, SehatMuSource};
use auth_testkit::{sehatmu::SehatMuSim, setup};
use secrecy::SecretString;

/// A manual clock shared by the simulator and the manager, so expiry is tested without waiting.
pub(crate) use auth_testkit::setup::manual_clock as clock;

/// A simulator on `clock`, issuing tokens that live `lifetime`.
pub(crate) async fn sim(clock: &Arc<ManualClock>, lifetime: Duration) -> SehatMuSim {
    SehatMuSim::start_with(setup::sim_builder(clock, lifetime))
        .await
        .unwrap()
}

/// A source for the simulator's client with `secret`, a short HTTP timeout and `clock`.
pub(crate) fn source_with_secret(
    sim: &SehatMuSim,
    secret: &str,
    clock: &Arc<ManualClock>,
) -> Arc<SehatMuSource> {
    let config = SehatMuConfig::new(sim.client_id(), SecretString::from(secret))
        .unwrap()
        .with_base_url(&sim.base_url())
        .unwrap();
    let http = HttpConfig::default().with_timeout(Duration::from_millis(500));
    Arc::new(
        SehatMuSource::new(config, http)
            .unwrap()
            .with_clock(SharedClock::from(clock.clone())),
    )
}

/// A source for the simulator's client and secret.
pub(crate) fn source(sim: &SehatMuSim, clock: &Arc<ManualClock>) -> Arc<SehatMuSource> {
    source_with_secret(sim, sim.client_secret(), clock)
}

/// A manager for `source` on `store` and `clock` (keyed by the source's own store key).
pub(crate) fn manager(
    source: &Arc<SehatMuSource>,
    store: &MemoryStore,
    clock: &Arc<ManualClock>,
) -> TokenManager {
    setup::manager(SharedTokenSource::from_arc(source.clone()), store, clock)
}
