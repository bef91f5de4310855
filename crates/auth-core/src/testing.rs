//! Test doubles that misbehave on purpose (feature `test-util`): a [`FaultyStore`] around any
//! store and a [`ScriptedSource`]. Other crates' tests use them to put their own code through
//! what production does to it.
//!
//! ```
//! use auth_core::testing::{Fault, FaultyStore, ScriptedSource, Step, StoreOp};
//! use auth_core::{MemoryStore, SharedClock, TokenManager, TokioClock};
//! use auth_core::time::macros::datetime;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let store = FaultyStore::new(MemoryStore::new());
//! let source = ScriptedSource::new("demo").then(Step::Panic).then(Step::issue(Duration::from_secs(3600)));
//! let manager = TokenManager::builder(source.clone())
//!     .store(store.clone())
//!     .clock(SharedClock::from(TokioClock::new(datetime!(2026-11-22 08:00 UTC))))
//!     .build()
//!     .unwrap();
//! assert!(manager.token().await.is_err()); // the source panicked: a recorded failure
//! store.fail_next(StoreOp::Save, Fault::Fail);
//! tokio::time::advance(Duration::from_secs(2)).await; // past the back-off
//! // the token could not be saved, but it rotates nothing: it is served from memory
//! assert!(manager.token().await.is_ok());
//! assert_eq!(source.calls(), 2);
//! # }
//! ```

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};

use crate::{
    credential::Credential,
    error::Error,
    source::{FetchRequest, Fetched, TokenSource},
    store::{SharedTokenStore, StoreError, StoreKey, StoreLock, StoredEntry, TokenStore},
    token::Token,
};

/// A store operation a fault can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// [`TokenStore::load`].
    Load,
    /// [`TokenStore::save`].
    Save,
    /// [`TokenStore::delete`].
    Delete,
    /// [`TokenStore::lock`].
    Lock,
    /// [`StoreLock::renew`] of a lock this store handed out: [`Fault::Fail`] is an error,
    /// [`Fault::LoseLock`] answers "lost" (`Ok(false)`).
    Renew,
}

impl StoreOp {
    const ALL: [Self; 5] = [
        Self::Load,
        Self::Save,
        Self::Delete,
        Self::Lock,
        Self::Renew,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with [`StoreError::Unavailable`] and changes nothing.
    Fail,
    /// The operation takes effect, then is reported as failed: a reply lost after a Redis
    /// script ran, an `fsync` of the directory failing after the rename. On `load` and
    /// `lock` it is the same as [`Fault::Fail`] (a lock taken then reported lost is released).
    FailAfterWrite,
    /// The operation waits this long (tokio time) before it runs.
    Delay(Duration),
    /// `lock` is granted without excluding anyone, as if the holder's lock had expired: two
    /// processes may refresh at once. Other operations run normally.
    LoseLock,
}

#[derive(Debug, Default)]
struct Plan {
    /// One-shot faults, consumed in order.
    next: [VecDeque<Fault>; 5],
    /// A fault applied to every call until cleared.
    always: [Option<Fault>; 5],
}

/// Wraps a store and injects [`Fault`]s into its operations; counts the calls. Clones share
/// the plan, so a test keeps one and hands the other to the manager.
#[derive(Clone)]
pub struct FaultyStore {
    inner: SharedTokenStore,
    plan: Arc<Mutex<Plan>>,
    calls: Arc<[AtomicUsize; 5]>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    /// Wraps `inner`, with no faults planned.
    pub fn new(inner: impl Into<SharedTokenStore>) -> Self {
        Self {
            inner: inner.into(),
            plan: Arc::default(),
            calls: Arc::new([const { AtomicUsize::new(0) }; 5]),
        }
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next call of `op` meets `fault` (faults queue up in order).
    pub fn fail_next(&self, op: StoreOp, fault: Fault) {
        self.plan().next[op.index()].push_back(fault);
    }

    /// Every call of `op` meets `fault` until [`FaultyStore::clear`].
    pub fn always(&self, op: StoreOp, fault: Fault) {
        self.plan().always[op.index()] = Some(fault);
    }

    /// Removes every planned fault.
    pub fn clear(&self) {
        *self.plan() = Plan::default();
    }

    /// Whether any fault is planned.
    pub fn has_faults(&self) -> bool {
        let plan = self.plan();
        StoreOp::ALL
            .iter()
            .any(|op| !plan.next[op.index()].is_empty() || plan.always[op.index()].is_some())
    }

    /// How many times `op` was called (faulty or not).
    pub fn calls(&self, op: StoreOp) -> usize {
        self.calls[op.index()].load(Ordering::SeqCst)
    }

    /// The wrapped store, without faults.
    pub fn inner(&self) -> &SharedTokenStore {
        &self.inner
    }

    /// Counts the call and returns its fault, after waiting out any delay.
    async fn enter(&self, op: StoreOp) -> Option<Fault> {
        self.calls[op.index()].fetch_add(1, Ordering::SeqCst);
        let fault = {
            let mut plan = self.plan();
            plan.next[op.index()]
                .pop_front()
                .or(plan.always[op.index()])
        };
        match fault {
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                None
            }
            other => other,
        }
    }
}

fn injected(op: StoreOp, after: bool) -> StoreError {
    StoreError::Unavailable {
        message: format!(
            "injected fault: {op:?} {}",
            if after {
                "failed after taking effect"
            } else {
                "failed"
            }
        ),
        source: None,
    }
}

#[derive(Debug)]
struct LostLock;

/// A lock of the wrapped store, whose renewals meet the [`StoreOp::Renew`] faults.
#[derive(Debug)]
struct FaultyLock {
    inner: Box<dyn StoreLock>,
    store: FaultyStore,
}

#[async_trait]
impl StoreLock for FaultyLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        self.inner.release().await
    }

    async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        match self.store.enter(StoreOp::Renew).await {
            Some(Fault::Fail | Fault::FailAfterWrite) => Err(injected(StoreOp::Renew, false)),
            Some(Fault::LoseLock) => Ok(false),
            _ => self.inner.renew(ttl).await,
        }
    }

    fn lease(&self) -> Option<crate::store::Lease> {
        self.inner.lease()
    }
}

#[async_trait]
impl StoreLock for LostLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl TokenStore for FaultyStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError> {
        match self.enter(StoreOp::Load).await {
            Some(Fault::Fail | Fault::FailAfterWrite) => Err(injected(StoreOp::Load, false)),
            _ => self.inner.load(key).await,
        }
    }

    async fn save(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
    ) -> Result<u64, StoreError> {
        match self.enter(StoreOp::Save).await {
            Some(Fault::Fail) => Err(injected(StoreOp::Save, false)),
            Some(Fault::FailAfterWrite) => {
                self.inner.save(key, entry, expected).await?;
                Err(injected(StoreOp::Save, true))
            }
            _ => self.inner.save(key, entry, expected).await,
        }
    }

    async fn save_fenced(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
        fence: &crate::store::Fence,
    ) -> Result<u64, StoreError> {
        match self.enter(StoreOp::Save).await {
            Some(Fault::Fail) => Err(injected(StoreOp::Save, false)),
            Some(Fault::FailAfterWrite) => {
                self.inner.save_fenced(key, entry, expected, fence).await?;
                Err(injected(StoreOp::Save, true))
            }
            _ => self.inner.save_fenced(key, entry, expected, fence).await,
        }
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        match self.enter(StoreOp::Delete).await {
            Some(Fault::Fail) => Err(injected(StoreOp::Delete, false)),
            Some(Fault::FailAfterWrite) => {
                self.inner.delete(key).await?;
                Err(injected(StoreOp::Delete, true))
            }
            _ => self.inner.delete(key).await,
        }
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.inner.keys(prefix).await
    }

    async fn lock(&self, key: &StoreKey, ttl: Duration) -> Result<Box<dyn StoreLock>, StoreError> {
        match self.enter(StoreOp::Lock).await {
            Some(Fault::Fail | Fault::FailAfterWrite) => Err(injected(StoreOp::Lock, false)),
            Some(Fault::LoseLock) => Ok(Box::new(LostLock)),
            _ => Ok(Box::new(FaultyLock {
                inner: self.inner.lock(key, ttl).await?,
                store: self.clone(),
            })),
        }
    }

    fn describe(&self) -> String {
        format!("faulty({})", self.inner.describe())
    }
}

/// Keeps [`ScriptedSource`]'s deliberate panics (`Step::Panic`) out of the test output; every
/// other panic still reaches the hook that was installed before. For tests that script panics
/// by the hundred (model and stress tests).
pub fn silence_scripted_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let scripted = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with(SCRIPTED_PANIC));
        if !scripted {
            default_hook(info);
        }
    }));
}

/// How every panic a [`ScriptedSource`] was told to raise begins.
const SCRIPTED_PANIC: &str = "scripted panic";

/// What a [`ScriptedSource`] does on one call.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Step {
    /// A bearer token `tok-<n>` (the call's number) living this long from the send time.
    Issue {
        /// The token's lifetime.
        lifetime: Duration,
    },
    /// The same, plus rotated refresh material `refresh-<n>` (see
    /// [`ScriptedSource::checking_rotation`]).
    IssueRotated {
        /// The token's lifetime.
        lifetime: Duration,
    },
    /// Exactly this token.
    Token(Token),
    /// This error.
    Fail(Error),
    /// A panic inside `fetch`.
    Panic,
    /// Waits this long (tokio time), then does the inner step.
    Delay(Duration, Box<Step>),
}

impl Step {
    /// [`Step::Issue`].
    pub fn issue(lifetime: Duration) -> Self {
        Self::Issue { lifetime }
    }

    /// [`Step::IssueRotated`].
    pub fn rotate(lifetime: Duration) -> Self {
        Self::IssueRotated { lifetime }
    }

    /// [`Step::Delay`].
    pub fn after(latency: Duration, step: Step) -> Self {
        Self::Delay(latency, Box::new(step))
    }
}

struct ScriptState {
    steps: VecDeque<Step>,
    otherwise: Step,
    /// With rotation checking: the refresh material the provider accepts now (`None`: the
    /// configured material, which a request signals by sending none).
    valid_refresh: Option<String>,
    check_rotation: bool,
    cooldown: Option<Duration>,
    credential: Option<Credential>,
}

struct Script {
    name: &'static str,
    state: Mutex<ScriptState>,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Script {
    fn state(&self) -> std::sync::MutexGuard<'_, ScriptState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A token source that follows a script: a queue of [`Step`]s, then a default step. It counts
/// its calls and how many ran at once, can check refresh-token rotation like a provider that
/// revokes used refresh tokens, and can declare a cool-down and a credential. Clones share
/// the script.
#[derive(Clone)]
pub struct ScriptedSource(Arc<Script>);

impl fmt::Debug for ScriptedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedSource")
            .field("name", &self.0.name)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl ScriptedSource {
    /// A source named `name` that issues hour-long tokens unless scripted otherwise.
    pub fn new(name: &'static str) -> Self {
        Self(Arc::new(Script {
            name,
            state: Mutex::new(ScriptState {
                steps: VecDeque::new(),
                otherwise: Step::issue(Duration::from_secs(3600)),
                valid_refresh: None,
                check_rotation: false,
                cooldown: None,
                credential: None,
            }),
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }))
    }

    /// Adds `step` to the queue.
    #[must_use]
    pub fn then(self, step: Step) -> Self {
        self.push(step);
        self
    }

    /// What every call does once the queue is empty.
    #[must_use]
    pub fn otherwise(self, step: Step) -> Self {
        self.0.state().otherwise = step;
        self
    }

    /// Declares this cool-down after every failure (as SehatMu's source does).
    #[must_use]
    pub fn with_cooldown(self, cooldown: Duration) -> Self {
        self.0.state().cooldown = Some(cooldown);
        self
    }

    /// Declares this credential (see [`TokenSource::credential`]).
    #[must_use]
    pub fn with_credential(self, credential: Credential) -> Self {
        self.0.state().credential = Some(credential);
        self
    }

    /// Checks rotation like a provider that revokes a refresh token once used: only the
    /// material issued last is accepted (none sent: the configured material, accepted until
    /// the first rotation); anything else is answered `ReauthenticationRequired`.
    #[must_use]
    pub fn checking_rotation(self) -> Self {
        self.0.state().check_rotation = true;
        self
    }

    /// Adds `step` to the queue of a source already handed out.
    pub fn push(&self, step: Step) {
        self.0.state().steps.push_back(step);
    }

    /// Empties the queue: from now on every call does the default step.
    pub fn clear(&self) {
        self.0.state().steps.clear();
    }

    /// How many times `fetch` was called.
    pub fn calls(&self) -> usize {
        self.0.calls.load(Ordering::SeqCst)
    }

    /// The most calls that were running at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.0.max_in_flight.load(Ordering::SeqCst)
    }

    /// With [`ScriptedSource::checking_rotation`]: the refresh material the provider accepts
    /// now (`None`: the configured material).
    pub fn valid_refresh(&self) -> Option<String> {
        self.0.state().valid_refresh.clone()
    }

    /// A token `tok-<n>`, with `refresh-<n>` when rotating, checked against the rotation.
    fn issue(
        &self,
        n: usize,
        request: &FetchRequest,
        lifetime: Duration,
        rotate: bool,
    ) -> Result<Fetched, Error> {
        let script = &self.0;
        let sent = request
            .refresh
            .as_ref()
            .map(|r| r.expose_secret().to_owned());
        {
            let mut state = script.state();
            if state.check_rotation {
                if sent != state.valid_refresh {
                    return Err(Error::reauthentication_required(format!(
                        "{}: the refresh material was revoked",
                        script.name
                    )));
                }
                if rotate {
                    state.valid_refresh = Some(format!("refresh-{n}"));
                }
            }
        }
        let token = Token::bearer(
            SecretString::from(format!("tok-{n}")),
            request.sent_at,
            Some(crate::expiry::add(request.sent_at, lifetime)),
        )?;
        Ok(if rotate {
            Fetched::rotated(token, SecretString::from(format!("refresh-{n}")))
        } else {
            Fetched::new(token)
        })
    }
}

/// Leaves the in-flight count when a call ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl TokenSource for ScriptedSource {
    #[allow(clippy::panic, reason = "a scripted panic is what this source is for")]
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let script = &self.0;
        let n = script.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let now_in_flight = script.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _in_flight = InFlight(&script.in_flight);
        script
            .max_in_flight
            .fetch_max(now_in_flight, Ordering::SeqCst);
        let mut step = {
            let mut state = script.state();
            state
                .steps
                .pop_front()
                .unwrap_or_else(|| state.otherwise.clone())
        };
        loop {
            step = match step {
                Step::Delay(latency, inner) => {
                    tokio::time::sleep(latency).await;
                    *inner
                }
                Step::Panic => panic!("{SCRIPTED_PANIC} in {}", script.name),
                Step::Fail(error) => return Err(error),
                Step::Token(token) => return Ok(Fetched::new(token)),
                Step::Issue { lifetime } => return self.issue(n, &request, lifetime, false),
                Step::IssueRotated { lifetime } => {
                    return self.issue(n, &request, lifetime, true);
                }
            };
        }
    }

    fn cooldown_after_failure(&self, _error: &Error) -> Option<Duration> {
        self.0.state().cooldown
    }

    fn name(&self) -> &str {
        self.0.name
    }

    fn credential(&self) -> Option<Credential> {
        self.0.state().credential.clone()
    }
}

/// A source whose every method answers something distinctive, so a wrapper that forgets to
/// forward one is caught by [`check_forwarding`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeSource;

/// What [`ProbeSource`] answers.
const PROBE_NAME: &str = "probe";
const PROBE_KEY: &str = "probe:forwarded";
const PROBE_COOLDOWN: Duration = Duration::from_secs(4242);

impl ProbeSource {
    fn expiry() -> time::OffsetDateTime {
        time::OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn credential() -> Credential {
        Credential::new(PROBE_NAME)
            .public("account", "forwarded")
            .secret("secret", &SecretString::from("probe-secret"))
    }
}

#[async_trait]
impl TokenSource for ProbeSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        Ok(Fetched::new(Token::bearer(
            SecretString::from("probe-token"),
            request.sent_at,
            Some(request.sent_at + Duration::from_secs(3600)),
        )?))
    }

    fn cooldown_after_failure(&self, _error: &Error) -> Option<Duration> {
        Some(PROBE_COOLDOWN)
    }

    fn name(&self) -> &str {
        PROBE_NAME
    }

    fn credential_expires_at(&self) -> Option<time::OffsetDateTime> {
        Some(Self::expiry())
    }

    fn credential(&self) -> Option<Credential> {
        Some(Self::credential())
    }

    fn store_key(&self) -> Option<StoreKey> {
        StoreKey::new(PROBE_KEY).ok()
    }
}

/// Checks that `wrapped` — a wrapper built around a [`ProbeSource`] — forwards every method of
/// [`TokenSource`] that is not `fetch` (name, cool-down, credential, its expiry, store key).
/// Answers the methods it does not forward; empty when all are.
///
/// ```
/// use auth_core::{SharedTokenSource, testing::{ProbeSource, check_forwarding}};
/// let wrapped = SharedTokenSource::new(ProbeSource);
/// assert!(check_forwarding(&*wrapped).is_empty());
/// ```
pub fn check_forwarding(wrapped: &dyn TokenSource) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if wrapped.name() != PROBE_NAME {
        missing.push("name");
    }
    if wrapped.cooldown_after_failure(&Error::transient("probe")) != Some(PROBE_COOLDOWN) {
        missing.push("cooldown_after_failure");
    }
    if wrapped.credential_expires_at() != Some(ProbeSource::expiry()) {
        missing.push("credential_expires_at");
    }
    let key = StoreKey::new(PROBE_KEY).ok();
    if wrapped.store_key() != key {
        missing.push("store_key");
    }
    let same_credential = match (wrapped.credential(), key) {
        (Some(c), Some(key)) => c.fingerprint(&key) == ProbeSource::credential().fingerprint(&key),
        _ => false,
    };
    if !same_credential {
        missing.push("credential");
    }
    missing
}

/// The most elements of sorted `times` inside any half-open window `[t, t + len)`: the largest
/// number of requests sent in any one second, minute, … (the pool's spread and budget checks).
pub fn max_in_window(times: &[Duration], len: Duration) -> usize {
    let mut max = 0;
    let mut first = 0;
    for (last, t) in times.iter().enumerate() {
        while *t >= times[first] + len {
            first += 1;
        }
        max = max.max(last + 1 - first);
    }
    max
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::{ErrorKind, MemoryStore};

    fn key() -> StoreKey {
        StoreKey::new("test:kit").unwrap()
    }

    #[tokio::test]
    async fn faults_fail_before_or_after_the_write_and_are_consumed_in_order() {
        let store = FaultyStore::new(MemoryStore::new());
        store.fail_next(StoreOp::Save, Fault::Fail);
        store.fail_next(StoreOp::Save, Fault::FailAfterWrite);
        let entry = StoredEntry::default();
        assert!(store.save(&key(), &entry, 0).await.is_err());
        assert!(
            store.inner().load(&key()).await.unwrap().is_none(),
            "nothing written"
        );
        let err = store.save(&key(), &entry, 0).await.unwrap_err();
        assert!(err.to_string().contains("after taking effect"), "{err}");
        assert_eq!(
            store.inner().load(&key()).await.unwrap().unwrap().version,
            1
        );
        assert_eq!(store.save(&key(), &entry, 1).await.unwrap(), 2);
        assert_eq!(store.calls(StoreOp::Save), 3);
        assert!(!store.has_faults());
        store.always(StoreOp::Load, Fault::Fail);
        assert!(store.load(&key()).await.is_err() && store.load(&key()).await.is_err());
        store.clear();
        assert!(store.load(&key()).await.unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lock_excludes_no_one_and_a_delay_waits() {
        let store = FaultyStore::new(MemoryStore::new());
        let held = store.lock(&key(), Duration::from_secs(1)).await.unwrap();
        store.fail_next(StoreOp::Lock, Fault::LoseLock);
        let second = tokio::time::timeout(
            Duration::from_secs(1),
            store.lock(&key(), Duration::from_secs(1)),
        )
        .await;
        assert!(matches!(second, Ok(Ok(_))), "granted while held");
        held.release().await.unwrap();
        store.fail_next(StoreOp::Load, Fault::Delay(Duration::from_secs(5)));
        let start = tokio::time::Instant::now();
        store.load(&key()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_scripted_source_follows_its_script_and_checks_rotation() {
        let source = ScriptedSource::new("kit")
            .then(Step::Fail(Error::transient("503")))
            .then(Step::after(
                Duration::from_secs(2),
                Step::rotate(Duration::from_secs(60)),
            ))
            .otherwise(Step::rotate(Duration::from_secs(60)))
            .checking_rotation()
            .with_cooldown(Duration::from_secs(9));
        let at = datetime!(2026-11-22 08:00 UTC);
        let request = |refresh: Option<&str>| {
            FetchRequest::new(refresh.map(|r| SecretString::from(r.to_owned())), at)
        };
        let err = source.fetch(request(None)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert_eq!(
            source.cooldown_after_failure(&err),
            Some(Duration::from_secs(9))
        );
        let start = tokio::time::Instant::now();
        let fetched = source.fetch(request(None)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(fetched.token.secret().expose_secret(), "tok-2");
        assert_eq!(
            fetched.token.expires_at(),
            Some(at + Duration::from_secs(60))
        );
        assert_eq!(source.valid_refresh().as_deref(), Some("refresh-2"));
        // the configured material, or any but the last issued, is refused
        let refused = source.fetch(request(None)).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ReauthenticationRequired);
        assert!(source.fetch(request(Some("refresh-1"))).await.is_err());
        let next = source.fetch(request(Some("refresh-2"))).await.unwrap();
        assert_eq!(next.refresh.unwrap().expose_secret(), "refresh-5");
        assert_eq!(source.calls(), 5);
        assert_eq!(source.max_in_flight(), 1);
    }

    #[tokio::test]
    async fn a_scripted_panic_is_a_panic() {
        let source = ScriptedSource::new("kit").then(Step::Panic);
        let task = tokio::spawn(async move {
            source
                .fetch(FetchRequest::new(None, datetime!(2026-11-22 08:00 UTC)))
                .await
        });
        assert!(task.await.unwrap_err().is_panic());
    }
}
