#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed setup should fail the test"
)]

use std::{sync::Arc, time::Duration};

use auth_core::ManualClock;
use auth_krmpesan::{KrmPesanConfig, KrmPesanSource};
use auth_testkit::{SimBuilder, krmpesan::KrmPesanSim, setup};
use secrecy::SecretString;

/// The shared setup ([`setup::Setup`]) on KrmPesan's simulator.
pub(crate) type Setup = setup::Setup<KrmPesanSim>;

pub(crate) use auth_testkit::setup::manual_clock as clock;

/// IdTokens live a day, as the real pool's.
const LIFETIME: Duration = Duration::from_secs(86_400);

pub(crate) fn sim_builder(clock: &Arc<ManualClock>) -> SimBuilder {
    setup::sim_builder(clock, LIFETIME)
}

pub(crate) fn config(sim: &KrmPesanSim) -> KrmPesanConfig {
    KrmPesanConfig::new(
        SecretString::from(sim.refresh_token().to_owned()),
        SecretString::from(sim.device_key().to_owned()),
    )
    .unwrap()
    .with_base_url(&sim.base_url())
    .unwrap()
}

/// A client for requests the tests send themselves.
#[allow(unused_imports, reason = "not every test module sends requests itself")]
pub(crate) use auth_testkit::setup::http_client as client;
/// The HTTP settings of a source in these tests.
pub(crate) use auth_testkit::setup::http_config;

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
        KrmPesanSim::start_with,
        |sim, store, clock| {
            let source = KrmPesanSource::new(config(sim), http_config(timeout)).unwrap();
            setup::manager(source, store, clock)
        },
    )
    .await
}
