//! Configuration: which Stamps credential is used, and where Stamps is.

use std::fmt;

use auth_core::{
    Error, StoreKey,
    http::{Url, parse_base_url},
    provider::Vars,
};
use secrecy::SecretString;

/// The base URL used when none is configured.
pub const DEFAULT_BASE_URL: &str = "https://stamps.co.id";

/// The environment variable holding the authentication string exchanged for a JWT.
pub const ENV_TOKEN: &str = "STAMPS_TOKEN";
/// The environment variable holding the merchant ID sent as `crm_merchant_id`.
pub const ENV_MERCHANT_ID: &str = "STAMPS_MERCHANT_ID";
/// The environment variable holding a permanent static token.
pub const ENV_STATIC_TOKEN: &str = "STAMPS_STATIC_TOKEN";
/// The environment variable overriding the base URL.
pub const ENV_BASE_URL: &str = "STAMPS_BASE_URL";

/// The credential kunci holds for Stamps.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// The authentication string and merchant ID exchanged at
    /// `POST /api/auth/get-access-token/` for a JWT valid 24 hours.
    Jwt {
        /// The authentication string (`token` in the request body).
        token: SecretString,
        /// The merchant the JWT gives access to (`crm_merchant_id`).
        merchant_id: u64,
    },
    /// A permanent token sent as `Authorization: Token <x>`; no request is ever made for it.
    Static(SecretString),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jwt { merchant_id, .. } => f
                .debug_struct("Jwt")
                .field("token", &"[redacted]")
                .field("merchant_id", merchant_id)
                .finish(),
            Self::Static(_) => f.debug_tuple("Static").field(&"[redacted]").finish(),
        }
    }
}

/// Everything a [`StampsSource`](crate::StampsSource) needs.
#[derive(Clone)]
pub struct StampsConfig {
    pub(crate) credentials: Credentials,
    pub(crate) base_url: Url,
}

impl fmt::Debug for StampsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StampsConfig")
            .field("credentials", &self.credentials)
            .field("base_url", &self.base_url.as_str())
            .finish()
    }
}

impl StampsConfig {
    /// A configuration that exchanges `token` for 24-hour JWTs for merchant `merchant_id`.
    pub fn jwt(token: SecretString, merchant_id: u64) -> Self {
        Self::with_credentials(Credentials::Jwt { token, merchant_id })
    }

    /// A configuration handing out the permanent static token `token`.
    pub fn static_token(token: SecretString) -> Self {
        Self::with_credentials(Credentials::Static(token))
    }

    fn with_credentials(credentials: Credentials) -> Self {
        #[allow(
            clippy::expect_used,
            reason = "a constant, valid URL; covered by a unit test"
        )]
        let base_url = parse_base_url(DEFAULT_BASE_URL).expect("the default base URL is valid");
        Self {
            credentials,
            base_url,
        }
    }

    /// Reads the configuration from the environment: `STAMPS_TOKEN` and `STAMPS_MERCHANT_ID`,
    /// or `STAMPS_STATIC_TOKEN`; optionally `STAMPS_BASE_URL`.
    ///
    /// # Errors
    /// A [`Configuration`](auth_core::ErrorKind::Configuration) error naming the missing or
    /// invalid variable (never its value).
    pub fn from_env() -> Result<Self, Error> {
        let env = crate::DECLARATION.read_env()?;
        Self::from_lookup(|name| env.get(name).cloned())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests and for
    /// configuration that does not live in the process environment).
    ///
    /// # Errors
    /// See [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let vars = Vars::new(&lookup);
        let mut config = match (vars.get(ENV_TOKEN), vars.get(ENV_STATIC_TOKEN)) {
            (Some(_), Some(_)) => {
                return Err(Error::configuration(format!(
                    "both {ENV_TOKEN} and {ENV_STATIC_TOKEN} are set; set only one of them"
                )));
            }
            (Some(token), None) => {
                let raw =
                    vars.required(ENV_MERCHANT_ID, &format!("it is required with {ENV_TOKEN}"))?;
                Self::jwt(SecretString::from(token), parse_merchant_id(&raw)?)
            }
            (None, Some(static_token)) => Self::static_token(SecretString::from(static_token)),
            (None, None) => {
                return Err(Error::configuration(format!(
                    "neither {ENV_TOKEN} (with {ENV_MERCHANT_ID}) nor {ENV_STATIC_TOKEN} is set"
                )));
            }
        };
        config.base_url = vars.base_url(ENV_BASE_URL, DEFAULT_BASE_URL)?;
        Ok(config)
    }

    /// Uses another base URL (`https://…`, or `http://` on loopback for simulators). A path
    /// prefix is kept: `https://gw.example/stamps` → `https://gw.example/stamps/api/auth/…`.
    ///
    /// # Errors
    /// A configuration error when the URL is not acceptable.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, Error> {
        self.base_url = parse_base_url(base_url)?;
        Ok(self)
    }

    /// The credential.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The store key for this credential: `stamps:<merchant_id>` for JWTs, `stamps:static` for a
    /// static token.
    pub fn store_key(&self) -> StoreKey {
        let key = match &self.credentials {
            Credentials::Jwt { merchant_id, .. } => format!("stamps:{merchant_id}"),
            Credentials::Static(_) => "stamps:static".to_owned(),
        };
        #[allow(
            clippy::expect_used,
            reason = "digits and a fixed prefix always form a valid key"
        )]
        StoreKey::new(key).expect("a valid store key")
    }
}

fn parse_merchant_id(raw: &str) -> Result<u64, Error> {
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            Error::configuration(format!("{ENV_MERCHANT_ID} must be a positive integer"))
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use auth_core::ErrorKind;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn default_base_url_is_valid() {
        let config = StampsConfig::static_token(SecretString::from("x"));
        assert_eq!(config.base_url().as_str(), "https://stamps.co.id/");
    }

    #[test]
    fn jwt_from_env() {
        let config = StampsConfig::from_lookup(env(&[
            ("STAMPS_TOKEN", "secret-auth-string"),
            ("STAMPS_MERCHANT_ID", "42"),
            ("STAMPS_BASE_URL", "http://127.0.0.1:9/prefix"),
        ]))
        .unwrap();
        assert!(matches!(
            config.credentials(),
            Credentials::Jwt {
                merchant_id: 42,
                ..
            }
        ));
        assert_eq!(config.base_url().as_str(), "http://127.0.0.1:9/prefix");
        assert_eq!(config.store_key().as_str(), "stamps:42");
        let printed = format!("{config:?}");
        assert!(!printed.contains("secret-auth-string"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    #[test]
    fn static_from_env() {
        let config =
            StampsConfig::from_lookup(env(&[("STAMPS_STATIC_TOKEN", "perm-secret")])).unwrap();
        assert!(matches!(config.credentials(), Credentials::Static(_)));
        assert_eq!(config.store_key().as_str(), "stamps:static");
        assert!(!format!("{config:?}").contains("perm-secret"));
    }

    #[test]
    fn env_errors_name_the_variable_never_the_value() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "STAMPS_TOKEN"),
            (&[("STAMPS_TOKEN", "sekrit-1")], "STAMPS_MERCHANT_ID"),
            (
                &[
                    ("STAMPS_TOKEN", "sekrit-1"),
                    ("STAMPS_MERCHANT_ID", "abc-sekrit"),
                ],
                "STAMPS_MERCHANT_ID",
            ),
            (
                &[("STAMPS_TOKEN", "sekrit-1"), ("STAMPS_MERCHANT_ID", "0")],
                "STAMPS_MERCHANT_ID",
            ),
            (
                &[
                    ("STAMPS_TOKEN", "sekrit-1"),
                    ("STAMPS_STATIC_TOKEN", "sekrit-2"),
                ],
                "STAMPS_STATIC_TOKEN",
            ),
            (
                &[
                    ("STAMPS_STATIC_TOKEN", "sekrit-2"),
                    ("STAMPS_BASE_URL", "http://sekrit.example"),
                ],
                "STAMPS_BASE_URL",
            ),
        ];
        for (pairs, variable) in cases {
            let err = StampsConfig::from_lookup(env(pairs)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration);
            let printed = format!("{err} {err:?}");
            assert!(printed.contains(variable), "{printed}");
            assert!(!printed.contains("sekrit"), "{printed}");
        }
    }
}
