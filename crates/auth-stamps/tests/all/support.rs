//! Helpers shared by the integration tests.
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failure here is a test failure"
)]

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

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
        .unwrap()
        .with_http(HttpConfig::default().with_timeout(Duration::from_millis(500)));
    StampsSource::new(config).unwrap()
}

/// A manager for `source` on `store` and `clock`, keyed as the crate says.
pub(crate) fn manager(
    source: StampsSource,
    store: &MemoryStore,
    clock: &Arc<ManualClock>,
) -> TokenManager {
    let key = source.store_key();
    TokenManager::builder(source)
        .store(store.clone())
        .clock(SharedClock::from(clock.clone()))
        .key(key)
        .build()
        .unwrap()
}

/// Captures everything logged at TRACE level on this thread while it is alive.
#[derive(Clone, Default)]
pub(crate) struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the capture as this thread's default subscriber.
    pub(crate) fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything captured so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
