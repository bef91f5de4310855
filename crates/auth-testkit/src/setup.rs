//! The setup the providers' own tests share: a manual clock that the simulator and the manager
//! both read (so expiry is tested without waiting), a simulator on it, a memory store and a
//! manager for the provider's source on them ([`Setup`]); and, for tests that send requests
//! to a simulator themselves, a plain client ([`client`]) and the answer's status and JSON
//! ([`status_and_json`]).
//!
//! ```
//! use std::time::Duration;
//!
//! use auth_testkit::{krmpesan::KrmPesanSim, setup::{manual_clock, sim_builder}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let clock = manual_clock();
//! let sim = KrmPesanSim::start_with(sim_builder(&clock, Duration::from_secs(3600))).await?;
//! assert!(sim.base_url().starts_with("http://127.0.0.1:"));
//! # Ok(()) }
//! ```
#![allow(
    clippy::expect_used,
    reason = "a test kit: a setup that fails is a failed test"
)]

use std::{future::Future, io, sync::Arc, time::Duration};

use auth_core::{
    ManualClock, MemoryStore, SharedClock, SharedTokenSource, StoredEntry, TokenManager,
    TokenManagerBuilder, TokenStore as _,
    http::{HttpClient, HttpConfig, reqwest},
    time::{OffsetDateTime, macros::datetime},
};

use crate::{SimBuilder, SimServer};

/// Where the tests' manual clocks start: 2026-03-01 08:00 UTC.
pub const START: OffsetDateTime = datetime!(2026-03-01 08:00 UTC);

/// A manual clock at [`START`], to be shared by a simulator and a manager.
pub fn manual_clock() -> Arc<ManualClock> {
    ManualClock::new(START)
}

/// A simulator's settings: `clock`'s time, tokens that live `lifetime`.
pub fn sim_builder(clock: &Arc<ManualClock>, lifetime: Duration) -> SimBuilder {
    SimServer::builder()
        .clock(SharedClock::from(clock.clone()))
        .token_lifetime(lifetime)
}

/// The HTTP settings of a source in the tests: the defaults with `timeout`.
pub fn http_config(timeout: Duration) -> HttpConfig {
    HttpConfig::default().with_timeout(timeout)
}

/// An HTTP client of [`http_config`]`(timeout)`, for requests a test sends through kunci's
/// exchange itself.
pub fn http_client(timeout: Duration) -> HttpClient {
    HttpClient::new(http_config(timeout))
}

/// A manager's builder for `source` on `store` and `clock` (keyed by the source's own store
/// key), for a test that sets more (a refresh policy).
pub fn manager_builder(
    source: impl Into<SharedTokenSource>,
    store: &MemoryStore,
    clock: &Arc<ManualClock>,
) -> TokenManagerBuilder {
    TokenManager::builder(source)
        .store(store.clone())
        .clock(SharedClock::from(clock.clone()))
}

/// A manager for `source` on `store` and `clock` (keyed by the source's own store key).
///
/// # Panics
/// When the manager cannot be built.
pub fn manager(
    source: impl Into<SharedTokenSource>,
    store: &MemoryStore,
    clock: &Arc<ManualClock>,
) -> TokenManager {
    manager_builder(source, store, clock)
        .build()
        .expect("the manager is built")
}

/// A provider's simulator, the manual clock it shares with the manager, a memory store and a
/// manager for the provider's source on them: what most of a provider's tests start from.
#[derive(Debug)]
pub struct Setup<S> {
    /// The simulator.
    pub sim: S,
    /// The clock the simulator and the manager read.
    pub clock: Arc<ManualClock>,
    /// The manager's store.
    pub store: MemoryStore,
    /// The manager of the provider's source.
    pub manager: TokenManager,
}

impl<S> Setup<S> {
    /// A clock at [`START`]; the simulator `start` starts with [`sim_builder`]`(clock,
    /// lifetime)` changed by `builder`; a new memory store; and the manager `manager` makes for
    /// the simulator on the store and the clock.
    ///
    /// # Panics
    /// When the simulator does not start.
    pub async fn start<F>(
        lifetime: Duration,
        builder: impl FnOnce(SimBuilder) -> SimBuilder,
        start: impl FnOnce(SimBuilder) -> F,
        manager: impl FnOnce(&S, &MemoryStore, &Arc<ManualClock>) -> TokenManager,
    ) -> Self
    where
        F: Future<Output = io::Result<S>>,
    {
        let clock = manual_clock();
        let sim = start(builder(sim_builder(&clock, lifetime)))
            .await
            .expect("the simulator starts");
        let store = MemoryStore::new();
        let manager = manager(&sim, &store, &clock);
        Self {
            sim,
            clock,
            store,
            manager,
        }
    }

    /// What the store holds under the manager's key.
    ///
    /// # Panics
    /// When the store fails.
    pub async fn stored(&self) -> Option<StoredEntry> {
        self.store
            .load(self.manager.key())
            .await
            .expect("the memory store loads")
    }
}

/// A plain client for requests a test sends a simulator itself: a 5-second timeout, and a
/// redirect is answered as it is, never followed.
///
/// # Panics
/// When no TLS crypto provider can be installed or the client cannot be built.
pub fn client() -> reqwest::Client {
    auth_core::http::ensure_crypto_provider().expect("a crypto provider");
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the client is built")
}

/// The status of `response` and its body as JSON (`null` when it is not JSON).
pub async fn status_and_json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// The keys of a JSON object, sorted (none when `value` is not an object).
pub fn sorted_keys(value: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}
