//! The PostgreSQL store (feature `postgres`): one row per key, compare-and-swap saves in one
//! statement, a refresh lease whose expiry the server's clock decides, waiters woken by
//! `LISTEN/NOTIFY`, and a schema the store creates and migrates itself.

use std::{
    fmt,
    future::Future,
    net::IpAddr,
    path::PathBuf,
    str::FromStr as _,
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_trait::async_trait;
use auth_core::{
    Fence, Lease, RefreshDigest, StoreError, StoreKey, StoreLock, StoredEntry, TokenStore,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use futures_util::StreamExt as _;
use tokio::sync::{oneshot, watch};
use tokio_postgres::{
    AsyncMessage, Config,
    config::{Host, SslMode},
    error::SqlState,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{
    cipher::Cipher,
    codec,
    redact::redact_url,
    release::{Life, settle},
    waiters::Waiters,
};

/// The newest schema this version of kunci writes. Each migration below takes the schema
/// from its index to its index + 1.
const SCHEMA_VERSION: i32 = 2;

/// `{entries}`, `{lease}` are replaced by the quoted, qualified table names.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: entries and refresh leases.
    r"
CREATE TABLE {entries} (
    key        text PRIMARY KEY,
    version    bigint NOT NULL CHECK (version > 0),
    entry      bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {lease} (
    key        text PRIMARY KEY,
    holder     text NOT NULL,
    fence      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
",
    // 1 → 2: the digest of each entry's refresh material, for fenced saves of rotations.
    r"
ALTER TABLE {entries} ADD COLUMN refresh_hash bytea;
",
];

/// The longest TTL a lease is taken with; longer requests are shortened to it (a lease of
/// centuries is a mistake, and the server's interval arithmetic has limits).
const MAX_LEASE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the listening connection is checked when no notification arrives: a connection
/// cut without a reset (a network partition) is noticed within about this long.
const LISTENER_PING: Duration = Duration::from_secs(10);

/// Settings of a [`PostgresStore`]. Start from [`PostgresOptions::default`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The table of entries (default `kunci_tokens`), optionally schema-qualified
    /// (`auth.kunci_tokens`; the schema is created if missing). Lower-case ASCII letters,
    /// digits and `_`, not starting with a digit, at most 56 characters per part; the store
    /// adds `<table>_lease` and `<table>_schema` beside it.
    pub table: String,
    /// The bound on one store operation, connecting included (default 2 seconds). Past it the
    /// operation fails with [`StoreError::Unavailable`].
    pub timeout: Duration,
    /// Connections in the pool (default 4), besides the one that listens for notifications.
    pub pool_size: usize,
    /// The longest a lock waiter sleeps between attempts when no notification wakes it
    /// (default 250 ms): the fallback for a lost notification or a listener that is
    /// reconnecting. A waiter also tries again the moment the holder's lease expires.
    pub lock_poll_max: Duration,
    /// Encrypts every entry (default none).
    pub cipher: Option<Cipher>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            table: "kunci_tokens".to_owned(),
            timeout: Duration::from_secs(2),
            pool_size: 4,
            lock_poll_max: Duration::from_millis(250),
            cipher: None,
        }
    }
}

impl PostgresOptions {
    /// Sets the table of entries (see [`table`](Self::table)).
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Sets the per-operation timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the pool size (at least 1).
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Sets the longest sleep of a lock waiter between attempts.
    #[must_use]
    pub fn lock_poll_max(mut self, wait: Duration) -> Self {
        self.lock_poll_max = wait;
        self
    }

    /// Encrypts entries with `cipher`.
    #[must_use]
    pub fn cipher(mut self, cipher: Cipher) -> Self {
        self.cipher = Some(cipher);
        self
    }
}

/// The validated table names, quoted for SQL.
#[derive(Clone, Debug)]
struct Tables {
    /// As configured (`kunci_tokens`, `auth.kunci_tokens`): also the notification channel.
    name: String,
    schema: Option<String>,
    entries: String,
    lease: String,
    versions: String,
}

impl Tables {
    fn parse(table: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::Configuration {
            message: format!(
                "the PostgreSQL table name `{}` is not usable: use lower-case ASCII letters, digits and `_` (not starting with a digit, at most 56 of them), optionally `schema.table`",
                table.escape_debug()
            ),
        };
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 56
                && !part.as_bytes()[0].is_ascii_digit()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let (schema, base) = match table.split_once('.') {
            Some((schema, base)) => (Some(schema), base),
            None => (None, table),
        };
        if !valid(base) || schema.is_some_and(|s| !valid(s)) {
            return Err(invalid());
        }
        let qualify = |name: &str| match schema {
            Some(schema) => format!("\"{schema}\".\"{name}\""),
            None => format!("\"{name}\""),
        };
        Ok(Self {
            name: table.to_owned(),
            schema: schema.map(str::to_owned),
            entries: qualify(base),
            lease: qualify(&format!("{base}_lease")),
            versions: qualify(&format!("{base}_schema")),
        })
    }

    /// The advisory-lock key that serialises migrations of this table among all processes.
    fn migration_lock_key(&self) -> i64 {
        // FNV-1a: stable across processes, versions and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"kunci-migrate\0".iter().chain(self.name.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        i64::from_ne_bytes(hash.to_ne_bytes())
    }
}

/// The statements, with the table names filled in.
#[derive(Debug)]
struct Sql {
    load: String,
    save: String,
    found: String,
    delete: String,
    keys: String,
    acquire: String,
    release: String,
    renew: String,
}

impl Sql {
    fn new(t: &Tables) -> Self {
        let (entries, lease) = (&t.entries, &t.lease);
        Self {
            load: format!("SELECT entry FROM {entries} WHERE key = $1"),
            keys: format!("SELECT key FROM {entries} WHERE starts_with(key, $1)"),
            // $1 key, $2 encoded entry, $3 expected version, $4 channel, $5 payload, $6 the
            // digest of the new refresh material, $7 the saver's lease holder (NULL: not
            // fenced), $8 its fence, $9 the digest of the material a rotation replaces (NULL:
            // not a rotation), $10 the digest of "no material".
            // One statement: the update (expected > 0) or the insert (expected = 0) happens
            // only over the expected version and while the fence allows it, and the
            // notification only if it did.
            save: format!(
                "WITH ok AS (
                    SELECT ($7::text IS NULL
                        OR EXISTS (SELECT 1 FROM {lease} WHERE key = $1 AND holder = $7
                                   AND fence = $8 AND expires_at > now())
                        OR ($9::bytea IS NOT NULL AND $9 = coalesce(
                              (SELECT refresh_hash FROM {entries} WHERE key = $1),
                              CASE WHEN NOT EXISTS (SELECT 1 FROM {entries} WHERE key = $1)
                                   THEN $10::bytea END))) AS allowed
                ), upd AS (
                    UPDATE {entries} SET version = version + 1, entry = $2, refresh_hash = $6,
                                         updated_at = now()
                    WHERE key = $1 AND version = $3 AND $3 > 0 AND (SELECT allowed FROM ok)
                    RETURNING version
                ), ins AS (
                    INSERT INTO {entries} (key, version, entry, refresh_hash)
                    SELECT $1, 1, $2, $6 WHERE $3 = 0 AND (SELECT allowed FROM ok)
                    ON CONFLICT (key) DO NOTHING
                    RETURNING version
                ), new AS (
                    SELECT version FROM upd UNION ALL SELECT version FROM ins
                )
                SELECT (SELECT version FROM new) AS new,
                       (SELECT version FROM {entries} WHERE key = $1) AS found,
                       (SELECT count(pg_notify($4, $5)) FROM new) AS notified,
                       (SELECT allowed FROM ok) AS allowed"
            ),
            found: format!("SELECT version FROM {entries} WHERE key = $1"),
            delete: format!("DELETE FROM {entries} WHERE key = $1"),
            // $1 key, $2 holder, $3 TTL in seconds. Taken when there is no lease or the
            // current one has expired by the server's clock; every taking bumps the fence.
            // When not taken, `remaining` is how long the current lease still runs.
            acquire: format!(
                "WITH taken AS (
                    INSERT INTO {lease} AS l (key, holder, fence, expires_at)
                    VALUES ($1, $2, 1, now() + make_interval(secs => $3))
                    ON CONFLICT (key) DO UPDATE
                    SET holder = EXCLUDED.holder, fence = l.fence + 1, expires_at = EXCLUDED.expires_at
                    WHERE l.expires_at <= now()
                    RETURNING fence
                )
                SELECT (SELECT fence FROM taken) AS fence,
                       (SELECT extract(epoch FROM expires_at - now())::float8
                          FROM {lease} WHERE key = $1) AS remaining"
            ),
            // $1 key, $2 holder, $3 fence, $4 channel, $5 payload.
            release: format!(
                "WITH freed AS (
                    UPDATE {lease} SET expires_at = now()
                    WHERE key = $1 AND holder = $2 AND ($3::bigint IS NULL OR fence = $3)
                    RETURNING key
                )
                SELECT count(pg_notify($4, $5)) FROM freed"
            ),
            // $1 key, $2 holder, $3 fence, $4 TTL in seconds.
            renew: format!(
                "UPDATE {lease} SET expires_at = now() + make_interval(secs => $4)
                 WHERE key = $1 AND holder = $2 AND fence = $3 AND expires_at > now()
                 RETURNING fence"
            ),
        }
    }
}

/// A token store in PostgreSQL, for a fleet that runs PostgreSQL but no Redis (feature
/// `postgres`).
///
/// * Entries: one row per key in `<table>` (default `kunci_tokens`): the version and the
///   encoded entry (the document of `docs/stores.md`, encrypted when a [`Cipher`] is set).
///   [`save`](TokenStore::save) is one statement that updates (or inserts, for version 0)
///   only over the expected version.
/// * The refresh lock is a lease row in `<table>_lease`: holder, fence and an expiry computed
///   by the **server's** `now()`, so clients' clocks do not matter. Waiters `LISTEN` on the
///   channel named after the table and are woken by the `NOTIFY` sent when the holder
///   releases or saves; they also try again when the holder's lease runs out, and at least
///   every [`PostgresOptions::lock_poll_max`].
/// * The schema is created and migrated by the store itself, under an advisory lock, and its
///   version recorded in `<table>_schema`.
///
/// Every operation is bounded by [`PostgresOptions::timeout`]; when the server cannot be
/// reached the store answers [`StoreError::Unavailable`], and the pool reconnects once it
/// returns. Cloning is cheap; clones share the pool and the listening connection.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: Config,
    tls: MakeRustlsConnect,
    options: PostgresOptions,
    tables: Tables,
    sql: Sql,
    described: String,
    waiters: Arc<Waiters>,
    listener: OnceLock<Listener>,
}

/// The listening task's handle: dropping it (with the store) ends the task.
struct Listener {
    listening: watch::Receiver<bool>,
    _stop: oneshot::Sender<()>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.inner.described)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// What a URL's `sslmode` (and its absence) means here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tls {
    /// `sslmode=disable`, or no `sslmode` and every host on this machine.
    Off,
    /// `sslmode=prefer`: TLS if the server offers it (then verified), plain text if not.
    Prefer,
    /// `require`, `verify-ca`, `verify-full`, or no `sslmode` and a host elsewhere.
    Required,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://` or `postgresql://`, as libpq reads it), creates or
    /// migrates the schema, and returns the store. A `kunci_table=NAME` query parameter
    /// overrides [`PostgresOptions::table`], so a store named by a string alone
    /// (`KUNCI_STORE`, `--store`) can choose its table too.
    ///
    /// TLS: with no `sslmode`, a server on this machine (loopback address, `localhost`, a Unix
    /// socket) is reached in plain text and any other server only over TLS. `sslmode=disable`,
    /// `prefer` and `require` are honoured, `verify-ca` and `verify-full` mean `require`.
    /// Whenever TLS is used the certificate and host name are verified — against the
    /// platform's roots, or only the certificates in the file named by `sslrootcert=PATH` —
    /// and a certificate that does not verify fails the connection; it never falls back to
    /// plain text.
    ///
    /// # Errors
    /// [`StoreError::Configuration`] for a URL, table name or `sslrootcert` that cannot be
    /// used, or a schema newer than this kunci; [`StoreError::Unavailable`] when the server
    /// cannot be reached within [`PostgresOptions::timeout`]. Messages never contain the
    /// password.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let described = redact_url(url);
        let (config, tls, table) = parse_url(url, &described, options.timeout)?;
        let mut options = options;
        if let Some(table) = table {
            options.table = table;
        }
        let tables = Tables::parse(&options.table)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| StoreError::Configuration {
                message: format!("cannot build the PostgreSQL connection pool: {e}"),
            })?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                config,
                tls,
                sql: Sql::new(&tables),
                tables,
                described,
                options,
                waiters: Arc::default(),
                listener: OnceLock::new(),
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The table of entries, quoted and qualified as it is used in SQL.
    pub fn entries_table(&self) -> &str {
        &self.inner.tables.entries
    }

    /// The table of refresh leases, quoted and qualified.
    pub fn lease_table(&self) -> &str {
        &self.inner.tables.lease
    }

    /// The table recording the schema version, quoted and qualified.
    pub fn schema_table(&self) -> &str {
        &self.inner.tables.versions
    }

    /// The schema version this kunci creates and expects.
    pub const SCHEMA_VERSION: i32 = SCHEMA_VERSION;

    /// Creates the tables, or migrates them to [`SCHEMA_VERSION`](Self::SCHEMA_VERSION),
    /// inside one transaction holding an advisory lock, so processes starting at once
    /// neither race nor see half a schema.
    async fn migrate(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let t = &inner.tables;
        let work = async {
            let mut client = inner.pool.get().await.map_err(|e| self.pool_error(e))?;
            let tx = client
                .transaction()
                .await
                .map_err(|e| self.error("starting the migration", &e))?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&t.migration_lock_key()],
            )
            .await
            .map_err(|e| self.error("taking the migration lock", &e))?;
            if let Some(schema) = &t.schema {
                let exists = tx
                    .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[schema])
                    .await
                    .map_err(|e| self.error("looking up the schema", &e))?
                    .is_some();
                if !exists {
                    tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
                        .await
                        .map_err(|e| self.error("creating the schema", &e))?;
                }
            }
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    version    integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )",
                t.versions
            ))
            .await
            .map_err(|e| self.error("creating the schema version table", &e))?;
            let current: i32 = tx
                .query_one(
                    &format!("SELECT coalesce(max(version), 0) FROM {}", t.versions),
                    &[],
                )
                .await
                .map_err(|e| self.error("reading the schema version", &e))?
                .get(0);
            if current > SCHEMA_VERSION {
                return Err(StoreError::Configuration {
                    message: format!(
                        "the PostgreSQL table `{}` has schema version {current}, newer than this kunci understands ({SCHEMA_VERSION}); upgrade kunci",
                        t.name
                    ),
                });
            }
            for (from, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                let sql = migration
                    .replace("{entries}", &t.entries)
                    .replace("{lease}", &t.lease);
                tx.batch_execute(&sql)
                    .await
                    .map_err(|e| self.error("migrating the schema", &e))?;
                let to = i32::try_from(from + 1).unwrap_or(i32::MAX);
                tx.execute(
                    &format!("INSERT INTO {} (version) VALUES ($1)", t.versions),
                    &[&to],
                )
                .await
                .map_err(|e| self.error("recording the schema version", &e))?;
                tracing::info!(table = %t.name, version = to, "token store schema migrated");
            }
            // The lease table is UNLOGGED: a lease is seconds of coordination, not data, and
            // a write to a logged table waits for the WAL flush at commit (an `fdatasync`,
            // milliseconds on a busy disk, twice per hand-over). Not a schema version: older
            // kuncis use the table alike, and it is made so on every start.
            let logged: bool = tx
                .query_one(
                    "SELECT relpersistence = 'p' FROM pg_class WHERE oid = $1::text::regclass",
                    &[&t.lease],
                )
                .await
                .map_err(|e| self.error("reading the lease table's persistence", &e))?
                .get(0);
            if logged {
                tx.batch_execute(&format!("ALTER TABLE {} SET UNLOGGED", t.lease))
                    .await
                    .map_err(|e| self.error("making the lease table unlogged", &e))?;
                tracing::info!(table = %t.name, "the refresh lease table is now unlogged");
            }
            tx.commit()
                .await
                .map_err(|e| self.error("committing the migration", &e))
        };
        // A migration may wait for another process's; allow it more than one operation.
        bounded(
            inner.options.timeout.saturating_mul(5),
            &inner.described,
            "creating or migrating the schema",
            work,
        )
        .await
    }

    fn error(&self, what: &str, e: &tokio_postgres::Error) -> StoreError {
        classify(&self.inner.described, what, e)
    }

    fn pool_error(&self, e: PoolError) -> StoreError {
        pool_error(&self.inner.described, e)
    }

    async fn run<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        bounded(self.inner.options.timeout, &self.inner.described, what, fut).await
    }

    /// Runs one prepared statement on a pooled connection.
    async fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.run(what, async {
            let client = self
                .inner
                .pool
                .get()
                .await
                .map_err(|e| self.pool_error(e))?;
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(|e| self.error(what, &e))?;
            client
                .query(&statement, params)
                .await
                .map_err(|e| self.error(what, &e))
        })
        .await
    }

    /// The channel notifications are sent on: the table's name as configured.
    fn channel(&self) -> &str {
        &self.inner.tables.name
    }

    /// Starts the listening connection on first use, and waits (within the timeout) until it
    /// listens, so the first waiter does not miss the first release.
    async fn listening(&self) {
        let inner = &self.inner;
        let listener = inner.listener.get_or_init(|| {
            let (listening_tx, listening) = watch::channel(false);
            let (stop, stopped) = oneshot::channel();
            tokio::spawn(listen(
                inner.config.clone(),
                inner.tls.clone(),
                self.channel().to_owned(),
                Arc::clone(&inner.waiters),
                listening_tx,
                stopped,
                inner.options.timeout,
            ));
            Listener {
                listening,
                _stop: stop,
            }
        });
        let mut listening = listener.listening.clone();
        let _ = tokio::time::timeout(inner.options.timeout, listening.wait_for(|up| *up)).await;
    }

    async fn try_acquire(
        &self,
        key: &StoreKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<Result<i64, Duration>, StoreError> {
        let seconds = ttl.min(MAX_LEASE).as_secs_f64().max(0.001);
        let rows = self
            .query(
                "taking the refresh lease",
                &self.inner.sql.acquire,
                &[&key.as_str(), &holder, &seconds],
            )
            .await?;
        let row = rows.first().ok_or_else(|| self.unexpected("the lease"))?;
        let fence: Option<i64> = row.get(0);
        let remaining: Option<f64> = row.get(1);
        Ok(match fence {
            Some(fence) => Ok(fence),
            None => Err(
                Duration::try_from_secs_f64(remaining.unwrap_or(0.0).max(0.0)).unwrap_or(MAX_LEASE),
            ),
        })
    }

    fn unexpected(&self, what: &str) -> StoreError {
        StoreError::Other {
            message: format!(
                "PostgreSQL at {}: unexpected answer about {what}",
                self.inner.described
            ),
            source: None,
        }
    }
}

/// Parses and checks the URL, and builds the TLS connector its `sslmode` calls for; returns
/// the table the URL names (`kunci_table=`), if any.
fn parse_url(
    url: &str,
    described: &str,
    timeout: Duration,
) -> Result<(Config, MakeRustlsConnect, Option<String>), StoreError> {
    let bad = |why: String| StoreError::Configuration {
        message: format!("cannot use the PostgreSQL URL `{described}`: {why}"),
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad(
            "it must start with postgres:// or postgresql://".to_owned()
        ));
    }
    // `sslrootcert` and the `verify-*` modes are libpq's, not tokio-postgres's: take them out.
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut sslmode = None;
    let mut rootcert = None;
    let mut table = None;
    let mut kept = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "sslmode" => sslmode = Some(value.into_owned()),
            "sslrootcert" => rootcert = Some(PathBuf::from(value.into_owned())),
            "kunci_table" => table = Some(value.into_owned()),
            _ => {
                kept.append_pair(&name, &value);
            }
        }
    }
    let kept = kept.finish();
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{kept}")
    };
    let mut config = Config::from_str(&rebuilt).map_err(|e| bad(e.to_string()))?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(bad("it names no host".to_owned()));
    }
    let tls = match sslmode.as_deref() {
        Some("disable") => Tls::Off,
        Some("prefer" | "allow") => Tls::Prefer,
        Some("require" | "verify-ca" | "verify-full") => Tls::Required,
        Some(other) => {
            return Err(bad(format!(
                "sslmode `{}` is not one of disable, prefer, require, verify-ca, verify-full",
                other.escape_debug()
            )));
        }
        None if all_local(&config) => Tls::Off,
        None => Tls::Required,
    };
    config.ssl_mode(match tls {
        Tls::Off => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        Tls::Required => SslMode::Require,
    });
    if tls == Tls::Off && !all_local(&config) {
        tracing::warn!(url = %described, "the PostgreSQL store connects to another host without TLS (sslmode=disable)");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("kunci");
    }
    let tls = tls_connector(rootcert.as_deref()).map_err(bad)?;
    Ok((config, tls, table))
}

/// Whether every host the configuration names is on this machine.
fn all_local(config: &Config) -> bool {
    let addrs = config.get_hostaddrs();
    if !addrs.is_empty() {
        return addrs.iter().all(IpAddr::is_loopback);
    }
    config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    })
}

fn tls_connector(rootcert: Option<&std::path::Path>) -> Result<MakeRustlsConnect, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS ({e})"))?;
    let config = match rootcert {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("cannot read sslrootcert {} ({e})", path.display()))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert {} holds no usable certificate",
                    path.display()
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("cannot load the platform's certificate roots ({e})"))?;
            builder
                .dangerous()
                // Not a weakening: the platform's verifier checks the chain and host name.
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Errors that mean "the server cannot be used now": retry later.
fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: an I/O, TLS or protocol failure of the connection itself.
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            // 08: connection exception; 53: insufficient resources; 57: operator
            // intervention (shutdown, cancel, cannot connect now); 40: serialization
            // failure or deadlock, which a retry resolves.
            matches!(class, "08" | "53" | "57" | "40") || *code == SqlState::LOCK_NOT_AVAILABLE
        }
    }
}

/// Errors a retry cannot fix: the login is refused (class 28), the database does not exist
/// (3D000), or the user may not do what the store needs (42501, e.g. create its tables).
fn is_misconfigured(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        code.code().starts_with("28")
            || *code == SqlState::INVALID_CATALOG_NAME
            || *code == SqlState::INSUFFICIENT_PRIVILEGE
    })
}

fn classify(described: &str, what: &str, e: &tokio_postgres::Error) -> StoreError {
    if let Some(tls) = tls_failure(e) {
        // A certificate that does not verify will not verify on the next try either.
        return StoreError::Configuration {
            message: format!(
                "PostgreSQL at {described}: {what} failed: the server's TLS certificate was refused ({tls}); name the CA with sslrootcert=PATH, or fix the server's certificate"
            ),
        };
    }
    // The server's message (never its DETAIL, which may quote row values) and its SQLSTATE.
    let why = match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None if e.is_closed() => "the connection is closed".to_owned(),
        None => e.to_string(),
    };
    let message = format!("PostgreSQL at {described}: {what} failed ({why})");
    if is_misconfigured(e) {
        return StoreError::Configuration { message };
    }
    let source = Some(Box::new(std::io::Error::other(why)) as Box<_>);
    if is_unavailable(e) {
        StoreError::Unavailable { message, source }
    } else {
        StoreError::Other { message, source }
    }
}

/// The rustls error behind a failed connection, if TLS is what failed.
fn tls_failure(e: &tokio_postgres::Error) -> Option<rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cause {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls.clone());
        }
        cause = err.source();
    }
    None
}

fn pool_error(described: &str, e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => classify(described, "connecting", &e),
        PoolError::Timeout(_) => StoreError::unavailable(
            format!("PostgreSQL at {described}: no connection within the timeout"),
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        ),
        other => StoreError::Unavailable {
            message: format!("PostgreSQL at {described}: no connection ({other})"),
            source: None,
        },
    }
}

async fn bounded<T>(
    timeout: Duration,
    described: &str,
    what: &str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::unavailable(
            format!("PostgreSQL at {described}: {what} did not finish within {timeout:?}"),
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        )),
    }
}

/// The listening connection: `LISTEN <channel>`, wakes the waiters of the key each
/// notification names, reconnects with back-off when the connection ends, and wakes every
/// waiter whenever it (re)connects or loses its connection, since a notification may have
/// been missed meanwhile. Ends when the store is dropped.
async fn listen(
    config: Config,
    tls: MakeRustlsConnect,
    channel: String,
    waiters: Arc<Waiters>,
    listening: watch::Sender<bool>,
    stop: oneshot::Receiver<()>,
    timeout: Duration,
) {
    let session = || listen_once(&config, &tls, &channel, &waiters, &listening, timeout);
    crate::waiters::resubscribe(&waiters, &listening, stop, "listening", &channel, session).await;
}

/// One listening connection, until it fails.
async fn listen_once(
    config: &Config,
    tls: &MakeRustlsConnect,
    channel: &str,
    waiters: &Waiters,
    listening: &watch::Sender<bool>,
    timeout: Duration,
) -> Result<(), String> {
    let (client, mut connection) = tokio::time::timeout(timeout, config.connect(tls.clone()))
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    // The connection is driven here so that its notifications reach us (a spawned
    // `Connection` future would drop them).
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(|cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let _abort = AbortOnDrop(driver);
    let quoted = format!("\"{channel}\"");
    tokio::time::timeout(timeout, client.batch_execute(&format!("LISTEN {quoted}")))
        .await
        .map_err(|_| "LISTEN timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    listening.send_replace(true);
    // Whatever happened before we listened is unknown: every waiter checks again.
    waiters.wake_all();
    loop {
        tokio::select! {
            payload = notifications.recv() => match payload {
                Some(payload) => {
                    // `r:<key>` (released) or `s:<key>` (saved).
                    waiters.wake_payload(&payload);
                }
                None => return Err("the connection ended".to_owned()),
            },
            () = tokio::time::sleep(LISTENER_PING) => {
                tokio::time::timeout(timeout, client.simple_query(""))
                    .await
                    .map_err(|_| "the listening connection stopped answering".to_owned())?
                    .map_err(|e| e.to_string())?;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The refresh lock of a [`PostgresStore`]: a lease row (holder, fence, expiry by the
/// server's clock). Released by [`release`](StoreLock::release), which frees the row only if
/// this holder still holds it and notifies the waiters; dropped without release, it is
/// released in the background; if its process dies, the lease expires.
pub struct PostgresLock {
    store: PostgresStore,
    key: StoreKey,
    holder: String,
    fence: i64,
    /// The life last asked for (at acquisition, then by each renewal), in milliseconds: how
    /// long a release that failed is retried in the background.
    life: Life,
    released: bool,
}

impl fmt::Debug for PostgresLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLock")
            .field("key", &self.key)
            .field("holder", &self.holder)
            .field("fence", &self.fence)
            .finish()
    }
}

impl PostgresLock {
    /// This holder's identity in the lease row: `<pid>-<128 random bits>`.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing token: every taking of a key's lease gets a larger one than the taking
    /// before it — except after a server crash, which empties the lease table (it is
    /// `UNLOGGED`): numbering starts again, and only the holder tells an old lease from a new
    /// one (a fenced save checks both).
    pub fn fence(&self) -> u64 {
        u64::try_from(self.fence).unwrap_or(0)
    }

    /// Extends the lease to `ttl` from now (by the server's clock), if this holder still holds
    /// it. Returns `false` when the lease had already expired (another holder may have it).
    pub async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        let seconds = ttl.min(MAX_LEASE).as_secs_f64().max(0.001);
        let rows = self
            .store
            .query(
                "renewing the refresh lease",
                &self.store.inner.sql.renew,
                &[&self.key.as_str(), &self.holder, &self.fence, &seconds],
            )
            .await?;
        if !rows.is_empty() {
            self.life.renewed(ttl.min(MAX_LEASE));
        }
        Ok(!rows.is_empty())
    }

    /// Frees this lease in the background once the store answers (within its life).
    fn free_later(&mut self) {
        let life = self.life.get();
        let holder = std::mem::take(&mut self.holder);
        Self::free_in_background(&self.store, &self.key, holder, Some(self.fence), life);
    }

    /// [`free`](Self::free) retried in the background until the store answers, within `life`.
    fn free_in_background(
        store: &PostgresStore,
        key: &StoreKey,
        holder: String,
        fence: Option<i64>,
        life: Duration,
    ) {
        let (store, key) = (store.clone(), key.clone());
        crate::release::free_in_background(format!("{key} ({holder})"), life, move || {
            let (store, key, holder) = (store.clone(), key.clone(), holder.clone());
            async move { Self::free(&store, &key, &holder, fence).await }
        });
    }

    /// Ends `holder`'s lease of `key` (with `fence`; `None`: whatever its fence — a holder's
    /// name is unique, so this frees no other holder's lease).
    async fn free(
        store: &PostgresStore,
        key: &StoreKey,
        holder: &str,
        fence: Option<i64>,
    ) -> Result<bool, StoreError> {
        let payload = format!("r:{key}");
        let rows = store
            .query(
                "releasing the refresh lease",
                &store.inner.sql.release,
                &[&key.as_str(), &holder, &fence, &store.channel(), &payload],
            )
            .await?;
        let freed: i64 = rows.first().map_or(0, |row| row.get(0));
        Ok(freed > 0)
    }
}

#[async_trait]
impl StoreLock for PostgresLock {
    async fn release(mut self: Box<Self>) -> Result<(), StoreError> {
        self.released = true;
        let answer = Self::free(&self.store, &self.key, &self.holder, Some(self.fence)).await;
        let lease = self.key.to_string();
        settle(&lease, answer, || self.free_later())
    }

    async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        PostgresLock::renew(self, ttl).await
    }

    fn lease(&self) -> Option<Lease> {
        Some(Lease {
            holder: self.holder.clone(),
            fence: self.fence(),
        })
    }
}

impl Drop for PostgresLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Dropped without release (a refresh that was cancelled): free it in the background
        // rather than keep the fleet waiting for the whole TTL.
        self.free_later();
    }
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError> {
        let rows = self
            .query("loading an entry", &self.inner.sql.load, &[&key.as_str()])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let bytes: &[u8] = row.get(0);
        codec::decode(key, bytes, self.inner.options.cipher.as_ref())
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                message: format!(
                    "PostgreSQL table `{}`, key `{key}` at {}: {e}",
                    self.inner.tables.name, self.inner.described
                ),
                source: None,
            })
    }

    /// Sorted here, byte-wise, not by the database's collation.
    async fn keys(&self, prefix: &str) -> Result<Vec<StoreKey>, StoreError> {
        let rows = self
            .query("listing entries", &self.inner.sql.keys, &[&prefix])
            .await?;
        let mut keys: Vec<StoreKey> = rows
            .iter()
            .filter_map(|row| StoreKey::new(row.get::<_, &str>(0)).ok())
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }

    async fn save(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
    ) -> Result<u64, StoreError> {
        self.save_statement(key, entry, expected, &Fence::default())
            .await
    }

    /// The compare-and-swap with, in the same statement, the check that the lease row still
    /// names the saver (holder and fence, unexpired by the server's clock) — or, for a
    /// rotation, that the stored refresh material's digest (`refresh_hash`) is the one the
    /// rotation replaces.
    async fn save_fenced(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
        fence: &Fence,
    ) -> Result<u64, StoreError> {
        self.save_statement(key, entry, expected, fence).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.query(
            "deleting an entry",
            &self.inner.sql.delete,
            &[&key.as_str()],
        )
        .await?;
        Ok(())
    }

    /// Takes the key's lease (see [`PostgresStore::lease`]).
    async fn lock(&self, key: &StoreKey, ttl: Duration) -> Result<Box<dyn StoreLock>, StoreError> {
        Ok(Box::new(self.lease(key, ttl).await?))
    }

    fn describe(&self) -> String {
        let table = &self.inner.tables.name;
        match &self.inner.options.cipher {
            Some(cipher) => format!(
                "{} (table `{table}`, encrypted, key id {})",
                self.inner.described,
                cipher.key_id()
            ),
            None => format!("{} (table `{table}`)", self.inner.described),
        }
    }
}

impl PostgresStore {
    /// Takes the key's refresh lease for `ttl` (by the server's clock; at most a week) — what
    /// [`lock`](TokenStore::lock) does, returning the lease itself with its holder and fence.
    ///
    /// While another holder has it, waits for a notification, for the holder's lease to run
    /// out, or [`PostgresOptions::lock_poll_max`], whichever comes first, and tries again.
    pub async fn lease(&self, key: &StoreKey, ttl: Duration) -> Result<PostgresLock, StoreError> {
        let holder = format!(
            "{}-{:016x}{:016x}",
            std::process::id(),
            fastrand::u64(..),
            fastrand::u64(..)
        );
        let notify = self.inner.waiters.of(key.as_str());
        let mut listening_started = false;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before the attempt, so a release right after it is not missed.
            notified.as_mut().enable();
            let attempt = match self.try_acquire(key, &holder, ttl).await {
                Ok(attempt) => attempt,
                Err(e) => {
                    // No answer: the statement may have run and its reply been lost, so free
                    // what it may have taken once the store answers. Any other error is an
                    // answer (a refused privilege, a malformed reply): nothing was taken.
                    if matches!(e, StoreError::Unavailable { .. }) {
                        let life = ttl.min(MAX_LEASE);
                        PostgresLock::free_in_background(self, key, holder, None, life);
                    }
                    return Err(e);
                }
            };
            match attempt {
                Ok(fence) => {
                    return Ok(PostgresLock {
                        store: self.clone(),
                        key: key.clone(),
                        holder,
                        fence,
                        life: Life::new(ttl.min(MAX_LEASE)),
                        released: false,
                    });
                }
                Err(remaining) => {
                    if !listening_started {
                        // Only a lock that has to wait needs the listener.
                        listening_started = true;
                        self.listening().await;
                        continue;
                    }
                    let wait = remaining
                        .saturating_add(Duration::from_millis(1))
                        .min(self.inner.options.lock_poll_max);
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    async fn save_statement(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
        fence: &Fence,
    ) -> Result<u64, StoreError> {
        // The column is a bigint: a larger expected version cannot be the stored one.
        let Ok(expected_db) = i64::try_from(expected) else {
            let found = self.found(key).await?;
            return Err(StoreError::Conflict {
                key: key.clone(),
                expected,
                found,
            });
        };
        let version = expected + 1;
        let bytes = codec::encode(key, entry, version, self.inner.options.cipher.as_ref())
            .map_err(|e| StoreError::other(format!("cannot encode the entry for `{key}`"), e))?;
        let payload = format!("s:{key}");
        let new_hash = RefreshDigest::of(key, entry.refresh.as_ref());
        let none_hash = RefreshDigest::of(key, None);
        let holder = fence.lease.as_ref().map(|l| l.holder.as_str());
        let fence_no = fence
            .lease
            .as_ref()
            .map_or(0, |l| i64::try_from(l.fence).unwrap_or(i64::MAX));
        let rotation_of = fence.rotation_of.as_ref().map(|d| &d.as_bytes()[..]);
        let rows = self
            .query(
                "saving an entry",
                &self.inner.sql.save,
                &[
                    &key.as_str(),
                    &&**bytes,
                    &expected_db,
                    &self.channel(),
                    &payload,
                    &&new_hash.as_bytes()[..],
                    &holder,
                    &fence_no,
                    &rotation_of,
                    &&none_hash.as_bytes()[..],
                ],
            )
            .await?;
        let row = rows.first().ok_or_else(|| self.unexpected("the save"))?;
        let new: Option<i64> = row.get(0);
        let found: Option<i64> = row.get(1);
        let allowed: Option<bool> = row.get(3);
        if let Some(new) = new {
            return Ok(u64::try_from(new).unwrap_or(version));
        }
        let mut found = found.map_or(0, |v| u64::try_from(v).unwrap_or(0));
        if found == expected {
            if allowed == Some(false) {
                return Err(StoreError::LeaseLost { key: key.clone() });
            }
            // The statement's snapshot predates the write that beat it: read what is there now.
            found = self.found(key).await?;
        }
        Err(StoreError::Conflict {
            key: key.clone(),
            expected,
            found,
        })
    }

    async fn found(&self, key: &StoreKey) -> Result<u64, StoreError> {
        let rows = self
            .query("reading a version", &self.inner.sql.found, &[&key.as_str()])
            .await?;
        Ok(rows
            .first()
            .map_or(0, |row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_validated() {
        let t = Tables::parse("kunci_tokens").unwrap();
        assert_eq!(t.entries, "\"kunci_tokens\"");
        assert_eq!(t.lease, "\"kunci_tokens_lease\"");
        assert_eq!(t.versions, "\"kunci_tokens_schema\"");
        let t = Tables::parse("auth.tokens").unwrap();
        assert_eq!(t.entries, "\"auth\".\"tokens\"");
        assert_eq!(t.lease, "\"auth\".\"tokens_lease\"");
        for bad in [
            "",
            "Tokens",
            "1tokens",
            "tok ens",
            "tokens; DROP TABLE x",
            "a.b.c",
            ".tokens",
            "auth.",
            "tok\"ens",
            &"x".repeat(57),
        ] {
            let err = Tables::parse(bad).unwrap_err();
            assert!(
                matches!(err, StoreError::Configuration { .. }),
                "{bad}: {err}"
            );
        }
        assert!(Tables::parse(&"x".repeat(56)).is_ok());
    }

    #[test]
    fn migration_lock_keys_are_stable_and_per_table() {
        let a = Tables::parse("kunci_tokens").unwrap().migration_lock_key();
        assert_eq!(
            a,
            Tables::parse("kunci_tokens").unwrap().migration_lock_key()
        );
        assert_ne!(a, Tables::parse("other").unwrap().migration_lock_key());
    }

    #[test]
    fn sslmode_defaults_to_plain_text_on_this_machine_and_tls_elsewhere() {
        let mode = |url: &str| {
            parse_url(url, "x", Duration::from_secs(1))
                .map(|(c, _, _)| c.get_ssl_mode())
                .unwrap()
        };
        assert_eq!(mode("postgres://u@127.0.0.1/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@localhost:5433/db"), SslMode::Disable);
        assert_eq!(mode("postgresql://u@[::1]/db"), SslMode::Disable);
        assert_eq!(
            mode("postgres://u@%2Frun%2Fpostgresql/db"),
            SslMode::Disable
        );
        assert_eq!(mode("postgres://u@db.internal/db"), SslMode::Require);
        assert_eq!(mode("postgres://u@10.1.2.3/db"), SslMode::Require);
        assert_eq!(
            mode("postgres://u@127.0.0.1/db?sslmode=require"),
            SslMode::Require
        );
        assert_eq!(
            mode("postgres://u@h/db?sslmode=verify-full"),
            SslMode::Require
        );
        assert_eq!(mode("postgres://u@h/db?sslmode=prefer"), SslMode::Prefer);
        assert_eq!(mode("postgres://u@h/db?sslmode=disable"), SslMode::Disable);
    }

    #[test]
    fn the_url_may_name_the_table() {
        let (config, _, table) = parse_url(
            "postgres://u@127.0.0.1/db?kunci_table=auth.tokens&application_name=x",
            "x",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(table.as_deref(), Some("auth.tokens"));
        assert_eq!(config.get_application_name(), Some("x"));
    }

    #[test]
    fn bad_urls_are_configuration_errors_without_the_password() {
        for url in [
            "mysql://u:hunter2@h/db",
            "postgres://u:hunter2@h/db?sslmode=bogus",
            "postgres://u:hunter2@h:notaport/db",
            "postgres://u:hunter2@h/db?sslrootcert=/nonexistent/ca.pem",
            "postgres://u:hunter2@h/db?unknown_option=1",
        ] {
            let Err(err) = parse_url(url, &redact_url(url), Duration::from_secs(1)) else {
                panic!("{url} was accepted");
            };
            assert!(
                matches!(err, StoreError::Configuration { .. }),
                "{url}: {err}"
            );
            let printed = format!("{err} {err:?}");
            assert!(!printed.contains("hunter2"), "{printed}");
        }
    }
}
