//! Helpers shared by the integration tests.
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failure here is a test failure"
)]

use std::{sync::Arc, time::Duration};

use auth_core::{
    ManualClock, MemoryStore, SharedClock, TokenManager, http::HttpConfig, time::macros::datetime,
};
use auth_stamps::{StampsConfig, StampsSource};
use auth_testkit::{SimServer, stamps::StampsSim};
use secrecy::SecretString;

/// A manual clock shared by the simulator and the manager, so expiry is tested without waiting.
pub(crate) fn clock() -> Arc<ManualClock> {
    ManualClock::new(datetime!(2026-03-01 08:00 UTC))
}

/// A simulator on `clock`, issuing JWTs that live `lifetime`.
pub(crate) async fn sim(clock: &Arc<ManualClock>, lifetime: Duration) -> StampsSim {
    StampsSim::start_with(
        SimServer::builder()
            .clock(SharedClock::from(clock.clone()))
            .token_lifetime(lifetime),
    )
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

/// A manager for `source` on `store` and `clock`, keyed as the crate says.
pub(crate) fn manager(
    source: StampsSource,
    store: &MemoryStore,
    clock: &Arc<ManualClock>,
) -> TokenManager {
    TokenManager::builder(source)
        .store(store.clone())
        .clock(SharedClock::from(clock.clone()))
        .build()
        .unwrap()
}

pub(crate) use auth_testkit::logs::LogCapture;
