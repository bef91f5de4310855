//! The Kalsel.dev configuration: refresh token, token lifetime, base URL.

use std::fmt;

use auth_core::{
    Error, StoreKey,
    http::{Url, parse_base_url},
    provider::Vars,
    time::OffsetDateTime,
};
use secrecy::{ExposeSecret, SecretString};

use crate::NAME;

/// Where Kalsel.dev's API lives.
pub const DEFAULT_BASE_URL: &str = "https://kalsel.dev";

/// The refresh token from logging in (required). It never rotates: it is sent on every refresh
/// until it expires, 7 days after the login.
pub const ENV_REFRESH_TOKEN: &str = "KALSEL_REFRESH_TOKEN";
/// The lifetime of each new token in minutes, 10 to 10080 (optional; without it the server's
/// default of 10080 minutes applies).
pub const ENV_TOKEN_LIFETIME_MINUTES: &str = "KALSEL_TOKEN_LIFETIME_MINUTES";
/// The base URL (optional, default [`DEFAULT_BASE_URL`]).
pub const ENV_BASE_URL: &str = "KALSEL_BASE_URL";
/// The account name used in the store key (optional, default `default`).
pub const ENV_ACCOUNT: &str = "KALSEL_ACCOUNT";

/// The shortest lifetime kunci asks for: 10 minutes, the documented minimum (the server
/// itself has none).
pub const MIN_LIFETIME_MINUTES: u32 = 10;
/// The longest lifetime Kalsel.dev issues, and its default: 10080 minutes (7 days). The server
/// turns 0 or anything above into this.
pub const MAX_LIFETIME_MINUTES: u32 = 10_080;

/// Checks a token lifetime against 10..=10080 minutes.
pub(crate) fn check_lifetime(minutes: u32) -> Result<u32, Error> {
    if (MIN_LIFETIME_MINUTES..=MAX_LIFETIME_MINUTES).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(Error::configuration(format!(
            "the Kalsel.dev token lifetime must be {MIN_LIFETIME_MINUTES} to {MAX_LIFETIME_MINUTES} minutes, not {minutes}"
        )))
    }
}

/// Reads [`ENV_TOKEN_LIFETIME_MINUTES`], when set.
pub(crate) fn lifetime_from(vars: &Vars<'_>) -> Result<Option<u32>, Error> {
    let Some(raw) = vars.get(ENV_TOKEN_LIFETIME_MINUTES) else {
        return Ok(None);
    };
    let minutes = raw.trim().parse::<u32>().map_err(|_| {
        Error::configuration(format!(
            "{ENV_TOKEN_LIFETIME_MINUTES} must be a whole number of minutes from {MIN_LIFETIME_MINUTES} to {MAX_LIFETIME_MINUTES}"
        ))
    })?;
    check_lifetime(minutes)
        .map(Some)
        .map_err(|e| Vars::named(ENV_TOKEN_LIFETIME_MINUTES, e))
}

/// What the refresh token's own claims say, read without verifying them (kunci has no key).
#[derive(serde::Deserialize)]
struct RefreshClaims {
    #[serde(default, rename = "type")]
    kind: Option<serde_json::Number>,
}

/// The server's token types (`utils/mjwt/custom_claim.go`): 0 access, 1 refresh.
const ACCESS_TYPE: i64 = 0;

/// How kunci reaches one Kalsel.dev account. `Debug` never shows the refresh token.
///
/// ```
/// use auth_kalsel::KalselConfig;
/// use secrecy::SecretString;
///
/// let config = KalselConfig::new(SecretString::from("eyJhbGciOiJIUzI1NiJ9.e30.x"))?
///     .with_token_lifetime_minutes(60)?;
/// assert_eq!(config.token_lifetime_minutes(), Some(60));
/// assert!(KalselConfig::new(SecretString::from("t"))?.with_token_lifetime_minutes(5).is_err());
/// assert_eq!(config.store_key().as_str(), "kalsel:default");
/// # Ok::<(), auth_core::Error>(())
/// ```
#[derive(Clone)]
pub struct KalselConfig {
    pub(crate) refresh_token: SecretString,
    /// The refresh token's `exp`, when it is a JWT with a readable one.
    refresh_expires_at: Option<OffsetDateTime>,
    pub(crate) limit: Option<u32>,
    pub(crate) base_url: Url,
    account: String,
    /// The store key, `<provider>:<account>`, validated when the account is set.
    key: StoreKey,
}

impl fmt::Debug for KalselConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KalselConfig")
            .field("refresh_token", &"[redacted]")
            .field("refresh_token_expires_at", &self.refresh_expires_at)
            .field("token_lifetime_minutes", &self.limit)
            .field("base_url", &self.base_url.as_str())
            .field("account", &self.account)
            .finish()
    }
}

impl KalselConfig {
    /// A configuration for the default base URL, the server's default lifetime and the account
    /// `default`.
    ///
    /// The refresh token is read (not verified: kunci has no key) for its `exp`, shown by
    /// [`refresh_token_expires_at`](Self::refresh_token_expires_at); a token that is not a
    /// JWT, or whose `exp` is unreadable or absurd, simply has no known expiry.
    ///
    /// # Errors
    /// A configuration error when the refresh token is empty, holds characters a token never
    /// has, or is an access token (a JWT whose `type` claim is 0: the server refuses those as
    /// "not a refresh token"). The message never shows it.
    pub fn new(refresh_token: SecretString) -> Result<Self, Error> {
        let v = refresh_token.expose_secret();
        if v.trim().is_empty() {
            return Err(Error::configuration(
                "the Kalsel.dev refresh token is empty",
            ));
        }
        if !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::configuration(
                "the Kalsel.dev refresh token holds spaces, control or non-ASCII characters; copy it again",
            ));
        }
        let kind = auth_core::jwt::decode_claims::<RefreshClaims>(v)
            .ok()
            .and_then(|c| c.kind)
            .and_then(|n| n.as_i64());
        if kind == Some(ACCESS_TYPE) {
            return Err(Error::configuration(
                "the Kalsel.dev refresh token is an access token (its `type` claim is 0): use the `refresh_token` of a login, not its `access_token`",
            ));
        }
        let refresh_expires_at = auth_core::jwt::time_claims(v).ok().and_then(|t| t.exp);
        Ok(Self {
            refresh_token,
            refresh_expires_at,
            limit: None,
            base_url: parse_base_url(DEFAULT_BASE_URL)?,
            account: "default".to_owned(),
            key: StoreKey::for_account(NAME, "default")?,
        })
    }

    /// The lifetime of each new token, sent as `limit`.
    ///
    /// # Errors
    /// A configuration error outside 10 to 10080 minutes, the documented range, caught before
    /// any request. (The server itself turns 0 or more than 10080 into 10080 and has no
    /// minimum; kunci keeps the page's range.)
    pub fn with_token_lifetime_minutes(mut self, minutes: u32) -> Result<Self, Error> {
        self.limit = Some(check_lifetime(minutes)?);
        Ok(self)
    }

    /// Another base URL (`https://`, or `http://` on loopback; a path prefix is kept).
    ///
    /// # Errors
    /// A configuration error for an invalid URL.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, Error> {
        self.base_url = parse_base_url(base_url)?;
        Ok(self)
    }

    /// The account name in the store key (`kalsel:<account>`), to keep several accounts apart
    /// in one store.
    ///
    /// # Errors
    /// A configuration error when the name is not valid in a store key.
    pub fn with_account(mut self, account: &str) -> Result<Self, Error> {
        self.key = StoreKey::for_account(NAME, account)?;
        account.clone_into(&mut self.account);
        Ok(self)
    }

    /// Reads [`ENV_REFRESH_TOKEN`] and the optional [`ENV_TOKEN_LIFETIME_MINUTES`],
    /// [`ENV_BASE_URL`] and [`ENV_ACCOUNT`] from the environment.
    ///
    /// # Errors
    /// A configuration error naming the variable that is missing or invalid (never its value).
    pub fn from_env() -> Result<Self, Error> {
        let env = crate::DECLARATION.read_env()?;
        Self::from_lookup(|name| env.get(name).cloned())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let vars = Vars::new(&lookup);
        let refresh_token = vars.secret(
            ENV_REFRESH_TOKEN,
            "log in to Kalsel.dev and copy the refresh token",
        )?;
        let mut config = Self::new(refresh_token).map_err(|e| Vars::named(ENV_REFRESH_TOKEN, e))?;
        config.limit = lifetime_from(&vars)?;
        config.base_url = vars.base_url(ENV_BASE_URL, DEFAULT_BASE_URL)?;
        if let Some(account) = vars.get(ENV_ACCOUNT) {
            config = config
                .with_account(account.trim())
                .map_err(|e| Vars::named(ENV_ACCOUNT, e))?;
        }
        Ok(config)
    }

    /// The lifetime sent as `limit`; `None` leaves it to the server (10080 minutes).
    pub fn token_lifetime_minutes(&self) -> Option<u32> {
        self.limit
    }

    /// When the refresh token expires (its `exp` claim, read unverified; 7 days after the
    /// login on the real server): after that every refresh is refused and a person has to log
    /// in again. `None` when the token is not a JWT with a readable `exp`.
    pub fn refresh_token_expires_at(&self) -> Option<OffsetDateTime> {
        self.refresh_expires_at
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The store key of this account: `kalsel:<account>`. Never derived from the refresh
    /// token, which is secret and changes with every login.
    pub fn store_key(&self) -> StoreKey {
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
        let config = KalselConfig::from_lookup(lookup(&[
            (ENV_REFRESH_TOKEN, "rt-SECRET"),
            (ENV_TOKEN_LIFETIME_MINUTES, " 10 "),
            (ENV_BASE_URL, "http://127.0.0.1:9/kalsel"),
            (ENV_ACCOUNT, "ops"),
        ]))
        .unwrap();
        assert_eq!(config.token_lifetime_minutes(), Some(10));
        assert_eq!(config.base_url().as_str(), "http://127.0.0.1:9/kalsel");
        assert_eq!(config.store_key().as_str(), "kalsel:ops");
        let printed = format!("{config:?} {config:#?}");
        assert!(
            !printed.contains("SECRET") && printed.contains("[redacted]"),
            "{printed}"
        );
        let bare = KalselConfig::from_lookup(lookup(&[(ENV_REFRESH_TOKEN, "rt")])).unwrap();
        assert_eq!(bare.token_lifetime_minutes(), None);
        assert_eq!(bare.base_url().as_str(), "https://kalsel.dev/");
        assert_eq!(bare.store_key().as_str(), "kalsel:default");
    }

    #[test]
    fn lifetime_bounds() {
        let c = KalselConfig::new(SecretString::from("t")).unwrap();
        for ok in [10, 11, 600, 10_080] {
            assert_eq!(
                c.clone()
                    .with_token_lifetime_minutes(ok)
                    .unwrap()
                    .token_lifetime_minutes(),
                Some(ok)
            );
        }
        for bad in [0, 9, 10_081, u32::MAX] {
            let e = c.clone().with_token_lifetime_minutes(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Configuration);
            assert!(e.message().contains("10 to 10080"), "{e}");
        }
    }

    #[test]
    fn an_access_token_is_refused_and_a_refresh_tokens_expiry_is_read() {
        use auth_testkit::jwt::unsigned;
        use serde_json::json;

        let access = unsigned(&json!({"exp": 1_900_000_000, "type": 0, "identity": "a@b.co"}));
        let err = KalselConfig::from_lookup(lookup(&[(ENV_REFRESH_TOKEN, &access)])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(
            err.message().contains(ENV_REFRESH_TOKEN) && err.message().contains("access token"),
            "{err}"
        );
        assert!(!format!("{err:?}").contains(&access));

        let refresh = unsigned(&json!({"exp": 1_900_000_000, "type": 1}));
        let config = KalselConfig::new(SecretString::from(refresh)).unwrap();
        assert_eq!(
            config
                .refresh_token_expires_at()
                .map(OffsetDateTime::unix_timestamp),
            Some(1_900_000_000)
        );
        // not a JWT, or an `exp` that is no time at all: no known expiry, no error
        for token in [
            "rt-opaque".to_owned(),
            unsigned(&json!({"exp": 1e300, "type": 1})),
            unsigned(&json!({"exp": i64::MAX, "type": 1})),
            unsigned(&json!({"exp": "soon"})),
        ] {
            let config = KalselConfig::new(SecretString::from(token.clone())).unwrap();
            assert_eq!(config.refresh_token_expires_at(), None, "{token}");
        }
        // an `exp` far in the past or future is read as it is
        let old = unsigned(&json!({"exp": -62_135_596_800_i64, "type": 1}));
        assert_eq!(
            KalselConfig::new(SecretString::from(old))
                .unwrap()
                .refresh_token_expires_at()
                .map(OffsetDateTime::year),
            Some(1)
        );
    }

    #[test]
    fn missing_or_invalid_variables_are_named_never_shown() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[], ENV_REFRESH_TOKEN),
            (&[(ENV_REFRESH_TOKEN, "")], ENV_REFRESH_TOKEN),
            (&[(ENV_REFRESH_TOKEN, "a SECRET")], ENV_REFRESH_TOKEN),
            (
                &[
                    (ENV_REFRESH_TOKEN, "SECRET"),
                    (ENV_TOKEN_LIFETIME_MINUTES, "9"),
                ],
                ENV_TOKEN_LIFETIME_MINUTES,
            ),
            (
                &[
                    (ENV_REFRESH_TOKEN, "SECRET"),
                    (ENV_TOKEN_LIFETIME_MINUTES, "1 week"),
                ],
                ENV_TOKEN_LIFETIME_MINUTES,
            ),
            (
                &[
                    (ENV_REFRESH_TOKEN, "SECRET"),
                    (ENV_BASE_URL, "http://kalsel.dev"),
                ],
                ENV_BASE_URL,
            ),
            (
                &[(ENV_REFRESH_TOKEN, "SECRET"), (ENV_ACCOUNT, "a b")],
                ENV_ACCOUNT,
            ),
        ];
        for (vars, variable) in cases {
            let err = KalselConfig::from_lookup(lookup(vars)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration);
            let printed = format!("{err} {err:?}");
            assert!(printed.contains(variable), "{printed}");
            assert!(!printed.contains("SECRET"), "{printed}");
        }
    }
}
