//! The Kalsel.dev [`TokenSource`]: one `POST {base}/api/v1/refresh` per fetch, rotating.

use std::fmt;

use async_trait::async_trait;
use auth_core::{
    Error, FetchRequest, Fetched, StoreKey, Token, TokenSource,
    http::{HttpClient, HttpConfig, HttpResponse, Url, endpoint},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{KalselConfig, NAME};

/// The path below the base URL.
pub const REFRESH_PATH: &str = "api/v1/refresh";

/// Kalsel.dev's 421 answer (`"error": "jwt_error"`), kept as the error's
/// [`source`](std::error::Error::source).
#[derive(Debug, Clone, thiserror::Error)]
#[error("Kalsel.dev answered {status}: {message} ({error}): {}", causes.join("; "))]
pub struct JwtRejection {
    /// The HTTP status (421).
    pub status: u16,
    /// The server's `message` (`Token expired`).
    pub message: String,
    /// The server's `error` (`jwt_error`).
    pub error: String,
    /// The server's `causes` (`token has expired`).
    pub causes: Vec<String>,
}

#[derive(Serialize)]
struct RefreshBody<'a> {
    refresh_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
}

/// The documented 200 answer. No `Debug`: it holds a token.
#[derive(Deserialize)]
struct RefreshAnswer {
    access_token: String,
    expired: i64,
}

#[derive(Deserialize, Default)]
struct ErrorAnswer {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    causes: Vec<String>,
}

/// Refreshes a Kalsel.dev access token. Each answer's token replaces the refresh token
/// ("token baru menimpa token yang lama"), so every fetch returns
/// [`Fetched::rotated`]: the manager saves the new refresh material before anyone gets the
/// token, and hands it back in [`FetchRequest::refresh`] next time.
pub struct KalselSource {
    config: KalselConfig,
    http: HttpClient,
    endpoint: Url,
}

impl fmt::Debug for KalselSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KalselSource")
            .field("config", &self.config)
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl KalselSource {
    /// A source using `http` for its requests.
    pub fn new(config: KalselConfig, http: HttpClient) -> Self {
        let endpoint = endpoint(&config.base_url, REFRESH_PATH);
        // Kept out of every server text the exchange hands back.
        let http = http.with_secrets([&config.refresh_token]);
        Self {
            config,
            http,
            endpoint,
        }
    }

    /// A source with its own HTTP client and the default timeouts and limits.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn with_default_client(config: KalselConfig) -> Result<Self, Error> {
        Ok(Self::new(config, HttpClient::new(HttpConfig::default())?))
    }

    /// The configuration.
    pub fn config(&self) -> &KalselConfig {
        &self.config
    }

    /// The store key of the configured account (`kalsel:<account>`).
    pub fn store_key(&self) -> StoreKey {
        self.config.store_key()
    }

    fn parse_success(response: &HttpResponse, sent_at: OffsetDateTime) -> Result<Fetched, Error> {
        // The content type is not required to be JSON: the token in a parseable 200 answer
        // has already replaced the old one on the server, so refusing it would lose the only
        // valid refresh token. A body that does not parse is refused either way.
        if !response.is_json() {
            tracing::debug!(provider = NAME, content_type = ?response.mime(), "200 answer without a JSON content type; parsing it anyway");
        }
        let answer: RefreshAnswer = response.json(NAME)?;
        let expired = OffsetDateTime::from_unix_timestamp(answer.expired).map_err(|_| {
            Error::protocol(format!(
                "{NAME} answered an `expired` that is not a valid time"
            ))
        })?;
        // `expired` is in the server's clock; its `Date` header says how far that is from
        // ours. The offset is measured against the moment the request was sent, so time on
        // the network makes the token look shorter-lived, never longer.
        let expires_at = expired - response.clock_offset(sent_at);
        if expires_at <= sent_at {
            return Err(Error::protocol(format!(
                "{NAME} issued a token that has already expired"
            )));
        }
        let secret = SecretString::from(answer.access_token);
        let token = Token::bearer(secret.clone(), sent_at, Some(expires_at))?;
        Ok(Fetched::rotated(token, secret))
    }

    fn jwt_rejection(response: &HttpResponse, refresh: &SecretString) -> Error {
        let status = response.status.as_u16();
        let parsed: Option<ErrorAnswer> = if response.is_json() {
            response.error_json().ok()
        } else {
            None
        };
        let err = Error::reauthentication_required(format!(
            "the {NAME} refresh token has expired or was rejected (status {status}): log in again with username and password and configure the new refresh token"
        ));
        match parsed {
            Some(answer) => {
                // Keep the server's words, unless they echo the token.
                let safe = |s: String| (!s.contains(refresh.expose_secret())).then_some(s);
                err.with_source(JwtRejection {
                    status,
                    message: answer.message.and_then(safe).unwrap_or_default(),
                    error: answer.error.and_then(safe).unwrap_or_default(),
                    causes: answer
                        .causes
                        .into_iter()
                        .filter_map(safe)
                        .take(10)
                        .collect(),
                })
            }
            None => err,
        }
    }
}

impl KalselSource {
    /// One refresh request with `refresh`.
    async fn refresh_with(
        &self,
        refresh: &SecretString,
        sent_at: time::OffsetDateTime,
    ) -> Result<Fetched, Error> {
        let body = serde_json::to_vec(&RefreshBody {
            refresh_token: refresh.expose_secret(),
            limit: self.config.limit,
        })
        .map_err(|_| Error::protocol(format!("the {NAME} request body could not be encoded")))?;
        let builder = self
            .http
            .request(http::Method::POST, self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body);
        let response = self
            .http
            .send_with_secrets(NAME, builder, [refresh])
            .await?;
        match response.status.as_u16() {
            200 => Self::parse_success(&response, sent_at),
            401 | 403 | 421 => Err(Self::jwt_rejection(&response, refresh)),
            _ => Err(response.unexpected_status(NAME, sent_at)),
        }
    }
}

#[async_trait]
impl TokenSource for KalselSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let configured = &self.config.refresh_token;
        let Some(held) = request.refresh.as_ref() else {
            return self.refresh_with(configured, request.sent_at).await;
        };
        match self.refresh_with(held, request.sent_at).await {
            // The stored (rotated) refresh token was rejected. If a different token is
            // configured — someone logged in again and set KALSEL_REFRESH_TOKEN — try it once,
            // so a new login takes effect without deleting the stored entry by hand. While the
            // stored token is accepted it wins: in a fleet it is the newest one.
            Err(e)
                if e.kind() == auth_core::ErrorKind::ReauthenticationRequired
                    && held.expose_secret() != configured.expose_secret() =>
            {
                tracing::info!(
                    provider = NAME,
                    "the stored refresh token was rejected; trying the configured one"
                );
                self.refresh_with(configured, request.sent_at).await
            }
            outcome => outcome,
        }
    }

    fn name(&self) -> &str {
        NAME
    }
}

impl auth_core::http::EnvProvider for KalselSource {
    const NAME: &'static str = crate::NAME;
    /// `KALSEL_REFRESH_TOKEN`; optional `KALSEL_TOKEN_LIFETIME_MINUTES`, `KALSEL_BASE_URL`, `KALSEL_ACCOUNT`.
    const ENV_VARS: &'static [&'static str] = &[
        crate::ENV_REFRESH_TOKEN,
        crate::ENV_TOKEN_LIFETIME_MINUTES,
        crate::ENV_BASE_URL,
        crate::ENV_ACCOUNT,
    ];

    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: HttpConfig,
    ) -> Result<Self, Error> {
        let config = crate::KalselConfig::from_lookup(lookup)?;
        Ok(Self::new(config, HttpClient::new(http)?))
    }

    fn store_key_from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<StoreKey, Error> {
        Ok(crate::KalselConfig::from_lookup(lookup)?.store_key())
    }

    fn store_key(&self) -> StoreKey {
        KalselSource::store_key(self)
    }
}
