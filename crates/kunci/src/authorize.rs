//! The policy shared by the HTTP front-ends ([`AuthMiddleware`](crate::AuthMiddleware) for
//! reqwest-middleware, [`tower::AuthLayer`](crate::tower::AuthLayer) for hyper, tonic and
//! axum clients): which requests get the token, and what a 401 does.
//!
//! A front-end only says how to put a header on its request, clone it, send it and read the
//! status of its answer ([`Transport`]); [`Policy::send`] runs the sequence — token, send,
//! invalidate on 401, retry once — and keeps what 401s taught ([`Rejections`]), so both
//! front-ends behave the same way by construction.

use std::{
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use auth_core::{Error, TokenManager, http::parse_base_url};
use http::{HeaderValue, StatusCode};
use url::Url;

/// Which requests get the token.
#[derive(Clone, Debug)]
enum Scope {
    /// Requests to these origins, as `Url::origin().ascii_serialization()`.
    Origins(Arc<[String]>),
    /// Every request: the client talks to one API only (a tonic channel, whose requests carry
    /// a path but no host).
    #[cfg(feature = "tower")]
    Every,
}

/// The manager, the scope and what 401s taught, shared by the clones of a front-end.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    manager: TokenManager,
    scope: Scope,
    rejections: Arc<Mutex<Rejections>>,
}

/// What a front-end provides: its request and response types and how to send.
pub(crate) trait Transport: Send {
    type Request: Send;
    type Response: Send;
    type Error;
    /// Sets `Authorization` (the value is already marked sensitive).
    fn authorize(request: &mut Self::Request, value: HeaderValue);
    /// A copy to retry with, when the body can be replayed.
    fn try_clone(request: &Self::Request) -> Option<Self::Request>;
    fn send(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;
    /// The status of `response` when it is the API's answer, `None` when it came from
    /// elsewhere (after a redirect, which carried no token) and so says nothing of the token.
    fn api_status(&self, policy: &Policy, response: &Self::Response) -> Option<StatusCode>;
    /// A kunci error (no token, or a refused one) as the front-end's error.
    fn error(error: Error) -> Self::Error;
}

/// What 401s taught, by token generation (0: none).
#[derive(Debug, Default)]
struct Rejections {
    /// The newest generation invalidated after a 401.
    invalidated: u64,
    /// The newest generation that got an answer other than 401.
    proven: u64,
    /// A generation rejected right after it replaced an invalidated one.
    rejected: u64,
}

/// What to do about a 401 for a token of some generation.
#[derive(Debug, PartialEq, Eq)]
enum On401 {
    /// Invalidate it (the first 401 for this generation) and try a new token.
    Invalidate,
    /// Already invalidated (a late 401 for an old token): try the manager's current token.
    Retry,
    /// It replaced a rejected token and was rejected before proving itself: stop.
    Refuse,
}

impl Rejections {
    fn on_success(&mut self, generation: u64) {
        self.proven = self.proven.max(generation);
    }

    fn on_401(&mut self, generation: u64) -> On401 {
        if generation == self.rejected && generation != 0 {
            return On401::Refuse;
        }
        // A token newer than the last one invalidated replaced it; if nothing since that
        // invalidation has worked, the API refuses what the token endpoint issues.
        if self.invalidated != 0 && generation > self.invalidated && self.proven <= self.invalidated
        {
            self.rejected = generation;
            return On401::Refuse;
        }
        if generation > self.invalidated {
            self.invalidated = generation;
            On401::Invalidate
        } else {
            On401::Retry
        }
    }

    /// Whether `generation` is known to be refused.
    fn is_rejected(&self, generation: u64) -> bool {
        generation != 0 && generation == self.rejected
    }
}

impl Policy {
    /// A policy for requests to `origins`: the API's base URLs (only their scheme, host and
    /// port count). `front` names the front-end in errors.
    pub(crate) fn new<I, S>(manager: TokenManager, origins: I, front: &str) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for origin in origins {
            let url = parse_base_url(origin.as_ref()).map_err(|e| {
                Error::configuration(format!("an API origin of {front}: {}", e.message()))
            })?;
            let origin = origin_of(&url).ok_or_else(|| {
                Error::configuration(format!("an API origin of {front} has no host"))
            })?;
            if !parsed.contains(&origin) {
                parsed.push(origin);
            }
        }
        if parsed.is_empty() {
            return Err(Error::configuration(format!(
                "{front} needs the API's origin (for example https://api.example): the token is sent there and nowhere else"
            )));
        }
        Ok(Self::with_scope(manager, Scope::Origins(parsed.into())))
    }

    /// A policy that authorizes every request (a client dedicated to one API).
    #[cfg(feature = "tower")]
    pub(crate) fn every_request(manager: TokenManager) -> Self {
        Self::with_scope(manager, Scope::Every)
    }

    fn with_scope(manager: TokenManager, scope: Scope) -> Self {
        Self {
            manager,
            scope,
            rejections: Arc::default(),
        }
    }

    /// Whether a request to `url` gets the token.
    pub(crate) fn covers_url(&self, url: &Url) -> bool {
        match &self.scope {
            #[cfg(feature = "tower")]
            Scope::Every => true,
            Scope::Origins(origins) => origin_of(url).is_some_and(|o| origins.contains(&o)),
        }
    }

    /// Whether a request to `uri` gets the token: under [`Scope::Origins`], only an absolute
    /// URI whose origin is one of them (a relative one could go anywhere).
    #[cfg(feature = "tower")]
    pub(crate) fn covers_uri(&self, uri: &http::Uri) -> bool {
        match &self.scope {
            Scope::Every => true,
            Scope::Origins(_) => uri_origin(uri).is_some_and(|url| self.covers_url(&url)),
        }
    }

    fn rejections(&self) -> MutexGuard<'_, Rejections> {
        self.rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn refused(&self, origin: &str) -> Error {
        tracing::error!(key = %self.manager.key(), %origin, "the API rejected a token just issued; not fetching another");
        Error::configuration(format!(
            "the API at {origin} rejected (401) a token for `{}` that had just replaced a rejected one: the credential is accepted by the token endpoint but not by this API (another account, environment or scope?); fix the configuration, kunci fetches no more tokens for this",
            self.manager.key()
        ))
    }

    /// Sends `request` (which the caller found [covered](Self::covers_url)) with the token;
    /// on a 401 from the API, invalidates that token at most once per generation and retries
    /// once with a different token when the request can be cloned. A replacement token
    /// rejected before any request succeeded with it is a configuration error, not another
    /// fetch. `origin` names the API in that error.
    pub(crate) async fn send<T: Transport>(
        &self,
        transport: &mut T,
        mut request: T::Request,
        origin: &str,
    ) -> Result<T::Response, T::Error> {
        // Keep the token's identity, not its guard, across the request: a guard pins one of a
        // few per-thread slots for as long as it lives.
        let token = {
            let guard = self.manager.token().await.map_err(T::error)?;
            T::authorize(&mut request, guard.header_value().clone());
            guard.id()
        };
        let retry = T::try_clone(&request);
        let response = transport.send(request).await?;
        match transport.api_status(self, &response) {
            Some(StatusCode::UNAUTHORIZED) => {}
            Some(_) => {
                self.rejections().on_success(token.get());
                return Ok(response);
            }
            None => return Ok(response),
        }
        let decision = self.rejections().on_401(token.get());
        match decision {
            On401::Refuse => return Err(T::error(self.refused(origin))),
            On401::Invalidate => {
                self.manager.invalidate(token);
            }
            On401::Retry => {}
        }
        let Some(mut retry) = retry else {
            tracing::debug!(key = %self.manager.key(), "401 for a request that cannot be retried (streaming body)");
            return Ok(response);
        };
        let fresh = match self.manager.token().await {
            Ok(fresh) if fresh.id() != token => fresh,
            Ok(_) => return Ok(response),
            Err(e) => {
                tracing::warn!(key = %self.manager.key(), error = %e, "401 and no new token; returning the 401");
                return Ok(response);
            }
        };
        let fresh_generation = fresh.generation();
        if self.rejections().is_rejected(fresh_generation) {
            return Err(T::error(self.refused(origin)));
        }
        tracing::debug!(key = %self.manager.key(), "401: retrying once with a new token");
        T::authorize(&mut retry, fresh.header_value().clone());
        drop(fresh);
        drop(response);
        let response = transport.send(retry).await?;
        match transport.api_status(self, &response) {
            Some(StatusCode::UNAUTHORIZED) => {}
            Some(_) => {
                self.rejections().on_success(fresh_generation);
                return Ok(response);
            }
            None => return Ok(response),
        }
        let decision = self.rejections().on_401(fresh_generation);
        match decision {
            On401::Refuse => Err(T::error(self.refused(origin))),
            // Proven by another request meanwhile: a 401 of its own, returned as is.
            On401::Invalidate | On401::Retry => Ok(response),
        }
    }
}

/// `scheme://host[:port]` of `url`, the port shown only when it is not the scheme's default;
/// `None` for URLs without a host.
pub(crate) fn origin_of(url: &Url) -> Option<String> {
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The origin of an absolute `uri` as a URL (parsed by the same rules as the configured
/// origins, so `LOCALHOST:443` and `localhost` compare equal); `None` for a relative one.
#[cfg(feature = "tower")]
pub(crate) fn uri_origin(uri: &http::Uri) -> Option<Url> {
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    Url::parse(&format!("{scheme}://{authority}/")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_generation_is_invalidated_once_and_a_replacement_rejected_at_once_is_refused() {
        let mut r = Rejections::default();
        // Generation 1 is rejected: invalidated once; late 401s for it only retry.
        assert_eq!(r.on_401(1), On401::Invalidate);
        assert_eq!(r.on_401(1), On401::Retry);
        // Its replacement is rejected before any success: refused, now and later.
        assert_eq!(r.on_401(2), On401::Refuse);
        assert_eq!(r.on_401(2), On401::Refuse);
        assert!(r.is_rejected(2));

        // A replacement that worked once is not "rejected at once" later.
        let mut r = Rejections::default();
        assert_eq!(r.on_401(1), On401::Invalidate);
        r.on_success(2);
        assert_eq!(r.on_401(2), On401::Invalidate);
        assert_eq!(r.on_401(3), On401::Refuse);
        // A token from a later refresh gets its own chance only if something worked since.
        r.on_success(4);
        assert_eq!(r.on_401(5), On401::Invalidate);
    }

    #[cfg(feature = "tower")]
    #[test]
    fn a_uri_has_an_origin_only_when_it_is_absolute_and_compares_like_a_url() {
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        let origin = |s: &str| uri_origin(&uri(s)).and_then(|u| origin_of(&u));
        assert_eq!(
            origin("https://API.example:443/v1?q=1").as_deref(),
            Some("https://api.example")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/x").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("/pkg.Service/Method"), None);
        assert_eq!(
            origin("https://user@api.example/").as_deref(),
            Some("https://api.example")
        );
    }
}
