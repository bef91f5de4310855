//! Where tokens are kept between calls, processes and hosts: the [`TokenStore`] trait and the
//! in-memory store. File and Redis stores live in the `auth-store` crate.

use std::{
    collections::HashMap,
    error::Error as StdError,
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::{credential::Fingerprint, error::Error, token::Token};

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;

/// Names one entry: provider and account, e.g. `sehatmu:3310fd56-…`.
///
/// Only ASCII letters, digits and `._-:@` are allowed, at most 200 of them, so a key is safe as
/// a file name and a Redis key alike.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(Arc<str>);

impl StoreKey {
    /// Validates and wraps a key.
    pub fn new(key: impl AsRef<str>) -> Result<Self, Error> {
        let key = key.as_ref();
        let ok = !key.is_empty()
            && key.len() <= 200
            && !key.starts_with('.')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:@".contains(&b));
        if ok {
            Ok(Self(key.into()))
        } else {
            Err(Error::configuration(
                "a store key must be 1 to 200 ASCII letters, digits or `._-:@`, not starting with `.`",
            ))
        }
    }

    /// `provider:account`.
    pub fn for_account(provider: &str, account: &str) -> Result<Self, Error> {
        Self::new(format!("{provider}:{account}"))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a store keeps per key.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StoredEntry {
    /// The current token, if any.
    pub token: Option<Token>,
    /// The refresh material, when the provider rotates it (or when `kunci login` saved it).
    pub refresh: Option<SecretString>,
    /// No request may be sent before this moment (a cool-down after a failure).
    pub cooldown_until: Option<OffsetDateTime>,
    /// The fingerprint of the credential whose source made the token and refresh material
    /// (see [`Credential`](crate::Credential)); `None` in entries written before kunci stored
    /// one, or by a source that declares no credential.
    pub credential: Option<Fingerprint>,
    /// The outcome of the last refresh that failed, shared with every process: until its
    /// `until`, a process that finds it answers its callers with it instead of repeating the
    /// failing request. A successful save clears it.
    pub failure: Option<SharedFailure>,
    /// A request based on this entry's refresh material was sent and its answer is awaited
    /// until then: another process sends nothing with the same material meanwhile (a provider
    /// that rotates would revoke it), and adopts what the sender saves. Written under the lease
    /// just before such a request; the sender's save clears it.
    pub fetching_until: Option<OffsetDateTime>,
    /// The version this entry was read at; stores bump it on every save.
    pub version: u64,
}

impl StoredEntry {
    /// An entry holding a token.
    pub fn with_token(token: Token) -> Self {
        Self {
            token: Some(token),
            ..Self::default()
        }
    }
}

/// A failed refresh as recorded in the store ([`StoredEntry::failure`]), so the processes that
/// waited for the holder take its answer instead of each repeating the failing request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedFailure {
    /// Until this moment the failure is the answer; after it, the next refresh sends again.
    pub until: OffsetDateTime,
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// The error's message (already free of secrets: see invariant 8 of the architecture).
    pub message: String,
}

impl SharedFailure {
    /// A record of `kind` with `message`, answered until `until`.
    pub fn new(until: OffsetDateTime, kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            until,
            kind,
            message: message.into(),
        }
    }
}

/// The kind of a [`SharedFailure`]: the [`ErrorKind`](crate::ErrorKind) it is answered as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// [`ErrorKind::Configuration`](crate::ErrorKind::Configuration).
    Configuration,
    /// [`ErrorKind::ReauthenticationRequired`](crate::ErrorKind::ReauthenticationRequired).
    ReauthenticationRequired,
    /// [`ErrorKind::Transient`](crate::ErrorKind::Transient) (and rate limits, whose end is the
    /// entry's cool-down).
    Transient,
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol).
    Protocol,
    /// [`ErrorKind::Store`](crate::ErrorKind::Store).
    Store,
}

impl FailureKind {
    /// The word stores write for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configuration => "configuration",
            Self::ReauthenticationRequired => "reauthentication_required",
            Self::Transient => "transient",
            Self::Protocol => "protocol",
            Self::Store => "store",
        }
    }

    /// Reads [`as_str`](Self::as_str)'s word; an unknown word (a newer kunci wrote it) is
    /// `Transient`.
    pub fn parse(word: &str) -> Self {
        match word {
            "configuration" => Self::Configuration,
            "reauthentication_required" => Self::ReauthenticationRequired,
            "protocol" => Self::Protocol,
            "store" => Self::Store,
            _ => Self::Transient,
        }
    }
}

/// A one-way digest of refresh material under a store key (SHA-256 of a label, the key and the
/// material), which a store keeps beside the entry so a save of newly rotated material can be
/// checked against the material it replaces without decrypting anything. Absent material has a
/// digest of its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshDigest([u8; 32]);

impl RefreshDigest {
    /// The digest of `material` (or of its absence) under `key`.
    pub fn of(key: &StoreKey, material: Option<&SecretString>) -> Self {
        use secrecy::ExposeSecret as _;
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        hash.update(b"kunci refresh digest 1\0");
        hash.update(key.as_str().as_bytes());
        match material {
            Some(m) => {
                hash.update(b"\0some\0");
                hash.update(m.expose_secret().as_bytes());
            }
            None => hash.update(b"\0none"),
        }
        Self(hash.finalize().into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl fmt::Debug for RefreshDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RefreshDigest({})", &self.to_hex()[..12])
    }
}

/// Who holds a refresh lease that can be lost while held (one with a TTL): what a fenced save
/// checks the store still names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The holder's identity as the store records it (`<pid>-<random>`).
    pub holder: String,
    /// The fencing token, larger at every taking of the key's lease (0 where the store keeps
    /// none: the holder alone then identifies the taking).
    pub fence: u64,
}

/// What a save made under the refresh lock checks besides the version
/// ([`TokenStore::save_fenced`]).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Fence {
    /// The lease the saver took; the save lands only while the store still names it.
    pub lease: Option<Lease>,
    /// For a save carrying newly rotated refresh material: the digest of the material the
    /// fetch was based on. The save then lands whenever the stored material still has this
    /// digest, lease or not — the rotated material is the only valid copy.
    pub rotation_of: Option<RefreshDigest>,
}

impl Fence {
    /// A fence on `lease` (none: the lock cannot be lost while held).
    pub fn lease(lease: Option<Lease>) -> Self {
        Self {
            lease,
            rotation_of: None,
        }
    }

    /// Adds the digest of the refresh material a rotation replaces.
    #[must_use]
    pub fn rotating(mut self, from: RefreshDigest) -> Self {
        self.rotation_of = Some(from);
        self
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The entry's version is not the one the writer read: someone else saved in between.
    #[error(
        "the store entry `{key}` was changed by another writer (expected version {expected}, found {found})"
    )]
    Conflict {
        /// The key.
        key: StoreKey,
        /// The version the writer expected (0: no entry).
        expected: u64,
        /// The version found (0: no entry).
        found: u64,
    },
    /// The store cannot be reached now (Redis down, …); the caller may retry later.
    #[error("the token store is unavailable: {message}")]
    Unavailable {
        /// What failed, without secrets.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// An entry cannot be read back (corrupt file, wrong encryption key, tampered data).
    #[error("the token store entry is unreadable: {message}")]
    Corrupt {
        /// What failed and where, without secrets.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// The store is configured wrongly (a bad URL, an unusable directory): fix the configuration.
    #[error("the token store is misconfigured: {message}")]
    Configuration {
        /// What is wrong, without secrets.
        message: String,
    },
    /// A fenced save was refused: the saver's lease expired and (for rotated material) the
    /// stored refresh material is no longer the one the fetch was based on. Nothing changed.
    #[error("the refresh lease of `{key}` was lost before the save (another process holds it)")]
    LeaseLost {
        /// The key.
        key: StoreKey,
    },
    /// Any other failure (permissions, disk full, …).
    #[error("the token store failed: {message}")]
    Other {
        /// What failed, without secrets.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
}

impl StoreError {
    /// An "unavailable" error with a cause.
    pub fn unavailable(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A "corrupt" error.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt {
            message: message.into(),
            source: None,
        }
    }

    /// Any other error, with a cause.
    pub fn other(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self::Other {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Configuration { .. } => Error::configuration(e.to_string()).with_source(e),
            _ => Error::store(e.to_string()).with_source(e),
        }
    }
}

/// Held while one process refreshes a key; dropped or released when done.
#[async_trait]
pub trait StoreLock: Send + Sync + fmt::Debug {
    /// Releases the lock. Stores whose lock also frees itself (a TTL, an OS file lock) make
    /// this best-effort.
    async fn release(self: Box<Self>) -> Result<(), StoreError>;

    /// Extends the lock's life to `ttl` from now, if this holder still holds it; `Ok(false)`
    /// when it was lost (expired; another process may hold it). Locks that cannot be lost while
    /// held (a kernel file lock, a mutex) need no renewal and answer `Ok(true)`.
    async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        let _ = ttl;
        Ok(true)
    }

    /// The lease a fenced save checks (see [`TokenStore::save_fenced`]); `None` for locks that
    /// cannot be lost while held.
    fn lease(&self) -> Option<Lease> {
        None
    }
}

/// Persistence for token entries, shared by every manager (and process) using the same key.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// Reads an entry; `Ok(None)` when there is none.
    async fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError>;

    /// Writes `entry` if the stored version is still `expected` (0: no entry yet), and returns the
    /// new version. Fails with [`StoreError::Conflict`] otherwise, changing nothing. The write is
    /// atomic: a reader sees the old entry or the new one, never a mix.
    async fn save(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
    ) -> Result<u64, StoreError>;

    /// [`save`](Self::save) made under the refresh lock: besides the version, the store checks
    /// atomically that the saver still holds `fence.lease` — or, for newly rotated material
    /// (`fence.rotation_of`), that the stored refresh material is still the one the fetch was
    /// based on. Refused: [`StoreError::LeaseLost`], changing nothing.
    ///
    /// The default is a plain `save`: right for stores whose lock cannot be lost while held
    /// (the kernel's file lock, a mutex).
    async fn save_fenced(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
        fence: &Fence,
    ) -> Result<u64, StoreError> {
        let _ = fence;
        self.save(key, entry, expected).await
    }

    /// Removes an entry (no error if there is none).
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// The keys of every stored entry whose key starts with `prefix` (`""`: all), sorted. What
    /// `kunci status` lists for a profile backed by a [`TokenPool`](crate::TokenPool), whose
    /// accounts a service stored under keys the CLI cannot know.
    ///
    /// The default refuses with [`StoreError::Configuration`]: a store that cannot enumerate its
    /// entries says so rather than answering an empty list.
    async fn keys(&self, prefix: &str) -> Result<Vec<StoreKey>, StoreError> {
        let _ = prefix;
        Err(StoreError::Configuration {
            message: format!("the store {} cannot list its entries", self.describe()),
        })
    }

    /// Waits until this caller holds the refresh lock for `key`, among every process sharing the
    /// store. `ttl` bounds how long a holder that died keeps others waiting, for stores where
    /// the lock would otherwise outlive its holder.
    async fn lock(&self, key: &StoreKey, ttl: Duration) -> Result<Box<dyn StoreLock>, StoreError>;

    /// A short description for status output (`file:/home/…`, `redis://host/…`); never a
    /// password.
    fn describe(&self) -> String;
}

/// A cheaply cloneable, shared [`TokenStore`].
#[derive(Clone, Debug)]
pub struct SharedTokenStore(Arc<dyn TokenStore>);

impl SharedTokenStore {
    /// Wraps a store.
    pub fn new(store: impl TokenStore + 'static) -> Self {
        Self(Arc::new(store))
    }
}

impl std::ops::Deref for SharedTokenStore {
    type Target = dyn TokenStore;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl SharedTokenStore {
    /// Wraps a store that is already shared.
    pub fn from_arc(store: Arc<dyn TokenStore>) -> Self {
        Self(store)
    }
}

impl<S: TokenStore + 'static> From<S> for SharedTokenStore {
    fn from(store: S) -> Self {
        Self::new(store)
    }
}

/// A store in this process's memory: for tests and single-process services that persist
/// nothing. Clones share the same entries.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<StoreKey, StoredEntry>>>,
    locks: Arc<Mutex<HashMap<StoreKey, Arc<tokio::sync::Mutex<()>>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<StoreKey, StoredEntry>> {
        // A panic elsewhere while holding the map leaves it consistent (every write is one
        // insert), so a poisoned lock is still safe to use.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct MemoryLock(
    #[allow(dead_code, reason = "held for its Drop")] tokio::sync::OwnedMutexGuard<()>,
);

#[async_trait]
impl StoreLock for MemoryLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError> {
        Ok(self.entries().get(key).cloned())
    }

    async fn save(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
    ) -> Result<u64, StoreError> {
        let mut entries = self.entries();
        let found = entries.get(key).map_or(0, |e| e.version);
        if found != expected {
            return Err(StoreError::Conflict {
                key: key.clone(),
                expected,
                found,
            });
        }
        let version = found.checked_add(1).ok_or_else(|| {
            StoreError::corrupt(format!(
                "the entry `{key}` is at version {found}, past which versions cannot grow"
            ))
        })?;
        let mut stored = entry.clone();
        stored.version = version;
        entries.insert(key.clone(), stored);
        Ok(version)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.entries().remove(key);
        Ok(())
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<StoreKey>, StoreError> {
        let mut keys: Vec<StoreKey> = self
            .entries()
            .keys()
            .filter(|key| key.as_str().starts_with(prefix))
            .cloned()
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }

    async fn lock(&self, key: &StoreKey, _ttl: Duration) -> Result<Box<dyn StoreLock>, StoreError> {
        let mutex = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.entry(key.clone()).or_default().clone()
        };
        Ok(Box::new(MemoryLock(mutex.lock_owned().await)))
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(StoreKey::new("sehatmu:3310fd56-10fb.sehatmu.client").is_ok());
        assert!(StoreKey::for_account("kalsel", "default").is_ok());
        for bad in [
            "",
            "../etc/passwd",
            "a/b",
            ".hidden",
            "spa ce",
            &"x".repeat(201),
        ] {
            assert!(StoreKey::new(bad).is_err(), "{bad}");
        }
    }

    // The memory store's contract (compare-and-swap, locks, …) is checked by
    // `conformance::tests::the_memory_store_meets_the_contract`.
}
