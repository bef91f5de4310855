//! The Redis store: one hash per key, a `SET NX PX` refresh lock, compare-and-swap saves by
//! Lua script (feature `redis`).

use std::{
    fmt,
    future::Future,
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_trait::async_trait;
use auth_core::{
    Fence, Lease, RefreshDigest, StoreError, StoreKey, StoreLock, StoredEntry, TokenStore,
};
use futures_util::StreamExt as _;
use redis::{AsyncCommands as _, RedisError, Script, aio::ConnectionManager};
use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};

use crate::{
    cipher::Cipher,
    codec,
    redact::redact_url,
    release::{Life, settle, whole_millis},
    waiters::Waiters,
};

/// Compare-and-swap, fenced: `KEYS[1]` entry hash, `KEYS[2]` the key's lock; `ARGV[1]`
/// expected version, `ARGV[2]` encoded entry, `ARGV[3]` expiry in unix milliseconds (0:
/// none), `ARGV[4]` the digest of the new entry's refresh material, `ARGV[5]` the saver's lock
/// owner (empty: no fence), `ARGV[6]` the digest of the material a rotation replaces (empty:
/// not a rotation), `ARGV[7]` the digest of "no material", `ARGV[8]` the events channel,
/// `ARGV[9]` the notification. Returns `{'1'}`, `{'0', found}` (version conflict) or `{'2'}`
/// (the lease is lost and the stored material is not the rotation's base). Versions are
/// compared as their decimal text and incremented by `HINCRBY` (exact 64-bit integers): Lua's
/// numbers are doubles, exact only up to 2^53.
const SAVE_SCRIPT: &str = r"
local found = redis.call('HGET', KEYS[1], 'v') or '0'
if found ~= ARGV[1] then
  return {'0', found}
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[5] then
  local stored = redis.call('HGET', KEYS[1], 'h')
  if not stored and found == '0' then stored = ARGV[7] end
  if ARGV[6] == '' or stored ~= ARGV[6] then
    return {'2'}
  end
end
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'h', ARGV[4])
local at = tonumber(ARGV[3])
if at > 0 then
  redis.call('PEXPIREAT', KEYS[1], at)
else
  redis.call('PERSIST', KEYS[1])
end
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
return {'1'}
";

/// Compare-and-delete: frees the lock only if this owner (`ARGV[1]`) still holds it, and
/// tells the waiters (`ARGV[2]` channel, `ARGV[3]` notification).
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
  return 1
end
return 0
";

/// Compare-and-extend: renews the lock to `ARGV[2]` milliseconds only if this owner
/// (`ARGV[1]`) still holds it.
const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Settings of a [`RedisStore`]. Start from [`RedisOptions::default`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Put in front of every Redis key (default `kunci:`).
    pub prefix: String,
    /// How long an entry outlives its token's expiry (or its cool-down) before Redis drops it
    /// (default 1 hour). Entries holding refresh material never expire.
    pub ttl_margin: Duration,
    /// The bound on one Redis command, connecting included (default 2 seconds). Past it the
    /// operation fails with [`StoreError::Unavailable`].
    pub timeout: Duration,
    /// Whether lock waiters are woken by pub/sub notifications (default `true`): one more
    /// connection per store, subscribed to `<prefix>events`, on which every release and every
    /// save publishes. Off, waiters only poll (the behaviour before notifications).
    pub notify: bool,
    /// With notifications: the longest a waiter sleeps when no notification wakes it (default
    /// 250 ms), the fallback for a holder that died (its lock expires silently) or a lost
    /// notification.
    pub lock_poll_fallback: Duration,
    /// Without notifications (or while the subscriber reconnects): the first wait between
    /// attempts at a held refresh lock (default 10 ms); it grows by half each time up to
    /// [`lock_poll_max`](Self::lock_poll_max), with ±50 % jitter.
    pub lock_poll_min: Duration,
    /// The longest wait between polling attempts at a held refresh lock (default 100 ms).
    pub lock_poll_max: Duration,
    /// Encrypts every entry (default none).
    pub cipher: Option<Cipher>,
    /// A PEM file of the certificate authorities that sign the server's certificate, for a
    /// `rediss://` server with a private CA (a self-signed one included). Set, it replaces the
    /// platform's roots for this store; unset, the platform's roots are used. Verification is
    /// never turned off (the `#insecure` URL fragment is refused).
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "kunci:".to_owned(),
            ttl_margin: Duration::from_secs(3600),
            timeout: Duration::from_secs(2),
            notify: true,
            lock_poll_fallback: Duration::from_millis(250),
            lock_poll_min: Duration::from_millis(10),
            lock_poll_max: Duration::from_millis(100),
            cipher: None,
            tls_ca_file: None,
        }
    }
}

impl RedisOptions {
    /// Sets the key prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the margin past expiry.
    #[must_use]
    pub fn ttl_margin(mut self, margin: Duration) -> Self {
        self.ttl_margin = margin;
        self
    }

    /// Sets the per-command timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Turns pub/sub wake-ups of lock waiters on or off (see [`notify`](Self::notify)).
    #[must_use]
    pub fn notify(mut self, notify: bool) -> Self {
        self.notify = notify;
        self
    }

    /// Sets the fallback sleep of a lock waiter when notifications are on.
    #[must_use]
    pub fn lock_poll_fallback(mut self, wait: Duration) -> Self {
        self.lock_poll_fallback = wait;
        self
    }

    /// Sets the polling schedule of lock waiters without notifications.
    #[must_use]
    pub fn lock_poll(mut self, min: Duration, max: Duration) -> Self {
        self.lock_poll_min = min;
        self.lock_poll_max = max.max(min);
        self
    }

    /// Encrypts entries with `cipher`.
    #[must_use]
    pub fn cipher(mut self, cipher: Cipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Trusts the certificate authorities in the PEM file at `path` for a `rediss://` server
    /// (see [`tls_ca_file`](Self::tls_ca_file)).
    #[must_use]
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }
}

/// A token store in Redis, shared by a fleet of processes on many hosts (feature `redis`).
///
/// Key layout (with the default prefix `kunci:`):
///
/// * `kunci:entry:<key>` — a hash: `v` the version, `e` the encoded entry (the JSON document
///   of `docs/stores.md`, encrypted when a [`Cipher`] is set). Its TTL is the token's expiry
///   (or cool-down) plus [`RedisOptions::ttl_margin`]; an entry that holds refresh material,
///   or a token without expiry, has no TTL.
/// * `kunci:lock:<key>` — the refresh lock: `SET NX PX <ttl>` with a random owner, freed by a
///   compare-and-delete script or by its TTL when the holder died.
///
/// Waiters are woken by pub/sub (`<prefix>events`: every release and save publishes) and poll
/// only as a fallback; see `docs/stores.md`. Saves made under the lock are fenced: the save
/// script checks the lock still names the saver, or (for rotated refresh material) that the
/// stored material is the one the rotation replaces. Every command is bounded by [`RedisOptions::timeout`]; when
/// Redis cannot be reached the store answers [`StoreError::Unavailable`] and the connection
/// manager reconnects in the background.
///
/// Cloning is cheap; clones share one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    inner: Arc<Inner>,
}

struct Inner {
    options: RedisOptions,
    described: String,
    client: redis::Client,
    save: Script,
    release: Arc<Script>,
    renew: Arc<Script>,
    waiters: Arc<Waiters>,
    subscriber: OnceLock<Subscriber>,
}

/// The subscribing task's handle: dropping it (with the store) ends the task.
struct Subscriber {
    listening: watch::Receiver<bool>,
    _stop: oneshot::Sender<()>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.described)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or `rediss://` with
    /// feature `redis-tls`).
    ///
    /// # Errors
    /// [`StoreError::Other`] for a URL that cannot be used, [`StoreError::Unavailable`] when
    /// the server cannot be reached within [`RedisOptions::timeout`]. Messages never contain
    /// the password.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let described = redact_url(url);
        let tls = url.trim_start().starts_with("rediss://");
        #[cfg(feature = "redis-tls")]
        if tls {
            install_crypto_provider();
        }
        let unusable = |e: RedisError| StoreError::Configuration {
            message: format!(
                "cannot use the Redis URL `{described}` ({}){}",
                e.kind_description(),
                if tls && !cfg!(feature = "redis-tls") {
                    "; `rediss://` needs the `redis-tls` feature of auth-store"
                } else {
                    ""
                }
            ),
        };
        // The Redis client reads `#insecure` as "accept any certificate"; kunci never does.
        if url::Url::parse(url.trim()).is_ok_and(|u| u.fragment().is_some()) {
            return Err(StoreError::Configuration {
                message: format!(
                    "the Redis URL `{described}` has a fragment (such as `#insecure`); kunci never turns TLS verification off: remove it, and supply the server's CA if it is private"
                ),
            });
        }
        let client: redis::Client = match &options.tls_ca_file {
            None => redis::Client::open(url).map_err(unusable)?,
            Some(path) if !tls => {
                return Err(StoreError::Configuration {
                    message: format!(
                        "a CA file ({}) is configured for `{described}`, which is not a `rediss://` (TLS) URL",
                        path.display()
                    ),
                });
            }
            Some(path) => client_with_ca(url, path, &described, unusable)?,
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = bounded(
            options.timeout,
            &described,
            "connecting",
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|e| match e {
            StoreError::Unavailable { source, .. } | StoreError::Other { source, .. } => {
                match source.as_deref().and_then(certificate_error) {
                    Some(why) => StoreError::Configuration {
                        message: format!(
                            "the TLS certificate of Redis at {described} was refused ({why}); kunci never turns verification off: if the server uses a private certificate authority, supply its CA certificate (RedisOptions::tls_ca_file; KUNCI_STORE_CA)"
                        ),
                    },
                    None => StoreError::Unavailable {
                        message: format!("cannot connect to Redis at {described}"),
                        source,
                    },
                }
            }
            other => other,
        })?;
        Ok(Self {
            conn,
            inner: Arc::new(Inner {
                described,
                client,
                save: Script::new(SAVE_SCRIPT),
                release: Arc::new(Script::new(RELEASE_SCRIPT)),
                renew: Arc::new(Script::new(RENEW_SCRIPT)),
                waiters: Arc::default(),
                subscriber: OnceLock::new(),
                options,
            }),
        })
    }

    /// The Redis key of `key`'s entry (`<prefix>entry:<key>`).
    pub fn entry_key(&self, key: &StoreKey) -> String {
        format!("{}{key}", self.entry_key_head())
    }

    /// What every entry's Redis key starts with (`<prefix>entry:`).
    fn entry_key_head(&self) -> String {
        format!("{}entry:", self.inner.options.prefix)
    }

    /// The Redis key of `key`'s refresh lock (`<prefix>lock:<key>`).
    pub fn lock_key(&self, key: &StoreKey) -> String {
        format!("{}lock:{key}", self.inner.options.prefix)
    }

    /// The pub/sub channel releases and saves are announced on (`<prefix>events`), or empty
    /// when notifications are off.
    fn channel(&self) -> String {
        if self.inner.options.notify {
            format!("{}events", self.inner.options.prefix)
        } else {
            String::new()
        }
    }

    fn expire_at_ms(&self, entry: &StoredEntry) -> i64 {
        // Refresh material must never silently expire: such entries get no TTL at all.
        if entry.refresh.is_some() {
            return 0;
        }
        let token_end = match &entry.token {
            Some(token) => match token.expires_at() {
                Some(at) => Some(at),
                None => return 0,
            },
            None => None,
        };
        let Some(end) = [
            token_end,
            entry.cooldown_until,
            entry.failure.as_ref().map(|f| f.until),
            entry.fetching_until,
        ]
        .into_iter()
        .flatten()
        .max() else {
            return 0;
        };
        let margin =
            time::Duration::try_from(self.inner.options.ttl_margin).unwrap_or(time::Duration::DAY);
        let at: OffsetDateTime = end.saturating_add(margin);
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(0)
            .max(1)
    }
}

#[cfg(feature = "redis-tls")]
fn install_crypto_provider() {
    // rustls needs one process-wide crypto provider; if the application has none installed
    // (and its features do not pick one unambiguously), install ring's. An installed one wins.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A client for a `rediss://` URL that trusts only the CAs in `path`.
#[cfg(feature = "redis-tls")]
fn client_with_ca(
    url: &str,
    path: &std::path::Path,
    _described: &str,
    unusable: impl Fn(RedisError) -> StoreError,
) -> Result<redis::Client, StoreError> {
    let pem = std::fs::read(path).map_err(|e| StoreError::Configuration {
        message: format!("cannot read the Redis CA file {}: {e}", path.display()),
    })?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(StoreError::Configuration {
            message: format!(
                "the Redis CA file {} holds no PEM `CERTIFICATE` block",
                path.display()
            ),
        });
    }
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
    .map_err(unusable)
}

#[cfg(not(feature = "redis-tls"))]
fn client_with_ca(
    _url: &str,
    _path: &std::path::Path,
    described: &str,
    _unusable: impl Fn(RedisError) -> StoreError,
) -> Result<redis::Client, StoreError> {
    Err(StoreError::Configuration {
        message: format!(
            "`{described}` with a CA file needs the `redis-tls` feature of auth-store"
        ),
    })
}

/// The certificate error in `e`'s chain, if the server's certificate did not verify.
fn certificate_error(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(e) = next {
        #[cfg(feature = "redis-tls")]
        if let Some(tls @ rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        // An `io::Error` or an `Arc` (as RedisError keeps its cause) wrapping another error
        // reports that error's source as its own, so the walk goes on with the wrapped error.
        let wrapped = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static))
            .or_else(|| {
                e.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()
                    .map(|inner| &**inner as &(dyn std::error::Error + 'static))
            });
        next = wrapped.or_else(|| e.source());
    }
    None
}

fn classify(described: &str, what: &str, e: RedisError) -> StoreError {
    let message = format!(
        "Redis at {described}: {what} failed ({})",
        e.kind_description()
    );
    if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable {
            message,
            source: Some(Box::new(e)),
        }
    } else {
        StoreError::Other {
            message,
            source: Some(Box::new(e)),
        }
    }
}

async fn bounded<T>(
    timeout: Duration,
    described: &str,
    what: &str,
    fut: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(classify(described, what, e)),
        Err(_) => Err(StoreError::unavailable(
            format!("Redis at {described}: {what} did not answer within {timeout:?}"),
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        )),
    }
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for RedisError {
    /// The error's category and code, never its detail text (which may echo a command).
    fn kind_description(&self) -> String {
        match self.code() {
            Some(code) => format!("{:?}: {code}", self.kind()),
            None => format!("{:?}", self.kind()),
        }
    }
}

impl RedisStore {
    async fn run<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        bounded(self.inner.options.timeout, &self.inner.described, what, fut).await
    }
}

/// The refresh lock of a [`RedisStore`]: `SET NX PX` with a random owner. Released by a
/// compare-and-delete script that also wakes the waiters; renewed by a compare-and-extend
/// script; dropped without release, it is released in the background; if its holder dies, its
/// TTL frees it.
pub struct RedisLock {
    store: RedisStore,
    conn: ConnectionManager,
    lock_key: String,
    key: StoreKey,
    owner: String,
    /// The life last asked for (at acquisition, then by each renewal), in milliseconds: how
    /// long a release that failed is retried in the background.
    life: Life,
    released: bool,
}

impl fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLock")
            .field("lock_key", &self.lock_key)
            .field("owner", &self.owner)
            .finish()
    }
}

impl RedisLock {
    /// This holder's identity, the lock key's value: `<pid>-<128 random bits>`.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Frees this lock in the background once the store answers (within its life).
    fn free_later(&mut self) {
        free_later(
            &self.store,
            &self.conn,
            std::mem::take(&mut self.lock_key),
            &self.key,
            std::mem::take(&mut self.owner),
            self.life.get(),
        );
    }
}

/// [`free`] retried in the background until the store answers, for at most `life`.
fn free_later(
    store: &RedisStore,
    conn: &ConnectionManager,
    lock_key: String,
    key: &StoreKey,
    owner: String,
    life: Duration,
) {
    let (store, conn, key) = (store.clone(), conn.clone(), key.clone());
    crate::release::free_in_background(lock_key.clone(), life, move || {
        let (store, conn, lock_key, key, owner) = (
            store.clone(),
            conn.clone(),
            lock_key.clone(),
            key.clone(),
            owner.clone(),
        );
        async move { free(&store, conn, &lock_key, &key, &owner).await }
    });
}

/// Compare-and-delete of `owner`'s lock, bounded by the store's timeout; whether it freed it.
async fn free(
    store: &RedisStore,
    conn: ConnectionManager,
    lock_key: &str,
    key: &StoreKey,
    owner: &str,
) -> Result<bool, StoreError> {
    free_within(
        store.inner.options.timeout,
        store,
        conn,
        lock_key,
        key,
        owner,
    )
    .await
}

/// [`free`] bounded by `timeout`.
async fn free_within(
    timeout: Duration,
    store: &RedisStore,
    mut conn: ConnectionManager,
    lock_key: &str,
    key: &StoreKey,
    owner: &str,
) -> Result<bool, StoreError> {
    let mut invocation = store.inner.release.key(lock_key);
    invocation
        .arg(owner)
        .arg(store.channel())
        .arg(format!("r:{key}"));
    let freed: i64 = bounded(
        timeout,
        &store.inner.described,
        "the lock release script",
        invocation.invoke_async(&mut conn),
    )
    .await?;
    Ok(freed == 1)
}

#[async_trait]
impl StoreLock for RedisLock {
    async fn release(mut self: Box<Self>) -> Result<(), StoreError> {
        self.released = true;
        let answer = free(
            &self.store,
            self.conn.clone(),
            &self.lock_key,
            &self.key,
            &self.owner,
        )
        .await;
        let lease = self.lock_key.clone();
        settle(&lease, answer, || self.free_later())
    }

    async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.store.inner.renew.key(&self.lock_key);
        invocation.arg(&self.owner).arg(whole_millis(ttl));
        let renewed: i64 = self
            .store
            .run(
                "the lock renewal script",
                invocation.invoke_async(&mut conn),
            )
            .await?;
        if renewed == 1 {
            self.life.renewed(ttl);
        }
        Ok(renewed == 1)
    }

    fn lease(&self) -> Option<Lease> {
        Some(Lease {
            holder: self.owner.clone(),
            fence: 0,
        })
    }
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Dropped without release (a refresh that was cancelled): free it in the background
        // rather than keep the fleet waiting for the whole TTL.
        self.free_later();
    }
}

impl RedisStore {
    /// The fenced compare-and-swap of [`SAVE_SCRIPT`]; `owner` empty: not fenced.
    async fn save_script(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
        owner: &str,
        rotation_of: Option<&RefreshDigest>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let entry_key = self.entry_key(key);
        let version = codec::next_version(key, expected)?;
        let bytes = codec::encode(key, entry, version, self.inner.options.cipher.as_ref())
            .map_err(|e| {
                StoreError::other(format!("cannot encode the entry for `{entry_key}`"), e)
            })?;
        let mut invocation = self.inner.save.key(&entry_key);
        invocation.key(self.lock_key(key));
        invocation
            .arg(expected)
            .arg(&**bytes)
            .arg(self.expire_at_ms(entry))
            .arg(RefreshDigest::of(key, entry.refresh.as_ref()).to_hex())
            .arg(owner)
            .arg(rotation_of.map(RefreshDigest::to_hex).unwrap_or_default())
            .arg(RefreshDigest::of(key, None).to_hex())
            .arg(self.channel())
            .arg(format!("s:{key}"));
        let reply: Vec<String> = self
            .run("the save script", invocation.invoke_async(&mut conn))
            .await?;
        match reply
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["1"] => Ok(version),
            ["0", found] => Err(StoreError::Conflict {
                key: key.clone(),
                expected,
                found: found.parse().unwrap_or(0),
            }),
            ["2"] => Err(StoreError::LeaseLost { key: key.clone() }),
            _ => Err(StoreError::Other {
                message: format!(
                    "Redis at {}: unexpected reply to the save script",
                    self.inner.described
                ),
                source: None,
            }),
        }
    }

    /// Starts the subscriber on first use, and waits (within the timeout) until it is
    /// subscribed, so the first waiter does not miss the first release.
    async fn listening(&self) -> bool {
        let inner = &self.inner;
        let subscriber = inner.subscriber.get_or_init(|| {
            let (listening_tx, listening) = watch::channel(false);
            let (stop, stopped) = oneshot::channel();
            tokio::spawn(subscribe(
                inner.client.clone(),
                self.channel(),
                Arc::clone(&inner.waiters),
                listening_tx,
                stopped,
                inner.options.timeout,
            ));
            Subscriber {
                listening,
                _stop: stop,
            }
        });
        let mut listening = subscriber.listening.clone();
        tokio::time::timeout(inner.options.timeout, listening.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn is_listening(&self) -> bool {
        self.inner
            .subscriber
            .get()
            .is_some_and(|s| *s.listening.borrow())
    }
}

/// The subscribing connection: `SUBSCRIBE <prefix>events`, wakes the waiters of the key each
/// message names, reconnects with back-off when the connection ends, and wakes every waiter
/// whenever it (re)subscribes or loses its connection, since a message may have been missed
/// meanwhile. Ends when the store is dropped.
async fn subscribe(
    client: redis::Client,
    channel: String,
    waiters: Arc<Waiters>,
    listening: watch::Sender<bool>,
    stop: oneshot::Receiver<()>,
    timeout: Duration,
) {
    let session = || async {
        let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
            .await
            .map_err(|_| "connecting timed out".to_owned())?
            .map_err(|e| e.kind_description())?;
        tokio::time::timeout(timeout, pubsub.subscribe(&channel))
            .await
            .map_err(|_| "SUBSCRIBE timed out".to_owned())?
            .map_err(|e| e.kind_description())?;
        listening.send_replace(true);
        waiters.wake_all();
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            if let Ok(payload) = message.get_payload::<String>() {
                waiters.wake_payload(&payload);
            }
        }
        Err::<(), String>("the subscription ended".to_owned())
    };
    crate::waiters::resubscribe(&waiters, &listening, stop, "subscriber", &channel, session).await;
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let entry_key = self.entry_key(key);
        let bytes: Option<Vec<u8>> = self.run("HGET", conn.hget(&entry_key, "e")).await?;
        let Some(bytes) = bytes.map(zeroize::Zeroizing::new) else {
            return Ok(None);
        };
        codec::decode(key, &bytes, self.inner.options.cipher.as_ref())
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                message: format!("Redis key `{entry_key}` at {}: {e}", self.inner.described),
                source: None,
            })
    }

    async fn save(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
    ) -> Result<u64, StoreError> {
        self.save_script(key, entry, expected, "", None).await
    }

    /// `SCAN … MATCH <prefix>entry:<prefix>*` (the glob's special characters escaped), within
    /// the store's timeout as a whole.
    async fn keys(&self, prefix: &str) -> Result<Vec<StoreKey>, StoreError> {
        let head = self.entry_key_head();
        let mut pattern = String::with_capacity(head.len() + prefix.len() + 1);
        for c in head.chars().chain(prefix.chars()) {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let mut conn = self.conn.clone();
        let found: Vec<String> = self
            .run("SCAN", async {
                let mut found = Vec::new();
                let mut iter = conn.scan_match::<_, String>(&pattern).await?;
                while let Some(key) = iter.next_item().await {
                    found.push(key?);
                }
                Ok(found)
            })
            .await?;
        let mut keys: Vec<StoreKey> = found
            .iter()
            .filter_map(|k| k.strip_prefix(&head))
            .filter_map(|k| StoreKey::new(k).ok())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// The compare-and-swap with, in the same script, the check that the lock key still
    /// holds the saver's owner — or, for a rotation, that the stored refresh material's digest
    /// (field `h`) is the one the rotation replaces.
    async fn save_fenced(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
        fence: &Fence,
    ) -> Result<u64, StoreError> {
        let owner = fence.lease.as_ref().map_or("", |l| l.holder.as_str());
        self.save_script(key, entry, expected, owner, fence.rotation_of.as_ref())
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let entry_key = self.entry_key(key);
        let _: i64 = self.run("DEL", conn.del(&entry_key)).await?;
        Ok(())
    }

    /// `SET NX PX` until it succeeds. A waiter is woken by the holder's release or save
    /// (pub/sub), and otherwise tries again after [`RedisOptions::lock_poll_fallback`]; without
    /// notifications it polls. A `SET NX` whose reply is lost (it may have taken the lock) is
    /// followed by a compare-and-delete of this attempt's owner, so the fleet is not blocked
    /// for the lock's whole TTL.
    async fn lock(&self, key: &StoreKey, ttl: Duration) -> Result<Box<dyn StoreLock>, StoreError> {
        let mut conn = self.conn.clone();
        let lock_key = self.lock_key(key);
        let owner = format!(
            "{}-{:016x}{:016x}",
            std::process::id(),
            fastrand::u64(..),
            fastrand::u64(..)
        );
        let options = &self.inner.options;
        let notify = self.inner.waiters.of(key.as_str());
        let mut subscribed = !options.notify;
        let mut wait = options.lock_poll_min;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before the attempt, so a release right after it is not missed.
            notified.as_mut().enable();
            let set = redis::cmd("SET")
                .arg(&lock_key)
                .arg(&owner)
                .arg("NX")
                .arg("PX")
                .arg(whole_millis(ttl))
                .to_owned();
            let acquired: Option<String> = match self
                .run("SET NX", set.query_async(&mut conn))
                .await
            {
                Ok(acquired) => acquired,
                // An error answer (not `Unavailable`): the command did not run, nothing taken.
                Err(e) if !matches!(e, StoreError::Unavailable { .. }) => return Err(e),
                Err(e) => {
                    // The command may have run and its reply been lost: free what it took.
                    // It may also still be queued behind a slow server, so the release (queued
                    // after it) gets three times the usual bound.
                    match free_within(
                        options.timeout.saturating_mul(3),
                        self,
                        conn.clone(),
                        &lock_key,
                        key,
                        &owner,
                    )
                    .await
                    {
                        Ok(true) => {
                            tracing::warn!(lock = %lock_key, "freed a refresh lock whose acquisition reply was lost");
                        }
                        Ok(false) => {}
                        Err(_) => {
                            tracing::warn!(lock = %lock_key, "could not check a refresh lock whose acquisition reply was lost; it is freed once the store answers");
                            free_later(self, &conn, lock_key, key, owner, ttl);
                        }
                    }
                    return Err(e);
                }
            };
            if acquired.is_some() {
                return Ok(Box::new(RedisLock {
                    store: self.clone(),
                    conn,
                    lock_key,
                    key: key.clone(),
                    owner,
                    life: Life::new(ttl),
                    released: false,
                }));
            }
            if !subscribed {
                // Only a lock that has to wait needs the subscriber.
                subscribed = true;
                self.listening().await;
                continue;
            }
            let sleep = if options.notify && self.is_listening() {
                options.lock_poll_fallback
            } else {
                let jittered = wait.mul_f64(0.5 + fastrand::f64());
                wait = wait.mul_f64(1.5).min(options.lock_poll_max);
                jittered
            };
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    fn describe(&self) -> String {
        match &self.inner.options.cipher {
            Some(cipher) => format!(
                "{} (prefix `{}`, encrypted, key id {})",
                self.inner.described,
                self.inner.options.prefix,
                cipher.key_id()
            ),
            None => format!(
                "{} (prefix `{}`)",
                self.inner.described, self.inner.options.prefix
            ),
        }
    }
}
