//! [SehatMu](https://istanbul.muhammadiyah.or.id) OAuth2 client-credentials tokens for kunci.
//!
//! [`SehatMuSource`] sends `POST {base}/oauth/token?grant_type=client_credentials` with
//! `client_id` and `client_secret` form-encoded in the body, and accepts both success shapes the
//! document describes: `accessToken` + `accessTokenExpiresAt` (ISO-8601, with or without
//! milliseconds, plus typed metadata) and `access_token` + `expires_in` (seconds counted from
//! when the request was sent). Errors come as a FHIR `OperationOutcome` (4xx) or plain text
//! (5xx) and are classified by what to do. After SehatMu rejects the client secret the source
//! declares a 60-second cool-down, and its rate-limit answers carry one ("1 request per minute
//! after a failed attempt", per client); a 5xx, a timeout, a dropped connection or an unreadable
//! answer gets the manager's ordinary back-off only.
//!
//! ```no_run
//! use auth_core::{TokenManager, http::HttpConfig, provider::EnvProvider};
//! use auth_sehatmu::SehatMuSource;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), auth_core::Error> {
//! // SEHATMU_CLIENT_ID, SEHATMU_CLIENT_SECRET and optionally SEHATMU_BASE_URL
//! let source = SehatMuSource::from_env(HttpConfig::default())?;
//! let key = source.config().store_key(); // sehatmu:<client_id>: one token and one cool-down per client
//! let manager = TokenManager::builder(source).key(key).build()?;
//! let token = manager.token().await?;
//! let header = token.header_value(); // Authorization: Bearer …
//! # let _ = header;
//! # Ok(()) }
//! ```
//!
//! TLS is always verified (the document's curl examples use `--insecure`; kunci does not).
//! Error kinds, per answer, are listed in `docs/providers/sehatmu.md`.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod response;
mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{DEFAULT_BASE_URL, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, SehatMuConfig};
pub use response::{
    CREDENTIALS_REJECTED_TEXT, FAILURE_COOLDOWN, OperationOutcome, OutcomeDetails, OutcomeIssue,
    RATE_LIMIT_TEXT, SehatMuClient, SehatMuGrant, SehatMuMetadata, SehatMuUser,
    parse_token_response,
};
pub use source::{SehatMuSource, TOKEN_PATH};

/// The provider's name in logs, errors and store keys.
pub const NAME: &str = "sehatmu";

/// What this provider declares about itself: the one list of its variables, read by
/// [`EnvProvider::from_env`](auth_core::provider::EnvProvider::from_env), the facade, the CLI
/// and the generated documentation.
pub const DECLARATION: auth_core::provider::Declaration = {
    use auth_core::provider::{Declaration, Variable};
    Declaration {
        name: NAME,
        display_name: "SehatMu",
        docs_url: "https://istanbul.muhammadiyah.or.id",
        schemes: &["Bearer"],
        variables: &[
            Variable::identifier(ENV_CLIENT_ID, "the client ID issued to you"),
            Variable::secret(ENV_CLIENT_SECRET, "the client secret issued to you"),
            Variable::optional(
                ENV_BASE_URL,
                "another base URL (a simulator); default https://istanbul.muhammadiyah.or.id",
            ),
        ],
    }
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
