//! **kunci**: tokens for Indonesian REST APIs — got, cached, refreshed ahead of expiry,
//! persisted and shared — behind one facade.
//!
//! One cargo feature per provider (all on by default; see [`providers::ProviderKind`]), plus
//! `redis` and `postgres` (stores shared by a fleet), `middleware` ([`AuthMiddleware`] for
//! `reqwest-middleware`) and `metrics` (Prometheus series of managers, `kunci::metrics`). With
//! `default-features = false, features = ["stamps"]` only Stamps is compiled, without Redis or
//! PostgreSQL.
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

mod builder;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "middleware")]
mod middleware;
pub mod providers;
pub mod store;

pub use auth_core::http::HttpConfig;
pub use auth_core::provider::{Declaration, EnvProvider, Variable};
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
#[cfg(feature = "middleware")]
pub use middleware::AuthMiddleware;
pub use providers::ProviderKind;
pub use store::StoreSpec;

/// The crates kunci is built from, for what the facade does not re-export.
pub mod core {
    pub use auth_core::*;
}

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
struct RootReadmeDoctests;
