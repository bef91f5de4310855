//! The token manager: cache, single-flight refresh, refresh-ahead, cool-downs, invalidation.
//!
//! # How a call is served
//!
//! * **Warm path** — [`TokenManager::token`] loads the cached entry (`ArcSwap::load`, a
//!   thread-local "debt" slot instead of a shared reference count, so threads do not contend),
//!   reads the coarse monotonic and wall clocks and compares four integers: the token's
//!   deadlines on both timelines, whichever passes first. No lock, no allocation, no await.
//! * **Expiring** — the same, plus: if no refresh is running and no back-off, cool-down or
//!   damping interval is in force, one background refresh is spawned. The caller still gets
//!   the current token at once.
//! * **Expired or empty** — the caller joins the single refresh in flight (starting it if
//!   there is none) and waits for its result or its error. While a back-off or cool-down is
//!   in force that refresh sends nothing: it only looks in the store for a valid token another
//!   process saved, and otherwise answers the last error (`RateLimited` until the moment the
//!   next request may really be sent).
//!
//! # One refresh
//!
//! A refresh is a spawned task, so a caller that gives up cannot cancel it half-way (between
//! receiving a rotated refresh token and saving it). A guard inside the task cleans up however
//! it ends — finished, panicked, or dropped with its runtime — and records a failure when it
//! did not finish, so back-off applies and the next caller after it starts a new refresh.
//!
//! The refresh itself (`Inner::refresh`) is these steps, each a method:
//!
//! 1. **lock** — take the store's refresh lease (its life: [`RefreshPolicy::lease_life`]): one
//!    process of many refreshes. While steps 2–7 run, a watchdog renews the lease every third
//!    of its life, and one deadline ([`RefreshPolicy::refresh_timeout`]) bounds them together;
//! 2. **load** — read the entry, inside the lease (another host may have refreshed a moment
//!    ago);
//! 3. **settle the pending save** — a fetched entry whose save failed earlier is saved now, but
//!    only over the version it was fetched from (or a version that still holds the refresh
//!    material it used); it is dropped when the store already holds it or moved past it;
//! 4. **adopt** — a valid stored token, made with this source's credential, newer than ours
//!    and not rejected by a 401, is served and nothing is sent (another process refreshed);
//! 5. **stored cool-down** — a cool-down recorded in the store stops the request (not the
//!    serving of a valid token: step 4 came first); so does a failure another process recorded
//!    a moment ago (its answer is taken), and another process's request with the stored
//!    refresh material that is still unanswered (its in-flight mark: this refresh looks again
//!    shortly instead of resending material the provider may have revoked);
//! 6. **fetch** — unless the lease was lost (then nothing is sent and the lease is taken
//!    again), mark the request in flight when it carries stored refresh material, then one
//!    request to the source; a failure's outcome and cool-down are written to the store;
//! 7. **save** — a fenced compare-and-swap of the new entry over the version loaded (and
//!    marked): it lands while this process holds the lease, or while the stored refresh
//!    material is the one the request was based on; refused, the token another holder saved is
//!    adopted; rotated material whose save failed is kept pending for step 3 of the next
//!    refresh;
//!
//! then the lock is released and the token **published** — unless a 401 rejected it while the
//! refresh ran.

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
use secrecy::{ExposeSecret as _, SecretString};
use time::OffsetDateTime;
use tracing::{Instrument as _, field};

use crate::{
    clock::{MonoTime, SharedClock, WallTime, positive_duration},
    credential::Fingerprint,
    error::{Error, ErrorKind},
    expiry,
    policy::{Deadlines, Freshness, RefreshPolicy, scale},
    source::{FetchRequest, Fetched, SharedTokenSource},
    store::{
        FailureKind, Fence, MemoryStore, RefreshDigest, SharedFailure, SharedTokenStore,
        StoreError, StoreKey, StoreLock, StoredEntry,
    },
    token::Token,
};

type FlightResult = Result<Arc<Cached>, FlightError>;
type FlightFuture = Shared<Pin<Box<dyn std::future::Future<Output = FlightResult> + Send>>>;

/// Why a flight is joined or started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// A caller without a valid token: served the cached one if it became valid meanwhile.
    ValidToken,
    /// A refresh ahead of expiry, after an invalidation, or by the pool's scheduler.
    Refresh,
}

/// Token identities are unique in the process, so one manager's id never matches another's.
static NEXT_TOKEN_ID: AtomicU64 = AtomicU64::new(1);

fn next_token_id() -> u64 {
    NEXT_TOKEN_ID.fetch_add(1, Ordering::Relaxed)
}

/// A token as cached: the token and where it sits on both timelines.
#[derive(Debug)]
struct Cached {
    token: Token,
    deadlines: Deadlines,
    /// Unique per cached token in the process; 0 for the empty and revoked entries.
    id: u64,
    /// The store version the token was saved or read at.
    version: u64,
    /// The empty slot's stand-in, which holds no real token.
    placeholder: bool,
}

impl Cached {
    fn empty() -> Self {
        Self {
            token: Token::placeholder(),
            deadlines: Deadlines::EXPIRED,
            id: 0,
            version: 0,
            placeholder: true,
        }
    }
}

/// One reading of both clocks, for the cold paths.
#[derive(Clone, Copy, Debug)]
struct Now {
    mono: MonoTime,
    wall: OffsetDateTime,
}

impl Now {
    fn wall_time(&self) -> WallTime {
        WallTime::from_datetime(self.wall)
    }

    fn freshness(&self, deadlines: &Deadlines) -> Freshness {
        deadlines.freshness_at(self.mono, self.wall_time())
    }
}

/// The last failure, and until when nothing new is sent.
#[derive(Debug)]
struct Failure {
    error: Error,
    /// No request before this moment: the back-off, or a cool-down when it is longer.
    not_before: MonoTime,
    /// A cool-down (the source's, a server's `Retry-After` or 429, one found in the store) is
    /// in force: callers are told `RateLimited`.
    cooling: bool,
    consecutive: u32,
}

impl Failure {
    /// The wall-clock moment the next request may be sent.
    fn until(&self, now: &Now) -> OffsetDateTime {
        expiry::add(
            now.wall,
            self.not_before.saturating_duration_since(now.mono),
        )
    }

    /// What a caller is told while this failure holds requests back: `RateLimited` until the
    /// real "not before" when a cool-down is in force (or the error was a rate limit), the
    /// error itself during a plain back-off.
    fn error_for_caller(&self, now: &Now) -> Error {
        let until = self.until(now);
        match self.error.kind() {
            ErrorKind::RateLimited { .. } => self.error.rate_limited_until(until),
            _ if self.cooling => self.error.cooling_down(until),
            _ => self.error.clone(),
        }
    }
}

/// How a refresh failed.
#[derive(Debug)]
enum Failed {
    /// A request was sent (or a store step failed): a failure, counted, backed off.
    Attempt {
        error: Error,
        /// The cool-down the failure imposes (already capped).
        cooldown: Option<OffsetDateTime>,
    },
    /// Nothing was sent: a cool-down recorded in the store is in force. Not a failure.
    NotSent { error: Error, not_before: MonoTime },
    /// Nothing was sent: another process's refresh failed a moment ago and recorded its
    /// outcome in the store; its answer is taken until `not_before`. Not a failure here.
    Shared { error: Error, not_before: MonoTime },
    /// Nothing was sent: the lease was lost before the request (the watchdog could not renew
    /// it). The refresh takes the lock again.
    LeaseLost,
    /// Nothing was sent: another process sent a request with the stored refresh material and
    /// its answer is awaited until `until` (its lease was lost meanwhile: it was stopped or
    /// cut off). The refresh looks again shortly, and adopts what that process saves.
    InFlight { until: MonoTime },
}

/// One refresh under the store's lock: the lock, whether its lease was lost, the deadline.
struct Under<'a> {
    lock: &'a dyn StoreLock,
    lost: AtomicBool,
    deadline: MonoTime,
    /// Whether another process's unanswered request holds this one back (not once this
    /// process has waited for it as long as any refresh may last).
    honour_in_flight: bool,
    /// When this refresh began to wait for the lock (wall clock): a failure recorded before it
    /// was not waited for, so its record is not this refresh's answer.
    waiting_since: OffsetDateTime,
}

impl<'a> Under<'a> {
    fn new(
        lock: &'a dyn StoreLock,
        deadline: MonoTime,
        honour_in_flight: bool,
        waiting_since: OffsetDateTime,
    ) -> Self {
        Self {
            lock,
            lost: AtomicBool::new(false),
            deadline,
            honour_in_flight,
            waiting_since,
        }
    }

    /// What is left of the deadline (at least a millisecond, so a late step fails cleanly).
    fn remaining(&self, inner: &Inner) -> Duration {
        self.deadline
            .saturating_duration_since(inner.clock.monotonic())
            .max(Duration::from_millis(1))
    }

    /// The time a save of what a sent request brought back gets: what is left of the
    /// deadline, never less than a quarter of it.
    fn for_save(&self, inner: &Inner) -> Duration {
        self.remaining(inner).max(inner.policy.refresh_timeout / 4)
    }

    /// The fence of a save under this lock.
    fn fence(&self) -> Fence {
        Fence::lease(self.lock.lease())
    }
}

impl Failed {
    fn attempt(error: impl Into<Error>) -> Self {
        Self::Attempt {
            error: error.into(),
            cooldown: None,
        }
    }
}

/// A flight's error, as every caller that joined it receives it.
#[derive(Clone, Debug)]
struct FlightError {
    error: Error,
    /// `false` when the flight answered without sending anything (back-off, cool-down).
    sent: bool,
}

/// A successful refresh, before it is published.
#[derive(Debug)]
struct Refreshed {
    cached: Cached,
    /// Taken from the store rather than fetched.
    adopted: bool,
}

/// A fetched entry whose save failed. It may hold the only valid refresh material.
#[derive(Debug)]
struct Pending {
    entry: StoredEntry,
    /// The store version the fetch was made from.
    based_on: u64,
    /// The refresh material the fetch used (`None`: what the source was configured with).
    used: Option<SecretString>,
    token: Token,
    /// Placed when the request was sent.
    deadlines: Deadlines,
}

/// Whose credential made a stored entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// This source's credential (or the source declares none).
    Ours,
    /// Written before fingerprints were stored: its refresh material is used, its token not
    /// served.
    Legacy,
    /// Another credential: neither its token nor its refresh material is used.
    Foreign,
}

/// The identity of a token the manager handed out: what [`TokenManager::invalidate`] takes
/// after the API rejected that token. Unique in the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenId(u64);

impl TokenId {
    /// The number behind the identity (the token's generation).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A handle to a cached token. Dereferences to [`Token`].
///
/// Holding it costs nothing while it is short-lived: it pins the token through one of a few
/// per-thread slots (`arc-swap`'s debts), and a thread holding more than eight at once falls
/// back to a shared reference count. To keep a token across an `.await` (a request in flight),
/// take its [`TokenId`] and header and drop the guard, or turn it into an [`OwnedToken`].
pub struct TokenGuard(Guard<Arc<Cached>>);

impl TokenGuard {
    /// Identifies this token, for [`TokenManager::invalidate`].
    pub fn id(&self) -> TokenId {
        TokenId(self.0.id)
    }

    /// Identifies this token among those handed out in this process (the number behind
    /// [`TokenGuard::id`]).
    pub fn generation(&self) -> u64 {
        self.0.id
    }

    /// An owned handle to the same token: an ordinary reference count, free of the per-thread
    /// slots, to keep for as long as needed.
    pub fn into_owned(self) -> OwnedToken {
        OwnedToken(Guard::into_inner(self.0))
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
            .field("generation", &self.0.id)
            .finish()
    }
}

impl From<&TokenGuard> for TokenId {
    fn from(guard: &TokenGuard) -> Self {
        guard.id()
    }
}

/// An owned handle to a cached token ([`TokenGuard::into_owned`]): cheap to clone, fine to
/// hold across awaits. Dereferences to [`Token`].
#[derive(Clone)]
pub struct OwnedToken(Arc<Cached>);

impl OwnedToken {
    /// Identifies this token, for [`TokenManager::invalidate`].
    pub fn id(&self) -> TokenId {
        TokenId(self.0.id)
    }
}

impl Deref for OwnedToken {
    type Target = Token;
    fn deref(&self) -> &Token {
        &self.0.token
    }
}

impl fmt::Debug for OwnedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedToken")
            .field("token", &self.0.token)
            .field("generation", &self.0.id)
            .finish()
    }
}

impl From<&OwnedToken> for TokenId {
    fn from(token: &OwnedToken) -> Self {
        token.id()
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
    /// Failed refreshes (a request that failed, a store step that failed, a refresh that
    /// panicked or was cancelled).
    pub failures: u64,
    /// Calls answered with an error without a request because of a back-off or cool-down.
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
    /// or 429, one found in the store): the moment the next request may be sent.
    pub cooldown_until: Option<OffsetDateTime>,
    /// A fetched entry whose save failed is held in memory, to be saved first by the next
    /// refresh (it may hold the only valid refresh material).
    pub pending_save: bool,
}

/// Per-thread stripes for the hit counter, so counting does not make threads contend.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

const STRIPES: usize = 16;

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

/// The stripes of a hit counter: [`STRIPES`] for a manager of its own; none for a pooled
/// account, whose hits the pool counts once for all its accounts (a write to each account's
/// memory on every call would cost the pool's warm path a cache line, and 16 stripes of 128
/// bytes each would be most of an idle account's memory).
pub(crate) struct StripedCounter {
    /// Empty: nothing is counted.
    stripes: Box<[Padded]>,
    /// `stripes.len() - 1` (a power of two's mask).
    mask: usize,
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self::with_stripes(STRIPES)
    }
}

impl StripedCounter {
    /// `stripes` (at most [`STRIPES`]) rounded up to a power of two; 0: counts nothing.
    pub(crate) fn with_stripes(stripes: usize) -> Self {
        let stripes = match stripes {
            0 => 0,
            n => n.min(STRIPES).next_power_of_two(),
        };
        Self {
            stripes: (0..stripes).map(|_| Padded::default()).collect(),
            mask: stripes.saturating_sub(1),
        }
    }

    /// Counts one hit on this thread's stripe with a plain load and store, not a locked
    /// read-modify-write: a stripe belongs to one thread while at most [`STRIPES`] threads call
    /// concurrently, so the count is exact then; beyond that, two threads sharing a stripe can
    /// occasionally lose an increment. A statistic is not worth a locked instruction on every
    /// call.
    #[inline]
    pub(crate) fn increment(&self) {
        if let Some(Padded(cell)) = self.stripes.get(stripe_index() & self.mask) {
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
        }
    }

    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|p| p.0.load(Ordering::Relaxed))
            .sum()
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

/// The refresh in flight, if any.
struct Flight {
    id: u64,
    future: FlightFuture,
}

struct Inner {
    source: SharedTokenSource,
    store: SharedTokenStore,
    clock: SharedClock,
    policy: RefreshPolicy,
    key: StoreKey,
    /// The fingerprint of the source's credential, stored with every entry saved. Computed on
    /// the first refresh, not at build time: a source may build itself lazily.
    fingerprint: std::sync::OnceLock<Option<Fingerprint>>,
    current: ArcSwap<Cached>,
    failure: ArcSwapOption<Failure>,
    /// Monotonic nanoseconds before which refresh-ahead starts nothing: a back-off, a
    /// cool-down, or the damping interval after a token that arrived inside its window. One
    /// atomic load on the expiring path.
    ahead_not_before: AtomicU64,
    flight: Mutex<Option<Flight>>,
    refreshing: AtomicBool,
    next_flight: AtomicU64,
    /// The token the API last rejected (a 401): never adopted or published again.
    rejected: ArcSwapOption<Token>,
    /// Counts invalidations, so a refresh can tell that one happened while it ran.
    invalidation_epoch: AtomicU64,
    /// A fetched entry whose save failed; it may hold the only valid refresh material, so the
    /// next refresh settles it before anything else.
    /// Boxed: it is rare, and inline it would be a third of an idle manager's memory.
    pending: Mutex<Option<Box<Pending>>>,
    /// A stored cool-down found beyond `max_cooldown`, and the moment it was cut to.
    capped_cooldown: Mutex<Option<(OffsetDateTime, OffsetDateTime)>>,
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
    /// No hit counter (the token pool's accounts).
    compact: bool,
}

impl TokenManagerBuilder {
    /// No hit counter (`Stats::cache_hits` stays 0): ~2 KiB less per manager and no write on
    /// the warm path. For the token pool, which holds thousands of managers and counts their
    /// hits itself.
    #[must_use]
    pub(crate) fn compact(mut self) -> Self {
        self.compact = true;
        self
    }

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

    /// The store key, instead of the source's own: by default the key of the account the
    /// source serves ([`TokenSource::store_key`](crate::TokenSource::store_key)) — every
    /// provider's source knows it — or, for a source that does not say (a
    /// [`source::from_fn`](crate::source::from_fn) closure), `<source name>:default`.
    #[must_use]
    pub fn key(mut self, key: StoreKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Validates the policy and builds the manager.
    pub fn build(self) -> Result<TokenManager, Error> {
        self.policy.validate()?;
        let key = match self.key.or_else(|| self.source.store_key()) {
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
                fingerprint: std::sync::OnceLock::new(),
                current: ArcSwap::from_pointee(Cached::empty()),
                failure: ArcSwapOption::empty(),
                ahead_not_before: AtomicU64::new(0),
                flight: Mutex::new(None),
                refreshing: AtomicBool::new(false),
                next_flight: AtomicU64::new(1),
                rejected: ArcSwapOption::empty(),
                invalidation_epoch: AtomicU64::new(0),
                pending: Mutex::new(None),
                capped_cooldown: Mutex::new(None),
                counters: Counters {
                    hits: StripedCounter::with_stripes(if self.compact { 0 } else { STRIPES }),
                    ..Counters::default()
                },
            }),
        })
    }
}

impl TokenManager {
    /// Starts building a manager for `source`: keyed by the account it serves
    /// ([`TokenSource::store_key`](crate::TokenSource::store_key), else `<name>:default`), in a
    /// fresh [`MemoryStore`] of its own, on the system clock, with [`RefreshPolicy::default`].
    ///
    /// The facade's `kunci::ManagerBuilder` keys a manager the same way; its store defaults
    /// differ on purpose: it opens the file store in the platform data directory, because an
    /// application assembling a manager from its configuration wants tokens that outlive the
    /// process, whereas this crate opens no file and depends on no store backend — a library
    /// or test building a manager by hand gets a process-local store unless it passes one.
    pub fn builder(source: impl Into<SharedTokenSource>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            source: source.into(),
            store: None,
            clock: None,
            policy: RefreshPolicy::default(),
            key: None,
            compact: false,
        }
    }

    /// A valid token: from the cache when it is fresh, otherwise from the one refresh in flight.
    ///
    /// # Errors
    /// The refresh's error, typed by what to do ([`ErrorKind`]). While a back-off or cool-down
    /// is in force and no valid token is stored, that error at once, without a request
    /// (`RateLimited` until the moment the next request may be sent, when it is a cool-down).
    /// A `Configuration` error when a refresh is needed and the call is not inside a tokio
    /// runtime (a refresh runs as a task).
    #[inline]
    pub async fn token(&self) -> Result<TokenGuard, Error> {
        let (mono, wall) = self.inner.clock.read_fast();
        if let Some(token) = self.warm_at(mono, wall) {
            return Ok(token);
        }
        self.inner.token_slow().await
    }

    /// Reports that the API rejected the token `token` identifies (a 401); pass a
    /// [`TokenGuard`], an [`OwnedToken`] or a [`TokenId`] kept from one. If it is still the
    /// current token, it is dropped from the cache, never adopted or published again, and one
    /// refresh starts (unless a back-off or cool-down holds requests back); a token that was
    /// already replaced is left alone, so a hundred late 401s for the same old token cause one
    /// refresh, not a hundred. Returns whether this call invalidated the current token.
    pub fn invalidate(&self, token: impl Into<TokenId>) -> bool {
        let id = token.into();
        let inner = &self.inner;
        let current = inner.current.load();
        if current.id == 0 || current.id != id.0 {
            return false;
        }
        let revoked = Arc::new(Cached {
            token: current.token.clone(),
            deadlines: Deadlines::EXPIRED,
            id: 0,
            version: current.version,
            placeholder: false,
        });
        let previous = inner.current.compare_and_swap(&current, revoked);
        if !Arc::ptr_eq(&previous, &current) {
            return false;
        }
        inner.rejected.store(Some(Arc::new(current.token.clone())));
        inner.invalidation_epoch.fetch_add(1, Ordering::SeqCst);
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
                    let (mono, wall) = (inner.clock.monotonic(), inner.clock.wall());
                    let cached = inner.current.load();
                    let failure_wait = inner
                        .failure
                        .load()
                        .as_ref()
                        .map(|f| f.not_before.saturating_duration_since(mono))
                        .filter(|d| !d.is_zero());
                    match (outcome, failure_wait) {
                        (_, Some(wait)) => wait,
                        (Err(_), None) => inner.policy.backoff_initial,
                        (Ok(_), None) => match cached.deadlines.time_to_refresh(mono, wall) {
                            None => return,
                            // inside the window a refresh is already running: look again shortly
                            Some(wait) => wait.max(Duration::from_millis(10)),
                        },
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
        (cached.id != 0).then(|| {
            cached
                .deadlines
                .freshness_at(self.inner.clock.monotonic(), self.inner.clock.wall())
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let inner = &self.inner;
        let c = &inner.counters;
        let cached = inner.current.load();
        let (mono, wall) = (inner.clock.monotonic(), inner.clock.wall());
        let has_token = cached.id != 0;
        Stats {
            cache_hits: c.hits.sum(),
            fetches: c.fetches.load(Ordering::Relaxed),
            adopted: c.adopted.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            time_to_expiry: has_token
                .then(|| cached.deadlines.time_to_expiry(mono, wall))
                .flatten(),
            freshness: has_token.then(|| cached.deadlines.freshness_at(mono, wall)),
            credential_expires_at: inner.source.credential_expires_at(),
            cooldown_until: inner
                .failure
                .load()
                .as_ref()
                .and_then(|f| (f.cooling && f.not_before > mono).then(|| f.until(&inner.now()))),
            pending_save: inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some(),
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

    /// The fingerprint of the source's credential that this manager stores with its entries
    /// (`None` when the source declares no credential).
    pub fn credential_fingerprint(&self) -> Option<&Fingerprint> {
        self.inner.fingerprint()
    }
}

/// Hooks for the token pool (`crate::pool`): its warm path, its one scheduler and its eviction.
impl TokenManager {
    /// The warm path of [`TokenManager::token`] and of the pool, at a clock reading the caller
    /// took: the cached token when it is fresh or expiring (then starting refresh-ahead), `None`
    /// when the caller has to wait for a refresh. No lock, no allocation, no await.
    #[inline]
    pub(crate) fn warm_at(&self, mono: MonoTime, wall: WallTime) -> Option<TokenGuard> {
        let inner = &self.inner;
        let cached = inner.current.load();
        match cached.deadlines.freshness_at(mono, wall) {
            Freshness::Fresh => {
                inner.counters.hits.increment();
                Some(TokenGuard(cached))
            }
            Freshness::Expiring => {
                inner.counters.hits.increment();
                inner.refresh_ahead(mono);
                Some(TokenGuard(cached))
            }
            Freshness::Expired => None,
        }
    }

    /// How long until this manager wants a refresh without a caller: the cached token's
    /// refresh point, pushed back by a back-off, a cool-down or the damping interval; zero when
    /// one is due now. `None` when nothing was ever cached or the token is permanent.
    pub(crate) fn next_refresh_in(&self) -> Option<Duration> {
        let inner = &self.inner;
        let (mono, wall) = (inner.clock.monotonic(), inner.clock.wall());
        let cached = inner.current.load();
        if cached.placeholder {
            return None;
        }
        let due = cached.deadlines.time_to_refresh(mono, wall)?;
        let held_back = MonoTime::from_nanos(inner.ahead_not_before.load(Ordering::Acquire))
            .saturating_duration_since(mono);
        let failing = inner.failure.load().as_ref().map_or(Duration::ZERO, |f| {
            f.not_before.saturating_duration_since(mono)
        });
        Some(due.max(held_back).max(failing))
    }

    /// For the pool's scheduler: when a refresh is due, runs one (joining the one in flight)
    /// and waits for it; then answers [`TokenManager::next_refresh_in`]. Outside a tokio
    /// runtime nothing starts.
    pub(crate) async fn refresh_when_due(&self) -> Option<Duration> {
        if self.next_refresh_in()?.is_zero()
            && let Ok(flight) = self.inner.start_flight()
        {
            // The outcome is recorded by the flight itself (failure, back-off, cool-down).
            drop(flight.await);
        }
        self.next_refresh_in()
    }

    /// Whether both are clones of one manager.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether dropping this manager now would lose more than a cache: a refresh in flight,
    /// a fetched entry whose save failed (it may hold the only valid refresh material), or a
    /// back-off or cool-down in force (a new manager would not know of a back-off).
    pub(crate) fn is_busy(&self) -> bool {
        let inner = &self.inner;
        let mono = inner.clock.monotonic();
        inner.refreshing.load(Ordering::Acquire)
            || inner
                .failure
                .load()
                .as_ref()
                .is_some_and(|f| f.not_before > mono)
            || inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
    }
}

/// Cleans up after a refresh task however it ends: finished, panicked, or dropped unfinished
/// (its runtime shut down).
struct FlightGuard {
    inner: Arc<Inner>,
    id: u64,
    finished: bool,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if !self.finished {
            let error = if std::thread::panicking() {
                Error::protocol("the token refresh panicked")
            } else {
                Error::transient("the token refresh was cancelled: its runtime shut down")
            };
            tracing::warn!(key = %self.inner.key, error = %error, "the token refresh did not finish");
            self.inner.record_failure(&error, None);
        }
        let mut slot = self
            .inner
            .flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|f| f.id == self.id) {
            *slot = None;
            self.inner.refreshing.store(false, Ordering::Release);
        }
    }
}

impl Inner {
    fn fingerprint(&self) -> Option<&Fingerprint> {
        self.fingerprint
            .get_or_init(|| {
                self.source
                    .credential()
                    .map(|credential| credential.fingerprint(&self.key))
            })
            .as_ref()
    }

    fn now(&self) -> Now {
        Now {
            mono: self.clock.monotonic(),
            wall: self.clock.now(),
        }
    }

    /// The token is valid but inside its window: start one background refresh unless one is
    /// running or a back-off, cool-down or damping interval is in force.
    fn refresh_ahead(self: &Arc<Self>, now: MonoTime) {
        if self.refreshing.load(Ordering::Acquire)
            || now.as_nanos() < self.ahead_not_before.load(Ordering::Acquire)
        {
            return;
        }
        // Outside a tokio runtime the valid token is served and no refresh starts.
        drop(self.start_flight());
    }

    #[cold]
    async fn token_slow(self: &Arc<Self>) -> Result<TokenGuard, Error> {
        let flight = self.join_or_start_flight(Need::ValidToken)?;
        match flight.await {
            Ok(cached) => Ok(TokenGuard(Guard::from_inner(cached))),
            Err(failed) => {
                if !failed.sent {
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                }
                Err(failed.error)
            }
        }
    }

    /// Joins the refresh in flight, or starts one on the caller's tokio runtime.
    fn start_flight(self: &Arc<Self>) -> Result<FlightFuture, Error> {
        self.join_or_start_flight(Need::Refresh)
    }

    /// Joins the refresh in flight; when there is none, a caller that needs a valid token
    /// (`Need::ValidToken`) is first served the cached one if it is valid now — it may have
    /// found the cache empty just before a refresh published, and reached the slot just after
    /// that refresh cleared it. Checked under the slot's lock: a refresh publishes before it
    /// clears the slot, so an empty slot means its token is already visible.
    fn join_or_start_flight(self: &Arc<Self>, need: Need) -> Result<FlightFuture, Error> {
        let mut slot = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = &*slot {
            return Ok(flight.future.clone());
        }
        if need == Need::ValidToken {
            let cached = self.current.load_full();
            let now = self.now();
            if cached.id != 0 && now.freshness(&cached.deadlines) != Freshness::Expired {
                let ready: FlightFuture = futures_util::future::ready(Ok(cached)).boxed().shared();
                return Ok(ready);
            }
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::configuration(
                "a token refresh runs as a tokio task: call token() inside a tokio runtime",
            )
        })?;
        let id = self.next_flight.fetch_add(1, Ordering::Relaxed);
        self.refreshing.store(true, Ordering::Release);
        let guard = FlightGuard {
            inner: Arc::clone(self),
            id,
            finished: false,
        };
        // The slot stays locked until the flight is in it, so the guard (which clears it when
        // the task ends) cannot run first and leave a finished flight behind.
        let task = handle.spawn(async move {
            let mut guard = guard;
            let result = guard.inner.run_flight().await;
            guard.finished = true;
            drop(guard);
            result
        });
        let future: FlightFuture = async move {
            match task.await {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(FlightError {
                    error: Error::protocol("the token refresh panicked"),
                    sent: true,
                }),
                Err(_) => Err(FlightError {
                    error: Error::transient(
                        "the token refresh was cancelled: its runtime shut down",
                    ),
                    sent: true,
                }),
            }
        }
        .boxed()
        .shared();
        *slot = Some(Flight {
            id,
            future: future.clone(),
        });
        Ok(future)
    }

    async fn run_flight(self: &Arc<Self>) -> FlightResult {
        let now = self.now();
        if let Some(failure) = self.failure.load_full()
            && now.mono < failure.not_before
        {
            // Nothing may be sent yet (an invalidation or an expired token during a back-off or
            // cool-down). A valid token another process stored is still served.
            return match self.adopt_without_request(&now).await {
                Some(cached) => Ok(self.publish(cached, true)),
                None => Err(FlightError {
                    error: failure.error_for_caller(&now),
                    sent: false,
                }),
            };
        }
        let epoch = self.invalidation_epoch.load(Ordering::SeqCst);
        let mut outcome = self.refresh().await;
        if let Ok(refreshed) = &outcome
            && refreshed.adopted
            && self.invalidation_epoch.load(Ordering::SeqCst) != epoch
            && self.is_rejected(&refreshed.cached.token)
        {
            // A 401 for the very token just adopted arrived while the refresh ran: once more,
            // now that it is known to be rejected.
            outcome = self.refresh().await;
        }
        match outcome {
            Ok(refreshed) => {
                let now = self.now();
                let arrived_in_window = !refreshed.adopted
                    && now.freshness(&refreshed.cached.deadlines) != Freshness::Fresh;
                let published = self.publish(refreshed.cached, false);
                if arrived_in_window {
                    self.damp(&now);
                }
                Ok(published)
            }
            Err(Failed::NotSent { error, not_before }) => {
                self.hold_off(error.clone(), not_before, true);
                Err(FlightError { error, sent: false })
            }
            Err(Failed::Shared { error, not_before }) => {
                self.hold_off(error.clone(), not_before, false);
                Err(FlightError { error, sent: false })
            }
            Err(Failed::LeaseLost | Failed::InFlight { .. }) => {
                // `refresh` turns these into other outcomes; kept total for the compiler.
                let error = Error::store("the refresh lease was lost");
                self.record_failure(&error, None);
                Err(FlightError { error, sent: false })
            }
            Err(Failed::Attempt { error, cooldown }) => {
                let failure = self.record_failure(&error, cooldown);
                let error = match error.kind() {
                    // Tell the truth about when the next request may go out.
                    ErrorKind::RateLimited { .. } => failure.error_for_caller(&self.now()),
                    _ => error,
                };
                Err(FlightError { error, sent: true })
            }
        }
    }

    /// Makes `cached` the current token. A token adopted during a back-off leaves the back-off
    /// in force for the next request; otherwise the last failure is forgotten.
    fn publish(&self, cached: Cached, during_holdoff: bool) -> Arc<Cached> {
        let cached = Arc::new(cached);
        self.current.store(Arc::clone(&cached));
        if during_holdoff {
            if let Some(failure) = &*self.failure.load() {
                self.ahead_not_before
                    .store(failure.not_before.as_nanos(), Ordering::Release);
            }
        } else {
            self.failure.store(None);
            self.ahead_not_before.store(0, Ordering::Release);
        }
        cached
    }

    /// After a fetch that answered a token already inside its window, refresh-ahead waits
    /// `min_refresh_interval` before the next one.
    fn damp(&self, now: &Now) {
        tracing::debug!(key = %self.key, "the new token is already inside its refresh window; the next refresh waits the minimum interval");
        self.ahead_not_before.store(
            now.mono
                .saturating_add(self.policy.min_refresh_interval)
                .as_nanos(),
            Ordering::Release,
        );
    }

    fn is_rejected(&self, token: &Token) -> bool {
        self.rejected
            .load()
            .as_ref()
            .is_some_and(|rejected| rejected.same_secret(token))
    }

    /// How long the store's refresh lease lives between renewals (the policy's
    /// [`lease_life`](RefreshPolicy::lease_life): twice the refresh deadline by default).
    fn lock_ttl(&self) -> Duration {
        self.policy.lease_life()
    }

    /// Bounds one store call by the refresh timeout.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, crate::StoreError>>,
    ) -> Result<T, crate::StoreError> {
        self.bounded_for(what, self.policy.refresh_timeout, call)
            .await
    }

    /// Bounds one store call by `timeout`.
    async fn bounded_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        call: impl std::future::Future<Output = Result<T, crate::StoreError>>,
    ) -> Result<T, crate::StoreError> {
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

    /// One refresh: the steps of the module documentation, under the store's lock. A lease
    /// lost before the request was sent is taken again (the new holder may have refreshed:
    /// step 4 then adopts its token), at most three times.
    async fn refresh(&self) -> Result<Refreshed, Failed> {
        let mut lost = 0;
        // How long this refresh may wait for another process's unanswered request, counted in
        // the time actually slept (whatever the injected clock says).
        let mut patience = self.policy.refresh_timeout.saturating_mul(2);
        loop {
            let waiting_since = self.clock.now();
            let lock = self.lock().await?;
            let under = Under::new(
                &*lock,
                self.now().mono.saturating_add(self.policy.refresh_timeout),
                !patience.is_zero(),
                waiting_since,
            );
            let result = {
                let work = std::pin::pin!(self.refresh_locked(&under));
                let watchdog = std::pin::pin!(self.watchdog(&under));
                match futures_util::future::select(work, watchdog).await {
                    futures_util::future::Either::Left((result, _)) => result,
                    futures_util::future::Either::Right((never, _)) => match never {},
                }
            };
            match self
                .bounded_for(
                    "lock release",
                    self.policy.refresh_timeout.min(Duration::from_secs(5)),
                    lock.release(),
                )
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(key = %self.key, error = %e, "could not release the store lock; the store frees it once it answers again, or it expires by itself");
                }
            }
            match result {
                Err(Failed::LeaseLost) => {
                    lost += 1;
                    if lost >= 3 {
                        return Err(Failed::attempt(Error::store(format!(
                            "the refresh lease of `{}` was lost three times before the request could be sent",
                            self.key
                        ))));
                    }
                    tracing::warn!(key = %self.key, "the refresh lease was lost before the request was sent; nothing was sent, taking it again");
                }
                Err(Failed::InFlight { until }) => {
                    // Bounded: the marker is honoured only until `until`, capped when read.
                    let wait = until
                        .saturating_duration_since(self.clock.monotonic())
                        .min(Duration::from_millis(200))
                        .max(Duration::from_millis(10))
                        .min(patience);
                    patience = patience.saturating_sub(wait);
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// Renews the lease every third of its life while the work under it runs. A renewal that
    /// fails (the lease was lost, or the store did not answer) marks the lease lost: the work
    /// then sends nothing it has not sent already. Never ends by itself.
    async fn watchdog(&self, under: &Under<'_>) -> std::convert::Infallible {
        let life = self.lock_ttl();
        let period = (life / 3).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(period).await;
            match tokio::time::timeout(period, under.lock.renew(life)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::warn!(key = %self.key, "the refresh lease had expired when the watchdog renewed it");
                    under.lost.store(true, Ordering::SeqCst);
                }
                Ok(Err(e)) => {
                    tracing::warn!(key = %self.key, error = %e, "could not renew the refresh lease");
                    under.lost.store(true, Ordering::SeqCst);
                }
                Err(_) => {
                    tracing::warn!(key = %self.key, "the store did not answer the lease renewal in time");
                    under.lost.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    async fn refresh_locked(&self, under: &Under<'_>) -> Result<Refreshed, Failed> {
        let mut entry = self.load_within(under.remaining(self)).await?;
        if let Some(saved) = self.settle_pending(&mut entry, under).await? {
            return Ok(saved);
        }
        let now = self.now();
        if let Some(cached) = self.adoptable(entry.as_ref(), &now) {
            self.counters.adopted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(key = %self.key, "adopted the token another process stored");
            return Ok(Refreshed {
                cached,
                adopted: true,
            });
        }
        self.check_stored_cooldown(entry.as_ref(), &now).await?;
        self.check_shared_failure(entry.as_ref(), &now, under.waiting_since)?;
        let held = self.held_refresh(entry.as_ref());
        if held.is_some()
            && under.honour_in_flight
            && let Some(until) = self.request_in_flight(entry.as_ref(), &now)
        {
            tracing::info!(key = %self.key, "another process's request with the stored refresh material is unanswered; waiting for what it saves instead of sending the same material");
            return Err(Failed::InFlight { until });
        }
        let mut version = entry.as_ref().map_or(0, |e| e.version);
        if under.lost.load(Ordering::SeqCst) {
            return Err(Failed::LeaseLost);
        }
        if held.is_some()
            && let Some(stored) = &mut entry
        {
            // Refresh material may rotate: mark the request in flight, so a process that takes
            // the lease if this one loses it waits for this answer instead of sending the same
            // material (which the provider would have revoked).
            let mut marked = stored.clone();
            marked.fetching_until = Some(expiry::add(now.wall, under.remaining(self)));
            match self
                .bounded_for(
                    "save",
                    under.remaining(self),
                    self.store
                        .save_fenced(&self.key, &marked, version, &under.fence()),
                )
                .await
            {
                Ok(saved) => {
                    marked.version = saved;
                    version = saved;
                    *stored = marked;
                }
                Err(StoreError::LeaseLost { .. } | StoreError::Conflict { .. }) => {
                    return Err(Failed::LeaseLost);
                }
                Err(e) => {
                    // The mark may have landed although its reply was lost: take it back, so
                    // the fleet does not wait for a request that was never sent.
                    self.clear_mark(&marked, under).await;
                    return Err(Failed::attempt(e));
                }
            }
        }
        let sent = self.now();
        let fetched = match self
            .fetch(
                FetchRequest::new(held.clone(), sent.wall),
                under.remaining(self),
            )
            .await
        {
            Ok(fetched) => fetched,
            Err(error) => {
                let cooldown = self.cooldown_for(&error, self.clock.now());
                self.persist_outcome(entry, version, cooldown, &error, under)
                    .await;
                return Err(Failed::Attempt { error, cooldown });
            }
        };
        self.save(fetched, held, version, &sent, under).await
    }

    /// Step 1: the store's refresh lock, waited for longer than a live holder can keep it (its
    /// deadline, and the save after it), so a holder that died is outlived, not reported.
    async fn lock(&self) -> Result<Box<dyn StoreLock>, Failed> {
        let wait = self
            .lock_ttl()
            .max(self.policy.refresh_timeout.saturating_mul(2))
            .saturating_add(Duration::from_secs(5));
        match tokio::time::timeout(wait, self.store.lock(&self.key, self.lock_ttl())).await {
            Ok(Ok(lock)) => Ok(lock),
            Ok(Err(e)) => Err(Failed::attempt(e)),
            Err(_) => Err(Failed::attempt(Error::store(format!(
                "the store lock for `{}` was not free within {wait:?}",
                self.key
            )))),
        }
    }

    /// The entry as stored now, within `timeout`.
    async fn load_within(&self, timeout: Duration) -> Result<Option<StoredEntry>, Failed> {
        self.bounded_for("load", timeout, self.store.load(&self.key))
            .await
            .map_err(Failed::attempt)
    }

    /// Step 2: the entry as stored now.
    async fn load(&self) -> Result<Option<StoredEntry>, Failed> {
        self.bounded("load", self.store.load(&self.key))
            .await
            .map_err(Failed::attempt)
    }

    /// Step 3: saves a fetched entry whose earlier save failed, over the version it was
    /// fetched from — or over a later version that still holds the refresh material the fetch
    /// used (someone recorded a cool-down; nobody rotated). It is dropped when the store
    /// already holds its material (the earlier save landed after all) or moved past it
    /// (another process rotated, or the entry was deleted by a logout). On success its token is
    /// served if it is still valid; otherwise the refresh goes on with the saved material.
    ///
    /// One case cannot be told apart: a fetch made when the store was empty, whose save failed
    /// ambiguously (it landed), followed by a logout that deleted the entry, looks exactly like
    /// an empty store that never held it; the pending entry is then saved.
    async fn settle_pending(
        &self,
        entry: &mut Option<StoredEntry>,
        under: &Under<'_>,
    ) -> Result<Option<Refreshed>, Failed> {
        let Some(pending) = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(None);
        };
        let stored = entry.as_ref();
        let version = stored.map_or(0, |e| e.version);
        let stored_refresh = stored.and_then(|e| e.refresh.as_ref());
        if same_material(stored_refresh, pending.entry.refresh.as_ref()) {
            tracing::info!(key = %self.key, "the store already holds the rotation whose save had failed");
            return Ok(None);
        }
        if version != pending.based_on
            && !(stored.is_some() && same_material(stored_refresh, pending.used.as_ref()))
        {
            tracing::warn!(key = %self.key, "dropping a rotation whose save had failed: the store moved on since (another process rotated, or the entry was removed)");
            return Ok(None);
        }
        let fence = under
            .fence()
            .rotating(RefreshDigest::of(&self.key, pending.used.as_ref()));
        match self
            .bounded_for(
                "save",
                under.for_save(self),
                self.store
                    .save_fenced(&self.key, &pending.entry, version, &fence),
            )
            .await
        {
            Ok(saved) => {
                tracing::info!(key = %self.key, "saved the rotation whose earlier save had failed");
                let mut now_stored = pending.entry.clone();
                now_stored.version = saved;
                *entry = Some(now_stored);
                if self.now().freshness(&pending.deadlines) == Freshness::Expired {
                    return Ok(None);
                }
                Ok(Some(Refreshed {
                    cached: Cached {
                        token: pending.token,
                        deadlines: pending.deadlines,
                        id: next_token_id(),
                        version: saved,
                        placeholder: false,
                    },
                    adopted: false,
                }))
            }
            Err(e) => {
                *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(pending);
                Err(Failed::attempt(e))
            }
        }
    }

    fn owner(&self, entry: &StoredEntry) -> Owner {
        match (self.fingerprint(), &entry.credential) {
            (None, _) => Owner::Ours,
            (Some(ours), Some(theirs)) if ours == theirs => Owner::Ours,
            (Some(_), None) => Owner::Legacy,
            (Some(_), Some(_)) => Owner::Foreign,
        }
    }

    /// Step 4: the stored token, placed on both timelines, if it may be served instead of
    /// fetching: made with this source's credential, not rejected by a 401, valid, and newer
    /// than the token held (another secret; and when the held one is still valid, a later
    /// expiry).
    fn adoptable(&self, entry: Option<&StoredEntry>, now: &Now) -> Option<Cached> {
        let entry = entry?;
        let token = entry.token.as_ref()?;
        match self.owner(entry) {
            Owner::Ours => {}
            Owner::Legacy => {
                tracing::debug!(key = %self.key, "the stored token carries no credential fingerprint (an older kunci saved it); fetching a new one");
                return None;
            }
            Owner::Foreign => {
                tracing::info!(key = %self.key, "the stored token was made with another credential; it is replaced");
                return None;
            }
        }
        if self.is_rejected(token) {
            return None;
        }
        let current = self.current.load();
        if !current.placeholder && current.token.same_secret(token) {
            return None;
        }
        let deadlines = self.place(token, now.wall, now.mono);
        if now.freshness(&deadlines) == Freshness::Expired {
            return None;
        }
        if current.id != 0
            && now.freshness(&current.deadlines) != Freshness::Expired
            && !expires_later(token, &current.token)
        {
            return None;
        }
        Some(Cached {
            token: token.clone(),
            deadlines,
            id: next_token_id(),
            version: entry.version,
            placeholder: false,
        })
    }

    /// Outside the lock and without a request: during a back-off or cool-down, a valid token
    /// another process stored is still served.
    async fn adopt_without_request(&self, now: &Now) -> Option<Cached> {
        let entry = self.load().await.ok()?;
        let cached = self.adoptable(entry.as_ref(), now)?;
        self.counters.adopted.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(key = %self.key, "adopted the token another process stored (no request during the back-off)");
        Some(cached)
    }

    /// Step 5: a cool-down recorded in the store stops the request. Not a failure: nothing was
    /// sent. One longer than `max_cooldown` from now (written by an older kunci or another
    /// tool) is cut to that, once: the cut is remembered and written back, so it ends.
    async fn check_stored_cooldown(
        &self,
        entry: Option<&StoredEntry>,
        now: &Now,
    ) -> Result<(), Failed> {
        let Some((entry, stored)) = entry.and_then(|e| e.cooldown_until.map(|until| (e, until)))
        else {
            return Ok(());
        };
        let cap = expiry::add(now.wall, self.policy.max_cooldown);
        let mut until = stored;
        if stored > cap {
            until = {
                let mut memo = self
                    .capped_cooldown
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match *memo {
                    Some((seen, capped)) if seen == stored => capped,
                    _ => {
                        *memo = Some((stored, cap));
                        cap
                    }
                }
            };
            let mut capped = entry.clone();
            capped.cooldown_until = Some(until);
            if let Err(e) = self
                .bounded("save", self.store.save(&self.key, &capped, entry.version))
                .await
            {
                tracing::debug!(key = %self.key, error = %e, "could not write the capped cool-down back");
            }
        }
        if until <= now.wall {
            return Ok(());
        }
        Err(Failed::NotSent {
            error: Error::rate_limited(
                until,
                format!(
                    "{}: a recent failed attempt started a cool-down (recorded in the token store)",
                    self.source.name()
                ),
            ),
            not_before: now.mono.saturating_add(positive_duration(until - now.wall)),
        })
    }

    /// The refresh material to send: the stored one, unless another credential made it.
    fn held_refresh(&self, entry: Option<&StoredEntry>) -> Option<SecretString> {
        let entry = entry?;
        match self.owner(entry) {
            Owner::Ours | Owner::Legacy => entry.refresh.clone(),
            Owner::Foreign => None,
        }
    }

    /// Step 6: one request to the source, in its own span, bounded by what is left of the
    /// refresh deadline.
    async fn fetch(&self, request: FetchRequest, timeout: Duration) -> Result<Fetched, Error> {
        let span = tracing::info_span!(
            "kunci.fetch",
            provider = self.source.name(),
            key = %self.key,
            outcome = field::Empty,
            latency_ms = field::Empty,
        );
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        // The latency is measured on the precise clock: the monotonic one the deadlines use
        // is coarse (a scheduler tick, up to 4 ms) on Linux.
        let started = self.clock.precise_monotonic();
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
        let latency = self
            .clock
            .precise_monotonic()
            .saturating_duration_since(started);
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

    /// Step 7: saves the fetched entry over the version loaded in step 2, fenced: a plain token
    /// lands only while this holder's lease is alive; newly rotated material whenever the
    /// stored material is still the one the fetch was based on (a version moved on by a
    /// cool-down or a failure record is followed). Rotated material whose save failed is kept
    /// pending (and the token not handed out); a token without rotated material that could not
    /// be saved gives way to a token another holder stored meanwhile, or is served from memory.
    async fn save(
        &self,
        fetched: Fetched,
        held: Option<SecretString>,
        version: u64,
        sent: &Now,
        under: &Under<'_>,
    ) -> Result<Refreshed, Failed> {
        let rotated = fetched.refresh.is_some();
        let mut new_entry = StoredEntry::with_token(fetched.token.clone());
        new_entry.refresh = fetched.refresh.or_else(|| held.clone());
        new_entry.credential = self.fingerprint().cloned();
        new_entry.version = version;
        let deadlines = self.place(&fetched.token, sent.wall, sent.mono);
        let mut fence = under.fence();
        if rotated || held.is_some() {
            // What a request sent with stored material brought back lands while that material
            // is still the stored one (the in-flight mark kept others from sending it), lease
            // or not; the version still has to match.
            fence = fence.rotating(RefreshDigest::of(&self.key, held.as_ref()));
        }
        let mut expected = version;
        let mut outcome = Err(StoreError::corrupt("no save was attempted"));
        // A version moved on without a rotation (a cool-down or failure record written by
        // another process) is followed: the save is retried over it, a few times at most.
        for _ in 0..3 {
            outcome = self
                .bounded_for(
                    "save",
                    under.for_save(self),
                    self.store
                        .save_fenced(&self.key, &new_entry, expected, &fence),
                )
                .await;
            let Err(StoreError::Conflict { .. }) = &outcome else {
                break;
            };
            if !rotated {
                break;
            }
            match self
                .bounded_for("load", under.for_save(self), self.store.load(&self.key))
                .await
            {
                Ok(Some(stored)) if same_material(stored.refresh.as_ref(), held.as_ref()) => {
                    expected = stored.version;
                }
                _ => break,
            }
        }
        let saved = match outcome {
            Ok(saved) => saved,
            Err(e) if rotated => {
                tracing::warn!(key = %self.key, error = %e, "could not save rotated refresh material; kept in memory and saved first next time");
                *self.pending.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(Box::new(Pending {
                        entry: new_entry,
                        based_on: version,
                        used: held,
                        token: fetched.token,
                        deadlines,
                    }));
                if matches!(e, StoreError::LeaseLost { .. }) {
                    // Another holder rotated meanwhile: its token is the fleet's now.
                    if let Some(cached) = self.adopt_after_lost_save(under).await {
                        return Ok(Refreshed {
                            cached,
                            adopted: true,
                        });
                    }
                }
                return Err(Failed::attempt(e));
            }
            Err(e @ (StoreError::LeaseLost { .. } | StoreError::Conflict { .. })) => {
                if let Some(cached) = self.adopt_after_lost_save(under).await {
                    tracing::info!(key = %self.key, error = %e, "another holder saved a token while this one fetched; its token is adopted");
                    return Ok(Refreshed {
                        cached,
                        adopted: true,
                    });
                }
                tracing::warn!(key = %self.key, error = %e, "could not save the new token; serving it from memory");
                version
            }
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "could not save the new token; serving it from memory");
                version
            }
        };
        if self.now().freshness(&deadlines) == Freshness::Expired {
            return Err(Failed::attempt(Error::protocol(format!(
                "{} returned a token that is already expired (expiry {}); check the system clock",
                self.source.name(),
                fetched_expiry(&fetched.token)
            ))));
        }
        Ok(Refreshed {
            cached: Cached {
                token: fetched.token,
                deadlines,
                id: next_token_id(),
                version: saved,
                placeholder: false,
            },
            adopted: false,
        })
    }

    /// After a save refused because another holder moved the entry on: re-reads it and adopts
    /// the token found there, if it may be served.
    async fn adopt_after_lost_save(&self, under: &Under<'_>) -> Option<Cached> {
        let entry = self
            .bounded_for("load", under.for_save(self), self.store.load(&self.key))
            .await
            .ok()?;
        let cached = self.adoptable(entry.as_ref(), &self.now())?;
        self.counters.adopted.fetch_add(1, Ordering::Relaxed);
        Some(cached)
    }

    /// Places a token on both timelines from one reading of the clocks, with fresh jitter.
    fn place(&self, token: &Token, wall: OffsetDateTime, mono: MonoTime) -> Deadlines {
        self.policy.deadlines(
            token.issued_at(),
            token.expires_at(),
            wall,
            mono,
            fastrand::f64(),
        )
    }

    /// The cool-down a failed request imposes: the latest of the source's declared one, the
    /// server's `Retry-After` and a 429's "until", each capped at `max_cooldown` from `now`.
    fn cooldown_for(&self, error: &Error, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let cap = expiry::add(now, self.policy.max_cooldown);
        let declared = self
            .source
            .cooldown_after_failure(error)
            .map(|d| expiry::add(now, d));
        let rate_limited = match error.kind() {
            ErrorKind::RateLimited { until } => Some(until),
            _ => None,
        };
        [declared, error.retry_after(), rate_limited]
            .into_iter()
            .flatten()
            .map(|t| t.min(cap))
            .filter(|t| *t > now)
            .max()
    }

    /// Records a failed request in the store so the other processes take its answer instead
    /// of repeating it: a short shared back-off with the error's kind and message, and the
    /// cool-down the failure imposes, if any. Best effort: the local back-off holds either way.
    async fn persist_outcome(
        &self,
        entry: Option<StoredEntry>,
        version: u64,
        cooldown: Option<OffsetDateTime>,
        error: &Error,
        under: &Under<'_>,
    ) {
        let now = self.clock.now();
        let mut entry = entry.unwrap_or_else(|| StoredEntry {
            credential: self.fingerprint().cloned(),
            ..StoredEntry::default()
        });
        if cooldown.is_some() {
            entry.cooldown_until = cooldown;
        }
        entry.fetching_until = None;
        let kind = match error.kind() {
            ErrorKind::Configuration => FailureKind::Configuration,
            ErrorKind::ReauthenticationRequired => FailureKind::ReauthenticationRequired,
            ErrorKind::Protocol => FailureKind::Protocol,
            ErrorKind::Store => FailureKind::Store,
            _ => FailureKind::Transient,
        };
        entry.failure = Some(SharedFailure::new(
            expiry::add(now, self.shared_backoff()),
            kind,
            error.message(),
        ));
        if let Err(e) = self
            .bounded_for(
                "save",
                under.for_save(self),
                self.store
                    .save_fenced(&self.key, &entry, version, &under.fence()),
            )
            .await
        {
            tracing::warn!(key = %self.key, error = %e, "could not record the failed refresh in the store");
        }
    }

    /// Removes this process's in-flight mark if the store holds it (best effort; otherwise it
    /// expires by itself).
    async fn clear_mark(&self, marked: &StoredEntry, under: &Under<'_>) {
        let Ok(Some(stored)) = self
            .bounded_for("load", under.for_save(self), self.store.load(&self.key))
            .await
        else {
            return;
        };
        if stored.fetching_until.is_none() || stored.fetching_until != marked.fetching_until {
            return;
        }
        let mut cleared = stored.clone();
        cleared.fetching_until = None;
        if let Err(e) = self
            .bounded_for(
                "save",
                under.for_save(self),
                self.store
                    .save_fenced(&self.key, &cleared, stored.version, &under.fence()),
            )
            .await
        {
            tracing::debug!(key = %self.key, error = %e, "could not take back the in-flight mark; it expires by itself");
        }
    }

    /// Step 5c: a request with the stored refresh material is awaited (its sender marked it and
    /// has not saved since): until when, on the monotonic clock. A mark reaching further than
    /// twice the refresh deadline from now is held to that.
    fn request_in_flight(&self, entry: Option<&StoredEntry>, now: &Now) -> Option<MonoTime> {
        let until = entry?.fetching_until?.min(expiry::add(
            now.wall,
            self.policy.refresh_timeout.saturating_mul(2),
        ));
        (until > now.wall).then(|| now.mono.saturating_add(positive_duration(until - now.wall)))
    }

    /// How long a failure recorded in the store is the fleet's answer: the first back-off.
    fn shared_backoff(&self) -> Duration {
        self.policy.backoff(1).min(self.policy.max_cooldown)
    }

    /// Step 5b: another process's refresh failed while this one waited for the lock, and
    /// recorded its outcome: take its answer instead of repeating the request. A failure
    /// recorded before this refresh began to wait is not its answer — a process that comes
    /// later sends its own request (a 5xx must not stop the next process; only a cool-down
    /// does). A record reaching further than the shared back-off from now (another tool wrote
    /// it) is held to that. The record's moment is its end less the shared back-off, on the
    /// recorder's clock; a skew between hosts moves the line between "waited" and "came
    /// later" by that skew, which costs at most one request or one shared back-off.
    fn check_shared_failure(
        &self,
        entry: Option<&StoredEntry>,
        now: &Now,
        waiting_since: OffsetDateTime,
    ) -> Result<(), Failed> {
        let Some(failure) = entry.and_then(|e| e.failure.as_ref()) else {
            return Ok(());
        };
        let recorded_at = expiry::sub(failure.until, self.shared_backoff());
        if recorded_at <= waiting_since {
            return Ok(());
        }
        let until = failure
            .until
            .min(expiry::add(now.wall, self.shared_backoff()));
        if until <= now.wall {
            return Ok(());
        }
        let message = format!(
            "{}: another process's refresh failed a moment ago: {}",
            self.source.name(),
            failure.message
        );
        let error = match failure.kind {
            FailureKind::Configuration => Error::configuration(message),
            FailureKind::ReauthenticationRequired => Error::reauthentication_required(message),
            FailureKind::Protocol => Error::protocol(message),
            FailureKind::Store => Error::store(message),
            _ => Error::transient(message),
        };
        tracing::debug!(key = %self.key, "took the outcome of another process's failed refresh from the store");
        Err(Failed::Shared {
            error,
            not_before: now.mono.saturating_add(positive_duration(until - now.wall)),
        })
    }

    /// A cool-down or a shared failure found in the store holds requests back; the failure
    /// count is unchanged.
    fn hold_off(&self, error: Error, not_before: MonoTime, cooling: bool) {
        let consecutive = self.failure.load().as_ref().map_or(0, |f| f.consecutive);
        self.failure.store(Some(Arc::new(Failure {
            error,
            not_before,
            cooling,
            consecutive,
        })));
        self.ahead_not_before
            .store(not_before.as_nanos(), Ordering::Release);
    }

    /// Records a failed attempt: back-off (shorter while the cached token is still valid, so
    /// several retries fit before it expires), or the cool-down when that is longer.
    fn record_failure(&self, error: &Error, cooldown: Option<OffsetDateTime>) -> Arc<Failure> {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let consecutive = self
            .failure
            .load()
            .as_ref()
            .map_or(1, |f| f.consecutive.saturating_add(1));
        let mut backoff = scale(
            self.policy.backoff(consecutive),
            0.5 + fastrand::f64() / 2.0,
        );
        let cached = self.current.load();
        if let Some(left) = cached
            .deadlines
            .time_to_expiry(now.mono, now.wall_time())
            .filter(|left| !left.is_zero())
        {
            backoff = backoff.min((left / 4).max(Duration::from_millis(10)));
        }
        let cooldown_left =
            cooldown.map_or(Duration::ZERO, |until| positive_duration(until - now.wall));
        let failure = Arc::new(Failure {
            error: error.clone(),
            not_before: now.mono.saturating_add(backoff.max(cooldown_left)),
            cooling: cooldown.is_some(),
            consecutive,
        });
        self.failure.store(Some(Arc::clone(&failure)));
        self.ahead_not_before
            .store(failure.not_before.as_nanos(), Ordering::Release);
        failure
    }
}

/// Whether two pieces of refresh material are the same (both absent counts as the same).
fn same_material(a: Option<&SecretString>, b: Option<&SecretString>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        }
        _ => false,
    }
}

/// Whether `a` stays valid longer than `b` (a permanent token longest).
fn expires_later(a: &Token, b: &Token) -> bool {
    match (a.expires_at(), b.expires_at()) {
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
        (_, None) => false,
    }
}

#[cfg(test)]
mod fleet;
#[cfg(test)]
mod regressions;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

fn fetched_expiry(token: &Token) -> String {
    token
        .expires_at()
        .map_or_else(|| "none".to_owned(), crate::clock::format_rfc3339)
}
