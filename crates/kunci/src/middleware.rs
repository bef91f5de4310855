//! [`AuthMiddleware`]: puts the manager's token on every request of a `reqwest-middleware`
//! client (feature `middleware`).

use auth_core::TokenManager;
use http::{Extensions, StatusCode, header::AUTHORIZATION};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

/// Sets `Authorization` from a [`TokenManager`]. On a 401 it invalidates the token it sent and,
/// when the request can be cloned (its body is not a stream) and the manager has a different
/// token, retries once — never in a loop. A second 401 is returned to the caller as is.
///
/// The header value is marked sensitive and is never logged here.
#[derive(Clone, Debug)]
pub struct AuthMiddleware {
    manager: TokenManager,
}

impl AuthMiddleware {
    /// Middleware over `manager`.
    pub fn new(manager: TokenManager) -> Self {
        Self { manager }
    }
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let token = self
            .manager
            .token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        req.headers_mut()
            .insert(AUTHORIZATION, token.header_value().clone());
        let retry = req.try_clone();
        let response = next.clone().run(req, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut retry) = retry else {
            tracing::debug!(key = %self.manager.key(), "401 for a request that cannot be retried (streaming body)");
            self.manager.invalidate(&token);
            return Ok(response);
        };
        self.manager.invalidate(&token);
        let fresh = match self.manager.token().await {
            Ok(fresh) if fresh.generation() != token.generation() => fresh,
            Ok(_) => return Ok(response),
            Err(e) => {
                tracing::warn!(key = %self.manager.key(), error = %e, "401 and no new token; returning the 401");
                return Ok(response);
            }
        };
        tracing::debug!(key = %self.manager.key(), "401: retrying once with a new token");
        retry
            .headers_mut()
            .insert(AUTHORIZATION, fresh.header_value().clone());
        next.run(retry, extensions).await
    }
}
