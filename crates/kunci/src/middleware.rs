//! [`AuthMiddleware`]: puts the manager's token on the requests of a `reqwest-middleware`
//! client that go to the API's origins (feature `reqwest-middleware`).

use auth_core::{Error, TokenManager};
use http::{Extensions, HeaderValue, StatusCode, header::AUTHORIZATION};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::authorize::{Policy, Transport, origin_of};

/// Sets `Authorization` from a [`TokenManager`] on the requests to the API origins it was
/// given — and on no other request.
///
/// * **Scoped.** Only a request whose scheme, host and port are one of the configured origins
///   gets the header; a request to any other host goes out untouched (no token is even read).
///   An origin is `https://`, or `http://` on a loopback address. Redirects are followed by
///   reqwest below this middleware, and reqwest drops `Authorization` whenever a redirect
///   changes the scheme, host or port, so a redirect never carries the token elsewhere; a 401
///   that comes from another origin after a redirect is not taken as a rejection of the token.
/// * **One retry.** On a 401 it invalidates the token it sent and, when the request can be
///   cloned (its body is not a stream) and the manager has a different token, retries once —
///   never in a loop. A second 401 is returned as is.
/// * **No token-fetch storms.** A token generation is invalidated at most once. When a token
///   fetched to replace a rejected one is itself rejected before any request succeeded with
///   it, the API does not accept what the token endpoint issues: that request, and every
///   later 401 for the same token, fails with a
///   [`Configuration`](auth_core::ErrorKind::Configuration) error (inside
///   [`reqwest_middleware::Error::Middleware`]) instead of fetching again. A token that
///   replaces it later (by expiry, or [`TokenManager::invalidate`]) gets one chance at a time.
///
/// The header value is marked sensitive and is never logged here. The same policy, for
/// `http::Request`s of hyper, tonic and axum clients, is
/// [`tower::AuthLayer`](crate::tower::AuthLayer) (feature `tower`).
#[derive(Clone, Debug)]
pub struct AuthMiddleware {
    policy: Policy,
}

impl AuthMiddleware {
    /// Middleware over `manager` for requests to `origins`: the API's base URLs (only their
    /// scheme, host and port count; a path is ignored). Each must be `https://`, or `http://`
    /// on a loopback address, without credentials, query or fragment.
    ///
    /// ```
    /// # use kunci::core::{FetchRequest, Fetched, Token, TokenManager, source};
    /// # use kunci::core::secrecy::SecretString;
    /// # let source = source::from_fn("api", |r: FetchRequest| async move {
    /// #     Ok(Fetched::new(Token::bearer(SecretString::from("t"), r.sent_at, None)?))
    /// # });
    /// # let manager = TokenManager::builder(source).build()?;
    /// use kunci::{reqwest, reqwest_middleware};
    ///
    /// let auth = kunci::AuthMiddleware::new(manager, ["https://api.kalsel.dev"])?;
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(auth)
    ///     .build();
    /// # Ok::<(), kunci::Error>(())
    /// ```
    ///
    /// Build the middleware before the `reqwest::Client`: it installs the build's rustls
    /// crypto provider ([`ensure_crypto_provider`](crate::ensure_crypto_provider)), without
    /// which reqwest cannot build a client.
    ///
    /// # Errors
    /// A configuration error for an origin that is not acceptable, or when none is given; or
    /// when no crypto provider is available.
    pub fn new<I, S>(manager: TokenManager, origins: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        crate::ensure_crypto_provider()?;
        Ok(Self {
            policy: Policy::new(manager, origins, "AuthMiddleware")?,
        })
    }
}

/// One request through the rest of the middleware chain.
struct Chain<'a> {
    next: Next<'a>,
    extensions: &'a mut Extensions,
}

impl Transport for Chain<'_> {
    type Request = Request;
    type Response = Response;
    type Error = reqwest_middleware::Error;

    fn authorize(request: &mut Request, value: HeaderValue) {
        request.headers_mut().insert(AUTHORIZATION, value);
    }

    fn try_clone(request: &Request) -> Option<Request> {
        request.try_clone()
    }

    fn send(
        &mut self,
        request: Request,
    ) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send {
        self.next.clone().run(request, self.extensions)
    }

    /// Redirects are followed by reqwest below the middleware: an answer from another origin
    /// says nothing about the token (it was not sent there).
    fn api_status(&self, policy: &Policy, response: &Response) -> Option<StatusCode> {
        policy.covers_url(response.url()).then(|| response.status())
    }

    fn error(error: Error) -> reqwest_middleware::Error {
        reqwest_middleware::Error::middleware(error)
    }
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.policy.covers_url(req.url()) {
            return next.run(req, extensions).await;
        }
        let origin = origin_of(req.url()).unwrap_or_default();
        let mut chain = Chain { next, extensions };
        self.policy.send(&mut chain, req, &origin).await
    }
}
