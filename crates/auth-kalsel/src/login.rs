//! Logging in once with email and password (`POST {base}/api/v1/login`) to get the refresh
//! token — what a person does in the browser, for `kunci login kalsel`. The password is sent
//! once and kept nowhere: not in the answer, an error, a log line or the store.

use std::fmt;

use auth_core::{
    Error, Token,
    http::{HttpClient, Url, endpoint, parse_base_url},
    provider::Vars,
    time::OffsetDateTime,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    DEFAULT_BASE_URL, ENV_BASE_URL, KalselConfig, MAX_LIFETIME_MINUTES, NAME,
    answer::{self, detail, rate_limited, with_rejection},
    config::{check_lifetime, lifetime_from},
    source::expiry,
};

/// The path below the base URL.
pub const LOGIN_PATH: &str = "api/v1/login";

/// A login to send: the account's email, the base URL and the access token's lifetime
/// (`limit`), all checked before the password is even asked for; the password is given to
/// [`send`](Self::send) only, and kept by nothing.
///
/// ```
/// use auth_kalsel::LoginRequest;
///
/// let login = LoginRequest::new("me@example.com")?.with_token_lifetime_minutes(60)?;
/// assert_eq!(login.token_lifetime_minutes(), Some(60));
/// assert!(LoginRequest::new("me@example.com")?
///     .with_token_lifetime_minutes(5)
///     .is_err()); // caught before any request
/// # Ok::<(), auth_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LoginRequest {
    email: String,
    limit: Option<u32>,
    base_url: Url,
}

#[derive(Serialize)]
struct LoginBody<'a> {
    email: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
}

/// The fields of the 200 answer kunci uses (`dto.UserLoginResponse`; `email`, `name`,
/// `is_admin` and `avatar` are ignored). No `Debug`: it holds tokens.
#[derive(Deserialize)]
struct LoginAnswer {
    access_token: String,
    refresh_token: String,
    expired: i64,
}

/// What a login gave: the refresh token to configure (never rotated; it lives 7 days), and
/// the access token that came with it. `Debug` never shows either.
#[non_exhaustive]
pub struct Login {
    /// The refresh token: a secret, for `KALSEL_REFRESH_TOKEN`.
    pub refresh_token: SecretString,
    /// When the refresh token expires (its `exp`, read unverified).
    pub refresh_token_expires_at: Option<OffsetDateTime>,
    /// The access token of the login, valid for the lifetime asked for.
    pub access_token: Token,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("refresh_token", &"[redacted]")
            .field("refresh_token_expires_at", &self.refresh_token_expires_at)
            .field("access_token", &self.access_token)
            .finish()
    }
}

impl LoginRequest {
    /// A login to the default base URL with the server's default lifetime.
    ///
    /// # Errors
    /// A configuration error when the email is empty or has no `@`.
    pub fn new(email: &str) -> Result<Self, Error> {
        let email = email.trim();
        if email.is_empty() || !email.contains('@') {
            return Err(Error::configuration(
                "the Kalsel.dev login needs the account's email address",
            ));
        }
        Ok(Self {
            email: email.to_owned(),
            limit: None,
            base_url: parse_base_url(DEFAULT_BASE_URL)?,
        })
    }

    /// Reads [`ENV_BASE_URL`](crate::ENV_BASE_URL) and
    /// [`ENV_TOKEN_LIFETIME_MINUTES`](crate::ENV_TOKEN_LIFETIME_MINUTES) through `lookup`.
    ///
    /// # Errors
    /// As [`new`](Self::new), and a configuration error naming a variable that is invalid.
    pub fn from_lookup(
        email: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let vars = Vars::new(&lookup);
        let mut login = Self::new(email)?;
        login.limit = lifetime_from(&vars)?;
        login.base_url = vars.base_url(ENV_BASE_URL, DEFAULT_BASE_URL)?;
        Ok(login)
    }

    /// The access token's lifetime, sent as `limit`.
    ///
    /// # Errors
    /// A configuration error outside 10 to 10080 minutes, before any request.
    pub fn with_token_lifetime_minutes(mut self, minutes: u32) -> Result<Self, Error> {
        self.limit = Some(check_lifetime(minutes)?);
        Ok(self)
    }

    /// The lifetime sent as `limit`; `None` leaves it to the server (10080 minutes).
    pub fn token_lifetime_minutes(&self) -> Option<u32> {
        self.limit
    }

    /// The email.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// Another base URL (`https://`, or `http://` on loopback).
    ///
    /// # Errors
    /// A configuration error for an invalid URL.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, Error> {
        self.base_url = parse_base_url(base_url)?;
        Ok(self)
    }

    /// Sends the login once with `password`. `sent_at` is the wall-clock moment of sending
    /// (the access token's expiry is measured from it, as for a refresh).
    ///
    /// # Errors
    /// `Configuration` for an empty password (nothing is sent) or input the server refuses
    /// (400, with its validation text);
    /// [`ReauthenticationRequired`](auth_core::ErrorKind::ReauthenticationRequired) for a
    /// wrong email or password (401); `RateLimited` for 429; `Transient` for network failures
    /// and 5xx; `Protocol` for anything else. No message holds the password.
    pub async fn send(
        &self,
        http: &HttpClient,
        password: &SecretString,
        sent_at: OffsetDateTime,
    ) -> Result<Login, Error> {
        if password.expose_secret().is_empty() {
            return Err(Error::configuration("the Kalsel.dev password is empty"));
        }
        let body = serde_json::to_vec(&LoginBody {
            email: &self.email,
            password: password.expose_secret(),
            limit: self.limit,
        })
        .map_err(|_| Error::protocol(format!("the {NAME} login body could not be encoded")))?;
        let builder = http
            .request(http::Method::POST, endpoint(&self.base_url, LOGIN_PATH))?
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body);
        let response = http.send(NAME, builder).await?;
        let secrets = [password.expose_secret()];
        let status = response.status.as_u16();
        if status == 200 {
            let answer: LoginAnswer = response.json(NAME)?;
            let limit = self.limit.unwrap_or(MAX_LIFETIME_MINUTES);
            let expires_at = expiry(answer.expired, &response, sent_at, limit)?;
            let access_token = Token::bearer(
                SecretString::from(answer.access_token),
                sent_at,
                Some(expires_at),
            )?;
            let refresh =
                KalselConfig::new(SecretString::from(answer.refresh_token)).map_err(|e| {
                    Error::protocol(format!(
                        "{NAME} answered the login with an unusable refresh token: {}",
                        e.message()
                    ))
                })?;
            return Ok(Login {
                refresh_token_expires_at: refresh.refresh_token_expires_at(),
                refresh_token: refresh.refresh_token,
                access_token,
            });
        }
        let rejection = answer::rejection(&response, &secrets);
        match status {
            401 => Err(with_rejection(
                Error::reauthentication_required(format!(
                    "{NAME} refused the email or password ({})",
                    detail(status, rejection.as_ref())
                )),
                rejection,
            )),
            400 => Err(with_rejection(
                Error::configuration(format!(
                    "{NAME} refused the login ({}): check the email and password",
                    detail(status, rejection.as_ref())
                )),
                rejection,
            )),
            429 => Err(rate_limited(&response, rejection, sent_at)),
            _ => Err(with_rejection(
                answer::unexpected(&response, &secrets, sent_at),
                rejection,
            )),
        }
    }
}
