//! Satusehat tokens for kunci (scaffolded by `cargo xtask new-provider satusehat`).
//!
//! The skeleton exchanges an API key for a bearer token: `POST {base}/oauth/token` with JSON
//! `{"api_key": …}` answered by `{"access_token": …, "expires_in": seconds}`. Replace it with
//! what the provider documents.
//!
//! ```no_run
//! use auth_core::{TokenManager, http::HttpConfig, provider::EnvProvider};
//! use auth_satusehat::SatusehatSource;
//!
//! # async fn run() -> Result<(), auth_core::Error> {
//! let source = SatusehatSource::from_env(HttpConfig::default())?; // SATUSEHAT_API_KEY, …
//! let manager = TokenManager::builder(source).build()?;
//! let token = manager.token().await?;
//! # let _ = token; Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use source::SatusehatSource;

/// The provider's name in logs, errors and store keys.
pub const NAME: &str = "satusehat";
/// The variable holding the API key.
pub const ENV_API_KEY: &str = "SATUSEHAT_API_KEY";
/// The variable holding the base URL.
pub const ENV_BASE_URL: &str = "SATUSEHAT_BASE_URL";
/// The default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.example.invalid";

/// What this provider declares about itself: the one list of its variables, read by
/// [`EnvProvider::from_env`](auth_core::provider::EnvProvider::from_env), the facade, the CLI
/// and the generated documentation.
pub const DECLARATION: auth_core::provider::Declaration = {
    use auth_core::provider::{Declaration, Variable};
    Declaration {
        name: NAME,
        display_name: "Satusehat",
        docs_url: "https://example.invalid/satusehat/docs",
        schemes: &["Bearer"],
        variables: &[
            Variable::secret(ENV_API_KEY, "the API key issued to you"),
            Variable::optional(ENV_BASE_URL, "another base URL (a simulator)"),
        ],
    }
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
