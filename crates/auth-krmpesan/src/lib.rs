//! The KrmPesan token source for kunci.
//!
//! KrmPesan's dashboard hands out three values: the IdToken (sent to the REST API, valid 24
//! hours), the refresh token and the device key ("Device ID"; both permanent). This crate
//! turns the last two into fresh IdTokens: `GET {base}/tokens?refresh_token=…&device_key=…`
//! (the documents disagree on the method, the path and the parameter name; why kunci sends
//! this is in `docs/providers/krmpesan.md`).
//!
//! ```
//! use auth_core::{MemoryStore, TokenManager, http::HttpConfig};
//! use auth_krmpesan::{KrmPesanConfig, KrmPesanSource};
//! use secrecy::SecretString;
//! # use auth_testkit::krmpesan::KrmPesanSim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sim = KrmPesanSim::start().await?;
//! # let (refresh_token, device_key, base_url) = (sim.refresh_token().to_owned(), sim.device_key().to_owned(), sim.base_url());
//! // Usually: KrmPesanConfig::from_env()? (KRMPESAN_REFRESH_TOKEN, KRMPESAN_DEVICE_KEY)
//! let config = KrmPesanConfig::new(SecretString::from(refresh_token), SecretString::from(device_key))?
//!     .with_base_url(&base_url)?;
//! let key = config.store_key(); // `krmpesan:default`
//! let source = KrmPesanSource::new(config, HttpConfig::default())?;
//! let manager = TokenManager::builder(source)
//!     .key(key)
//!     .store(MemoryStore::new())
//!     .build()?;
//! let token = manager.token().await?; // one request, then cached for ~24 hours
//! assert!(token.header_value().to_str()?.starts_with("Bearer "));
//! # Ok(()) }
//! ```
//!
//! The answer is AWS Cognito's `AuthenticationResult` (`InitiateAuth`, `REFRESH_TOKEN_AUTH`).
//! When the user pool rotates refresh tokens it also carries a new `RefreshToken`: the source
//! returns it as a rotation ([`Fetched::rotated`](auth_core::Fetched::rotated)), so the
//! manager stores it before the IdToken is handed out and sends it next time.
//!
//! Errors: 400, 401 and 403 are [`ReauthenticationRequired`](auth_core::ErrorKind) (generate
//! new values on the dashboard) showing Cognito's `NotAuthorizedException` message with every
//! configured secret scrubbed from it — except Cognito's throttling (`TooManyRequestsException`,
//! also a 400), which is rate limited; 5xx, timeouts and connection failures are transient; an
//! answer that cannot be read is a protocol error.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{
    DEFAULT_BASE_URL, ENV_ACCOUNT, ENV_BASE_URL, ENV_DEVICE_KEY, ENV_ID_TOKEN, ENV_REFRESH_TOKEN,
    KrmPesanConfig,
};
pub use source::{KrmPesanSource, Rejection, TOKENS_PATH};

/// The provider's name in logs, errors and store keys.
pub const NAME: &str = "krmpesan";

/// What this provider declares about itself: the one list of its variables, read by
/// [`EnvProvider::from_env`](auth_core::provider::EnvProvider::from_env), the facade, the CLI
/// and the generated documentation.
pub const DECLARATION: auth_core::provider::Declaration = {
    use auth_core::provider::{Declaration, Variable};
    Declaration {
        name: NAME,
        display_name: "KrmPesan",
        docs_url: "https://api.krmpesan.app",
        schemes: &["Bearer"],
        variables: &[
            Variable::secret(
                ENV_REFRESH_TOKEN,
                "the refresh token, from the KrmPesan dashboard",
            ),
            Variable::secret(
                ENV_DEVICE_KEY,
                "the device key, from the KrmPesan dashboard",
            ),
            Variable::optional(
                ENV_BASE_URL,
                "another base URL (a simulator); default https://api.krmpesan.app",
            ),
            Variable {
                secret: true,
                credential: true,
                ..Variable::optional(
                    ENV_ID_TOKEN,
                    "the ID token, from the KrmPesan dashboard (optional)",
                )
            },
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
