//! Configuration: the client credentials and where SehatMu is.

use std::fmt;

use auth_core::{
    Error, StoreKey,
    http::{Url, parse_base_url},
    provider::Vars,
};
use secrecy::SecretString;

/// The base URL used when none is configured.
pub const DEFAULT_BASE_URL: &str = "https://istanbul.muhammadiyah.or.id";

/// The environment variable holding the client ID.
pub const ENV_CLIENT_ID: &str = "SEHATMU_CLIENT_ID";
/// The environment variable holding the client secret.
pub const ENV_CLIENT_SECRET: &str = "SEHATMU_CLIENT_SECRET";
/// The environment variable overriding the base URL.
pub const ENV_BASE_URL: &str = "SEHATMU_BASE_URL";

/// Everything a [`SehatMuSource`](crate::SehatMuSource) needs.
///
/// The client ID is an identifier (it names the account in logs and store keys); the client
/// secret is a [`SecretString`] and never printed.
#[derive(Clone)]
pub struct SehatMuConfig {
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) base_url: Url,
}

impl fmt::Debug for SehatMuConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SehatMuConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("base_url", &self.base_url.as_str())
            .finish()
    }
}

impl SehatMuConfig {
    /// A configuration for the client `client_id` with the secret `client_secret`.
    ///
    /// # Errors
    /// A configuration error when the client ID is empty or holds control characters.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Result<Self, Error> {
        let client_id = client_id.into();
        if client_id.trim().is_empty() || client_id.chars().any(char::is_control) {
            return Err(Error::configuration(
                "the SehatMu client ID is empty or holds control characters",
            ));
        }
        #[allow(
            clippy::expect_used,
            reason = "a constant, valid URL; covered by a unit test"
        )]
        let base_url = parse_base_url(DEFAULT_BASE_URL).expect("the default base URL is valid");
        Ok(Self {
            client_id,
            client_secret,
            base_url,
        })
    }

    /// Reads `SEHATMU_CLIENT_ID`, `SEHATMU_CLIENT_SECRET` and, optionally, `SEHATMU_BASE_URL`.
    ///
    /// # Errors
    /// A [`Configuration`](auth_core::ErrorKind::Configuration) error naming the missing or
    /// invalid variable (never its value).
    pub fn from_env() -> Result<Self, Error> {
        let env = crate::DECLARATION.read_env()?;
        Self::from_lookup(|name| env.get(name).cloned())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// # Errors
    /// See [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let vars = Vars::new(&lookup);
        let client_id = vars.required(ENV_CLIENT_ID, "use the client ID issued to you")?;
        let client_secret =
            vars.secret(ENV_CLIENT_SECRET, "use the client secret issued to you")?;
        let mut config = Self::new(client_id.trim(), client_secret)
            .map_err(|e| Vars::named(ENV_CLIENT_ID, e))?;
        config.base_url = vars.base_url(ENV_BASE_URL, DEFAULT_BASE_URL)?;
        Ok(config)
    }

    /// Uses another base URL (`https://…`, or `http://` on loopback for simulators); a path
    /// prefix is kept.
    ///
    /// # Errors
    /// A configuration error when the URL is not acceptable.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, Error> {
        self.base_url = parse_base_url(base_url)?;
        Ok(self)
    }

    /// The client ID.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The store key: `sehatmu:<client_id>`. SehatMu's rate limit is per client ID, so every
    /// process using the same client shares one entry (and one cool-down). A client ID that
    /// does not fit a store key's characters (`A-Z a-z 0-9 . _ - : @`, 200 at most) is replaced
    /// by a stable hash: `sehatmu:id-<16 hex digits>`.
    pub fn store_key(&self) -> StoreKey {
        StoreKey::new(format!("sehatmu:{}", self.client_id)).unwrap_or_else(|_| {
            #[allow(
                clippy::expect_used,
                reason = "a fixed prefix and hex digits always form a valid key"
            )]
            StoreKey::new(format!(
                "sehatmu:id-{:016x}",
                fnv1a64(self.client_id.as_bytes())
            ))
            .expect("a valid store key")
        })
    }
}

/// FNV-1a, 64 bits: stable across processes, versions and platforms (unlike `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
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
    fn from_env_and_redacted_debug() {
        let config = SehatMuConfig::from_lookup(env(&[
            (
                "SEHATMU_CLIENT_ID",
                "3310fd56-10fb-4319-8044-9c0eb570a25f.sehatmu.client",
            ),
            ("SEHATMU_CLIENT_SECRET", "906959aa-sekrit"),
        ]))
        .unwrap();
        assert_eq!(
            config.base_url().as_str(),
            "https://istanbul.muhammadiyah.or.id/"
        );
        assert_eq!(
            config.store_key().as_str(),
            "sehatmu:3310fd56-10fb-4319-8044-9c0eb570a25f.sehatmu.client"
        );
        let printed = format!("{config:?}");
        assert!(!printed.contains("sekrit"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    #[test]
    fn env_errors_name_the_variable_never_the_value() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "SEHATMU_CLIENT_ID"),
            (&[("SEHATMU_CLIENT_ID", "id")], "SEHATMU_CLIENT_SECRET"),
            (
                &[("SEHATMU_CLIENT_ID", "id"), ("SEHATMU_CLIENT_SECRET", " ")],
                "SEHATMU_CLIENT_SECRET",
            ),
            (
                &[
                    ("SEHATMU_CLIENT_ID", "id\u{7}x"),
                    ("SEHATMU_CLIENT_SECRET", "sekrit"),
                ],
                "SEHATMU_CLIENT_ID",
            ),
            (
                &[
                    ("SEHATMU_CLIENT_ID", "id"),
                    ("SEHATMU_CLIENT_SECRET", "sekrit"),
                    ("SEHATMU_BASE_URL", "http://sekrit.example"),
                ],
                "SEHATMU_BASE_URL",
            ),
        ];
        for (pairs, variable) in cases {
            let err = SehatMuConfig::from_lookup(env(pairs)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration);
            let printed = format!("{err} {err:?}");
            assert!(printed.contains(variable), "{printed}");
            assert!(!printed.contains("sekrit"), "{printed}");
        }
    }

    #[test]
    fn odd_client_ids_get_a_stable_hashed_key() {
        let config =
            SehatMuConfig::new("client with spaces/and slashes", SecretString::from("s")).unwrap();
        let key = config.store_key();
        assert!(key.as_str().starts_with("sehatmu:id-"), "{key}");
        assert_eq!(
            key,
            SehatMuConfig::new("client with spaces/and slashes", SecretString::from("t"))
                .unwrap()
                .store_key()
        );
        assert_ne!(
            key,
            SehatMuConfig::new("client with spaces/and slashes!", SecretString::from("s"))
                .unwrap()
                .store_key()
        );
        let long = "a".repeat(300);
        assert!(
            SehatMuConfig::new(long, SecretString::from("s"))
                .unwrap()
                .store_key()
                .as_str()
                .len()
                < 40
        );
    }
}
