//! **kunci**: tokens for Indonesian REST APIs — got, cached, refreshed ahead of expiry,
//! persisted and shared — behind one facade.
//!
//! One cargo feature per provider (all on by default; see [`providers::ProviderKind`]), plus
//! `redis` and `postgres` (stores shared by a fleet), `reqwest-middleware` (`AuthMiddleware`
//! for reqwest-middleware 0.5 over reqwest 0.13, both re-exported), `tower`
//! (`tower::AuthLayer` for the `http::Request`s of hyper, tonic and axum clients) and
//! `metrics` (Prometheus series of managers, `kunci::metrics`). With
//! `default-features = false, features = ["stamps"]` only Stamps is compiled, without Redis or
//! PostgreSQL. The TLS crypto of the token exchange is *ring* (feature `ring`, default) or
//! AWS-LC (feature `aws-lc-rs`).
//!
//! A source of your own implements [`TokenSource`] with the re-exported
//! [`async_trait`](macro@async_trait) attribute — no dependency to add — and gets the same
//! manager, stores and front-ends through [`ManagerBuilder::new`].
//!
//! ```no_run
//! use kunci::{ManagerBuilder, providers::sehatmu::SehatMuSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kunci::Error> {
//! use kunci::{EnvProvider, HttpConfig};
//! let source = SehatMuSource::from_env(HttpConfig::default())?; // SEHATMU_CLIENT_ID, …
//! let manager = ManagerBuilder::new(source).build().await?; // file store in the data dir
//! let token = manager.token().await?;                       // cached, refreshed ahead
//! let _header = token.header_value();                       // Authorization: Bearer …
//!
//! // or, twelve-factor style: everything from the environment
//! let manager = kunci::from_env(kunci::ProviderKind::SehatMu).await?;
//! # let _ = manager; Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
mod authorize;
mod builder;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
pub mod providers;
pub mod store;
#[cfg(feature = "tower")]
pub mod tower;

/// The attribute a [`TokenSource`] (or [`TokenStore`]) implementation goes under:
/// `#[kunci::async_trait]`, re-exported so a custom source needs no `async-trait` dependency.
pub use async_trait::async_trait;

/// Installs this build's rustls crypto provider unless the program installed one: call it
/// before building a reqwest client of your own (kunci's reqwest has no default provider).
pub use auth_core::http::ensure_crypto_provider;
/// reqwest 0.13: the version [`HttpClient::from_builder`] takes a builder of, and the one
/// `AuthMiddleware` is built on (feature `reqwest-middleware`). Build your client from this
/// path and the versions always match.
pub use auth_core::http::reqwest;
/// The HTTP exchange of every provider: [`HttpConfig`] (timeouts and limits) for a client of a
/// source's own, or one [`HttpClient`] shared by many sources (a [`TokenPool`]'s accounts) or
/// built on your own [`reqwest::ClientBuilder`] (a proxy, a private CA, mTLS) with kunci's
/// rules on top — see `HttpClient::from_builder` and the `own_client` example.
pub use auth_core::http::{HttpClient, HttpConfig};
pub use auth_core::provider::{Declaration, EnvProvider, Variable};
/// Many accounts of one provider in one process (see `docs/pool.md`).
pub use auth_core::{AccountSpec, Budget, PoolStats, TokenPool, TokenPoolBuilder};
pub use auth_core::{
    AuthScheme, Error, ErrorKind, Freshness, RefreshPolicy, SharedTokenSource, SharedTokenStore,
    Stats, StoreKey, Token, TokenGuard, TokenManager, TokenSource, TokenStore,
};
pub use auth_store::{Cipher, FileStore};
#[cfg(feature = "postgres")]
pub use auth_store::{PostgresOptions, PostgresStore};
#[cfg(feature = "redis")]
pub use auth_store::{RedisOptions, RedisStore};
pub use builder::{ENV_STORE, ENV_STORE_CA, ENV_STORE_KEY, ManagerBuilder, from_env, from_lookup};
#[cfg(feature = "reqwest-middleware")]
pub use middleware::AuthMiddleware;
pub use providers::ProviderKind;
/// reqwest-middleware 0.5, the version [`AuthMiddleware`] implements `Middleware` of
/// (feature `reqwest-middleware`).
#[cfg(feature = "reqwest-middleware")]
pub use reqwest_middleware;
pub use store::StoreSpec;

/// The crates kunci is built from, for what the facade does not re-export.
pub mod core {
    pub use auth_core::*;
}

// The README shows every front-end: its snippets compile when they all exist (`--all-features`,
// as `cargo xtask ci` runs the doctests).
#[doc = include_str!("../README.md")]
#[cfg(all(
    doctest,
    feature = "stamps",
    feature = "reqwest-middleware",
    feature = "tower"
))]
struct ReadmeDoctests;

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
struct RootReadmeDoctests;

// The provider pages of docs/ show setup through this facade; they compile as doctests.
#[cfg(all(doctest, feature = "kalsel"))]
#[doc = include_str!("../../../docs/providers/kalsel.md")]
struct KalselPageDoctests;

#[cfg(all(doctest, feature = "krmpesan"))]
#[doc = include_str!("../../../docs/providers/krmpesan.md")]
struct KrmPesanPageDoctests;

#[cfg(all(doctest, feature = "sehatmu"))]
#[doc = include_str!("../../../docs/providers/sehatmu.md")]
struct SehatMuPageDoctests;

#[cfg(all(doctest, feature = "stamps"))]
#[doc = include_str!("../../../docs/providers/stamps.md")]
struct StampsPageDoctests;

// The out-of-tree provider guide: its whole provider compiles and runs against a simulator.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/out-of-tree-provider.md")]
struct OutOfTreeProviderGuideDoctests;
