//! The Kalsel.dev token source for kunci.
//!
//! A Kalsel.dev login (email and password, [`LoginRequest`]) gives a refresh token that lives
//! 7 days and never changes; this source sends it to `POST {base}/api/v1/refresh`
//! (`{"refresh_token": …, "limit": <minutes>}`) for each new access token. Nothing rotates.
//! Once the refresh token has expired (or is otherwise refused: 422 `jwt_error`) a person must
//! log in again; [`KalselConfig::refresh_token_expires_at`] says when, and so does the
//! manager's [`Stats::credential_expires_at`](auth_core::Stats::credential_expires_at).
//!
//! ```
//! use auth_core::{MemoryStore, TokenManager, http::HttpConfig};
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
//! let store = MemoryStore::new(); // or a file or Redis store, to share the token
//! let manager = TokenManager::builder(KalselSource::new(config, HttpConfig::default())?)
//!     .key(key)
//!     .store(store)
//!     .build()?;
//! let token = manager.token().await?;
//! assert!(token.header_value().to_str()?.starts_with("Bearer "));
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod answer;
mod config;
mod login;
mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use answer::Rejection;
pub use config::{
    DEFAULT_BASE_URL, ENV_ACCOUNT, ENV_BASE_URL, ENV_REFRESH_TOKEN, ENV_TOKEN_LIFETIME_MINUTES,
    KalselConfig, MAX_LIFETIME_MINUTES, MIN_LIFETIME_MINUTES,
};
pub use login::{LOGIN_PATH, Login, LoginRequest};
pub use source::{EXPIRY_WARNING, KalselSource, REFRESH_PATH};

/// The provider's name in logs, errors and store keys.
pub const NAME: &str = "kalsel";

/// What this provider declares about itself: the one list of its variables, read by
/// [`EnvProvider::from_env`](auth_core::provider::EnvProvider::from_env), the facade, the CLI
/// and the generated documentation.
pub const DECLARATION: auth_core::provider::Declaration = {
    use auth_core::provider::{Declaration, Variable};
    Declaration {
        name: NAME,
        display_name: "Kalsel.dev",
        docs_url: "https://kalsel.dev",
        schemes: &["Bearer"],
        variables: &[
            Variable::secret(
                ENV_REFRESH_TOKEN,
                "the refresh token: log in to Kalsel.dev and copy it",
            ),
            Variable::optional(
                ENV_TOKEN_LIFETIME_MINUTES,
                "the access-token lifetime to ask for, in minutes",
            ),
            Variable::optional(
                ENV_BASE_URL,
                "another base URL (a simulator); default https://kalsel.dev",
            ),
            Variable::optional(
                ENV_ACCOUNT,
                "a label for the account, part of the store key",
            ),
        ],
    }
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
