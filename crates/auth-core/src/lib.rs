//! The provider-agnostic heart of kunci: tokens, expiry logic, the traits every provider and
//! store implements, the [`TokenManager`] that caches and refreshes tokens, and the
//! [`TokenPool`] that holds many accounts' managers under one scheduler.
//!
//! ```
//! use auth_core::{Fetched, Token, TokenManager, source};
//! use secrecy::SecretString;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), auth_core::Error> {
//! // Any async closure can be a token source; provider crates implement `TokenSource`.
//! let demo = source::from_fn("demo", |request: auth_core::FetchRequest| async move {
//!     let expires = request.sent_at + Duration::from_secs(3600);
//!     Ok(Fetched::new(Token::bearer(SecretString::from("t0k3n"), request.sent_at, Some(expires))?))
//! });
//! let manager = TokenManager::builder(demo).build()?;
//! let token = manager.token().await?; // fetched once, then served from the cache
//! assert_eq!(token.header_value().to_str().unwrap(), "Bearer t0k3n");
//! # Ok(()) }
//! ```
//!
//! The crate depends on no provider and no store backend. Feature `http` adds the one HTTP
//! exchange all provider crates share (module `http`); feature `test-util` adds
//! `ManualClock`, `TokioClock` and the misbehaving test doubles of module `testing` (a
//! fault-injecting store wrapper and a scripted source).
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod clock;
pub mod credential;
pub mod error;
pub mod expiry;
#[cfg(feature = "http")]
pub mod http;
pub mod jwt;
pub mod manager;
pub mod policy;
pub mod pool;
#[cfg(feature = "http")]
pub mod provider;
pub mod source;
pub mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod token;

pub use clock::{Clock, MonoTime, SharedClock, SystemClock, WallTime};
#[cfg(any(test, feature = "test-util"))]
pub use clock::{ManualClock, TokioClock};
pub use credential::{Credential, Fingerprint};
pub use error::{Error, ErrorKind};
pub use manager::{
    KeepFresh, OwnedToken, Stats, TokenGuard, TokenId, TokenManager, TokenManagerBuilder,
};
pub use policy::{Deadlines, Freshness, RefreshPolicy};
pub use pool::{AccountSpec, Budget, PoolStats, TokenPool, TokenPoolBuilder};
pub use source::{FetchRequest, Fetched, SharedTokenSource, StaticSource, TokenSource};
pub use store::{
    FailureKind, Fence, Lease, MemoryStore, RefreshDigest, SharedFailure, SharedTokenStore,
    StoreError, StoreKey, StoreLock, StoredEntry, TokenStore,
};
pub use token::{AuthScheme, Token};

/// Re-exported so provider crates and users name the same versions.
pub use secrecy;
pub use time;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
