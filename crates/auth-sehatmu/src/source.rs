//! The token source: one client-credentials request per fetch.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use auth_core::{
    Error, ErrorKind, FetchRequest, Fetched, SharedClock, StoreKey, TokenSource,
    http::{HttpClient, Url, endpoint},
    provider::{Declaration, EnvProvider},
};
use http::{Method, header};
use secrecy::ExposeSecret;

use crate::{
    NAME,
    config::SehatMuConfig,
    response::{self, FAILURE_COOLDOWN, SehatMuMetadata},
};

/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "oauth/token";

/// SehatMu as a [`TokenSource`]: `POST {base}/oauth/token?grant_type=client_credentials` with
/// the client ID and secret form-encoded in the body. One request per fetch, no retries. After
/// SehatMu rejects the credentials it declares a 60-second cool-down, and its rate-limit
/// answers carry one; the [`TokenManager`](auth_core::TokenManager) enforces both and records
/// them in the store. Any other failure gets the manager's ordinary back-off only.
#[derive(Debug)]
pub struct SehatMuSource {
    config: SehatMuConfig,
    client: HttpClient,
    clock: SharedClock,
    url: Url,
    last_metadata: Mutex<Option<Arc<SehatMuMetadata>>>,
}

impl SehatMuSource {
    /// A source for `config`, its requests sent by `http`: an
    /// [`HttpConfig`](auth_core::http::HttpConfig) (a client of its own, built on the first
    /// request), or a clone of an [`HttpClient`] shared with other sources (one connection
    /// pool for a pool of accounts) or built on your reqwest builder
    /// ([`HttpClient::from_builder`]).
    ///
    /// # Errors
    /// None today; the signature is the one every provider's constructor has.
    pub fn new(config: SehatMuConfig, http: impl Into<HttpClient>) -> Result<Self, Error> {
        // The client secret is kept out of every server text the exchange hands back.
        let client = http.into().with_secrets([&config.client_secret]);
        let mut url = endpoint(&config.base_url, TOKEN_PATH);
        url.query_pairs_mut()
            .append_pair("grant_type", "client_credentials");
        Ok(Self {
            config,
            client,
            clock: SharedClock::system(),
            url,
            last_metadata: Mutex::new(None),
        })
    }

    /// Uses another clock for "now" when a rate limit is computed (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Into<SharedClock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// The configuration.
    pub fn config(&self) -> &SehatMuConfig {
        &self.config
    }

    /// The URL requests go to, query included.
    pub fn token_url(&self) -> &Url {
        &self.url
    }

    /// The metadata of the last token this source fetched (`clientId`, `client`, `userId`,
    /// `user`); `None` before the first success. A token adopted from a shared store was
    /// fetched by another process and leaves this unchanged.
    pub fn last_metadata(&self) -> Option<Arc<SehatMuMetadata>> {
        self.last_metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The convention the `kunci` facade and CLI build sources by.
impl EnvProvider for SehatMuSource {
    const DECLARATION: Declaration = crate::DECLARATION;

    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: impl Into<HttpClient>,
    ) -> Result<Self, Error> {
        Self::new(SehatMuConfig::from_lookup(lookup)?, http)
    }
}

#[async_trait]
impl TokenSource for SehatMuSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let form = serde_urlencoded::to_string([
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose_secret()),
        ])
        .map_err(|_| {
            Error::configuration("the SehatMu client credentials cannot be form-encoded")
        })?;
        let builder = self
            .client
            .request(Method::POST, self.url.clone())?
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(form);
        let response = self.client.send(NAME, builder).await?;
        let grant = response::parse_token_response(&response, request.sent_at, self.clock.now())?;
        *self
            .last_metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(grant.metadata));
        Ok(Fetched::new(grant.token))
    }

    /// 60 seconds after SehatMu rejected the client credentials: "Rate limit: 1 request per
    /// minute after a failed attempt", where the failed attempt is a wrong `client_secret`
    /// (the page: "hanya boleh salah pengisian client_secret 1x dalam 1 menit").
    ///
    /// Nothing for any other failure. A rate-limit answer is already
    /// [`RateLimited`](auth_core::ErrorKind::RateLimited) until a minute after it (or a later
    /// `Retry-After`), which the manager honours as it is — declaring more here would stretch
    /// the manager's own "still cooling down" answers too. A 5xx, a timeout, a dropped
    /// connection or an unreadable answer was no failed *authentication*, so it gets the
    /// manager's ordinary back-off and stops no other process; neither does a store or lock
    /// error, for which nothing was sent at all.
    fn cooldown_after_failure(&self, error: &Error) -> Option<Duration> {
        (error.kind() == ErrorKind::ReauthenticationRequired).then_some(FAILURE_COOLDOWN)
    }

    fn name(&self) -> &str {
        NAME
    }

    fn store_key(&self) -> Option<StoreKey> {
        Some(self.config.store_key())
    }

    fn credential(&self) -> Option<auth_core::Credential> {
        Some(
            auth_core::Credential::new(NAME)
                .public("client_id", &self.config.client_id)
                .secret("client_secret", &self.config.client_secret),
        )
    }
}

#[cfg(test)]
mod tests {
    use auth_core::http::HttpConfig;
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn grant_type_is_in_the_query_string() {
        let config = SehatMuConfig::new("id", SecretString::from("s")).unwrap();
        let source = SehatMuSource::new(config, HttpConfig::default()).unwrap();
        assert_eq!(
            source.token_url().as_str(),
            "https://istanbul.muhammadiyah.or.id/oauth/token?grant_type=client_credentials"
        );
        let config = SehatMuConfig::new("id", SecretString::from("s"))
            .unwrap()
            .with_base_url("http://127.0.0.1:8/gw")
            .unwrap();
        let source = SehatMuSource::new(config, HttpConfig::default()).unwrap();
        assert_eq!(
            source.token_url().as_str(),
            "http://127.0.0.1:8/gw/oauth/token?grant_type=client_credentials"
        );
    }

    #[test]
    fn env_provider_convention() {
        let vars = |name: &str| match name {
            "SEHATMU_CLIENT_ID" => Some("client-1".to_owned()),
            "SEHATMU_CLIENT_SECRET" => Some("s".to_owned()),
            _ => None,
        };
        let source =
            <SehatMuSource as EnvProvider>::from_lookup(&vars, HttpConfig::default()).unwrap();
        assert_eq!(
            TokenSource::store_key(&source).unwrap().as_str(),
            "sehatmu:client-1"
        );
        assert_eq!(
            <SehatMuSource as EnvProvider>::DECLARATION.variables[0].name,
            "SEHATMU_CLIENT_ID"
        );
    }

    #[test]
    fn only_rejected_credentials_declare_the_minute() {
        let source = SehatMuSource::new(
            SehatMuConfig::new("id", SecretString::from("s")).unwrap(),
            HttpConfig::default(),
        )
        .unwrap();
        assert_eq!(
            source.cooldown_after_failure(&Error::reauthentication_required("wrong secret")),
            Some(Duration::from_secs(60))
        );
        let later = time::OffsetDateTime::UNIX_EPOCH + Duration::from_secs(60);
        for err in [
            // the server's own rate-limit answer carries its `until` already
            Error::rate_limited(later, "rate limit"),
            Error::transient("503 or a dropped connection"),
            Error::protocol("an unreadable answer"),
            Error::store("the store lock was not free: nothing was sent"),
            Error::configuration("x"),
        ] {
            assert_eq!(source.cooldown_after_failure(&err), None, "{err}");
        }
    }

    #[tokio::test]
    async fn connection_failure_is_transient() {
        // Port 1 on loopback: nothing listens.
        let config = SehatMuConfig::new("id", SecretString::from("s"))
            .unwrap()
            .with_base_url("http://127.0.0.1:1")
            .unwrap();
        let source = SehatMuSource::new(config, HttpConfig::default()).unwrap();
        let err = source
            .fetch(FetchRequest::new(None, time::OffsetDateTime::UNIX_EPOCH))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), auth_core::ErrorKind::Transient, "{err}");
    }
}
