//! The KrmPesan [`TokenSource`]: one `GET {base}/tokens` per fetch.

use std::{
    fmt,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use auth_core::{
    Error, FetchRequest, Fetched, StoreKey, Token, TokenSource,
    http::{HttpClient, HttpConfig, HttpResponse, Url, endpoint},
    jwt,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::{KrmPesanConfig, NAME};

/// The path below the base URL (see `docs/providers/krmpesan.md` for why `/tokens`).
pub const TOKENS_PATH: &str = "tokens";

/// A held IdToken is handed out only if it stays valid at least this long.
const HELD_TOKEN_MIN_REMAINING: Duration = Duration::from_secs(60);

/// KrmPesan's answer to a rejected refresh (400, 401, 403), kept as the error's
/// [`source`](std::error::Error::source).
#[derive(Debug, Clone, thiserror::Error)]
#[error("KrmPesan answered {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
pub struct Rejection {
    /// The HTTP status.
    pub status: u16,
    /// The server's `message`, when it had one that is safe to show.
    pub message: Option<String>,
}

/// The documented 200 answer. No `Debug`: it holds tokens.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TokenAnswer {
    id_token: String,
    expires_in: i64,
    #[serde(default)]
    token_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

/// Refreshes KrmPesan's IdToken from the refresh token and device key.
///
/// The IdToken is the token handed out (the document: "simpan IdToken untuk digunakan pada
/// saat akses ke REST API"); it expires `ExpiresIn` seconds after the request was sent, or at
/// its own `exp` claim if that is earlier.
pub struct KrmPesanSource {
    config: KrmPesanConfig,
    http: HttpClient,
    endpoint: Url,
    held: Mutex<Option<SecretString>>,
}

impl fmt::Debug for KrmPesanSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KrmPesanSource")
            .field("config", &self.config)
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl KrmPesanSource {
    /// A source using `http` for its requests.
    pub fn new(config: KrmPesanConfig, http: HttpClient) -> Self {
        let endpoint = endpoint(&config.base_url, TOKENS_PATH);
        let held = Mutex::new(config.id_token.clone());
        // Kept out of every server text the exchange hands back.
        let http = http.with_secrets(
            [&config.refresh_token, &config.device_key]
                .into_iter()
                .chain(config.id_token.as_ref()),
        );
        Self {
            config,
            http,
            endpoint,
            held,
        }
    }

    /// A source with its own HTTP client and the default timeouts and limits.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn with_default_client(config: KrmPesanConfig) -> Result<Self, Error> {
        Ok(Self::new(config, HttpClient::new(HttpConfig::default())?))
    }

    /// The configuration.
    pub fn config(&self) -> &KrmPesanConfig {
        &self.config
    }

    /// The store key of the configured account (`krmpesan:<account>`).
    pub fn store_key(&self) -> StoreKey {
        self.config.store_key()
    }

    /// The configured IdToken, once, if its `exp` is readable and far enough away.
    fn take_held(&self, now: OffsetDateTime) -> Option<Token> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        let exp = jwt::time_claims(held.expose_secret()).ok()?.exp?;
        if exp - now < HELD_TOKEN_MIN_REMAINING {
            tracing::debug!(
                provider = NAME,
                "the configured IdToken expires too soon; fetching a new one"
            );
            return None;
        }
        Token::bearer(held, now, Some(exp)).ok()
    }

    fn parse_success(
        &self,
        response: &HttpResponse,
        sent_at: OffsetDateTime,
    ) -> Result<Token, Error> {
        if !response.is_json() {
            return Err(Error::protocol(format!(
                "{NAME} answered 200 with content type {} instead of JSON",
                response.mime().unwrap_or_else(|| "(none)".to_owned())
            )));
        }
        let answer: TokenAnswer = response.json(NAME)?;
        if answer.expires_in <= 0 {
            return Err(Error::protocol(format!(
                "{NAME} answered ExpiresIn {}, not a positive lifetime",
                answer.expires_in
            )));
        }
        if let Some(kind) = answer
            .token_type
            .as_deref()
            .filter(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            tracing::debug!(provider = NAME, token_type = %kind.escape_debug(), "unexpected TokenType; sending the IdToken as Bearer");
        }
        let mut expires_at = sent_at + Duration::from_secs(answer.expires_in.unsigned_abs());
        // The IdToken is a Cognito JWT; when its `exp` (read in the server's clock, corrected
        // by the skew its `Date` header shows) is earlier, it wins.
        if let Ok(jwt::TimeClaims { exp: Some(exp), .. }) = jwt::time_claims(&answer.id_token) {
            let exp = exp - response.clock_offset(sent_at);
            if exp <= sent_at {
                return Err(Error::protocol(format!(
                    "{NAME} issued an IdToken that has already expired"
                )));
            }
            expires_at = expires_at.min(exp);
        }
        Token::bearer(
            SecretString::from(answer.id_token),
            sent_at,
            Some(expires_at),
        )
    }

    fn rejection(&self, response: &HttpResponse, refresh: &SecretString) -> Error {
        let status = response.status.as_u16();
        // Show the server's message only if it is short and echoes neither credential.
        let message = response
            .is_json()
            .then(|| response.error_json::<ErrorAnswer>().ok())
            .flatten()
            .and_then(|a| a.message)
            .filter(|m| {
                m.chars().count() <= 200
                    && !m.contains(refresh.expose_secret())
                    && !m.contains(self.config.device_key.expose_secret())
            });
        Error::reauthentication_required(format!(
            "{NAME} rejected the refresh token or device key (status {status}): generate new ones on the KrmPesan dashboard and update the configuration"
        ))
        .with_source(Rejection { status, message })
    }
}

#[async_trait]
impl TokenSource for KrmPesanSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        if let Some(token) = self.take_held(request.sent_at) {
            tracing::debug!(provider = NAME, "handing out the configured IdToken");
            return Ok(Fetched::new(token));
        }
        let refresh = request
            .refresh
            .as_ref()
            .unwrap_or(&self.config.refresh_token);
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("refresh_token", refresh.expose_secret())
            .append_pair("device_key", self.config.device_key.expose_secret());
        let builder = self
            .http
            .request(http::Method::GET, url)
            .header(http::header::ACCEPT, "application/json");
        let response = self
            .http
            .send_with_secrets(NAME, builder, [refresh])
            .await?;
        match response.status.as_u16() {
            200 => Ok(Fetched::new(
                self.parse_success(&response, request.sent_at)?,
            )),
            400 | 401 | 403 => Err(self.rejection(&response, refresh)),
            _ => Err(response.unexpected_status(NAME, request.sent_at)),
        }
    }

    fn name(&self) -> &str {
        NAME
    }
}

impl auth_core::http::EnvProvider for KrmPesanSource {
    const NAME: &'static str = crate::NAME;
    /// `KRMPESAN_REFRESH_TOKEN`, `KRMPESAN_DEVICE_KEY`; optional `KRMPESAN_BASE_URL`, `KRMPESAN_ID_TOKEN`, `KRMPESAN_ACCOUNT`.
    const ENV_VARS: &'static [&'static str] = &[
        crate::ENV_REFRESH_TOKEN,
        crate::ENV_DEVICE_KEY,
        crate::ENV_BASE_URL,
        crate::ENV_ID_TOKEN,
        crate::ENV_ACCOUNT,
    ];

    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: HttpConfig,
    ) -> Result<Self, Error> {
        let config = crate::KrmPesanConfig::from_lookup(lookup)?;
        Ok(Self::new(config, HttpClient::new(http)?))
    }

    fn store_key_from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<StoreKey, Error> {
        Ok(crate::KrmPesanConfig::from_lookup(lookup)?.store_key())
    }

    fn store_key(&self) -> StoreKey {
        KrmPesanSource::store_key(self)
    }
}
