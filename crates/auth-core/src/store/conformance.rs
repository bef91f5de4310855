//! The store contract as runnable checks (feature `test-util`): every
//! [`TokenStore`](super::TokenStore) — memory, file, Redis, PostgreSQL, or one of your own —
//! runs the same checks, so a backend's own test file is one call of [`run`] plus the tests
//! only that backend needs.
//!
//! The checks take a *factory*: each call opens another handle on the **same** storage, the way
//! another process would (a new connection, another `FileStore` on the same directory, a clone
//! of one `MemoryStore`). Keys carry a random part per run, so a run never sees another run's
//! entries even in a shared namespace.
//!
//! ```
//! use auth_core::{MemoryStore, store::conformance::{self, Expectations}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! conformance::run(
//!     || {
//!         let store = store.clone();
//!         async move { store }
//!     },
//!     &Expectations::lock_freed_on_drop(),
//! )
//! .await;
//! # }
//! ```
//!
//! What is checked, one public function each:
//!
//! * [`round_trip_keeps_every_field`] — a save followed by a load (from another handle) gives
//!   back every field: the token's secret, scheme, issue and expiry times to the nanosecond, a
//!   permanent token, refresh material, the cool-down, the version.
//! * [`compare_and_swap`] — a save that expects version 0 while an entry exists, or a stale
//!   version, fails with [`StoreError::Conflict`] naming both versions, and changes nothing.
//! * [`delete_then_load`] — a deleted entry loads as none, deleting nothing is no error, a
//!   writer holding a version from before the delete is refused, and version 0 starts afresh.
//! * [`cooldown_persists`] — a cool-down added to an entry is kept with its token and refresh
//!   material, and clearing it clears only it.
//! * [`lock_excludes`] — two holders on two handles never hold a key's refresh lock at once;
//!   a save under the lock works; release lets the waiter in.
//! * [`dead_holder_is_outlived`] — a holder that dies without releasing (its handle dropped, or
//!   forgotten where the lock lives on a server) blocks the others only until the store frees
//!   the lock; where a TTL frees it, the late holder's release does not free its successor's.
//! * [`concurrent_writers_lose_no_update`] — N tasks on N handles, each incrementing a counter
//!   by load + compare-and-swap: exactly N × M saves succeed, their versions are 1 … N × M
//!   with none twice, and the counter ends at N × M.
//! * [`keys_are_isolated`] — entries, versions, deletes and locks of keys that share a prefix
//!   do not touch each other.
//! * [`leases_renew_and_fence_saves`] (stores whose lock has a TTL) — a renewed lease outlives
//!   its initial TTL; a lease that expired cannot be renewed; a fenced save by a holder whose
//!   lease was lost is refused ([`StoreError::LeaseLost`]) and changes nothing, except a save
//!   of rotated material whose base is still the stored material, which lands.
//!
//! * [`cold_managers_fetch_once`] — [`Expectations::managers`] managers on as many handles,
//!   asked for a token on a cold key at once, send one request to the provider between them;
//!   the others adopt the token it saved.
//!
//! One more check takes the store's server down and up again, so a backend that has a server
//! of its own to stop calls it beside [`run`]: [`outage_keeps_the_valid_token_served`].
//!
//! When [`StoredEntry`] gains a field, [`assert_same_entry`] stops compiling until the field
//! is compared, and [`sample_entries`] is where a value for it goes.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test kit: a failed step is a failed test, reported with what was expected"
)]

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use secrecy::{ExposeSecret as _, SecretString};
use time::OffsetDateTime;

use super::{SharedTokenStore, StoreError, StoreKey, StoredEntry};
use crate::{
    ErrorKind, FetchRequest, Fetched, SharedTokenSource, TokenManager,
    clock::{Clock as _, SystemClock},
    source,
    token::{AuthScheme, Token},
};

/// How the store frees the refresh lock of a holder that died without releasing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadHolder {
    /// The lock belongs to the handle, and is freed when the handle is dropped — as the OS
    /// closes a dead process's files (file store) or frees its memory (memory store).
    FreedOnDrop,
    /// The lock lives in a server and outlives the handle until the TTL given to `lock`
    /// expires (Redis, PostgreSQL). The kit simulates the dead holder by forgetting the
    /// handle, so no drop code runs.
    ExpiresAfterTtl,
}

/// What a store is expected to do where stores legitimately differ, and the sizes of the
/// checks. Start from [`lock_freed_on_drop`](Self::lock_freed_on_drop) or
/// [`lock_expires_after_ttl`](Self::lock_expires_after_ttl).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Expectations {
    /// How a dead holder's lock is freed.
    pub dead_holder: DeadHolder,
    /// Concurrent writers in [`concurrent_writers_lose_no_update`] (default 8).
    pub writers: usize,
    /// Successful saves each writer makes (default 10).
    pub saves_per_writer: usize,
    /// The TTL a dead holder's lock is taken with, where TTLs apply (default 300 ms).
    pub short_ttl: Duration,
    /// How long the kit waits for something that must happen before it calls the store
    /// broken (default 30 s). A guard against hanging forever, not a performance figure.
    pub patience: Duration,
    /// How long the kit watches something that must *not* happen, such as a second holder
    /// getting a held lock (default 200 ms).
    pub watch: Duration,
    /// Managers in [`cold_managers_fetch_once`], each on its own handle (default 20).
    pub managers: usize,
}

impl Expectations {
    fn new(dead_holder: DeadHolder) -> Self {
        Self {
            dead_holder,
            writers: 8,
            saves_per_writer: 10,
            short_ttl: Duration::from_millis(300),
            patience: Duration::from_secs(30),
            watch: Duration::from_millis(200),
            managers: 20,
        }
    }

    /// A store whose lock is freed when its handle is dropped (memory, file).
    pub fn lock_freed_on_drop() -> Self {
        Self::new(DeadHolder::FreedOnDrop)
    }

    /// A store whose lock outlives a dead holder until its TTL expires (Redis, PostgreSQL).
    pub fn lock_expires_after_ttl() -> Self {
        Self::new(DeadHolder::ExpiresAfterTtl)
    }

    /// Sets the number of concurrent writers and the saves each makes.
    #[must_use]
    pub fn writers(mut self, writers: usize, saves_per_writer: usize) -> Self {
        self.writers = writers.max(1);
        self.saves_per_writer = saves_per_writer.max(1);
        self
    }

    /// Sets the TTL of a dead holder's lock.
    #[must_use]
    pub fn short_ttl(mut self, ttl: Duration) -> Self {
        self.short_ttl = ttl;
        self
    }

    /// Sets how long the kit waits for what must happen.
    #[must_use]
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }
}

/// The TTL of every lock that is meant to be held until released.
const LONG_TTL: Duration = Duration::from_secs(60);

/// Runs every check of the contract against the store `open` opens.
///
/// `open` is called many times; every store it returns must share one storage (see the
/// [module documentation](self)).
pub async fn run<F, Fut, S>(open: F, expect: &Expectations)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let run = Run::new();
    round_trip_keeps_every_field(&open, &run).await;
    compare_and_swap(&open, &run).await;
    delete_then_load(&open, &run).await;
    keys_list_what_is_stored_under_a_prefix(&open, &run).await;
    cooldown_persists(&open, &run).await;
    lock_excludes(&open, &run, expect).await;
    dead_holder_is_outlived(&open, &run, expect).await;
    concurrent_writers_lose_no_update(&open, &run, expect).await;
    keys_are_isolated(&open, &run, expect).await;
    if expect.dead_holder == DeadHolder::ExpiresAfterTtl {
        leases_renew_and_fence_saves(&open, &run, expect).await;
    }
    cold_managers_fetch_once(&open, &run, expect).await;
}

/// One run of the kit: the random part of its keys.
#[derive(Clone, Debug)]
pub struct Run {
    nonce: String,
}

impl Run {
    /// A run with fresh keys.
    pub fn new() -> Self {
        Self {
            nonce: format!("{:016x}", fastrand::u64(..)),
        }
    }

    /// The key `name` of this run (`contract-<nonce>:<name>`).
    pub fn key(&self, name: &str) -> StoreKey {
        StoreKey::new(format!("{}{name}", self.prefix())).expect("the kit's key names are valid")
    }

    /// What every key of this run starts with (`contract-<nonce>:`).
    pub fn prefix(&self) -> String {
        format!("contract-{}:", self.nonce)
    }
}

impl Default for Run {
    fn default() -> Self {
        Self::new()
    }
}

async fn handle<F, Fut, S>(open: &F) -> SharedTokenStore
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    open().await.into()
}

/// A moment relative to now, in whole seconds plus `nanos`: the samples lie around the
/// present, because a store may drop an entry once everything in it has expired (Redis does,
/// a margin after).
fn at(seconds_from_now: i64, nanos: u32) -> OffsetDateTime {
    let now = SystemClock::new().now().unix_timestamp();
    OffsetDateTime::from_unix_timestamp(now + seconds_from_now)
        .and_then(|t| t.replace_nanosecond(nanos))
        .expect("a time near now is representable")
}

/// A token issued a minute ago, its time stamps carrying nanoseconds.
fn token(secret: &str, scheme: AuthScheme, expires: Option<OffsetDateTime>) -> Token {
    Token::new(
        SecretString::from(secret),
        scheme,
        at(-60, 123_456_789),
        expires,
    )
    .expect("the kit's tokens are valid")
}

/// Entries covering every field and its absence, with times around now: a full entry
/// (nanosecond times, refresh material with characters that need escaping, a cool-down), a
/// permanent `Token`-scheme token, another scheme word, a cool-down with no token, refresh
/// material alone, and the empty entry. A new [`StoredEntry`] field gets its values here.
pub fn sample_entries() -> Vec<StoredEntry> {
    let mut full = StoredEntry::with_token(token(
        "eyJhbGciOiJIUzI1NiJ9.s3cr3t-full",
        AuthScheme::Bearer,
        Some(at(86_400, 987_654_321)),
    ));
    full.refresh = Some(SecretString::from("r3fresh \"quoted\" \\ ünïcode ✓"));
    full.cooldown_until = Some(at(60, 1));
    full.credential = Some(
        crate::Credential::new("kit")
            .secret("secret", &SecretString::from("kit-credential"))
            .fingerprint(&StoreKey::new("kit:full").expect("a valid key")),
    );

    let permanent = StoredEntry::with_token(token("perm4nent", AuthScheme::Token, None));

    let mut other_scheme = StoredEntry::with_token(token(
        "mac-id",
        AuthScheme::parse("MAC").expect("a valid scheme word"),
        Some(at(3 * 86_400, 0)),
    ));
    other_scheme.refresh = Some(SecretString::from("r"));

    full.failure = Some(crate::SharedFailure::new(
        at(2, 250_000_000),
        crate::FailureKind::ReauthenticationRequired,
        "kit: the refresh token was revoked \"quoted\" ✓",
    ));
    let cooldown_only = StoredEntry {
        cooldown_until: Some(at(3600, 500_000_000)),
        failure: Some(crate::SharedFailure::new(
            at(1, 0),
            crate::FailureKind::Transient,
            "kit: the provider did not answer",
        )),
        ..StoredEntry::default()
    };
    let refresh_only = StoredEntry {
        refresh: Some(SecretString::from("only-refresh-material")),
        fetching_until: Some(at(10, 999_999_999)),
        ..StoredEntry::default()
    };

    vec![
        full,
        permanent,
        other_scheme,
        cooldown_only,
        refresh_only,
        StoredEntry::default(),
    ]
}

/// Asserts that `got` holds what `want` held, field by field (the version included).
///
/// The destructuring is exhaustive on purpose: a new [`StoredEntry`] field does not compile
/// here until it is compared.
pub fn assert_same_entry(want: &StoredEntry, got: &StoredEntry, context: &str) {
    let StoredEntry {
        token,
        refresh,
        cooldown_until,
        credential,
        failure,
        fetching_until,
        version,
    } = want;
    assert_eq!(*version, got.version, "{context}: version");
    match (token, &got.token) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            assert!(a.same_secret(b), "{context}: the token's secret differs");
            assert_eq!(a.scheme(), b.scheme(), "{context}: scheme");
            assert_eq!(a.issued_at(), b.issued_at(), "{context}: issued_at");
            assert_eq!(a.expires_at(), b.expires_at(), "{context}: expires_at");
        }
        (a, b) => panic!(
            "{context}: token present {} but {} after the round trip",
            a.is_some(),
            b.is_some()
        ),
    }
    assert_eq!(
        refresh.as_ref().map(|r| r.expose_secret()),
        got.refresh.as_ref().map(|r| r.expose_secret()),
        "{context}: refresh material"
    );
    assert_eq!(*cooldown_until, got.cooldown_until, "{context}: cool-down");
    assert_eq!(
        *credential, got.credential,
        "{context}: credential fingerprint"
    );
    assert_eq!(*failure, got.failure, "{context}: shared failure record");
    assert_eq!(
        *fetching_until, got.fetching_until,
        "{context}: request in flight until"
    );
}

fn secret_of(entry: &StoredEntry) -> String {
    entry
        .token
        .as_ref()
        .map(|t| t.secret().expose_secret().to_owned())
        .unwrap_or_default()
}

fn assert_conflict(result: Result<u64, StoreError>, expected: u64, found: u64, context: &str) {
    match result {
        Err(StoreError::Conflict {
            expected: e,
            found: f,
            ..
        }) => assert_eq!(
            (e, f),
            (expected, found),
            "{context}: the conflict names the versions (expected, found)"
        ),
        other => panic!(
            "{context}: a save expecting version {expected} over version {found} must fail with a conflict, got {other:?}"
        ),
    }
}

/// Every field survives a save and a load from another handle; `load` of a key never saved
/// is `None`.
pub async fn round_trip_keeps_every_field<F, Fut, S>(open: &F, run: &Run)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let writer = handle(open).await;
    let reader = handle(open).await;
    let key = run.key("round-trip");
    assert!(
        reader.load(&key).await.expect("load").is_none(),
        "a key never saved loads as none"
    );
    assert!(!writer.describe().is_empty(), "describe() says something");
    let mut version = 0;
    for (i, sample) in sample_entries().into_iter().enumerate() {
        let context = format!("round trip of sample entry {i}");
        let mut sent = sample;
        // The version a caller passes in the entry is not what is stored: the store assigns it.
        sent.version = 999;
        version = writer.save(&key, &sent, version).await.expect(&context);
        assert_eq!(
            version,
            i as u64 + 1,
            "{context}: each save bumps the version"
        );
        let got = reader
            .load(&key)
            .await
            .expect(&context)
            .expect("the saved entry loads");
        sent.version = version;
        assert_same_entry(&sent, &got, &context);
    }
    writer.delete(&key).await.expect("delete");
}

/// A save succeeds only over the version it expects, and a refused save changes nothing.
pub async fn compare_and_swap<F, Fut, S>(open: &F, run: &Run)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let a = handle(open).await;
    let b = handle(open).await;
    let key = run.key("cas");
    let samples = sample_entries();
    let (first, clobber, second) = (&samples[0], &samples[1], &samples[2]);
    assert_eq!(a.save(&key, first, 0).await.expect("first save"), 1);
    assert_conflict(b.save(&key, clobber, 0).await, 0, 1, "a second creator");
    assert_conflict(
        b.save(&key, clobber, 7).await,
        7,
        1,
        "a version from the future",
    );
    let mut want = first.clone();
    want.version = 1;
    let got = a.load(&key).await.expect("load").expect("entry");
    assert_same_entry(&want, &got, "after refused saves");

    assert_eq!(b.save(&key, second, 1).await.expect("save over v1"), 2);
    assert_conflict(a.save(&key, clobber, 1).await, 1, 2, "a stale writer");
    let mut want = second.clone();
    want.version = 2;
    let got = a.load(&key).await.expect("load").expect("entry");
    assert_same_entry(&want, &got, "after the stale writer was refused");
    a.delete(&key).await.expect("delete");
}

/// `keys(prefix)` lists, sorted, exactly the stored keys under `prefix`, from every handle: no
/// key of another prefix, nothing deleted, nothing for a prefix nothing is stored under.
pub async fn keys_list_what_is_stored_under_a_prefix<F, Fut, S>(open: &F, run: &Run)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let a = handle(open).await;
    let b = handle(open).await;
    let entry = &sample_entries()[0];
    let pooled = ["pool.merchant-2", "pool.merchant-10", "pool.merchant-1"].map(|n| run.key(n));
    for key in pooled
        .iter()
        .chain([&run.key("poolside"), &run.key("other")])
    {
        a.save(key, entry, 0).await.expect("save");
    }
    let prefix = format!("{}pool.", run.prefix());
    let mut expected = pooled.to_vec();
    expected.sort_unstable();
    assert_eq!(
        b.keys(&prefix).await.expect("keys"),
        expected,
        "the keys under {prefix}, sorted"
    );
    let all = b.keys(&run.prefix()).await.expect("keys");
    assert!(
        all.contains(&run.key("poolside")) && all.contains(&run.key("other")),
        "every key of the run is listed under its prefix: {all:?}"
    );
    a.delete(&pooled[0]).await.expect("delete");
    assert_eq!(
        b.keys(&prefix).await.expect("keys"),
        expected
            .iter()
            .filter(|k| **k != pooled[0])
            .cloned()
            .collect::<Vec<_>>(),
        "a deleted entry is no longer listed"
    );
    assert!(
        b.keys(&format!("{}nothing-here", run.prefix()))
            .await
            .expect("keys")
            .is_empty()
    );
    for key in pooled
        .iter()
        .chain([&run.key("poolside"), &run.key("other")])
    {
        a.delete(key).await.expect("delete");
    }
}

/// A deleted entry loads as none; the version starts again from 0.
pub async fn delete_then_load<F, Fut, S>(open: &F, run: &Run)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let a = handle(open).await;
    let b = handle(open).await;
    let key = run.key("delete");
    let entry = &sample_entries()[0];
    a.delete(&key)
        .await
        .expect("deleting a missing entry is no error");
    assert_eq!(a.save(&key, entry, 0).await.expect("save"), 1);
    assert_eq!(a.save(&key, entry, 1).await.expect("save"), 2);
    b.delete(&key).await.expect("delete");
    assert!(
        a.load(&key).await.expect("load").is_none(),
        "a deleted entry loads as none, from every handle"
    );
    assert!(b.load(&key).await.expect("load").is_none());
    b.delete(&key).await.expect("deleting twice is no error");
    assert_conflict(
        a.save(&key, entry, 2).await,
        2,
        0,
        "a writer from before the delete",
    );
    assert!(a.load(&key).await.expect("load").is_none());
    assert_eq!(
        a.save(&key, entry, 0).await.expect("save after delete"),
        1,
        "after a delete, version 0 means no entry"
    );
    a.delete(&key).await.expect("delete");
}

/// A cool-down is added to an entry without touching its token or refresh material, is seen
/// by every handle, and is cleared again by a later save.
pub async fn cooldown_persists<F, Fut, S>(open: &F, run: &Run)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let a = handle(open).await;
    let b = handle(open).await;
    let key = run.key("cooldown");
    let mut held = sample_entries()[0].clone();
    held.cooldown_until = None;
    let v1 = a.save(&key, &held, 0).await.expect("save");

    // What the manager does after a failed refresh: load, add the cool-down, save.
    let mut failed = b.load(&key).await.expect("load").expect("entry");
    let until = at(123, 4005);
    failed.cooldown_until = Some(until);
    let v2 = b.save(&key, &failed, v1).await.expect("save the cool-down");
    let got = a.load(&key).await.expect("load").expect("entry");
    let mut want = held.clone();
    want.cooldown_until = Some(until);
    want.version = v2;
    assert_same_entry(
        &want,
        &got,
        "a cool-down keeps the token and refresh material",
    );

    // A later success clears it.
    let mut cleared = got;
    cleared.cooldown_until = None;
    let v3 = a.save(&key, &cleared, v2).await.expect("save");
    let got = b.load(&key).await.expect("load").expect("entry");
    want.cooldown_until = None;
    want.version = v3;
    assert_same_entry(&want, &got, "a cleared cool-down");
    a.delete(&key).await.expect("delete");
}

/// Two holders on two handles never hold one key's refresh lock at once.
pub async fn lock_excludes<F, Fut, S>(open: &F, run: &Run, expect: &Expectations)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let a = handle(open).await;
    let b = handle(open).await;
    let key = run.key("lock");
    let held = a.lock(&key, LONG_TTL).await.expect("an uncontended lock");
    // The manager saves while it holds the refresh lock: the lock must not block writes.
    let saved = tokio::time::timeout(expect.patience, a.save(&key, &sample_entries()[0], 0))
        .await
        .expect("a save under the refresh lock does not wait for the lock");
    assert_eq!(saved.expect("save under the lock"), 1);

    let waiter = {
        let b = b.clone();
        let key = key.clone();
        tokio::spawn(async move { b.lock(&key, LONG_TTL).await })
    };
    tokio::time::sleep(expect.watch).await;
    assert!(
        !waiter.is_finished(),
        "a second holder got the lock while the first held it"
    );
    held.release().await.expect("release");
    let second = tokio::time::timeout(expect.patience, waiter)
        .await
        .expect("the waiter gets the lock once it is released")
        .expect("the waiting task")
        .expect("lock");
    second.release().await.expect("release");

    // Several handles taking turns: never two inside at once.
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = handle(open).await;
        let key = key.clone();
        let inside = Arc::clone(&inside);
        let overlaps = Arc::clone(&overlaps);
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                let lock = store.lock(&key, LONG_TTL).await.expect("lock");
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                lock.release().await.expect("release");
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(expect.patience, task)
            .await
            .expect("every holder gets its turn")
            .expect("the locking task");
    }
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two holders were inside the lock at once"
    );
    a.delete(&key).await.expect("delete");
}

/// A holder that dies without releasing blocks the others only until the store frees its
/// lock; with TTLs, a late release never frees the successor's lock.
pub async fn dead_holder_is_outlived<F, Fut, S>(open: &F, run: &Run, expect: &Expectations)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let dying = handle(open).await;
    let other = handle(open).await;
    let key = run.key("dead-holder");
    match expect.dead_holder {
        DeadHolder::FreedOnDrop => {
            let lock = dying.lock(&key, LONG_TTL).await.expect("lock");
            drop(lock);
            let next = tokio::time::timeout(expect.patience, other.lock(&key, LONG_TTL))
                .await
                .expect("a dropped holder's lock is freed")
                .expect("lock");
            next.release().await.expect("release");
        }
        DeadHolder::ExpiresAfterTtl => {
            let lock = dying.lock(&key, expect.short_ttl).await.expect("lock");
            // A dead process runs no drop code.
            std::mem::forget(lock);
            let next = tokio::time::timeout(expect.patience, other.lock(&key, LONG_TTL))
                .await
                .expect("a dead holder's lock expires with its TTL")
                .expect("lock");
            next.release().await.expect("release");

            // A slow holder outlived by its TTL: its late release must not free the lock of
            // the holder that came after it.
            let late = dying.lock(&key, expect.short_ttl).await.expect("lock");
            let successor = tokio::time::timeout(expect.patience, other.lock(&key, LONG_TTL))
                .await
                .expect("the slow holder's lock expires with its TTL")
                .expect("lock");
            late.release()
                .await
                .expect("a late release is no error, only a no-op");
            let third = handle(open).await;
            let waiter = {
                let key = key.clone();
                tokio::spawn(async move { third.lock(&key, LONG_TTL).await })
            };
            tokio::time::sleep(expect.watch).await;
            assert!(
                !waiter.is_finished(),
                "a late release freed its successor's lock"
            );
            successor.release().await.expect("release");
            tokio::time::timeout(expect.patience, waiter)
                .await
                .expect("the third holder gets the lock after the successor")
                .expect("the waiting task")
                .expect("lock")
                .release()
                .await
                .expect("release");
        }
    }
}

/// Stores whose lock has a TTL: renewal, and saves fenced by the lease or the rotation's base.
pub async fn leases_renew_and_fence_saves<F, Fut, S>(open: &F, run: &Run, expect: &Expectations)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    use super::{Fence, RefreshDigest};
    let first = handle(open).await;
    let second = handle(open).await;
    let key = run.key("lease");

    // A lease renewed every fifth of its life outlives its initial TTL several times over.
    let ttl = Duration::from_secs(1);
    let lock = first.lock(&key, ttl).await.expect("lock");
    let lease = lock.lease().expect("a lock with a TTL names its lease");
    for _ in 0..10 {
        tokio::time::sleep(ttl / 5).await;
        assert!(lock.renew(ttl).await.expect("renew"), "a held lease renews");
    }
    assert!(
        tokio::time::timeout(expect.watch, second.lock(&key, LONG_TTL))
            .await
            .is_err(),
        "a renewed lease is still held after twice its initial TTL"
    );
    let mut seed = StoredEntry::with_token(token("seed", AuthScheme::Bearer, Some(at(3600, 0))));
    seed.refresh = Some(SecretString::from("material-0"));
    let fenced = Fence::lease(Some(lease.clone()));
    assert_eq!(
        first
            .save_fenced(&key, &seed, 0, &fenced)
            .await
            .expect("a holder's fenced save"),
        1
    );
    lock.release().await.expect("release");

    // A lease that ran out: another holder takes it; the first can neither renew nor save.
    let late = first.lock(&key, expect.short_ttl).await.expect("lock");
    let late_lease = Fence::lease(late.lease());
    let successor = tokio::time::timeout(expect.patience, second.lock(&key, LONG_TTL))
        .await
        .expect("the late holder's lease expires")
        .expect("lock");
    assert!(
        !late.renew(LONG_TTL).await.expect("renew"),
        "an expired lease does not renew"
    );
    let mut plain = StoredEntry::with_token(token("late", AuthScheme::Bearer, Some(at(3600, 0))));
    plain.refresh = Some(SecretString::from("material-0"));
    assert!(
        matches!(
            first.save_fenced(&key, &plain, 1, &late_lease).await,
            Err(StoreError::LeaseLost { .. })
        ),
        "a plain save under a lost lease is refused"
    );
    let wrong_base = late_lease.clone().rotating(RefreshDigest::of(
        &key,
        Some(&SecretString::from("material-x")),
    ));
    let mut rotated =
        StoredEntry::with_token(token("rotated", AuthScheme::Bearer, Some(at(3600, 0))));
    rotated.refresh = Some(SecretString::from("material-1"));
    assert!(
        matches!(
            first.save_fenced(&key, &rotated, 1, &wrong_base).await,
            Err(StoreError::LeaseLost { .. })
        ),
        "a rotation of other material under a lost lease is refused"
    );
    assert_eq!(
        secret_of(&second.load(&key).await.unwrap().unwrap()),
        "seed"
    );
    let right_base = late_lease.rotating(RefreshDigest::of(
        &key,
        Some(&SecretString::from("material-0")),
    ));
    assert_eq!(
        first
            .save_fenced(&key, &rotated, 1, &right_base)
            .await
            .expect("a rotation of the stored material lands although its lease was lost"),
        2
    );
    assert_eq!(
        second
            .load(&key)
            .await
            .unwrap()
            .unwrap()
            .refresh
            .unwrap()
            .expose_secret(),
        "material-1"
    );
    // The successor's fenced save works; then the late rotation's base is gone.
    let successor_fence = Fence::lease(successor.lease());
    let mut newer = StoredEntry::with_token(token("newer", AuthScheme::Bearer, Some(at(3600, 0))));
    newer.refresh = Some(SecretString::from("material-2"));
    assert_eq!(
        second
            .save_fenced(&key, &newer, 2, &successor_fence)
            .await
            .expect("save"),
        3
    );
    successor.release().await.expect("release");
    drop(late);

    // A rotation from "no entry": its base is the absence of material.
    let empty = run.key("lease-empty");
    let gone = first.lock(&empty, expect.short_ttl).await.expect("lock");
    let gone_fence = Fence::lease(gone.lease());
    tokio::time::sleep(expect.short_ttl * 2).await;
    let _ = second.lock(&empty, expect.short_ttl).await.expect("lock");
    assert!(matches!(
        first.save_fenced(&empty, &rotated, 0, &gone_fence).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(
        first
            .save_fenced(
                &empty,
                &rotated,
                0,
                &gone_fence.rotating(RefreshDigest::of(&empty, None))
            )
            .await
            .expect("a first rotation lands over no entry"),
        1
    );
    drop(gone);
}

/// `writers` tasks on their own handles each make `saves_per_writer` increments of a counter
/// by load + compare-and-swap, retrying on conflicts. Exactly that many saves succeed, their
/// versions form the sequence 1 … N with none twice, and no increment is lost.
pub async fn concurrent_writers_lose_no_update<F, Fut, S>(
    open: &F,
    run: &Run,
    expect: &Expectations,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let key = run.key("writers");
    let mut tasks = Vec::new();
    for writer in 0..expect.writers {
        let store = handle(open).await;
        let key = key.clone();
        let saves = expect.saves_per_writer;
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::with_capacity(saves);
            let mut conflicts = 0usize;
            while versions.len() < saves {
                let current = store.load(&key).await.expect("load");
                let (version, count) = current.as_ref().map_or((0, 0), |e| {
                    let count = e
                        .refresh
                        .as_ref()
                        .and_then(|r| r.expose_secret().parse::<usize>().ok())
                        .expect("the counter is in the refresh material");
                    (e.version, count)
                });
                let mut next = StoredEntry::with_token(token(
                    &format!("writer-{writer}-{}", versions.len()),
                    AuthScheme::Bearer,
                    None,
                ));
                next.refresh = Some(SecretString::from((count + 1).to_string()));
                match store.save(&key, &next, version).await {
                    Ok(new) => {
                        assert_eq!(new, version + 1, "a save returns the version it wrote");
                        versions.push((new, writer));
                    }
                    Err(StoreError::Conflict { .. }) => {
                        conflicts += 1;
                        tokio::task::yield_now().await;
                    }
                    Err(e) => panic!("writer {writer}: {e:?}"),
                }
            }
            (versions, conflicts)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let (versions, _conflicts) = tokio::time::timeout(expect.patience * 4, task)
            .await
            .expect("every writer finishes")
            .expect("the writing task");
        all.extend(versions);
    }
    let total = expect.writers * expect.saves_per_writer;
    all.sort_unstable();
    let versions: Vec<u64> = all.iter().map(|(v, _)| *v).collect();
    let expected: Vec<u64> = (1..=total as u64).collect();
    assert_eq!(
        versions, expected,
        "the successful saves' versions form one sequence with no version twice"
    );
    let store = handle(open).await;
    let last = store.load(&key).await.expect("load").expect("entry");
    assert_eq!(last.version, total as u64);
    assert_eq!(
        last.refresh.as_ref().map(|r| r.expose_secret().to_owned()),
        Some(total.to_string()),
        "no increment was lost"
    );
    let (_, last_writer) = all.last().expect("there were saves");
    assert!(
        secret_of(&last).starts_with(&format!("writer-{last_writer}-")),
        "the stored entry is the one the last successful save wrote"
    );
    store.delete(&key).await.expect("delete");
}

/// Keys sharing a prefix keep separate entries, versions, deletes and locks.
pub async fn keys_are_isolated<F, Fut, S>(open: &F, run: &Run, expect: &Expectations)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let store = handle(open).await;
    let other = handle(open).await;
    let names = [
        "iso:a", "iso:a:b", "iso:ab", "iso:a.b", "iso:a-b", "iso:a@b",
    ];
    let keys: Vec<StoreKey> = names.iter().map(|n| run.key(n)).collect();
    for (i, key) in keys.iter().enumerate() {
        let mut entry =
            StoredEntry::with_token(token(&format!("secret-{i}"), AuthScheme::Bearer, None));
        entry.refresh = Some(SecretString::from(format!("refresh-{i}")));
        assert_eq!(
            store.save(key, &entry, 0).await.expect("save"),
            1,
            "`{}` starts at version 1 whatever other keys hold",
            names[i]
        );
    }
    for (i, key) in keys.iter().enumerate() {
        let got = other.load(key).await.expect("load").expect("entry");
        assert_eq!(secret_of(&got), format!("secret-{i}"), "`{}`", names[i]);
        assert_eq!(got.version, 1, "`{}`", names[i]);
    }
    other.delete(&keys[0]).await.expect("delete");
    assert!(store.load(&keys[0]).await.expect("load").is_none());
    for (i, key) in keys.iter().enumerate().skip(1) {
        let got = store.load(key).await.expect("load");
        assert!(
            got.is_some(),
            "deleting `{}` deleted `{}`",
            names[0],
            names[i]
        );
    }

    let held = store.lock(&keys[0], LONG_TTL).await.expect("lock");
    let beside = tokio::time::timeout(expect.patience, other.lock(&keys[1], LONG_TTL))
        .await
        .expect("another key's lock is not held by this one")
        .expect("lock");
    beside.release().await.expect("release");
    held.release().await.expect("release");
    for key in &keys {
        store.delete(key).await.expect("delete");
    }
}

/// A source that counts its calls, waits `delay` (a slow provider) and answers `tok-<n>`
/// valid for `lifetime` from the moment the request was sent, issued `age` before it — the
/// provider of the kit's manager checks, and of a backend's own tests beside them.
pub fn counting_source(
    delay: Duration,
    age: Duration,
    lifetime: Duration,
) -> (SharedTokenSource, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&calls);
    let source = source::from_fn("count", move |request: FetchRequest| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(delay).await;
            let token = Token::bearer(
                SecretString::from(format!("tok-{n}")),
                request.sent_at - age,
                Some(request.sent_at + lifetime),
            )?;
            Ok(Fetched::new(token))
        }
    });
    (SharedTokenSource::new(source), calls)
}

fn manager(source: &SharedTokenSource, store: SharedTokenStore, key: &StoreKey) -> TokenManager {
    TokenManager::builder(source.clone())
        .store(store)
        .key(key.clone())
        .build()
        .expect("the default policy is valid")
}

/// [`Expectations::managers`] managers, each on its own handle (as separate processes would
/// be), are asked for a token on a cold key at once while the provider takes 300 ms to answer:
/// exactly one request reaches the provider, every caller gets its token, and all managers but
/// the one that fetched adopt it from the store.
pub async fn cold_managers_fetch_once<F, Fut, S>(open: &F, run: &Run, expect: &Expectations)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Into<SharedTokenStore>,
{
    let key = run.key("cold-managers");
    let (source, calls) = counting_source(
        Duration::from_millis(300),
        Duration::ZERO,
        Duration::from_secs(3600),
    );
    let mut managers = Vec::new();
    for _ in 0..expect.managers {
        managers.push(manager(&source, handle(open).await, &key));
    }
    let tasks: Vec<_> = managers
        .iter()
        .cloned()
        .map(|m| {
            tokio::spawn(async move {
                m.token()
                    .await
                    .expect("a token")
                    .secret()
                    .expose_secret()
                    .to_owned()
            })
        })
        .collect();
    for task in tasks {
        let secret = tokio::time::timeout(expect.patience, task)
            .await
            .expect("every caller is answered")
            .expect("the calling task");
        assert_eq!(secret, "tok-1", "every caller gets the one token fetched");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "exactly one request to the provider"
    );
    let adopted: u64 = managers.iter().map(|m| m.stats().adopted).sum();
    assert_eq!(
        adopted,
        expect.managers as u64 - 1,
        "the others adopt the stored token"
    );
    drop(managers);
    handle(open).await.delete(&key).await.expect("delete");
}

/// The store's server goes down and comes back (`set_running(false)`, then
/// `set_running(true)`; it must be running when this is called). `store` and `other` are two
/// handles on it, opened before, whose operations time out well within a second.
///
/// A manager holding a valid token keeps serving it during the outage while its background
/// refreshes fail (nothing is fetched without the store's lock); a manager with nothing valid
/// gets an [`ErrorKind::Store`] error, a direct load [`StoreError::Unavailable`]. Once the
/// server is back — with its data or empty — the next refresh goes through and is saved, and
/// the cold manager recovers too. Tokens are handed out with 100 s of their hour left, so each
/// call starts a background refresh.
pub async fn outage_keeps_the_valid_token_served(
    store: impl Into<SharedTokenStore>,
    other: impl Into<SharedTokenStore>,
    mut set_running: impl FnMut(bool),
) {
    let (store, other) = (store.into(), other.into());
    let key = Run::new().key("outage");
    let (source, calls) = counting_source(
        Duration::ZERO,
        Duration::from_secs(3500),
        Duration::from_secs(100),
    );
    let secret = |t: &Token| t.secret().expose_secret().to_owned();
    let a = manager(&source, store.clone(), &key);
    assert_eq!(secret(&a.token().await.expect("a first token")), "tok-1");

    set_running(false);
    // While the server is down, `a` keeps serving the valid token it holds; its refreshes fail.
    let failures_before = a.stats().failures;
    let mut rounds = 0;
    while a.stats().failures == failures_before {
        let token = a
            .token()
            .await
            .expect("a valid token is served during the outage");
        assert_eq!(secret(&token), "tok-1");
        tokio::time::sleep(Duration::from_millis(20)).await;
        rounds += 1;
        assert!(
            rounds < 1500,
            "a refresh was attempted against the dead server"
        );
    }
    assert_eq!(secret(&a.token().await.expect("still valid")), "tok-1");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "nothing fetched without the store's lock"
    );
    // A manager with nothing valid gets the store error.
    let b = manager(&source, other, &key);
    let err = b.token().await.expect_err("no store, no token");
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    let direct = store.load(&key).await.expect_err("the server is down");
    assert!(matches!(direct, StoreError::Unavailable { .. }), "{direct}");

    // The server returns: the next refresh goes through and is saved.
    set_running(true);
    let mut rounds = 0;
    let renewed = loop {
        let token = secret(&a.token().await.expect("still valid"));
        if token != "tok-1" {
            break token;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rounds += 1;
        assert!(
            rounds < 1200,
            "the manager resumed after the server came back"
        );
    };
    assert!(renewed.starts_with("tok-"), "{renewed}");
    let mut rounds = 0;
    let stored = loop {
        if let Ok(Some(entry)) = store.load(&key).await
            && secret_of(&entry) != "tok-1"
        {
            break entry;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rounds += 1;
        assert!(rounds < 600, "the renewed token reached the store");
    };
    assert!(secret_of(&stored).starts_with("tok-"));
    let mut rounds = 0;
    while b.token().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        rounds += 1;
        assert!(rounds < 1200, "the cold manager recovers too");
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::store::{MemoryStore, StoreLock, TokenStore};

    /// A memory store with one defect, to show the kit notices it.
    #[derive(Clone, Debug, Default)]
    struct Broken {
        inner: MemoryStore,
        ignores_versions: bool,
        lock_is_shared: bool,
    }

    #[derive(Debug)]
    struct NoLock;

    #[async_trait]
    impl StoreLock for NoLock {
        async fn release(self: Box<Self>) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[async_trait]
    impl TokenStore for Broken {
        async fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError> {
            self.inner.load(key).await
        }

        async fn save(
            &self,
            key: &StoreKey,
            entry: &StoredEntry,
            expected: u64,
        ) -> Result<u64, StoreError> {
            if self.ignores_versions {
                let found = self.inner.load(key).await?.map_or(0, |e| e.version);
                return self.inner.save(key, entry, found).await;
            }
            self.inner.save(key, entry, expected).await
        }

        async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
            self.inner.delete(key).await
        }

        async fn lock(
            &self,
            key: &StoreKey,
            ttl: Duration,
        ) -> Result<Box<dyn StoreLock>, StoreError> {
            if self.lock_is_shared {
                return Ok(Box::new(NoLock));
            }
            self.inner.lock(key, ttl).await
        }

        fn describe(&self) -> String {
            "broken".to_owned()
        }
    }

    #[tokio::test]
    #[should_panic(expected = "must fail with a conflict")]
    async fn a_store_that_ignores_versions_fails_the_contract() {
        let store = Broken {
            ignores_versions: true,
            ..Broken::default()
        };
        compare_and_swap(
            &|| {
                let store = store.clone();
                async move { store }
            },
            &Run::new(),
        )
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "a second holder got the lock while the first held it")]
    async fn a_lock_that_does_not_exclude_fails_the_contract() {
        let store = Broken {
            lock_is_shared: true,
            ..Broken::default()
        };
        lock_excludes(
            &|| {
                let store = store.clone();
                async move { store }
            },
            &Run::new(),
            &Expectations::lock_freed_on_drop(),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_store_meets_the_contract() {
        let store = MemoryStore::new();
        run(
            || {
                let store = store.clone();
                async move { store }
            },
            &Expectations::lock_freed_on_drop(),
        )
        .await;
    }
}
