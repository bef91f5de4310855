//! The token manager: cache, single-flight refresh, refresh-ahead, cool-downs, invalidation.
//!
//! # How a call is served
//!
//! * **Warm path** — [`TokenManager::token`] loads the cached entry (`ArcSwap::load`, a
//!   thread-local "debt" slot instead of a shared reference count, so threads do not contend),
//!   reads the monotonic clock and compares two integers. No lock, no allocation, no await.
//! * **Expiring** — the same, plus: if no refresh is running and no back-off is in force, one
//!   background refresh is spawned. The caller still gets the current token at once.
//! * **Expired or empty** — the caller joins the single refresh in flight (starting it if
//!   there is none) and waits for its result or its error.
//!
//! # One refresh
//!
//! A refresh is a spawned task, so a caller that gives up cannot cancel it half-way (between
//! receiving a rotated refresh token and saving it). It takes the store's lock (one process of
//! many refreshes), reloads the entry (another process may have refreshed meanwhile: that token
//! is adopted and no request is sent), honours a stored cool-down, asks the source, saves the
//! new entry with compare-and-swap and only then publishes the token.

use std::{
    fmt,
    ops::Deref,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use futures_util::future::{FutureExt, Shared};
use time::OffsetDateTime;
use tracing::{Instrument as _, field};

use crate::{
    clock::{MonoTime, SharedClock, positive_duration},
    error::{Error, ErrorKind},
    policy::{Deadlines, Freshness, RefreshPolicy},
    source::{FetchRequest, Fetched, SharedTokenSource},
    store::{MemoryStore, SharedTokenStore, StoreKey, StoredEntry},
    token::Token,
};

type FlightFuture =
    Shared<Pin<Box<dyn std::future::Future<Output = Result<Arc<Cached>, Error>> + Send>>>;

/// A token as cached: the token and where it sits on the monotonic timeline.
#[derive(Debug)]
struct Cached {
    token: Token,
    deadlines: Deadlines,
    /// Unique per cached token within one manager; 0 for the empty and revoked entries.
    generation: u64,
    /// The store version the token was saved or read at.
    version: u64,
}

impl Cached {
    fn empty() -> Self {
        Self {
            token: Token::placeholder(),
            deadlines: Deadlines::EXPIRED,
            generation: 0,
            version: 0,
        }
    }
}

/// The last failed refresh, and until when nothing new is tried.
#[derive(Debug)]
struct Failure {
    error: Error,
    not_before: MonoTime,
    /// Set when a cool-down (the source's, or a server's `Retry-After`) is in force.
    cooldown_until: Option<OffsetDateTime>,
    consecutive: u32,
}

impl Failure {
    fn error_for_caller(&self) -> Error {
        match (self.cooldown_until, self.error.kind()) {
            (_, ErrorKind::RateLimited { .. }) | (None, _) => self.error.clone(),
            (Some(until), _) => self.error.cooling_down(until),
        }
    }
}

/// A handle to a cached token. Dereferences to [`Token`].
///
/// Holding it is cheap (it pins the token, nothing else); pass it back to
/// [`TokenManager::invalidate`] when the API answered 401 for it.
pub struct TokenGuard(Guard<Arc<Cached>>);

impl TokenGuard {
    /// Identifies this token among those the manager handed out.
    pub fn generation(&self) -> u64 {
        self.0.generation
    }
}

impl Deref for TokenGuard {
    type Target = Token;
    #[inline]
    fn deref(&self) -> &Token {
        &self.0.token
    }
}

impl fmt::Debug for TokenGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGuard")
            .field("token", &self.0.token)
            .field("generation", &self.0.generation)
            .finish()
    }
}

/// Stops [`TokenManager::keep_fresh`]'s task when dropped.
#[derive(Debug)]
#[must_use = "the keep-fresh task stops when this guard is dropped"]
pub struct KeepFresh {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeepFresh {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A snapshot of a manager's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the cache.
    pub cache_hits: u64,
    /// Requests sent to the provider.
    pub fetches: u64,
    /// Tokens taken from the store because another process had refreshed already.
    pub adopted: u64,
    /// Failed refreshes.
    pub failures: u64,
    /// Calls answered with an error at once because of a back-off or cool-down.
    pub rejected: u64,
    /// Tokens invalidated after a 401.
    pub invalidations: u64,
    /// How long the cached token stays usable (`None`: none cached, or permanent).
    pub time_to_expiry: Option<Duration>,
    /// Where the cached token stands (`None`: nothing cached).
    pub freshness: Option<Freshness>,
    /// When the source's configured credential expires (a refresh token's own expiry; see
    /// [`TokenSource::credential_expires_at`](crate::TokenSource::credential_expires_at)).
    pub credential_expires_at: Option<OffsetDateTime>,
    /// While a cool-down is in force (a source's declared cool-down, a server's `Retry-After`
    /// or 429): the moment the next request may be sent.
    pub cooldown_until: Option<OffsetDateTime>,
}

/// Per-thread stripes for the hit counter, so counting does not make threads contend.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

const STRIPES: usize = 16;

#[derive(Default)]
struct StripedCounter([Padded; STRIPES]);

#[inline]
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // `const`-initialised: reading it is one thread-local load, with no lazy-init check.
        static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let index = i.get();
        if index != usize::MAX {
            return index;
        }
        let index = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        i.set(index);
        index
    })
}

impl StripedCounter {
    /// Counts one hit on this thread's stripe with a plain load and store, not a locked
    /// read-modify-write: a stripe belongs to one thread while at most [`STRIPES`] threads call
    /// concurrently, so the count is exact then; beyond that, two threads sharing a stripe can
    /// occasionally lose an increment. A statistic is not worth a locked instruction on every
    /// call.
    #[inline]
    fn increment(&self) {
        let cell = &self.0[stripe_index()].0;
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

#[derive(Default)]
struct Counters {
    hits: StripedCounter,
    fetches: AtomicU64,
    adopted: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
    invalidations: AtomicU64,
}

struct Inner {
    source: SharedTokenSource,
    store: SharedTokenStore,
    clock: SharedClock,
    policy: RefreshPolicy,
    key: StoreKey,
    current: ArcSwap<Cached>,
    failure: ArcSwapOption<Failure>,
    flight: Mutex<Option<FlightFuture>>,
    refreshing: AtomicBool,
    next_generation: AtomicU64,
    /// The store version of a token invalidated by a 401: never adopted again.
    stale_version: AtomicU64,
    /// A fetched entry whose save failed; it may hold the only valid refresh material, so the
    /// next refresh saves it before anything else.
    pending: Mutex<Option<StoredEntry>>,
    counters: Counters,
}

/// Gets, caches and refreshes the tokens of one source for one store key.
///
/// Cloning is cheap and every clone shares the cache. Constructing one needs no runtime and
/// spawns nothing; refreshes are spawned on the tokio runtime of the caller that needs one.
/// Dropping the last clone stops all background work: no new refresh starts, and one already
/// under way finishes its save (so rotated refresh material is never lost) and ends.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("source", &self.inner.source.name())
            .field("key", &self.inner.key)
            .field("store", &self.inner.store.describe())
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    source: SharedTokenSource,
    store: Option<SharedTokenStore>,
    clock: Option<SharedClock>,
    policy: RefreshPolicy,
    key: Option<StoreKey>,
}

impl TokenManagerBuilder {
    /// The store (default: a fresh [`MemoryStore`]).
    #[must_use]
    pub fn store(mut self, store: impl Into<SharedTokenStore>) -> Self {
        self.store = Some(store.into());
        self
    }

    /// The clock (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: impl Into<SharedClock>) -> Self {
        self.clock = Some(clock.into());
        self
    }

    /// The refresh policy (default: [`RefreshPolicy::default`]).
    #[must_use]
    pub fn policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The store key (default: `<source name>:default`).
    #[must_use]
    pub fn key(mut self, key: StoreKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Validates the policy and builds the manager.
    pub fn build(self) -> Result<TokenManager, Error> {
        self.policy.validate()?;
        let key = match self.key {
            Some(key) => key,
            None => StoreKey::for_account(self.source.name(), "default")?,
        };
        Ok(TokenManager {
            inner: Arc::new(Inner {
                store: self
                    .store
                    .unwrap_or_else(|| SharedTokenStore::new(MemoryStore::new())),
                clock: self.clock.unwrap_or_default(),
                source: self.source,
                policy: self.policy,
                key,
                current: ArcSwap::from_pointee(Cached::empty()),
                failure: ArcSwapOption::empty(),
                flight: Mutex::new(None),
                refreshing: AtomicBool::new(false),
                next_generation: AtomicU64::new(1),
                stale_version: AtomicU64::new(0),
                pending: Mutex::new(None),
                counters: Counters::default(),
            }),
        })
    }
}

impl TokenManager {
    /// Starts building a manager for `source`.
    pub fn builder(source: impl Into<SharedTokenSource>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            source: source.into(),
            store: None,
            clock: None,
            policy: RefreshPolicy::default(),
            key: None,
        }
    }

    /// A valid token: from the cache when it is fresh, otherwise from the one refresh in flight.
    ///
    /// # Errors
    /// The refresh's error, typed by what to do ([`ErrorKind`]); while a cool-down or back-off
    /// is in force, that error at once, without a request.
    #[inline]
    pub async fn token(&self) -> Result<TokenGuard, Error> {
        let inner = &self.inner;
        let now = inner.clock.monotonic_fast();
        let cached = inner.current.load();
        match cached.deadlines.freshness(now) {
            Freshness::Fresh => {
                inner.counters.hits.increment();
                return Ok(TokenGuard(cached));
            }
            Freshness::Expiring => {
                inner.counters.hits.increment();
                inner.refresh_ahead(now);
                return Ok(TokenGuard(cached));
            }
            Freshness::Expired => {}
        }
        drop(cached);
        inner.token_slow(now).await
    }

    /// Reports that the API rejected `token` (a 401). If it is still the current token, it is
    /// dropped from the cache and one refresh starts; a token that was already replaced is left
    /// alone, so a hundred late 401s for the same old token cause one refresh, not a hundred.
    /// Returns whether this call invalidated the current token.
    pub fn invalidate(&self, token: &TokenGuard) -> bool {
        let inner = &self.inner;
        let current = inner.current.load();
        if current.generation == 0 || current.generation != token.generation() {
            return false;
        }
        let revoked = Arc::new(Cached {
            token: current.token.clone(),
            deadlines: Deadlines::EXPIRED,
            generation: 0,
            version: current.version,
        });
        let previous = inner.current.compare_and_swap(&current, revoked);
        if !Arc::ptr_eq(&previous, &current) {
            return false;
        }
        inner.stale_version.store(current.version, Ordering::SeqCst);
        inner.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(provider = inner.source.name(), key = %inner.key, "token invalidated after a rejection");
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(inner.start_flight());
        }
        true
    }

    /// Keeps the token fresh without callers: a background task refreshes at each token's
    /// refresh point (and retries after failures, honouring back-off and cool-downs) until the
    /// returned guard or the manager is dropped.
    ///
    /// Useful for providers whose refresh material expires with the token — Kalsel.dev's
    /// rotating refresh token is the last access token, so a service idle past its expiry
    /// would otherwise have to log in again. Must be called inside a tokio runtime.
    pub fn keep_fresh(&self) -> KeepFresh {
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            loop {
                let wait = {
                    let Some(inner) = weak.upgrade() else { return };
                    let manager = TokenManager { inner };
                    let outcome = manager.token().await;
                    let inner = &manager.inner;
                    let now = inner.clock.monotonic();
                    let cached = inner.current.load();
                    let failure_wait = inner
                        .failure
                        .load()
                        .as_ref()
                        .map(|f| f.not_before.saturating_duration_since(now))
                        .filter(|d| !d.is_zero());
                    match (outcome, failure_wait) {
                        (_, Some(wait)) => wait,
                        (Err(_), None) => inner.policy.backoff_initial,
                        (Ok(_), None) if cached.deadlines.refresh_at == MonoTime::NEVER => return,
                        // inside the window a refresh is already running: look again shortly
                        (Ok(_), None) => cached
                            .deadlines
                            .refresh_at
                            .saturating_duration_since(now)
                            .max(Duration::from_millis(10)),
                    }
                };
                tokio::time::sleep(wait).await;
            }
        });
        KeepFresh { task }
    }

    /// Where the cached token stands now (`None`: nothing usable cached).
    pub fn freshness(&self) -> Option<Freshness> {
        let cached = self.inner.current.load();
        (cached.generation != 0).then(|| cached.deadlines.freshness(self.inner.clock.monotonic()))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let inner = &self.inner;
        let c = &inner.counters;
        let cached = inner.current.load();
        let now = inner.clock.monotonic();
        let has_token = cached.generation != 0;
        Stats {
            cache_hits: c.hits.sum(),
            fetches: c.fetches.load(Ordering::Relaxed),
            adopted: c.adopted.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            time_to_expiry: (has_token && cached.deadlines.expires_at != MonoTime::NEVER)
                .then(|| cached.deadlines.expires_at.saturating_duration_since(now)),
            freshness: has_token.then(|| cached.deadlines.freshness(now)),
            credential_expires_at: inner.source.credential_expires_at(),
            cooldown_until: inner
                .failure
                .load()
                .as_ref()
                .and_then(|f| f.cooldown_until)
                .filter(|until| *until > inner.clock.now()),
        }
    }

    /// The store key this manager serves.
    pub fn key(&self) -> &StoreKey {
        &self.inner.key
    }

    /// The store this manager persists to.
    pub fn store(&self) -> &SharedTokenStore {
        &self.inner.store
    }

    /// The source this manager fetches from.
    pub fn source(&self) -> &SharedTokenSource {
        &self.inner.source
    }
}

impl Inner {
    /// The token is valid but inside its window: start one background refresh unless one is
    /// running or a back-off is in force.
    fn refresh_ahead(self: &Arc<Self>, now: MonoTime) {
        if self.refreshing.load(Ordering::Acquire) {
            return;
        }
        if let Some(failure) = &*self.failure.load()
            && now < failure.not_before
        {
            return;
        }
        drop(self.start_flight());
    }

    #[cold]
    async fn token_slow(self: &Arc<Self>, now: MonoTime) -> Result<TokenGuard, Error> {
        if let Some(failure) = &*self.failure.load()
            && now < failure.not_before
        {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(failure.error_for_caller());
        }
        let cached = self.start_flight().await?;
        Ok(TokenGuard(Guard::from_inner(cached)))
    }

    /// Joins the refresh in flight, or starts one.
    fn start_flight(self: &Arc<Self>) -> FlightFuture {
        let mut slot = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = &*slot {
            return flight.clone();
        }
        self.refreshing.store(true, Ordering::Release);
        let inner = Arc::clone(self);
        let task = tokio::spawn(async move { inner.run_flight().await });
        let flight: FlightFuture = async move {
            match task.await {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(Error::protocol("the token refresh panicked")),
                Err(_) => Err(Error::transient(
                    "the token refresh was cancelled: the runtime is shutting down",
                )),
            }
        }
        .boxed()
        .shared();
        *slot = Some(flight.clone());
        flight
    }

    async fn run_flight(self: Arc<Self>) -> Result<Arc<Cached>, Error> {
        let now = self.clock.monotonic();
        let result = match self.failure.load_full() {
            Some(failure) if now < failure.not_before => Err(failure.error_for_caller()),
            _ => self.refresh().await,
        };
        match &result {
            Ok(cached) => {
                self.current.store(Arc::clone(cached));
                self.failure.store(None);
            }
            Err(error) => self.record_failure(error),
        }
        self.refreshing.store(false, Ordering::Release);
        *self.flight.lock().unwrap_or_else(PoisonError::into_inner) = None;
        result
    }

    /// How long a store lock lives: the provider request and the store writes after it are each
    /// bounded by the refresh timeout, so a holder that dies frees it this long after taking it.
    fn lock_ttl(&self) -> Duration {
        self.policy
            .refresh_timeout
            .saturating_add(Duration::from_secs(15))
    }

    /// Bounds one store call by the refresh timeout.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, crate::StoreError>>,
    ) -> Result<T, crate::StoreError> {
        let timeout = self.policy.refresh_timeout;
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(crate::StoreError::Unavailable {
                    message: format!(
                        "the store did not answer a {what} of `{}` within {timeout:?}",
                        self.key
                    ),
                    source: None,
                })
            })
    }

    async fn refresh(&self) -> Result<Arc<Cached>, Error> {
        // Waiting outlasts the lock's own life, so a holder that died is outlived, not reported.
        let wait = self.lock_ttl().saturating_add(Duration::from_secs(5));
        let lock = tokio::time::timeout(wait, self.store.lock(&self.key, self.lock_ttl()))
            .await
            .map_err(|_| {
                Error::store(format!(
                    "the store lock for `{}` was not free within {wait:?}",
                    self.key
                ))
            })??;
        let result = self.refresh_locked().await;
        if let Err(e) = lock.release().await {
            tracing::warn!(key = %self.key, error = %e, "could not release the store lock; it expires by itself");
        }
        result
    }

    fn cache(&self, token: Token, version: u64, wall: OffsetDateTime, mono: MonoTime) -> Cached {
        let deadlines = self.policy.deadlines(
            token.issued_at(),
            token.expires_at(),
            wall,
            mono,
            fastrand::f64(),
        );
        Cached {
            token,
            deadlines,
            generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
            version,
        }
    }

    async fn refresh_locked(&self) -> Result<Arc<Cached>, Error> {
        let entry = self.bounded("load", self.store.load(&self.key)).await?;
        let version = entry.as_ref().map_or(0, |e| e.version);

        let pending = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(pending) = pending {
            return match self
                .bounded("save", self.store.save(&self.key, &pending, version))
                .await
            {
                Ok(saved) => {
                    tracing::info!(key = %self.key, "saved the token whose earlier save had failed");
                    let token = pending
                        .token
                        .clone()
                        .ok_or_else(|| Error::store("pending entry without token"))?;
                    Ok(Arc::new(self.cache(
                        token,
                        saved,
                        self.clock.now(),
                        self.clock.monotonic(),
                    )))
                }
                Err(e) => {
                    *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(pending);
                    Err(e.into())
                }
            };
        }

        if let Some(entry) = &entry {
            let now_wall = self.clock.now();
            if let Some(until) = entry.cooldown_until.filter(|until| *until > now_wall) {
                return Err(Error::rate_limited(
                    until,
                    format!(
                        "{}: a recent failed attempt started a cool-down (recorded in the token store)",
                        self.source.name()
                    ),
                ));
            }
            if let Some(token) = &entry.token
                && entry.version != self.stale_version.load(Ordering::SeqCst)
            {
                let cached = self.cache(
                    token.clone(),
                    entry.version,
                    now_wall,
                    self.clock.monotonic(),
                );
                if cached.deadlines.freshness(self.clock.monotonic()) == Freshness::Fresh {
                    self.counters.adopted.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(key = %self.key, "adopted the token another process stored");
                    return Ok(Arc::new(cached));
                }
            }
        }

        let held_refresh = entry.as_ref().and_then(|e| e.refresh.clone());
        let sent_wall = self.clock.now();
        let sent_mono = self.clock.monotonic();
        let outcome = self
            .fetch(
                FetchRequest::new(held_refresh.clone(), sent_wall),
                sent_mono,
            )
            .await;
        let fetched = match outcome {
            Ok(fetched) => fetched,
            Err(error) => {
                if let Some(until) = self.cooldown_until(&error, self.clock.now()) {
                    self.persist_cooldown(entry, version, until).await;
                }
                return Err(error);
            }
        };

        let rotated = fetched.refresh.is_some();
        let new_entry = StoredEntry {
            token: Some(fetched.token.clone()),
            refresh: fetched.refresh.or(held_refresh),
            cooldown_until: None,
            version,
        };
        let cached = self.cache(fetched.token, version, sent_wall, sent_mono);
        let saved = match self
            .bounded("save", self.store.save(&self.key, &new_entry, version))
            .await
        {
            Ok(saved) => saved,
            Err(e) if rotated => {
                tracing::warn!(key = %self.key, error = %e, "could not save rotated refresh material; kept in memory and saved first next time");
                *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(new_entry);
                return Err(e.into());
            }
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "could not save the new token; serving it from memory");
                version
            }
        };
        if cached.deadlines.freshness(self.clock.monotonic()) == Freshness::Expired {
            return Err(Error::protocol(format!(
                "{} returned a token that is already expired (expiry {}); check the system clock",
                self.source.name(),
                fetched_expiry(&cached.token)
            )));
        }
        Ok(Arc::new(Cached {
            version: saved,
            ..cached
        }))
    }

    /// One request to the source, in its own span, bounded by the refresh timeout.
    async fn fetch(&self, request: FetchRequest, sent_mono: MonoTime) -> Result<Fetched, Error> {
        let span = tracing::info_span!(
            "kunci.fetch",
            provider = self.source.name(),
            key = %self.key,
            outcome = field::Empty,
            latency_ms = field::Empty,
        );
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        let timeout = self.policy.refresh_timeout;
        let result = match tokio::time::timeout(
            timeout,
            self.source.fetch(request).instrument(span.clone()),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(Error::transient(format!(
                "{} did not answer within {timeout:?}",
                self.source.name()
            ))),
        };
        let latency = self.clock.monotonic().saturating_duration_since(sent_mono);
        span.record("latency_ms", latency.as_secs_f64() * 1000.0);
        match &result {
            Ok(_) => {
                span.record("outcome", "ok");
                tracing::info!(parent: &span, "fetched a new token");
            }
            Err(e) => {
                span.record("outcome", field::debug(e.kind()));
                tracing::warn!(parent: &span, error = %e, "token request failed");
            }
        }
        result
    }

    fn cooldown_until(&self, error: &Error, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let declared = self.source.cooldown_after_failure(error).map(|d| now + d);
        let rate_limited = match error.kind() {
            ErrorKind::RateLimited { until } => Some(until),
            _ => None,
        };
        [declared, error.retry_after(), rate_limited]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .max()
    }

    /// Records a cool-down in the store so other processes honour it too. Best effort: the
    /// local cool-down holds either way.
    async fn persist_cooldown(
        &self,
        entry: Option<StoredEntry>,
        version: u64,
        until: OffsetDateTime,
    ) {
        let mut entry = entry.unwrap_or_default();
        entry.cooldown_until = Some(until);
        if let Err(e) = self
            .bounded("save", self.store.save(&self.key, &entry, version))
            .await
        {
            tracing::warn!(key = %self.key, error = %e, "could not record the cool-down in the store");
        }
    }

    fn record_failure(&self, error: &Error) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        let now_mono = self.clock.monotonic();
        let now_wall = self.clock.now();
        let consecutive = self
            .failure
            .load()
            .as_ref()
            .map_or(1, |f| f.consecutive.saturating_add(1));
        let mut backoff = self
            .policy
            .backoff(consecutive)
            .mul_f64(0.5 + fastrand::f64() / 2.0);
        // While the cached token is still valid, retry several times before it expires.
        let cached = self.current.load();
        if cached.deadlines.freshness(now_mono) != Freshness::Expired {
            let left = cached
                .deadlines
                .expires_at
                .saturating_duration_since(now_mono);
            backoff = backoff.min((left / 4).max(Duration::from_millis(10)));
        }
        let cooldown_until = self.cooldown_until(error, now_wall);
        let cooldown =
            cooldown_until.map_or(Duration::ZERO, |until| positive_duration(until - now_wall));
        let failure = Failure {
            error: error.clone(),
            not_before: now_mono.saturating_add(backoff.max(cooldown)),
            cooldown_until,
            consecutive,
        };
        self.failure.store(Some(Arc::new(failure)));
    }
}

#[cfg(test)]
mod tests;

fn fetched_expiry(token: &Token) -> String {
    token
        .expires_at()
        .map_or_else(|| "none".to_owned(), crate::clock::format_rfc3339)
}
