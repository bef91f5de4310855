//! [`AuthMiddleware`]: puts the manager's token on the requests of a `reqwest-middleware`
//! client that go to the API's origins (feature `middleware`).

use std::sync::{Arc, Mutex, PoisonError};

use auth_core::{Error, TokenManager, http::parse_base_url};
use http::{Extensions, StatusCode, header::AUTHORIZATION};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};

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
/// The header value is marked sensitive and is never logged here.
#[derive(Clone, Debug)]
pub struct AuthMiddleware {
    manager: TokenManager,
    /// The configured origins, as `Url::origin().ascii_serialization()`.
    origins: Arc<[String]>,
    rejections: Arc<Mutex<Rejections>>,
}

/// What the middleware learned from 401s, by token generation (0: none).
#[derive(Debug, Default)]
struct Rejections {
    /// The newest generation this middleware invalidated after a 401.
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

impl AuthMiddleware {
    /// Middleware over `manager` for requests to `origins`: the API's base URLs (only their
    /// scheme, host and port count; a path is ignored). Each must be `https://`, or `http://`
    /// on a loopback address, without credentials, query or fragment.
    ///
    /// ```
    /// # use auth_core::{FetchRequest, Fetched, Token, TokenManager, source};
    /// # use secrecy::SecretString;
    /// # let source = source::from_fn("api", |r: FetchRequest| async move {
    /// #     Ok(Fetched::new(Token::bearer(SecretString::from("t"), r.sent_at, None)?))
    /// # });
    /// # let manager = TokenManager::builder(source).build()?;
    /// let auth = kunci::AuthMiddleware::new(manager, ["https://api.kalsel.dev"])?;
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(auth)
    ///     .build();
    /// # Ok::<(), kunci::Error>(())
    /// ```
    ///
    /// # Errors
    /// A configuration error for an origin that is not acceptable, or when none is given.
    pub fn new<I, S>(manager: TokenManager, origins: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for origin in origins {
            let url = parse_base_url(origin.as_ref()).map_err(|e| {
                Error::configuration(format!("an API origin of AuthMiddleware: {}", e.message()))
            })?;
            let origin = origin_of(&url).ok_or_else(|| {
                Error::configuration("an API origin of AuthMiddleware has no host")
            })?;
            if !parsed.contains(&origin) {
                parsed.push(origin);
            }
        }
        if parsed.is_empty() {
            return Err(Error::configuration(
                "AuthMiddleware needs the API's origin (for example https://api.example): the token is sent there and nowhere else",
            ));
        }
        Ok(Self {
            manager,
            origins: parsed.into(),
            rejections: Arc::default(),
        })
    }

    fn is_api(&self, url: &Url) -> bool {
        origin_of(url).is_some_and(|o| self.origins.contains(&o))
    }

    fn rejections(&self) -> std::sync::MutexGuard<'_, Rejections> {
        self.rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn refused(&self, url: &Url) -> reqwest_middleware::Error {
        let origin = origin_of(url).unwrap_or_default();
        tracing::error!(key = %self.manager.key(), %origin, "the API rejected a token just issued; not fetching another");
        reqwest_middleware::Error::middleware(Error::configuration(format!(
            "the API at {origin} rejected (401) a token for `{}` that had just replaced a rejected one: the credential is accepted by the token endpoint but not by this API (another account, environment or scope?); fix the configuration, kunci fetches no more tokens for this",
            self.manager.key()
        )))
    }
}

/// `scheme://host[:port]` of `url`, the port shown only when it is not the scheme's default;
/// `None` for URLs without a host.
fn origin_of(url: &Url) -> Option<String> {
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.is_api(req.url()) {
            return next.run(req, extensions).await;
        }
        // Keep the token's identity, not its guard, across the request: a guard pins one of a
        // few per-thread slots for as long as it lives.
        let token = {
            let guard = self
                .manager
                .token()
                .await
                .map_err(reqwest_middleware::Error::middleware)?;
            req.headers_mut()
                .insert(AUTHORIZATION, guard.header_value().clone());
            guard.id()
        };
        let retry = req.try_clone();
        let url = req.url().clone();
        let response = next.clone().run(req, extensions).await?;
        // An answer from elsewhere (after a redirect, which carried no token) says nothing
        // about the token.
        if !self.is_api(response.url()) {
            return Ok(response);
        }
        if response.status() != StatusCode::UNAUTHORIZED {
            self.rejections().on_success(token.get());
            return Ok(response);
        }
        let decision = self.rejections().on_401(token.get());
        match decision {
            On401::Refuse => return Err(self.refused(&url)),
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
        if self.rejections().is_rejected(fresh.generation()) {
            return Err(self.refused(&url));
        }
        tracing::debug!(key = %self.manager.key(), "401: retrying once with a new token");
        retry
            .headers_mut()
            .insert(AUTHORIZATION, fresh.header_value().clone());
        let fresh_generation = fresh.generation();
        drop(fresh);
        let response = next.run(retry, extensions).await?;
        if !self.is_api(response.url()) {
            return Ok(response);
        }
        if response.status() != StatusCode::UNAUTHORIZED {
            self.rejections().on_success(fresh_generation);
            return Ok(response);
        }
        match self.rejections().on_401(fresh_generation) {
            On401::Refuse => Err(self.refused(&url)),
            // Proven by another request meanwhile: a 401 of its own, returned as is.
            On401::Invalidate | On401::Retry => Ok(response),
        }
    }
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
}
