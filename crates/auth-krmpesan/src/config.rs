//! The KrmPesan configuration: refresh token, device key, optionally the IdToken held now, and
//! the base URL.

use std::fmt;

use auth_core::{
    Error, StoreKey,
    http::{Url, parse_base_url},
    provider::Vars,
};
use secrecy::{ExposeSecret, SecretString};

use crate::NAME;

/// Where KrmPesan's API lives.
pub const DEFAULT_BASE_URL: &str = "https://api.krmpesan.app";

/// The refresh token from the dashboard (required).
pub const ENV_REFRESH_TOKEN: &str = "KRMPESAN_REFRESH_TOKEN";
/// The device key (the dashboard's "Device ID"; required).
pub const ENV_DEVICE_KEY: &str = "KRMPESAN_DEVICE_KEY";
/// The base URL (optional, default [`DEFAULT_BASE_URL`]).
pub const ENV_BASE_URL: &str = "KRMPESAN_BASE_URL";
/// The IdToken held now (optional): handed out first while it is valid, saving one request.
pub const ENV_ID_TOKEN: &str = "KRMPESAN_ID_TOKEN";
/// The account name used in the store key (optional, default `default`).
pub const ENV_ACCOUNT: &str = "KRMPESAN_ACCOUNT";

/// How kunci reaches one KrmPesan account. `Debug` never shows a secret.
///
/// ```
/// use auth_krmpesan::KrmPesanConfig;
/// use secrecy::SecretString;
///
/// let config = KrmPesanConfig::new(
///     SecretString::from("eyJjdHkiOiJKxxxxxxxx"),
///     SecretString::from("ap-southeast-1_3445xxxxx"),
/// )?
/// .with_base_url("https://api.krmpesan.app")?;
/// assert!(!format!("{config:?}").contains("eyJjdHkiOiJK"));
/// assert_eq!(config.store_key().as_str(), "krmpesan:default");
/// # Ok::<(), auth_core::Error>(())
/// ```
#[derive(Clone)]
pub struct KrmPesanConfig {
    pub(crate) refresh_token: SecretString,
    pub(crate) device_key: SecretString,
    pub(crate) id_token: Option<SecretString>,
    pub(crate) base_url: Url,
    account: String,
    /// The store key, `<provider>:<account>`, validated when the account is set.
    key: StoreKey,
}

impl fmt::Debug for KrmPesanConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KrmPesanConfig")
            .field("refresh_token", &"[redacted]")
            .field("device_key", &"[redacted]")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url.as_str())
            .field("account", &self.account)
            .finish()
    }
}

fn check_secret(what: &str, value: &SecretString) -> Result<(), Error> {
    let v = value.expose_secret();
    if v.trim().is_empty() {
        return Err(Error::configuration(format!(
            "the KrmPesan {what} is empty"
        )));
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::configuration(format!(
            "the KrmPesan {what} holds spaces, control or non-ASCII characters; copy it again from the dashboard"
        )));
    }
    Ok(())
}

impl KrmPesanConfig {
    /// A configuration for the default base URL and the account `default`.
    ///
    /// # Errors
    /// A configuration error when a value is empty or holds characters a dashboard value never
    /// has (the message names the value, never shows it).
    pub fn new(refresh_token: SecretString, device_key: SecretString) -> Result<Self, Error> {
        check_secret("refresh token", &refresh_token)?;
        check_secret("device key", &device_key)?;
        let base_url = parse_base_url(DEFAULT_BASE_URL)?;
        Ok(Self {
            refresh_token,
            device_key,
            id_token: None,
            base_url,
            account: "default".to_owned(),
            key: StoreKey::for_account(NAME, "default")?,
        })
    }

    /// Another base URL (`https://`, or `http://` on loopback; a path prefix is kept).
    ///
    /// # Errors
    /// A configuration error for an invalid URL.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, Error> {
        self.base_url = parse_base_url(base_url)?;
        Ok(self)
    }

    /// The IdToken held now: the first fetch hands it out instead of sending a request, if its
    /// `exp` claim is readable and more than a minute away.
    ///
    /// # Errors
    /// A configuration error when it is empty or not sendable in a header.
    pub fn with_id_token(mut self, id_token: SecretString) -> Result<Self, Error> {
        check_secret("IdToken", &id_token)?;
        self.id_token = Some(id_token);
        Ok(self)
    }

    /// The account name in the store key (`krmpesan:<account>`), to keep several KrmPesan
    /// accounts apart in one store.
    ///
    /// # Errors
    /// A configuration error when the name is not valid in a store key.
    pub fn with_account(mut self, account: &str) -> Result<Self, Error> {
        self.key = StoreKey::for_account(NAME, account)?;
        account.clone_into(&mut self.account);
        Ok(self)
    }

    /// Reads [`ENV_REFRESH_TOKEN`], [`ENV_DEVICE_KEY`] and the optional [`ENV_BASE_URL`],
    /// [`ENV_ID_TOKEN`], [`ENV_ACCOUNT`] from the environment.
    ///
    /// # Errors
    /// A configuration error naming the variable that is missing or invalid (never its value).
    pub fn from_env() -> Result<Self, Error> {
        let env = crate::DECLARATION.read_env()?;
        Self::from_lookup(|name| env.get(name).cloned())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (a config file,
    /// a secrets manager, a test).
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let vars = Vars::new(&lookup);
        const HINT: &str = "copy the value from the KrmPesan dashboard";
        let refresh_token = vars.secret(ENV_REFRESH_TOKEN, HINT)?;
        check_secret("refresh token", &refresh_token)
            .map_err(|e| Vars::named(ENV_REFRESH_TOKEN, e))?;
        let device_key = vars.secret(ENV_DEVICE_KEY, HINT)?;
        check_secret("device key", &device_key).map_err(|e| Vars::named(ENV_DEVICE_KEY, e))?;
        let mut config = Self::new(refresh_token, device_key)?;
        config.base_url = vars.base_url(ENV_BASE_URL, DEFAULT_BASE_URL)?;
        if let Some(id) = vars.get(ENV_ID_TOKEN) {
            config = config
                .with_id_token(SecretString::from(id))
                .map_err(|e| Vars::named(ENV_ID_TOKEN, e))?;
        }
        if let Some(account) = vars.get(ENV_ACCOUNT) {
            config = config
                .with_account(account.trim())
                .map_err(|e| Vars::named(ENV_ACCOUNT, e))?;
        }
        Ok(config)
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The store key of this account: `krmpesan:<account>`. It never contains a secret.
    pub fn store_key(&self) -> StoreKey {
        // The account was validated by `with_account` (or is `default`).
        self.key.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use auth_core::ErrorKind;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn from_lookup_reads_every_variable() {
        let config = KrmPesanConfig::from_lookup(lookup(&[
            (ENV_REFRESH_TOKEN, "rt-SECRET"),
            (ENV_DEVICE_KEY, "dk-SECRET"),
            (ENV_BASE_URL, "http://127.0.0.1:9/gw"),
            (ENV_ID_TOKEN, "id-SECRET"),
            (ENV_ACCOUNT, "shop-1"),
        ]))
        .unwrap();
        assert_eq!(config.base_url().as_str(), "http://127.0.0.1:9/gw");
        assert_eq!(config.store_key().as_str(), "krmpesan:shop-1");
        assert!(config.id_token.is_some());
        let printed = format!("{config:?} {config:#?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn missing_or_invalid_variables_are_named_never_shown() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[(ENV_DEVICE_KEY, "dk-SECRET")], ENV_REFRESH_TOKEN),
            (&[(ENV_REFRESH_TOKEN, "rt-SECRET")], ENV_DEVICE_KEY),
            (
                &[(ENV_REFRESH_TOKEN, "  "), (ENV_DEVICE_KEY, "dk-SECRET")],
                ENV_REFRESH_TOKEN,
            ),
            (
                &[
                    (ENV_REFRESH_TOKEN, "rt-SECRET"),
                    (ENV_DEVICE_KEY, "dk SECRET"),
                ],
                ENV_DEVICE_KEY,
            ),
            (
                &[
                    (ENV_REFRESH_TOKEN, "rt-SECRET"),
                    (ENV_DEVICE_KEY, "dk-SECRET"),
                    (ENV_BASE_URL, "http://example.com"),
                ],
                ENV_BASE_URL,
            ),
            (
                &[
                    (ENV_REFRESH_TOKEN, "rt-SECRET"),
                    (ENV_DEVICE_KEY, "dk-SECRET"),
                    (ENV_ACCOUNT, "a/b"),
                ],
                ENV_ACCOUNT,
            ),
        ];
        for (vars, variable) in cases {
            let err = KrmPesanConfig::from_lookup(lookup(vars)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration);
            let printed = format!("{err} {err:?}");
            assert!(printed.contains(variable), "{printed}");
            assert!(!printed.contains("SECRET"), "{printed}");
        }
    }

    #[test]
    fn default_base_url_and_key() {
        let config = KrmPesanConfig::new(SecretString::from("a"), SecretString::from("b")).unwrap();
        assert_eq!(config.base_url().as_str(), "https://api.krmpesan.app/");
        assert_eq!(config.store_key().as_str(), "krmpesan:default");
    }
}
