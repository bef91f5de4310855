//! Token stores for kunci: where a [`TokenManager`](auth_core::TokenManager) keeps tokens,
//! refresh material and cool-downs between calls, processes and hosts.
//!
//! * [`FileStore`] — the default on one machine: one file per key, atomic writes, mode 0600,
//!   compare-and-swap saves and a cross-process OS lock for the refresh.
//! * `RedisStore` (feature `redis`; `rediss://` with feature `redis-tls`) — shared by a fleet
//!   of processes on many hosts.
//! * `PostgresStore` (feature `postgres`) — shared by a fleet that runs PostgreSQL: a row per
//!   key, a lease for the refresh lock timed by the server's clock, waiters woken by
//!   `LISTEN/NOTIFY`, a schema it creates and migrates itself.
//! * [`Cipher`] — encryption at rest (XChaCha20-Poly1305) for every store here.
//!
//! The in-memory store is [`auth_core::MemoryStore`].
//!
//! ```
//! use auth_core::{FetchRequest, Fetched, Token, TokenManager, source};
//! use auth_store::{Cipher, FileStore};
//! use secrecy::SecretString;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let key = Cipher::generate_key_base64(); // keep it in a secret manager, e.g. as KUNCI_STORE_KEY
//! let store = FileStore::new(dir.path())?.with_cipher(Cipher::from_encoded(&key)?);
//!
//! let demo = source::from_fn("demo", |req: FetchRequest| async move {
//!     let token = Token::bearer(SecretString::from("t0k3n"), req.sent_at, Some(req.sent_at + Duration::from_secs(3600)))?;
//!     Ok(Fetched::new(token))
//! });
//! let manager = TokenManager::builder(demo).store(store.clone()).build()?;
//! manager.token().await?; // fetched once, saved encrypted to <dir>/demo+default.json
//! assert!(store.entry_path(manager.key()).exists());
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod cipher;
mod codec;
mod file;
#[cfg(feature = "postgres")]
mod postgres_store;
mod redact;
#[cfg(feature = "redis")]
mod redis_store;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod release;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod waiters;

pub use cipher::{Cipher, KEY_LEN, KeyError};
pub use file::{FileLock, FileStore};
#[cfg(feature = "postgres")]
pub use postgres_store::{PostgresLock, PostgresOptions, PostgresStore};
pub use redact::redact_url;
#[cfg(feature = "redis")]
pub use redis_store::{RedisLock, RedisOptions, RedisStore};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
