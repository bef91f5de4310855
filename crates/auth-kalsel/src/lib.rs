//! The Kalsel.dev token source for kunci.
//!
//! Kalsel.dev hands out a short-lived access token and lets it be renewed with
//! `POST {base}/api/v1/refresh` (`{"refresh_token": …, "limit": <minutes>}`). The new token
//! replaces the old one, so this source rotates: the manager stores each new token as the
//! refresh material before anyone uses it. When the refresh token itself has expired the server
//! answers 421 and a person must log in again with username and password.
//!
//! ```
//! use auth_core::{MemoryStore, TokenManager};
//! use auth_kalsel::{KalselConfig, KalselSource};
//! use secrecy::SecretString;
//! # use auth_testkit::kalsel::KalselSim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sim = KalselSim::start().await?;
//! # let (refresh_token, base_url) = (sim.refresh_token(), sim.base_url());
//! // Usually: KalselConfig::from_env()? (KALSEL_REFRESH_TOKEN, KALSEL_TOKEN_LIFETIME_MINUTES)
//! let config = KalselConfig::new(SecretString::from(refresh_token))?
//!     .with_token_lifetime_minutes(60)?
//!     .with_base_url(&base_url)?;
//! let key = config.store_key(); // `kalsel:default`
//! let store = MemoryStore::new(); // use a persistent store: the refresh token rotates
//! let manager = TokenManager::builder(KalselSource::with_default_client(config)?)
//!     .key(key)
//!     .store(store)
//!     .build()?;
//! let token = manager.token().await?;
//! assert!(token.header_value().to_str()?.starts_with("Bearer "));
//! # Ok(()) }
//! ```
//!
//! Because the refresh token rotates, use a persistent store (`auth-store`'s file or Redis
//! store): a process that loses the rotated token has to log in again.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod source;

pub use config::{
    DEFAULT_BASE_URL, ENV_ACCOUNT, ENV_BASE_URL, ENV_REFRESH_TOKEN, ENV_TOKEN_LIFETIME_MINUTES,
    KalselConfig, MAX_LIFETIME_MINUTES, MIN_LIFETIME_MINUTES,
};
pub use source::{JwtRejection, KalselSource, REFRESH_PATH};

/// The provider's name in logs, errors and store keys.
pub const NAME: &str = "kalsel";

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
