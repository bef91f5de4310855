#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed setup should fail the test"
)]

use std::{sync::Arc, time::Duration};

use auth_core::{
    ManualClock, MemoryStore, SharedClock, StoredEntry, TokenManager, TokenStore as _,
    http::{HttpClient, HttpConfig},
    time::macros::datetime,
};
use auth_krmpesan::{KrmPesanConfig, KrmPesanSource};
use auth_testkit::{SimBuilder, SimServer, krmpesan::KrmPesanSim};
use secrecy::SecretString;

pub(crate) struct Setup {
    pub(crate) sim: KrmPesanSim,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) store: MemoryStore,
    pub(crate) manager: TokenManager,
}

pub(crate) fn clock() -> Arc<ManualClock> {
    ManualClock::new(datetime!(2026-03-01 08:00 UTC))
}

pub(crate) fn sim_builder(clock: &Arc<ManualClock>) -> SimBuilder {
    SimServer::builder()
        .clock(SharedClock::from(clock.clone()))
        .token_lifetime(Duration::from_secs(86_400))
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

/// The HTTP settings of a source in these tests.
pub(crate) fn http_config(timeout: Duration) -> HttpConfig {
    HttpConfig::default().with_timeout(timeout)
}

/// A client for requests the tests send themselves.
#[allow(dead_code, reason = "not every test module sends requests itself")]
pub(crate) fn client(timeout: Duration) -> HttpClient {
    HttpClient::new(http_config(timeout))
}

pub(crate) async fn setup() -> Setup {
    setup_with(|b| b, Duration::from_secs(30)).await
}

pub(crate) async fn setup_with(
    builder: impl FnOnce(SimBuilder) -> SimBuilder,
    timeout: Duration,
) -> Setup {
    let clock = clock();
    let sim = KrmPesanSim::start_with(builder(sim_builder(&clock)))
        .await
        .unwrap();
    let source = KrmPesanSource::new(config(&sim), http_config(timeout)).unwrap();
    let store = MemoryStore::new();
    let manager = TokenManager::builder(source)
        .store(store.clone())
        .clock(SharedClock::from(clock.clone()))
        .build()
        .unwrap();
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
