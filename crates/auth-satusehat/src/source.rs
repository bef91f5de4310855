//! The token source: one request per fetch.

use std::fmt;

use async_trait::async_trait;
use auth_core::{
    Credential, Error, FetchRequest, Fetched, StoreKey, Token, TokenSource,
    http::{HttpClient, HttpConfig, Method, Url, endpoint, header},
    provider::{Declaration, EnvProvider, Vars},
};
use secrecy::{ExposeSecret, SecretString};

use crate::{DEFAULT_BASE_URL, ENV_API_KEY, ENV_BASE_URL, NAME};

/// Fetches Satusehat tokens.
pub struct SatusehatSource {
    api_key: SecretString,
    token_url: Url,
    http: HttpClient,
}

impl fmt::Debug for SatusehatSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SatusehatSource")
            .field("api_key", &"[redacted]")
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl SatusehatSource {
    /// A source for `api_key` at `base_url`, its requests sent with `http`'s timeouts and
    /// limits. Cheap: the HTTP client is built on the first request.
    ///
    /// # Errors
    /// A configuration error when the base URL is not acceptable.
    pub fn new(api_key: SecretString, base_url: &str, http: HttpConfig) -> Result<Self, Error> {
        let base = auth_core::http::parse_base_url(base_url)?;
        // The key is kept out of every server text the exchange hands back.
        let http = HttpClient::new(http).with_secrets([&api_key]);
        Ok(Self {
            api_key,
            token_url: endpoint(&base, "oauth/token"),
            http,
        })
    }
}

#[derive(serde::Serialize)]
struct Request<'a> {
    api_key: &'a str,
}

#[derive(serde::Deserialize)]
struct Grant {
    access_token: String,
    expires_in: i64,
}

#[async_trait]
impl TokenSource for SatusehatSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let body = serde_json::to_vec(&Request {
            api_key: self.api_key.expose_secret(),
        })
        .map_err(|_| Error::configuration("the request body could not be encoded"))?;
        let req = self
            .http
            .request(Method::POST, self.token_url.clone())?
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        let resp = self.http.send(NAME, req).await?;
        match resp.status.as_u16() {
            200 => {
                let grant: Grant = resp.json(NAME)?;
                let expires = auth_core::expiry::after_secs(request.sent_at, grant.expires_in)
                    .ok_or_else(|| Error::protocol(format!("{NAME} answered an unusable expires_in")))?;
                Ok(Fetched::new(Token::bearer(
                    SecretString::from(grant.access_token),
                    request.sent_at,
                    Some(expires),
                )?))
            }
            401 | 403 => Err(Error::reauthentication_required(format!(
                "{NAME} rejected the API key: issue a new one"
            ))),
            _ => Err(resp.unexpected_status(NAME, request.sent_at)),
        }
    }

    fn name(&self) -> &str {
        NAME
    }

    fn credential(&self) -> Option<Credential> {
        Some(Credential::new(NAME).secret("api_key", &self.api_key))
    }

    fn store_key(&self) -> Option<StoreKey> {
        // A fixed account name: never derive a store key from a secret.
        StoreKey::for_account(NAME, "default").ok()
    }
}

impl EnvProvider for SatusehatSource {
    const DECLARATION: Declaration = crate::DECLARATION;

    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: HttpConfig,
    ) -> Result<Self, Error> {
        let vars = Vars::new(lookup);
        let api_key = vars.secret(ENV_API_KEY, "use the API key issued to you")?;
        let base = vars.base_url(ENV_BASE_URL, DEFAULT_BASE_URL)?;
        Self::new(api_key, base.as_str(), http)
    }
}
