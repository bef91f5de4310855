//! Where tokens come from: the [`TokenSource`] trait that every provider implements.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::{credential::Credential, error::Error, store::StoreKey, token::Token};

/// What the manager hands a source when it asks for a new token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchRequest {
    /// The refresh material held now: the last rotated value from the store, or `None` to use
    /// what the source was configured with.
    pub refresh: Option<SecretString>,
    /// The wall-clock moment the request is being sent. Lifetimes given as durations
    /// (`expires_in`) count from here, so time on the network counts against the token.
    pub sent_at: OffsetDateTime,
}

impl FetchRequest {
    /// A request at `sent_at` holding `refresh`.
    pub fn new(refresh: Option<SecretString>, sent_at: OffsetDateTime) -> Self {
        Self { refresh, sent_at }
    }
}

/// What a source answers: a token and, for providers that rotate it, new refresh material.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fetched {
    /// The new token.
    pub token: Token,
    /// The refresh material to use next time, when the provider rotated it. The manager saves it
    /// to the store before the token is handed to anyone.
    pub refresh: Option<SecretString>,
}

impl Fetched {
    /// A token with no new refresh material.
    pub fn new(token: Token) -> Self {
        Self {
            token,
            refresh: None,
        }
    }

    /// A token and the refresh material that replaces the old one.
    pub fn rotated(token: Token, refresh: SecretString) -> Self {
        Self {
            token,
            refresh: Some(refresh),
        }
    }
}

/// A provider's token endpoint.
///
/// Implementations perform one attempt per call: no retries inside (the manager owns backoff,
/// cool-downs and single flight), no caching.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// Fetches a new token.
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error>;

    /// How long nothing may be sent after this failed attempt. SehatMu, for one, allows one
    /// request per minute after a failure. The default is no cool-down; a `Retry-After` the
    /// server sent is honoured separately.
    fn cooldown_after_failure(&self, _error: &Error) -> Option<Duration> {
        None
    }

    /// A short name for logs and metrics (`"kalsel"`); never a secret.
    fn name(&self) -> &str {
        "custom"
    }

    /// When the long-lived credential this source was configured with stops working, if the
    /// source can tell (a refresh token's own expiry, read from the credential): after that no
    /// fetch can succeed until a person logs in again. `None` (the default) when it is
    /// permanent or unknown. Surfaced in [`Stats::credential_expires_at`](crate::Stats) so an
    /// operator can alert before it happens. Called outside the warm path; must not block.
    fn credential_expires_at(&self) -> Option<OffsetDateTime> {
        None
    }

    /// The credential this source was configured with (the secret parts that make its tokens,
    /// and any public parts that pick the account), so that stored entries are tied to it: the
    /// manager stores a one-way [`Fingerprint`](crate::Fingerprint) of it with every entry, and
    /// an entry made with another credential (the operator replaced a leaked one, or moved to
    /// another device) is not adopted and is replaced by the next save. See
    /// [`Credential`] for how the fingerprint is made.
    ///
    /// The default, `None`, ties nothing: every entry under the store key is adopted. Provider
    /// crates override it with one line:
    ///
    /// ```text
    /// fn credential(&self) -> Option<Credential> {
    ///     Some(Credential::new(NAME).secret("client_secret", &self.config.client_secret))
    /// }
    /// ```
    fn credential(&self) -> Option<Credential> {
        None
    }

    /// The store key of the account this source serves (`"kalsel:default"`), known from its
    /// configuration alone and never derived from a secret. `None` (the default) leaves the
    /// choice to the caller (`<name>:default` when it makes none). A wrapper of another
    /// source forwards it, like every other method.
    fn store_key(&self) -> Option<StoreKey> {
        None
    }
}

/// A cheaply cloneable, shared [`TokenSource`].
#[derive(Clone, Debug)]
pub struct SharedTokenSource(Arc<dyn TokenSource>);

impl SharedTokenSource {
    /// Wraps a source.
    pub fn new(source: impl TokenSource + 'static) -> Self {
        Self(Arc::new(source))
    }
}

impl std::ops::Deref for SharedTokenSource {
    type Target = dyn TokenSource;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl SharedTokenSource {
    /// Wraps a source that is already shared.
    pub fn from_arc(source: Arc<dyn TokenSource>) -> Self {
        Self(source)
    }
}

impl<S: TokenSource + 'static> From<S> for SharedTokenSource {
    fn from(source: S) -> Self {
        Self::new(source)
    }
}

/// A source made from a closure: `from_fn("demo", |req| async move { … })`.
pub fn from_fn<F, Fut>(name: &'static str, f: F) -> FnSource<F>
where
    F: Fn(FetchRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Fetched, Error>> + Send + 'static,
{
    FnSource { name, f }
}

/// See [`from_fn`].
pub struct FnSource<F> {
    name: &'static str,
    f: F,
}

impl<F> fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<F, Fut> TokenSource for FnSource<F>
where
    F: Fn(FetchRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Fetched, Error>> + Send + 'static,
{
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        (self.f)(request).await
    }

    fn name(&self) -> &str {
        self.name
    }
}

/// A source that always answers the same permanent token and never touches the network (for
/// example a Stamps static token).
#[derive(Debug, Clone)]
pub struct StaticSource {
    name: &'static str,
    token: Token,
}

impl StaticSource {
    /// A source handing out `token`.
    pub fn new(name: &'static str, token: Token) -> Self {
        Self { name, token }
    }
}

#[async_trait]
impl TokenSource for StaticSource {
    async fn fetch(&self, _request: FetchRequest) -> Result<Fetched, Error> {
        Ok(Fetched::new(self.token.clone()))
    }

    fn name(&self) -> &str {
        self.name
    }

    /// The static token is the credential.
    fn credential(&self) -> Option<Credential> {
        Some(
            Credential::new("static")
                .public("scheme", self.token.scheme().as_str())
                .secret("token", self.token.secret()),
        )
    }
}
