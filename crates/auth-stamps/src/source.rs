//! The token source: one request per fetch, or none at all for a static token.

use async_trait::async_trait;
use auth_core::{
    AuthScheme, Error, FetchRequest, Fetched, SharedClock, StoreKey, Token, TokenSource,
    http::{HttpClient, Url, endpoint},
    provider::{Declaration, EnvProvider},
};
use http::{HeaderValue, Method, header};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::{
    NAME,
    config::{Credentials, StampsConfig},
    response::{self, Verification},
};

/// The path of the token endpoint (the trailing slash is part of it).
pub const GET_ACCESS_TOKEN_PATH: &str = "api/auth/get-access-token/";
/// The path of the verification endpoint (the trailing slash is part of it).
pub const VERIFY_TOKEN_PATH: &str = "api/auth/verify-token/";

/// Stamps as a [`TokenSource`]: a JWT from `get-access-token` (one request per fetch, no
/// retries), or a permanent static token (no request at all).
#[derive(Debug, Clone)]
pub struct StampsSource {
    config: StampsConfig,
    client: HttpClient,
    clock: SharedClock,
    get_url: Url,
    verify_url: Url,
}

impl StampsSource {
    /// A source for `config`, its requests sent by `http`: an
    /// [`HttpConfig`](auth_core::http::HttpConfig) (a client of its own, built on the first
    /// request), or a clone of an [`HttpClient`] shared with other sources (one connection
    /// pool for a pool of accounts) or built on your reqwest builder
    /// ([`HttpClient::from_builder`]).
    ///
    /// # Errors
    /// A configuration error when a static token cannot be sent in an HTTP header.
    pub fn new(config: StampsConfig, http: impl Into<HttpClient>) -> Result<Self, Error> {
        if let Credentials::Static(token) = &config.credentials {
            static_token(token, OffsetDateTime::UNIX_EPOCH).map_err(|_| {
                Error::configuration(
                    "the Stamps static token is empty or holds characters that cannot be sent in an HTTP header",
                )
            })?;
        }
        // The credential is kept out of every server text the exchange hands back.
        let secret = match &config.credentials {
            Credentials::Jwt { token, .. } | Credentials::Static(token) => token,
        };
        let client = http.into().with_secrets([secret]);
        let get_url = endpoint(&config.base_url, GET_ACCESS_TOKEN_PATH);
        let verify_url = endpoint(&config.base_url, VERIFY_TOKEN_PATH);
        Ok(Self {
            config,
            client,
            clock: SharedClock::system(),
            get_url,
            verify_url,
        })
    }

    /// Uses another clock for the moments [`verify`](Self::verify) reasons about (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Into<SharedClock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// The configuration.
    pub fn config(&self) -> &StampsConfig {
        &self.config
    }

    /// Asks Stamps whether `jwt` is valid: `POST /api/auth/verify-token/` with
    /// `Authorization: Bearer <jwt>`. Valid tokens come back with their claims; a refusal is
    /// [`Verification::Rejected`], not an error.
    ///
    /// # Errors
    /// Transient for network failures, timeouts and 5xx; protocol for answers that are not the
    /// documented claims.
    pub async fn verify(&self, jwt: &SecretString) -> Result<Verification, Error> {
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", jwt.expose_secret()))
            .map_err(|_| {
                Error::configuration("the token to verify cannot be sent in an HTTP header")
            })?;
        authorization.set_sensitive(true);
        let request = self
            .client
            .request(Method::POST, self.verify_url.clone())?
            .header(header::AUTHORIZATION, authorization)
            .header(header::CONTENT_TYPE, "application/json");
        let response = self.client.send(NAME, request).await?;
        response::parse_verification(&response, self.clock.now())
    }

    async fn fetch_jwt(
        &self,
        token: &SecretString,
        merchant_id: u64,
        sent_at: OffsetDateTime,
    ) -> Result<Token, Error> {
        let body =
            serde_json::json!({ "token": token.expose_secret(), "crm_merchant_id": merchant_id });
        let request = self
            .client
            .request(Method::POST, self.get_url.clone())?
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let response = self.client.send(NAME, request).await?;
        response::parse_access_token(&response, sent_at)
    }
}

fn static_token(token: &SecretString, at: OffsetDateTime) -> Result<Token, Error> {
    Token::new(token.clone(), AuthScheme::Token, at, None)
}

/// The convention the `kunci` facade and CLI build sources by.
impl EnvProvider for StampsSource {
    const DECLARATION: Declaration = crate::DECLARATION;

    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: impl Into<HttpClient>,
    ) -> Result<Self, Error> {
        Self::new(StampsConfig::from_lookup(lookup)?, http)
    }
}

#[async_trait]
impl TokenSource for StampsSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let token = match &self.config.credentials {
            Credentials::Jwt { token, merchant_id } => {
                self.fetch_jwt(token, *merchant_id, request.sent_at).await?
            }
            Credentials::Static(token) => static_token(token, request.sent_at)?,
        };
        Ok(Fetched::new(token))
    }

    fn name(&self) -> &str {
        NAME
    }

    fn store_key(&self) -> Option<StoreKey> {
        Some(self.config.store_key())
    }

    fn credential(&self) -> Option<auth_core::Credential> {
        Some(match &self.config.credentials {
            Credentials::Jwt { token, merchant_id } => auth_core::Credential::new("stamps:jwt")
                .secret("token", token)
                .public("merchant_id", &merchant_id.to_string()),
            Credentials::Static(token) => {
                auth_core::Credential::new("stamps:static").secret("token", token)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use auth_core::ErrorKind;
    use auth_core::http::HttpConfig;

    use super::*;

    #[tokio::test]
    async fn static_token_needs_no_network() {
        // The base URL points nowhere reachable: a request would fail.
        let config = StampsConfig::static_token(SecretString::from("perm-123"))
            .with_base_url("http://127.0.0.1:1")
            .unwrap();
        let source = StampsSource::new(config, HttpConfig::default()).unwrap();
        let sent_at = OffsetDateTime::UNIX_EPOCH;
        let fetched = source
            .fetch(FetchRequest::new(None, sent_at))
            .await
            .unwrap();
        assert_eq!(
            fetched.token.header_value().to_str().unwrap(),
            "Token perm-123"
        );
        assert_eq!(fetched.token.expires_at(), None);
        assert_eq!(source.config().store_key().as_str(), "stamps:static");
    }

    #[test]
    fn unusable_static_token_is_a_configuration_error() {
        let err = StampsSource::new(
            StampsConfig::static_token(SecretString::from("has space")),
            HttpConfig::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(!err.to_string().contains("has space"));
    }

    #[test]
    fn env_provider_convention() {
        let vars = |name: &str| match name {
            "STAMPS_TOKEN" => Some("auth".to_owned()),
            "STAMPS_MERCHANT_ID" => Some("7".to_owned()),
            _ => None,
        };
        let source =
            <StampsSource as EnvProvider>::from_lookup(&vars, HttpConfig::default()).unwrap();
        assert_eq!(
            TokenSource::store_key(&source).unwrap().as_str(),
            "stamps:7"
        );
        assert_eq!(<StampsSource as EnvProvider>::DECLARATION.name, "stamps");
        let err =
            <StampsSource as EnvProvider>::from_lookup(&|_: &str| None, HttpConfig::default())
                .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
    }

    #[test]
    fn endpoints_keep_the_trailing_slash_and_prefix() {
        let config = StampsConfig::jwt(SecretString::from("x"), 1)
            .with_base_url("https://gw.example/stamps/")
            .unwrap();
        let source = StampsSource::new(config, HttpConfig::default()).unwrap();
        assert_eq!(
            source.get_url.as_str(),
            "https://gw.example/stamps/api/auth/get-access-token/"
        );
        assert_eq!(
            source.verify_url.as_str(),
            "https://gw.example/stamps/api/auth/verify-token/"
        );
        let default = StampsSource::new(
            StampsConfig::jwt(SecretString::from("x"), 1),
            HttpConfig::default(),
        )
        .unwrap();
        assert_eq!(
            default.get_url.as_str(),
            "https://stamps.co.id/api/auth/get-access-token/"
        );
        let printed = format!("{source:?}");
        assert!(!printed.contains("\"x\""), "{printed}");
    }
}
