//! Helpers shared by the integration tests.
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failure here is a test failure"
)]

use std::{sync::Arc, time::Duration};

use auth_core::{ManualClock, http::HttpConfig};
use auth_stamps::{StampsConfig, StampsSource};
use auth_testkit::{setup, stamps::StampsSim};
use secrecy::SecretString;

/// A manager for a source on a store and a clock, keyed as the crate says.
pub(crate) use auth_testkit::setup::manager;
/// A manual clock shared by the simulator and the manager, so expiry is tested without waiting.
pub(crate) use auth_testkit::setup::manual_clock as clock;

/// A simulator on `clock`, issuing JWTs that live `lifetime`.
pub(crate) async fn sim(clock: &Arc<ManualClock>, lifetime: Duration) -> StampsSim {
    StampsSim::start_with(setup::sim_builder(clock, lifetime))
        .await
        .unwrap()
}

/// A JWT source for the simulator's account, with a short HTTP timeout.
pub(crate) fn jwt_source(sim: &StampsSim) -> StampsSource {
    let config = StampsConfig::jwt(SecretString::from(sim.auth_token()), sim.merchant_id())
        .with_base_url(&sim.base_url())
        .unwrap();
    StampsSource::new(
        config,
        HttpConfig::default().with_timeout(Duration::from_millis(500)),
    )
    .unwrap()
}

pub(crate) use auth_testkit::logs::LogCapture;
