//! [`AuthLayer`]: the manager's token on the `http::Request`s of a tower client — hyper
//! (`hyper_util::client::legacy::Client`), tonic channels, axum/tower-http stacks — with the
//! same policy as [`AuthMiddleware`](crate::AuthMiddleware) (feature `tower`).
//!
//! ```no_run
//! # use kunci::core::{FetchRequest, Fetched, Token, TokenManager, source};
//! # use kunci::core::secrecy::SecretString;
//! # fn client<C>(manager: TokenManager, hyper_client: C) -> Result<(), kunci::Error> {
//! use kunci::tower::{AuthLayer, Layer};
//!
//! // hyper: requests carry absolute URIs; only those to the API's origin get the token.
//! let client = AuthLayer::new(manager.clone(), ["https://api.kalsel.dev"])?.layer(hyper_client);
//!
//! // tonic: a channel's requests carry only a path; the channel talks to one API.
//! // let channel = tonic::transport::Channel::from_static("https://grpc.example").connect_lazy();
//! // let channel = AuthLayer::every_request(manager).without_retry().layer(channel);
//! # let _ = client; Ok(()) }
//! ```
//!
//! * **Scoped.** [`AuthLayer::new`] sets `Authorization` only on a request whose URI is
//!   absolute and whose scheme, host and port are one of the given origins; any other request
//!   (another host, or a relative URI that could go anywhere) passes through untouched and no
//!   token is read. For a client whose every request goes to one API — a tonic `Channel`,
//!   whose requests carry a path and no host — say so with [`AuthLayer::every_request`].
//! * **One retry.** On a 401 the token sent is invalidated (at most once per token
//!   generation) and, when the body can be cloned (`B: Clone`, such as
//!   `http_body_util::Full<Bytes>`), the request is sent once more with a different token —
//!   never in a loop. [`AuthLayer::without_retry`] accepts any body (a stream, tonic's) and
//!   returns the 401 after invalidating; the next request gets a new token.
//! * **No token-fetch storms.** A replacement token rejected before any request succeeded
//!   with it fails that request, and every later 401 for it, with a
//!   [`Configuration`](crate::ErrorKind::Configuration) error instead of fetching again.
//!
//! Errors are boxed ([`BoxError`], the tower convention tonic and tower-http accept): the
//! inner service's error as it was, or a [`kunci::Error`](crate::Error) (no token, or a refused
//! one) to `downcast_ref`. Put the layer *outside* a redirect-following layer: the answer of a
//! redirect target would otherwise be read as the API's (tower-http's `FollowRedirect` drops
//! `Authorization` across origins by default, so the token itself does not travel). gRPC
//! reports a rejected token as the status `UNAUTHENTICATED`, usually not as an HTTP 401; call
//! [`TokenManager::invalidate`] with the token's id when you see one.

use std::{
    fmt,
    future::{Future, poll_fn},
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
};

use auth_core::{Error, TokenManager};
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
/// tower-layer 0.3's `Layer`, re-exported so `AuthLayer::layer` needs no dependency.
pub use tower_layer::Layer;
/// tower-service 0.3's `Service`, which [`AuthService`] implements.
pub use tower_service::Service;

use crate::authorize::{Policy, Transport, origin_of, uri_origin};

/// The error of an [`AuthService`]: the inner service's error, or a [`kunci::Error`](Error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Retries a request rejected with 401 once (its body must be `Clone`); the default mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct Retry;

/// Never retries (any body); a 401 still invalidates the token, once per generation.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRetry;

/// How an [`AuthService`] copies a request to retry it: [`Retry`] or [`NoRetry`].
pub trait RetryMode<B>: sealed::Sealed {
    /// A copy of `request` to send again, or `None` to return the 401.
    fn try_clone(request: &Request<B>) -> Option<Request<B>>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Retry {}
    impl Sealed for super::NoRetry {}
}

impl<B: Clone> RetryMode<B> for Retry {
    fn try_clone(request: &Request<B>) -> Option<Request<B>> {
        let mut builder = Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone())
            .version(request.version());
        if let Some(headers) = builder.headers_mut() {
            headers.clone_from(request.headers());
        }
        if let Some(extensions) = builder.extensions_mut() {
            extensions.clone_from(request.extensions());
        }
        // Fed from a valid request, the builder cannot fail; if it did, the 401 is returned.
        builder.body(request.body().clone()).ok()
    }
}

impl<B> RetryMode<B> for NoRetry {
    fn try_clone(_: &Request<B>) -> Option<Request<B>> {
        None
    }
}

/// A [`Layer`] that wraps a tower HTTP client in an [`AuthService`].
pub struct AuthLayer<R = Retry> {
    policy: Policy,
    mode: PhantomData<fn() -> R>,
}

impl<R> Clone for AuthLayer<R> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            mode: PhantomData,
        }
    }
}

impl<R> fmt::Debug for AuthLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("policy", &self.policy)
            .finish()
    }
}

impl AuthLayer<Retry> {
    /// A layer over `manager` for requests to `origins`: the API's base URLs (only their
    /// scheme, host and port count). Each must be `https://`, or `http://` on a loopback
    /// address, without credentials, query or fragment. Requests with a relative URI get no
    /// token (see [`every_request`](Self::every_request)).
    ///
    /// # Errors
    /// A configuration error for an origin that is not acceptable, or when none is given.
    pub fn new<I, S>(manager: TokenManager, origins: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self {
            policy: Policy::new(manager, origins, "AuthLayer")?,
            mode: PhantomData,
        })
    }

    /// A layer that puts the token on *every* request, whatever its URI: for a client that
    /// talks to one API only, such as a tonic `Channel` (its requests carry a path, no host).
    /// Never put it on a general-purpose client.
    pub fn every_request(manager: TokenManager) -> Self {
        Self {
            policy: Policy::every_request(manager),
            mode: PhantomData,
        }
    }

    /// The same layer without the retry: bodies need not be `Clone` (streams, tonic's); a 401
    /// still invalidates the token and is returned as is.
    pub fn without_retry(self) -> AuthLayer<NoRetry> {
        AuthLayer {
            policy: self.policy,
            mode: PhantomData,
        }
    }
}

impl<S, R> Layer<S> for AuthLayer<R> {
    type Service = AuthService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            policy: self.policy.clone(),
            mode: PhantomData,
        }
    }
}

/// A tower HTTP client that sets `Authorization` from a [`TokenManager`]; made by
/// [`AuthLayer`].
pub struct AuthService<S, R = Retry> {
    inner: S,
    policy: Policy,
    mode: PhantomData<fn() -> R>,
}

impl<S: Clone, R> Clone for AuthService<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for AuthService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S, R> AuthService<S, R> {
    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// One request through the inner service; the first send uses the service the caller made
/// ready.
struct Inner<S, R, B> {
    service: S,
    ready: bool,
    mode: PhantomData<fn() -> (R, B)>,
}

impl<S, B, ResB, R> Transport for Inner<S, R, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Send,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send,
    ResB: Send,
    R: RetryMode<B>,
{
    type Request = Request<B>;
    type Response = Response<ResB>;
    type Error = BoxError;

    fn authorize(request: &mut Request<B>, value: HeaderValue) {
        request.headers_mut().insert(AUTHORIZATION, value);
    }

    fn try_clone(request: &Request<B>) -> Option<Request<B>> {
        R::try_clone(request)
    }

    async fn send(&mut self, request: Request<B>) -> Result<Response<ResB>, BoxError> {
        if !std::mem::take(&mut self.ready) {
            poll_fn(|cx| self.service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
        }
        self.service.call(request).await.map_err(Into::into)
    }

    /// A tower client does not follow redirects below this layer: the answer is the API's.
    fn api_status(&self, _: &Policy, response: &Response<ResB>) -> Option<StatusCode> {
        Some(response.status())
    }

    fn error(error: Error) -> BoxError {
        Box::new(error)
    }
}

impl<S, B, ResB, R> Service<Request<B>> for AuthService<S, R>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
    ResB: Send + 'static,
    R: RetryMode<B> + 'static,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !self.policy.covers_uri(request.uri()) {
            let call = self.inner.call(request);
            return Box::pin(async move { call.await.map_err(Into::into) });
        }
        // The service made ready is the one that must take this call; keep a clone for later.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        Box::pin(async move {
            let origin = uri_origin(request.uri())
                .and_then(|url| origin_of(&url))
                .unwrap_or_else(|| "the API".to_owned());
            let mut inner = Inner::<S, R, B> {
                service,
                ready: true,
                mode: PhantomData,
            };
            policy.send(&mut inner, request, &origin).await
        })
    }
}
