//! The token source: one client-credentials request per fetch.

use std::fmt;

use async_trait::async_trait;
use auth_core::{
    Credential, Error, FetchRequest, Fetched, StoreKey, TokenSource,
    http::{HttpClient, Method, Url, endpoint, header, parse_base_url},
    provider::{Declaration, EnvProvider, Vars},
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    DEVELOPMENT_BASE_URL, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_ENVIRONMENT, NAME,
    PRODUCTION_BASE_URL, STAGING_BASE_URL, answer,
};

/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "oauth2/v1/accesstoken";

/// What a [`SatusehatSource`] needs: the client credentials and where SATUSEHAT is.
#[derive(Clone)]
pub struct SatusehatConfig {
    client_id: String,
    client_secret: SecretString,
    base_url: Url,
}

impl fmt::Debug for SatusehatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SatusehatConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("base_url", &self.base_url.as_str())
            .finish()
    }
}

impl SatusehatConfig {
    /// The client `client_id` with `client_secret`, on production.
    ///
    /// # Errors
    /// A configuration error when the client ID is empty or holds control characters.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Result<Self, Error> {
        let client_id = client_id.into();
        if client_id.trim().is_empty() || client_id.chars().any(char::is_control) {
            return Err(Error::configuration(
                "the SATUSEHAT client ID is empty or holds control characters",
            ));
        }
        Ok(Self {
            client_id,
            client_secret,
            base_url: parse_base_url(PRODUCTION_BASE_URL)?,
        })
    }

    /// Uses another base URL (`https://…`, or `http://` on loopback for simulators).
    ///
    /// # Errors
    /// A configuration error when the URL is not acceptable.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, Error> {
        self.base_url = parse_base_url(base_url)?;
        Ok(self)
    }

    /// Reads the variables through `lookup`.
    ///
    /// # Errors
    /// A configuration error naming the missing or invalid variable, never its value.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let vars = Vars::new(lookup);
        let client_id =
            vars.required(ENV_CLIENT_ID, "use your SATUSEHAT application's client ID")?;
        let secret = vars.secret(
            ENV_CLIENT_SECRET,
            "use your SATUSEHAT application's client secret",
        )?;
        let config =
            Self::new(client_id.trim(), secret).map_err(|e| Vars::named(ENV_CLIENT_ID, e))?;
        let default = match vars.get(ENV_ENVIRONMENT).as_deref().map(str::trim) {
            None | Some("production" | "prod") => PRODUCTION_BASE_URL,
            Some("staging" | "stg") => STAGING_BASE_URL,
            Some("development" | "dev") => DEVELOPMENT_BASE_URL,
            Some(_) => {
                return Err(Error::configuration(format!(
                    "{ENV_ENVIRONMENT} must be production, staging or development"
                )));
            }
        };
        Ok(Self {
            base_url: vars.base_url(ENV_BASE_URL, default)?,
            ..config
        })
    }

    /// The client ID.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The store key: `satusehat:<client_id>` (one token per application), or
    /// `satusehat:default` when the client ID is not a valid key.
    pub fn store_key(&self) -> StoreKey {
        StoreKey::for_account(NAME, &self.client_id)
            .or_else(|_| StoreKey::for_account(NAME, "default"))
            .unwrap_or_else(|_| {
                StoreKey::new("custom:default").unwrap_or_else(|_| unreachable_key())
            })
    }
}

#[allow(
    clippy::panic,
    reason = "constant keys that are valid; covered by a test"
)]
fn unreachable_key() -> StoreKey {
    panic!("constant store keys are valid")
}

/// SATUSEHAT as a [`TokenSource`].
#[derive(Debug)]
pub struct SatusehatSource {
    config: SatusehatConfig,
    http: HttpClient,
    url: Url,
}

impl SatusehatSource {
    /// A source for `config`, its requests sent by `http`: an
    /// [`HttpConfig`](auth_core::http::HttpConfig) (a client of its own, built on the first
    /// request), or a clone of an [`HttpClient`] shared with other sources (one connection
    /// pool for a pool of accounts) or built on your reqwest builder
    /// ([`HttpClient::from_builder`]).
    ///
    /// # Errors
    /// None today; the signature is the one every provider's constructor has.
    pub fn new(config: SatusehatConfig, http: impl Into<HttpClient>) -> Result<Self, Error> {
        let http = http.into().with_secrets([&config.client_secret]);
        let mut url = endpoint(&config.base_url, TOKEN_PATH);
        url.query_pairs_mut()
            .append_pair("grant_type", "client_credentials");
        Ok(Self { config, http, url })
    }

    /// The configuration.
    pub fn config(&self) -> &SatusehatConfig {
        &self.config
    }
}

#[async_trait]
impl TokenSource for SatusehatSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let form = format!(
            "client_id={}&client_secret={}",
            form_encode(&self.config.client_id),
            form_encode(self.config.client_secret.expose_secret())
        );
        let req = self
            .http
            .request(Method::POST, self.url.clone())?
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(form);
        let response = self.http.send(NAME, req).await?;
        if response.status.as_u16() == 200 {
            Ok(Fetched::new(answer::token(&response, request.sent_at)?))
        } else {
            Err(answer::rejection(&response, request.sent_at))
        }
    }

    fn name(&self) -> &str {
        NAME
    }

    fn credential(&self) -> Option<Credential> {
        Some(
            Credential::new(NAME)
                .public("client_id", &self.config.client_id)
                .secret("client_secret", &self.config.client_secret),
        )
    }

    fn store_key(&self) -> Option<StoreKey> {
        Some(self.config.store_key())
    }
}

impl EnvProvider for SatusehatSource {
    const DECLARATION: Declaration = crate::DECLARATION;

    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: impl Into<HttpClient>,
    ) -> Result<Self, Error> {
        Self::new(SatusehatConfig::from_lookup(lookup)?, http)
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::http::HttpConfig;

    #[test]
    fn the_environment_picks_the_base_url_and_the_url_carries_the_grant() {
        for (env, base) in [
            (None, PRODUCTION_BASE_URL),
            (Some("staging"), STAGING_BASE_URL),
            (Some("development"), DEVELOPMENT_BASE_URL),
        ] {
            let lookup = |n: &str| match n {
                ENV_CLIENT_ID => Some("cid".to_owned()),
                ENV_CLIENT_SECRET => Some("s".to_owned()),
                ENV_ENVIRONMENT => env.map(str::to_owned),
                _ => None,
            };
            let source = SatusehatSource::from_lookup(&lookup, HttpConfig::default()).unwrap();
            assert_eq!(
                source.url.as_str(),
                format!("{base}/oauth2/v1/accesstoken?grant_type=client_credentials")
            );
            assert_eq!(source.config.store_key().as_str(), "satusehat:cid");
        }
        let lookup = |n: &str| match n {
            ENV_CLIENT_ID => Some("cid".to_owned()),
            ENV_CLIENT_SECRET => Some("hunter2".to_owned()),
            ENV_ENVIRONMENT => Some("moon".to_owned()),
            _ => None,
        };
        let err = SatusehatSource::from_lookup(&lookup, HttpConfig::default()).unwrap_err();
        assert!(err.message().contains(ENV_ENVIRONMENT) && !err.to_string().contains("hunter2"));
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
