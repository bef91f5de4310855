//! SATUSEHAT tokens for kunci: the OAuth2 client-credentials grant of Indonesia's national
//! health-data platform (Kementerian Kesehatan), which every health facility integrates with.
//!
//! `POST {base}/oauth2/v1/accesstoken?grant_type=client_credentials` with `client_id` and
//! `client_secret` form-encoded in the body. The answer is flat JSON whose values are all
//! strings (`"expires_in": "14399"`, `"issued_at"` in epoch milliseconds, `"token_type":
//! "BearerToken"`); errors are FHIR `OperationOutcome`s.
//!
//! ```no_run
//! use auth_core::{TokenManager, http::HttpConfig, provider::EnvProvider};
//! use auth_satusehat::SatusehatSource;
//!
//! # async fn run() -> Result<(), auth_core::Error> {
//! // SATUSEHAT_CLIENT_ID, SATUSEHAT_CLIENT_SECRET, optionally SATUSEHAT_ENVIRONMENT
//! let source = SatusehatSource::from_env(HttpConfig::default())?;
//! let manager = TokenManager::builder(source).build()?;
//! let token = manager.token().await?;
//! # let _ = token; Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod answer;
mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use answer::Outcome;
pub use source::{SatusehatConfig, SatusehatSource, TOKEN_PATH};

/// The provider's name in logs, errors and store keys.
pub const NAME: &str = "satusehat";
/// The variable holding the client ID.
pub const ENV_CLIENT_ID: &str = "SATUSEHAT_CLIENT_ID";
/// The variable holding the client secret.
pub const ENV_CLIENT_SECRET: &str = "SATUSEHAT_CLIENT_SECRET";
/// The variable naming the environment: `production` (the default), `staging` or
/// `development`.
pub const ENV_ENVIRONMENT: &str = "SATUSEHAT_ENVIRONMENT";
/// The variable overriding the base URL (a simulator, a gateway).
pub const ENV_BASE_URL: &str = "SATUSEHAT_BASE_URL";

/// The production base URL.
pub const PRODUCTION_BASE_URL: &str = "https://api-satusehat.kemkes.go.id";
/// The staging base URL.
pub const STAGING_BASE_URL: &str = "https://api-satusehat-stg.dto.kemkes.go.id";
/// The development base URL.
pub const DEVELOPMENT_BASE_URL: &str = "https://api-satusehat-dev.dto.kemkes.go.id";

/// What this provider declares about itself: the one list of its variables, read by
/// [`EnvProvider::from_env`](auth_core::provider::EnvProvider::from_env), the facade, the CLI
/// and the generated documentation.
pub const DECLARATION: auth_core::provider::Declaration = {
    use auth_core::provider::{Declaration, Variable};
    Declaration {
        name: NAME,
        display_name: "SATUSEHAT",
        docs_url: "https://satusehat.kemkes.go.id/platform/docs",
        schemes: &["Bearer"],
        variables: &[
            Variable::identifier(
                ENV_CLIENT_ID,
                "the client ID of your organization's SATUSEHAT application",
            ),
            Variable::secret(ENV_CLIENT_SECRET, "the client secret of that application"),
            Variable::optional(
                ENV_ENVIRONMENT,
                "production (default), staging or development",
            ),
            Variable::optional(
                ENV_BASE_URL,
                "another base URL (a simulator); overrides SATUSEHAT_ENVIRONMENT",
            ),
        ],
    }
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
