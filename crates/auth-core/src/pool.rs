//! Many accounts of one provider in one process: a keyed pool of [`TokenManager`]s with one
//! scheduler, a bound on requests in flight, a request budget and a bound on live accounts.
//!
//! Stamps issues a token per merchant, KrmPesan one per device, SehatMu one per facility: a
//! service serving thousands of them needs thousands of managers, and without a pool each
//! would bring its own background task and nothing would bound their memory or their requests.
//! A [`TokenPool<K>`] holds them:
//!
//! * **Per key, the manager's guarantees.** Each live account is a [`TokenManager`] (single
//!   flight, refresh-ahead, back-off, cool-downs, invalidation by [`TokenId`], persistence,
//!   credential binding), built lazily from a factory (`key → source + store key`) or from an
//!   account registered up front. All accounts share one store, one clock and one policy.
//! * **Warm path.** `pool.token(&key)` is one lookup in a lock-free map (`papaya`: readers
//!   take no lock and write no shared cache line) plus the manager's warm path.
//! * **One scheduler.** A single tokio task holds a timer queue keyed by each account's
//!   refresh instant (the manager's, jittered over the refresh window by the policy) and
//!   refreshes accounts as they come due, so live accounts stay fresh without callers and
//!   without a task each.
//! * **Bounded requests.** Every request of every account — a cold caller's, a refresh-ahead,
//!   the scheduler's — passes one gate: at most `concurrency` in flight, and, when a
//!   [`Budget`] is set, at most its number of requests in any window of its length (Kalsel
//!   allows 30 a minute per client address). A request that would wait longer than
//!   `max_queue_wait` is refused with a transient error (a failure: back-off applies).
//! * **Bounded memory.** At most `max_accounts` accounts are live; one unused for
//!   `idle_after` is evicted, and when the bound is reached the least recently used of a
//!   sample is. Eviction drops only memory: the stored entry stays, so the key comes back from
//!   the store without a request. An account with a refresh in flight, a save pending or a
//!   back-off in force is never evicted.
//!
//! Keys are never printed: logs name the account's [`StoreKey`], which the factory chooses.
//! See `docs/pool.md`.

use std::{
    cmp::Ordering as CmpOrdering,
    collections::{BinaryHeap, VecDeque},
    fmt,
    hash::Hash,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::{Notify, Semaphore};

use crate::{
    clock::{MonoTime, SharedClock},
    credential::Credential,
    error::Error,
    manager::{Stats, StripedCounter, TokenGuard, TokenId, TokenManager},
    policy::RefreshPolicy,
    source::{FetchRequest, Fetched, SharedTokenSource, TokenSource},
    store::{MemoryStore, SharedTokenStore, StoreKey},
};

/// The shortest wait the scheduler schedules, so an account that stays due is not spun on.
const MIN_STEP: Duration = Duration::from_millis(10);
/// How many accounts eviction samples to find the least recently used one.
const EVICTION_SAMPLE: usize = 32;
/// `last_used` is written at most once per this many nanoseconds (~1 s), so concurrent
/// callers of one key share a cache line that is read, not written.
const TOUCH_GRANULARITY: u64 = 1 << 30;

/// What an account is made of: its source and the store key its entry lives under.
#[derive(Clone, Debug)]
pub struct AccountSpec {
    source: SharedTokenSource,
    key: StoreKey,
}

impl AccountSpec {
    /// An account fetching from `source`, stored under `key`. Two keys of one pool should not
    /// share a store key.
    pub fn new(source: impl Into<SharedTokenSource>, key: StoreKey) -> Self {
        Self {
            source: source.into(),
            key,
        }
    }
}

/// Makes the account of a key the pool has not seen (or has evicted).
pub type Factory<K> = Arc<dyn Fn(&K) -> Result<AccountSpec, Error> + Send + Sync>;

/// A provider's request budget: at most `requests` requests in any window of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    requests: u32,
    per: Duration,
}

impl Budget {
    /// At most `requests` in any window of `per` (Kalsel: 30 per minute per client address).
    ///
    /// # Errors
    /// A configuration error when `requests` is zero or above a million, or `per` is zero or
    /// longer than a day.
    pub fn new(requests: u32, per: Duration) -> Result<Self, Error> {
        if requests == 0 || requests > 1_000_000 {
            return Err(Error::configuration(
                "a pool's request budget must allow between 1 and 1,000,000 requests per window",
            ));
        }
        if per.is_zero() || per > Duration::from_secs(86_400) {
            return Err(Error::configuration(
                "a pool's request budget window must be longer than zero and at most a day",
            ));
        }
        Ok(Self { requests, per })
    }

    /// The most requests in any window.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The window's length.
    pub fn per(&self) -> Duration {
        self.per
    }
}

/// Counters of the whole pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Accounts in memory now.
    pub live_accounts: usize,
    /// Accounts built (lazily, or again after an eviction).
    pub created: u64,
    /// Accounts evicted (idle, or to stay under the bound).
    pub evicted: u64,
    /// Requests in flight now, across all accounts.
    pub in_flight: usize,
    /// Requests the gate refused: the concurrency slots or the budget stayed taken longer than
    /// `max_queue_wait`.
    pub refused: u64,
    /// The counters of every account, live and evicted, summed (`fetches`, `adopted`,
    /// `failures`, `rejected`, `invalidations`; `pending_save` when any live account has one),
    /// and `cache_hits`, which the pool counts for all accounts at once (approximate when more
    /// than 16 threads call at the same moment). Per-token fields (`time_to_expiry`, ...) are
    /// `None`.
    pub totals: Stats,
}

fn add_counters(into: &mut Stats, from: &Stats) {
    into.cache_hits = into.cache_hits.saturating_add(from.cache_hits);
    into.fetches = into.fetches.saturating_add(from.fetches);
    into.adopted = into.adopted.saturating_add(from.adopted);
    into.failures = into.failures.saturating_add(from.failures);
    into.rejected = into.rejected.saturating_add(from.rejected);
    into.invalidations = into.invalidations.saturating_add(from.invalidations);
}

/// The one door every request of the pool goes through: concurrency slots and the budget.
struct Gate {
    slots: Semaphore,
    concurrency: usize,
    budget: Option<(Budget, Mutex<VecDeque<MonoTime>>)>,
    clock: SharedClock,
    max_wait: Duration,
    in_flight: AtomicUsize,
    refused: AtomicU64,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("concurrency", &self.concurrency)
            .field("budget", &self.budget.as_ref().map(|(b, _)| b))
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Holds a concurrency slot while a request runs.
struct Pass<'a> {
    gate: &'a Gate,
    _slot: tokio::sync::SemaphorePermit<'a>,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gate {
    /// Waits for a slot, then for room in the budget (holding the slot, so requests start
    /// spaced as the budget allows and never bunch up behind a slot).
    async fn pass(&self, provider: &str) -> Result<Pass<'_>, Error> {
        let started = self.clock.monotonic();
        let slot = match tokio::time::timeout(self.max_wait, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(Error::transient("the token pool is shutting down")),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Error::transient(format!(
                    "{provider}: all {} request slots of the token pool stayed busy for {:?}",
                    self.concurrency, self.max_wait
                )));
            }
        };
        if let Some((budget, sent)) = &self.budget {
            loop {
                let now = self.clock.monotonic();
                let wait = take_budget(
                    &mut sent.lock().unwrap_or_else(PoisonError::into_inner),
                    budget,
                    now,
                );
                let Some(wait) = wait else { break };
                let left = self
                    .max_wait
                    .saturating_sub(now.saturating_duration_since(started));
                if wait > left {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return Err(Error::transient(format!(
                        "{provider}: the token pool's request budget ({} per {:?}) is spent for the next {wait:?}",
                        budget.requests, budget.per
                    )));
                }
                tokio::time::sleep(wait).await;
            }
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Pass {
            gate: self,
            _slot: slot,
        })
    }
}

/// Records a request at `now` when the budget has room (`None`), else answers how long until
/// it has. `sent` holds the send times of the last window, oldest first.
fn take_budget(sent: &mut VecDeque<MonoTime>, budget: &Budget, now: MonoTime) -> Option<Duration> {
    let limit = usize::try_from(budget.requests).unwrap_or(usize::MAX);
    while sent.len() >= limit {
        let oldest = *sent.front()?;
        let free_at = oldest.saturating_add(budget.per);
        if now < free_at {
            return Some(free_at.saturating_duration_since(now));
        }
        sent.pop_front();
    }
    sent.push_back(now);
    None
}

/// An account's source behind the pool's gate.
#[derive(Debug)]
struct GatedSource {
    inner: SharedTokenSource,
    gate: Arc<Gate>,
}

#[async_trait]
impl TokenSource for GatedSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        // `request.sent_at` was read before the wait: the wait counts against the token
        // (conservative), never for it.
        let _pass = self.gate.pass(self.inner.name()).await?;
        self.inner.fetch(request).await
    }

    fn cooldown_after_failure(&self, error: &Error) -> Option<Duration> {
        self.inner.cooldown_after_failure(error)
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn credential_expires_at(&self) -> Option<time::OffsetDateTime> {
        self.inner.credential_expires_at()
    }

    fn credential(&self) -> Option<Credential> {
        self.inner.credential()
    }
}

/// One live account, kept inline in the map's entry (one cache line fewer on the warm path).
struct Account {
    manager: TokenManager,
    /// Monotonic nanoseconds of the last call (to [`TOUCH_GRANULARITY`]).
    last_used: AtomicU64,
    /// The instant of this account's live entry in the timer queue (`u64::MAX`: none). Queue
    /// entries at another instant are stale and skipped.
    scheduled_at: AtomicU64,
}

impl Account {
    #[inline]
    fn touch(&self, now: MonoTime) {
        let now = now.as_nanos();
        if now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= TOUCH_GRANULARITY {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

/// An entry of the timer queue, earliest first.
struct Due<K> {
    at: MonoTime,
    key: K,
}

impl<K> PartialEq for Due<K> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl<K> Eq for Due<K> {}
impl<K> PartialOrd for Due<K> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Due<K> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // reversed: `BinaryHeap` is a max-heap
        other.at.cmp(&self.at)
    }
}

struct PoolInner<K> {
    accounts: papaya::HashMap<K, Account>,
    registered: papaya::HashMap<K, AccountSpec>,
    factory: Option<Factory<K>>,
    store: SharedTokenStore,
    clock: SharedClock,
    policy: RefreshPolicy,
    gate: Arc<Gate>,
    max_accounts: usize,
    idle_after: Duration,
    queue: Mutex<BinaryHeap<Due<K>>>,
    wake: Arc<Notify>,
    scheduler_enabled: bool,
    scheduler: Mutex<Option<tokio::task::JoinHandle<()>>>,
    created: AtomicU64,
    evicted: AtomicU64,
    /// The counters of evicted accounts, so totals survive eviction.
    retired: Mutex<Stats>,
    /// Calls answered from the cache, for all accounts (per-thread stripes).
    hits: StripedCounter,
}

impl<K> Drop for PoolInner<K> {
    fn drop(&mut self) {
        if let Some(task) = self
            .scheduler
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// Many accounts' tokens, keyed by `K` (a merchant id, a device key, a facility's client id).
/// See the [module documentation](self).
///
/// Cloning is cheap and every clone shares the accounts. Building one needs no runtime; the
/// scheduler starts with the first call that needs a refresh, on that caller's runtime, and
/// stops when the last clone is dropped.
pub struct TokenPool<K> {
    inner: Arc<PoolInner<K>>,
}

impl<K> Clone for TokenPool<K> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: Hash + Eq> fmt::Debug for TokenPool<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPool")
            .field("live_accounts", &self.inner.accounts.len())
            .field("max_accounts", &self.inner.max_accounts)
            .field("idle_after", &self.inner.idle_after)
            .field("gate", &self.inner.gate)
            .field("store", &self.inner.store.describe())
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenPool`].
pub struct TokenPoolBuilder<K> {
    factory: Option<Factory<K>>,
    store: Option<SharedTokenStore>,
    clock: Option<SharedClock>,
    policy: RefreshPolicy,
    max_accounts: usize,
    idle_after: Duration,
    concurrency: usize,
    budget: Option<Budget>,
    max_queue_wait: Option<Duration>,
    scheduler: bool,
}

impl<K> fmt::Debug for TokenPoolBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPoolBuilder")
            .field("factory", &self.factory.is_some())
            .field("max_accounts", &self.max_accounts)
            .field("idle_after", &self.idle_after)
            .field("concurrency", &self.concurrency)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<K> TokenPoolBuilder<K> {
    /// Makes the account of a key met for the first time (or again after an eviction).
    #[must_use]
    pub fn factory(
        mut self,
        factory: impl Fn(&K) -> Result<AccountSpec, Error> + Send + Sync + 'static,
    ) -> Self {
        self.factory = Some(Arc::new(factory));
        self
    }

    /// The store every account shares (default: a fresh [`MemoryStore`]).
    #[must_use]
    pub fn store(mut self, store: impl Into<SharedTokenStore>) -> Self {
        self.store = Some(store.into());
        self
    }

    /// The clock (default: the system clock). The budget and the scheduler wait with tokio's
    /// timer, so the clock must move with it (the system clock, or `TokioClock` in tests).
    #[must_use]
    pub fn clock(mut self, clock: impl Into<SharedClock>) -> Self {
        self.clock = Some(clock.into());
        self
    }

    /// The refresh policy of every account (default: [`RefreshPolicy::default`]). Its
    /// `jitter` spreads same-age tokens over their refresh windows.
    #[must_use]
    pub fn policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The most accounts in memory at once (default 10,000).
    #[must_use]
    pub fn max_accounts(mut self, max: usize) -> Self {
        self.max_accounts = max;
        self
    }

    /// How long an unused account stays in memory (default 1 hour). It is kept fresh by the
    /// scheduler until then.
    #[must_use]
    pub fn idle_after(mut self, idle: Duration) -> Self {
        self.idle_after = idle;
        self
    }

    /// The most requests in flight at once, across all accounts (default 8).
    #[must_use]
    pub fn concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests;
        self
    }

    /// The provider's request budget (default: none).
    #[must_use]
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The longest a request waits for a slot and the budget before it is refused (default:
    /// half the policy's `refresh_timeout`, which also bounds the wait).
    #[must_use]
    pub fn max_queue_wait(mut self, wait: Duration) -> Self {
        self.max_queue_wait = Some(wait);
        self
    }

    /// Whether the pool runs its scheduler (default: yes). Without it, accounts refresh ahead
    /// only when called, and [`TokenPool::refresh_due`] runs what is due.
    #[must_use]
    pub fn scheduler(mut self, run: bool) -> Self {
        self.scheduler = run;
        self
    }

    /// Validates the settings and builds the pool.
    ///
    /// # Errors
    /// A configuration error for an invalid policy, a bound of zero accounts, zero or more
    /// than 100,000 concurrent requests, or a zero idle time or queue wait.
    pub fn build(self) -> Result<TokenPool<K>, Error>
    where
        K: Hash + Eq,
    {
        self.policy.validate()?;
        if self.max_accounts == 0 {
            return Err(Error::configuration(
                "a token pool must allow at least one live account",
            ));
        }
        if self.concurrency == 0 || self.concurrency > 100_000 {
            return Err(Error::configuration(
                "a token pool's concurrency must be between 1 and 100,000 requests",
            ));
        }
        if self.idle_after.is_zero() {
            return Err(Error::configuration(
                "a token pool's idle time must be longer than zero",
            ));
        }
        let max_wait = self
            .max_queue_wait
            .unwrap_or(self.policy.refresh_timeout / 2);
        if max_wait.is_zero() {
            return Err(Error::configuration(
                "a token pool's queue wait must be longer than zero",
            ));
        }
        let clock = self.clock.unwrap_or_default();
        Ok(TokenPool {
            inner: Arc::new(PoolInner {
                accounts: papaya::HashMap::new(),
                registered: papaya::HashMap::new(),
                factory: self.factory,
                store: self
                    .store
                    .unwrap_or_else(|| SharedTokenStore::new(MemoryStore::new())),
                gate: Arc::new(Gate {
                    slots: Semaphore::new(self.concurrency),
                    concurrency: self.concurrency,
                    budget: self.budget.map(|b| (b, Mutex::new(VecDeque::new()))),
                    clock: clock.clone(),
                    max_wait,
                    in_flight: AtomicUsize::new(0),
                    refused: AtomicU64::new(0),
                }),
                clock,
                policy: self.policy,
                max_accounts: self.max_accounts,
                idle_after: self.idle_after,
                queue: Mutex::new(BinaryHeap::new()),
                wake: Arc::new(Notify::new()),
                scheduler_enabled: self.scheduler,
                scheduler: Mutex::new(None),
                created: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                retired: Mutex::new(Stats::default()),
                hits: StripedCounter::default(),
            }),
        })
    }
}

impl<K> TokenPool<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Starts building a pool.
    pub fn builder() -> TokenPoolBuilder<K> {
        TokenPoolBuilder {
            factory: None,
            store: None,
            clock: None,
            policy: RefreshPolicy::default(),
            max_accounts: 10_000,
            idle_after: Duration::from_secs(3600),
            concurrency: 8,
            budget: None,
            max_queue_wait: None,
            scheduler: true,
        }
    }

    /// Registers the account of `key` up front (it is preferred to the factory). When the key
    /// is live, its account is dropped from memory, so the next call builds the new one.
    pub fn register(&self, key: K, account: AccountSpec) {
        self.inner.registered.pin().insert(key.clone(), account);
        if let Some(old) = self.inner.accounts.pin().remove(&key) {
            self.inner.retire(&old.manager);
        }
    }

    /// The token of `key`'s account, with [`TokenManager::token`]'s guarantees for that
    /// account; its account is built first when it is not live.
    ///
    /// # Errors
    /// The account's refresh error; a configuration error when the key is neither registered
    /// nor made by the factory (or the factory fails).
    #[inline]
    pub async fn token(&self, key: &K) -> Result<TokenGuard, Error> {
        if let Some(token) = self.warm(key) {
            return Ok(token);
        }
        self.cold(key).await
    }

    #[inline]
    fn warm(&self, key: &K) -> Option<TokenGuard> {
        let inner = &*self.inner;
        let (mono, wall) = inner.clock.read_fast();
        let accounts = inner.accounts.pin();
        let account = accounts.get(key)?;
        account.touch(mono);
        let token = account.manager.warm_at(mono, wall)?;
        inner.hits.increment();
        Some(token)
    }

    #[cold]
    async fn cold(&self, key: &K) -> Result<TokenGuard, Error> {
        let manager = self.inner.account(key)?;
        self.inner.start_scheduler();
        let result = manager.token().await;
        self.inner
            .reschedule(key, &manager, manager.next_refresh_in(), true);
        result
    }

    /// Reports that the API rejected `token` of `key`'s account (see
    /// [`TokenManager::invalidate`]). Returns whether this call invalidated the current token.
    pub fn invalidate(&self, key: &K, token: impl Into<TokenId>) -> bool {
        let accounts = self.inner.accounts.pin();
        accounts.get(key).is_some_and(|account| {
            let invalidated = account.manager.invalidate(token);
            if invalidated {
                self.inner.schedule(key, account, Some(Duration::ZERO));
            }
            invalidated
        })
    }

    /// The stats of `key`'s account while it is live (`None`: not in memory). Its
    /// `cache_hits` is 0: the pool counts hits once for all accounts ([`PoolStats::totals`]),
    /// so a warm call writes nothing to the account's memory.
    pub fn stats(&self, key: &K) -> Option<Stats> {
        self.inner
            .accounts
            .pin()
            .get(key)
            .map(|account| account.manager.stats())
    }

    /// Calls `f` with every live account's key and stats (for metrics).
    pub fn for_each_account(&self, mut f: impl FnMut(&K, Stats)) {
        for (key, account) in self.inner.accounts.pin().iter() {
            f(key, account.manager.stats());
        }
    }

    /// The whole pool's counters.
    pub fn pool_stats(&self) -> PoolStats {
        let inner = &*self.inner;
        let mut totals = inner
            .retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let accounts = inner.accounts.pin();
        for account in accounts.values() {
            let stats = account.manager.stats();
            add_counters(&mut totals, &stats);
            totals.pending_save |= stats.pending_save;
        }
        totals.cache_hits = inner.hits.sum();
        PoolStats {
            live_accounts: accounts.len(),
            created: inner.created.load(Ordering::Relaxed),
            evicted: inner.evicted.load(Ordering::Relaxed),
            in_flight: inner.gate.in_flight.load(Ordering::Relaxed),
            refused: inner.gate.refused.load(Ordering::Relaxed),
            totals,
        }
    }

    /// Accounts in memory now.
    pub fn live_accounts(&self) -> usize {
        self.inner.accounts.len()
    }

    /// Whether `key`'s account is in memory.
    pub fn is_live(&self, key: &K) -> bool {
        self.inner.accounts.pin().contains_key(key)
    }

    /// Evicts every account unused for the idle time (the scheduler does this on its own);
    /// returns how many.
    pub fn evict_idle(&self) -> usize {
        self.inner.evict_idle()
    }

    /// Runs every refresh that is due now and waits for them; returns how many accounts were
    /// looked at. The scheduler does this on its own; without it (see
    /// [`TokenPoolBuilder::scheduler`]) a caller may drive refreshes with this.
    pub async fn refresh_due(&self) -> usize {
        let mut ran = 0;
        while let Some((key, manager)) = self.inner.pop_due() {
            let wait = manager.refresh_when_due().await;
            self.inner.reschedule(&key, &manager, wait, false);
            ran += 1;
        }
        ran
    }
}

impl<K> PoolInner<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// The live account of `key`, built (and room made for it) when there is none.
    fn account(&self, key: &K) -> Result<TokenManager, Error> {
        if let Some(account) = self.accounts.pin().get(key) {
            return Ok(account.manager.clone());
        }
        let spec = match self.registered.pin().get(key) {
            Some(spec) => spec.clone(),
            None => match &self.factory {
                Some(factory) => factory(key)?,
                None => {
                    return Err(Error::configuration(
                        "no account is registered under this key and the token pool has no factory",
                    ));
                }
            },
        };
        let manager = TokenManager::builder(GatedSource {
            inner: spec.source,
            gate: Arc::clone(&self.gate),
        })
        .store(self.store.clone())
        .clock(self.clock.clone())
        .policy(self.policy.clone())
        .key(spec.key)
        .compact()
        .build()?;
        let account = Account {
            manager: manager.clone(),
            last_used: AtomicU64::new(self.clock.monotonic().as_nanos()),
            scheduled_at: AtomicU64::new(u64::MAX),
        };
        self.make_room();
        match self.accounts.pin().try_insert(key.clone(), account) {
            Ok(_) => {
                self.created.fetch_add(1, Ordering::Relaxed);
                Ok(manager)
            }
            // another caller built it first; this one was never used
            Err(occupied) => Ok(occupied.current.manager.clone()),
        }
    }

    /// Below the bound, nothing. At it: the idle accounts go, then the least recently used of
    /// a sample that is not busy. When every sampled account is busy the bound is exceeded
    /// for now (a busy account may hold the only copy of rotated refresh material).
    fn make_room(&self) {
        if self.accounts.len() < self.max_accounts {
            return;
        }
        self.evict_idle();
        while self.accounts.len() >= self.max_accounts {
            let accounts = self.accounts.pin();
            let skip = fastrand::usize(..=accounts.len().saturating_sub(EVICTION_SAMPLE));
            let oldest = accounts
                .iter()
                .skip(skip)
                .take(EVICTION_SAMPLE)
                .filter(|(_, account)| !account.manager.is_busy())
                .min_by_key(|(_, account)| account.last_used.load(Ordering::Relaxed))
                .map(|(key, account)| (key.clone(), account.manager.clone()));
            drop(accounts);
            let Some((key, manager)) = oldest else {
                tracing::warn!(
                    max_accounts = self.max_accounts,
                    "every sampled account of the token pool is busy; the bound is exceeded until one is not"
                );
                return;
            };
            self.evict(&key, &manager);
        }
    }

    fn evict_idle(&self) -> usize {
        let now = self.clock.monotonic();
        let idle: Vec<(K, TokenManager)> = self
            .accounts
            .pin()
            .iter()
            .filter(|(_, account)| {
                now.saturating_duration_since(MonoTime::from_nanos(
                    account.last_used.load(Ordering::Relaxed),
                )) >= self.idle_after
                    && !account.manager.is_busy()
            })
            .map(|(key, account)| (key.clone(), account.manager.clone()))
            .collect();
        idle.iter()
            .filter(|(key, manager)| self.evict(key, manager))
            .count()
    }

    /// Drops `manager`'s account from memory if it is still `key`'s. Its stored entry stays.
    fn evict(&self, key: &K, manager: &TokenManager) -> bool {
        let removed = self
            .accounts
            .pin()
            .remove_if(key, |_, live| live.manager.same_as(manager))
            .ok()
            .flatten()
            .is_some();
        if removed {
            tracing::debug!(key = %manager.key(), "evicted an account from the token pool; its stored entry stays");
            self.retire(manager);
        }
        removed
    }

    fn retire(&self, manager: &TokenManager) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
        add_counters(
            &mut self.retired.lock().unwrap_or_else(PoisonError::into_inner),
            &manager.stats(),
        );
    }

    /// After a call or a refresh of `manager`: when it is still `key`'s live account, marks it
    /// used (`touched`) and puts it back in the timer queue.
    fn reschedule(&self, key: &K, manager: &TokenManager, wait: Option<Duration>, touched: bool) {
        let accounts = self.accounts.pin();
        let Some(account) = accounts.get(key).filter(|a| a.manager.same_as(manager)) else {
            return;
        };
        if touched {
            account.touch(self.clock.monotonic());
        }
        self.schedule(key, account, wait);
    }

    /// Puts `key` in the timer queue `wait` from now, unless it is already due earlier.
    fn schedule(&self, key: &K, account: &Account, wait: Option<Duration>) {
        let Some(wait) = wait else { return };
        let at = self.clock.monotonic().saturating_add(wait.max(MIN_STEP));
        let mut current = account.scheduled_at.load(Ordering::Acquire);
        loop {
            if at.as_nanos() >= current {
                return;
            }
            match account.scheduled_at.compare_exchange_weak(
                current,
                at.as_nanos(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now_scheduled) => current = now_scheduled,
            }
        }
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Due {
                at,
                key: key.clone(),
            });
        self.wake.notify_one();
    }

    /// The next due entry whose account is live and still scheduled then (stale entries are
    /// dropped on the way); its schedule is cleared.
    fn pop_due(&self) -> Option<(K, TokenManager)> {
        let now = self.clock.monotonic();
        loop {
            let due = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.peek()?.at > now {
                    return None;
                }
                queue.pop()?
            };
            let accounts = self.accounts.pin();
            let Some(account) = accounts.get(&due.key) else {
                continue;
            };
            if account
                .scheduled_at
                .compare_exchange(
                    due.at.as_nanos(),
                    u64::MAX,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return Some((due.key, account.manager.clone()));
            }
        }
    }

    /// How long until the earliest entry of the queue is due (`None`: empty).
    fn next_due_in(&self) -> Option<Duration> {
        let at = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .peek()?
            .at;
        Some(at.saturating_duration_since(self.clock.monotonic()))
    }

    /// Starts the one scheduler task on the caller's runtime, once (again if the runtime it ran
    /// on shut down).
    fn start_scheduler(self: &Arc<Self>) {
        if !self.scheduler_enabled {
            return;
        }
        let mut task = self
            .scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // a scheduler whose runtime shut down is started again on the caller's
        if task.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let slots = Arc::new(Semaphore::new(self.gate.concurrency));
        *task = Some(runtime.spawn(run_scheduler(
            Arc::downgrade(self),
            Arc::clone(&self.wake),
            slots,
        )));
    }
}

/// The scheduler: refreshes accounts as they come due (at most `slots` at once; each refresh
/// still passes the gate) and sweeps idle accounts. Holds the pool only weakly between steps.
async fn run_scheduler<K>(pool: Weak<PoolInner<K>>, wake: Arc<Notify>, slots: Arc<Semaphore>)
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    let mut next_sweep = None;
    loop {
        let wait = {
            let Some(inner) = pool.upgrade() else { return };
            let sweep_every =
                (inner.idle_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
            let now = inner.clock.monotonic();
            let sweep_at = *next_sweep.get_or_insert_with(|| now.saturating_add(sweep_every));
            if now >= sweep_at {
                inner.evict_idle();
                next_sweep = Some(now.saturating_add(sweep_every));
            }
            if let Some((key, manager)) = inner.pop_due() {
                drop(inner);
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let pool = Weak::clone(&pool);
                tokio::spawn(async move {
                    let wait = manager.refresh_when_due().await;
                    drop(slot);
                    if let Some(inner) = pool.upgrade() {
                        inner.reschedule(&key, &manager, wait, false);
                    }
                });
                continue;
            }
            let to_sweep = sweep_at.saturating_duration_since(now);
            inner
                .next_due_in()
                .map_or(to_sweep, |due| due.min(to_sweep))
        };
        let notified = wake.notified();
        let sleep = tokio::time::sleep(wait.max(MIN_STEP));
        futures_util::future::select(std::pin::pin!(notified), std::pin::pin!(sleep)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_its_number_in_any_window_and_names_the_wait() {
        let budget = Budget::new(3, Duration::from_secs(60)).unwrap_or_else(|_| unreachable!());
        let mut sent = VecDeque::new();
        let at = |s: u64| MonoTime::from_nanos(s * 1_000_000_000);
        assert_eq!(take_budget(&mut sent, &budget, at(0)), None);
        assert_eq!(take_budget(&mut sent, &budget, at(1)), None);
        assert_eq!(take_budget(&mut sent, &budget, at(2)), None);
        assert_eq!(
            take_budget(&mut sent, &budget, at(30)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(take_budget(&mut sent, &budget, at(60)), None);
        assert_eq!(
            take_budget(&mut sent, &budget, at(60)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn absurd_budgets_and_bounds_are_configuration_errors() {
        assert!(Budget::new(0, Duration::from_secs(60)).is_err());
        assert!(Budget::new(u32::MAX, Duration::from_secs(60)).is_err());
        assert!(Budget::new(30, Duration::ZERO).is_err());
        assert!(Budget::new(30, Duration::MAX).is_err());
        assert!(TokenPool::<u32>::builder().max_accounts(0).build().is_err());
        assert!(TokenPool::<u32>::builder().concurrency(0).build().is_err());
        assert!(
            TokenPool::<u32>::builder()
                .concurrency(usize::MAX)
                .build()
                .is_err()
        );
        assert!(
            TokenPool::<u32>::builder()
                .idle_after(Duration::ZERO)
                .build()
                .is_err()
        );
    }
}
