//! [Stamps](https://stamps.co.id) access tokens for kunci.
//!
//! Stamps offers two credentials, and [`StampsSource`] serves either behind the same
//! [`TokenSource`](auth_core::TokenSource) interface:
//!
//! * **JWT** — an authentication string and a merchant ID are exchanged at
//!   `POST {base}/api/auth/get-access-token/` for an HS256 JWT valid 24 hours. The answer has no
//!   expiry field, so the expiry is read from the JWT's `exp` claim (without verifying it: the
//!   client holds no key); a JWT without a readable `exp` is a protocol error. The token is sent
//!   as `Authorization: Bearer <jwt>`, and [`StampsSource::verify`] asks Stamps for its claims.
//! * **Static token** — permanent, sent as `Authorization: Token <x>`; no request is ever made.
//!
//! ```
//! use auth_core::{TokenManager, http::HttpConfig};
//! use auth_stamps::{StampsConfig, StampsSource};
//! use secrecy::SecretString;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), auth_core::Error> {
//! // With a JWT credential: StampsConfig::jwt(SecretString::from("…"), 1), or from the
//! // environment: StampsSource::from_env(HttpConfig::default())? (auth_core::provider::EnvProvider)
//! let config = StampsConfig::static_token(SecretString::from("my-static-token"));
//! let key = config.store_key();
//! let manager = TokenManager::builder(StampsSource::new(config, HttpConfig::default())?).key(key).build()?;
//! let token = manager.token().await?;
//! assert_eq!(token.header_value().to_str().unwrap(), "Token my-static-token");
//! assert_eq!(token.expires_at(), None);
//! # Ok(()) }
//! ```
//!
//! Error kinds, per answer, are listed in `docs/providers/stamps.md`.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod claims;
mod config;
mod response;
mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use claims::{ClaimId, StampsClaims, read_claims};
pub use config::{
    Credentials, DEFAULT_BASE_URL, ENV_BASE_URL, ENV_MERCHANT_ID, ENV_STATIC_TOKEN, ENV_TOKEN,
    StampsConfig,
};
pub use response::{
    StampsRejection, TOKEN_NOT_VALID, Verification, parse_access_token, parse_verification,
};
pub use source::{GET_ACCESS_TOKEN_PATH, StampsSource, VERIFY_TOKEN_PATH};

/// The provider's name in logs, errors and store keys.
pub const NAME: &str = "stamps";

/// What this provider declares about itself: the one list of its variables, read by
/// [`EnvProvider::from_env`](auth_core::provider::EnvProvider::from_env), the facade, the CLI
/// and the generated documentation.
pub const DECLARATION: auth_core::provider::Declaration = {
    use auth_core::provider::{Declaration, Variable};
    Declaration {
    name: NAME,
    display_name: "Stamps",
    docs_url: "https://stamps.co.id",
    schemes: &["Bearer", "Token"],
    variables: &[
        Variable::secret(ENV_TOKEN, "the merchant JWT (set it with STAMPS_MERCHANT_ID, or set STAMPS_STATIC_TOKEN instead)").not_required(),
        Variable::identifier(ENV_MERCHANT_ID, "the merchant ID the JWT belongs to (with STAMPS_TOKEN)").not_required(),
        Variable::secret(ENV_STATIC_TOKEN, "a permanent token (instead of STAMPS_TOKEN and STAMPS_MERCHANT_ID)").not_required(),
        Variable::optional(ENV_BASE_URL, "another base URL (a simulator); default https://stamps.co.id"),
    ],
}
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
