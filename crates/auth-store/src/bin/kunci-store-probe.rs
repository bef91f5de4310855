//! A test helper for auth-store's multi-process tests; not a user tool.
//!
//! * `kunci-store-probe fetch <store-dir> <counter-dir>` — waits until `<counter-dir>/go`
//!   exists, then asks a [`TokenManager`] backed by a [`FileStore`] for a token. The token
//!   source counts its calls in `<counter-dir>/count` under an OS lock and answers `tok-<n>`.
//!   Prints the token it got (a fake one, made up by the counter) on stdout.
//! * `kunci-store-probe fleet <store> <provider-dir> <latency-ms> <lease-ms> <lifetime-s>` —
//!   one process of a fleet: waits for `<provider-dir>/go`, asks a [`TokenManager`] on the
//!   store (`redis://…` with the key prefix in `KUNCI_PROBE_REDIS_PREFIX`, `postgres://…?
//!   kunci_table=…`, or a directory) for a token and prints `<token> fetches=N adopted=M`, or
//!   `error <kind> <message>`. The provider lives in `<provider-dir>`: it counts requests, checks
//!   the refresh material like a provider that revokes it once used (accepting nothing sent
//!   until the first rotation), rotates on receipt, writes `sent-<pid>` when a request of
//!   this process arrives, then answers after `<latency-ms>`.
//! * `kunci-store-probe serve <store> <provider-dir> <latency-ms> <lifetime-ms> <run-ms>` — a
//!   long-running process of a fleet, with the same provider: waits for `<provider-dir>/go`,
//!   then asks for a token every 10 ms for `<run-ms>`, refreshing in the second half of each
//!   token's life. Prints `token <ms> <token>` the first time it serves a token, `error <ms>
//!   <kind>` for each failed call, and at the end `done <last token> served=N errors=M
//!   reauth=R fetches=F adopted=A pending_save=B` (`<ms>`: milliseconds since the Unix epoch).
//! * `kunci-store-probe write-loop <store-dir>` — saves ever newer entries to one key until it
//!   is killed; the secret of version `n` is `v<n>-` followed by 8 KiB of padding, so a torn
//!   write would show.

use std::{
    error::Error,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use auth_core::{
    FetchRequest, Fetched, StoreKey, StoredEntry, Token, TokenManager, TokenStore as _, source,
};
use auth_store::FileStore;
use secrecy::{ExposeSecret as _, SecretString};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.to_string()),
    };
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["fetch", store, counter] => runtime.block_on(fetch(store.into(), counter.into())),
        ["write-loop", store] => runtime.block_on(write_loop(store.into())),
        ["fleet", store, dir, latency, lease, lifetime] => (|| {
            runtime.block_on(fleet(
                store,
                dir.into(),
                duration("latency", latency, Duration::from_millis)?,
                duration("lease", lease, Duration::from_millis)?,
                duration("lifetime", lifetime, Duration::from_secs)?,
            ))
        })(),
        ["serve", store, dir, latency, lifetime, run] => (|| {
            runtime.block_on(serve(
                store,
                dir.into(),
                duration("latency", latency, Duration::from_millis)?,
                duration("lifetime", lifetime, Duration::from_millis)?,
                duration("run", run, Duration::from_millis)?,
            ))
        })(),
        _ => Err(
            "usage: kunci-store-probe fetch <store-dir> <counter-dir> | fleet <store> <dir> <latency-ms> <lease-ms> <lifetime-s> | serve <store> <dir> <latency-ms> <lifetime-ms> <run-ms> | write-loop <store-dir>"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// `raw`, a whole number of the unit `unit` makes a duration of; `what` names it in the error.
fn duration(what: &str, raw: &str, unit: fn(u64) -> Duration) -> Result<Duration> {
    raw.parse()
        .map(unit)
        .map_err(|_| format!("{what} is a whole number, not {raw:?}").into())
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "kunci-store-probe: {message}");
    ExitCode::FAILURE
}

/// Increments the shared counter under an exclusive OS lock and returns the new value.
fn count(counter_dir: &Path) -> Result<u64> {
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(counter_dir.join("count.lock"))?;
    fs4::FileExt::lock(&lock)?;
    let path = counter_dir.join("count");
    let n = match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    } + 1;
    fs::write(&path, n.to_string())?;
    fs4::FileExt::unlock(&lock)?;
    Ok(n)
}

async fn fetch(store_dir: PathBuf, counter_dir: PathBuf) -> Result<()> {
    let go = counter_dir.join("go");
    for _ in 0..60_000 {
        if go.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let store = FileStore::new(store_dir)?;
    let source = source::from_fn("probe", move |request: FetchRequest| {
        let counter_dir = counter_dir.clone();
        async move {
            let n = tokio::task::spawn_blocking(move || count(&counter_dir))
                .await
                .map_err(|e| auth_core::Error::transient(e.to_string()))?
                .map_err(|e| auth_core::Error::transient(e.to_string()))?;
            // A slow provider widens the window in which the other processes ask too.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let expires = request.sent_at + Duration::from_secs(3600);
            Ok(Fetched::new(Token::bearer(
                SecretString::from(format!("tok-{n}")),
                request.sent_at,
                Some(expires),
            )?))
        }
    });
    let manager = TokenManager::builder(source)
        .store(store)
        .key(StoreKey::new("probe:shared")?)
        .build()?;
    let token = manager.token().await?;
    let stats = manager.stats();
    // The token is the counter's fake value; printing it is what the test checks.
    writeln!(
        std::io::stdout(),
        "{} fetches={} adopted={}",
        token.secret().expose_secret(),
        stats.fetches,
        stats.adopted
    )?;
    Ok(())
}

/// The provider of the fleet probe: one request under an OS lock on its state files.
fn provider_request(dir: &Path, sent: Option<&str>) -> Result<std::result::Result<u64, String>> {
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("provider.lock"))?;
    fs4::FileExt::lock(&lock)?;
    let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
    let n = read("count").map_or(Ok(0), |t| t.trim().parse::<u64>())? + 1;
    fs::write(dir.join("count"), n.to_string())?;
    let valid = read("valid");
    let outcome = if sent == valid.as_deref() {
        fs::write(dir.join("valid"), format!("r{n}"))?;
        Ok(n)
    } else {
        let rejected = read("rejected").map_or(Ok(0), |t| t.trim().parse::<u64>())? + 1;
        fs::write(dir.join("rejected"), rejected.to_string())?;
        Err("the refresh material was revoked".to_owned())
    };
    fs::write(
        dir.join(format!("sent-{}", std::process::id())),
        n.to_string(),
    )?;
    fs4::FileExt::unlock(&lock)?;
    Ok(outcome)
}

async fn open_store(spec: &str) -> Result<auth_core::SharedTokenStore> {
    #[cfg(feature = "redis")]
    if spec.starts_with("redis://") {
        let prefix = std::env::var("KUNCI_PROBE_REDIS_PREFIX").unwrap_or_else(|_| "probe:".into());
        let store = auth_store::RedisStore::connect(
            spec,
            auth_store::RedisOptions::default().prefix(prefix),
        )
        .await?;
        return Ok(store.into());
    }
    #[cfg(feature = "postgres")]
    if spec.starts_with("postgres://") {
        let store =
            auth_store::PostgresStore::connect(spec, auth_store::PostgresOptions::default())
                .await?;
        return Ok(store.into());
    }
    Ok(FileStore::new(spec)?.into())
}

/// Waits (at most a minute) until `<dir>/go` exists.
async fn wait_for_go(dir: &Path) {
    let go = dir.join("go");
    for _ in 0..60_000 {
        if go.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// The fleet's provider (see [`provider_request`]): answers `tok-<n>` living `lifetime` from
/// the moment the request was sent (an hour once `<dir>/settle` exists, so a fleet can be let
/// settle on one last token), with rotated refresh material `r<n>`, after `latency`.
fn provider(dir: PathBuf, latency: Duration, lifetime: Duration) -> auth_core::SharedTokenSource {
    auth_core::SharedTokenSource::new(source::from_fn("probe", move |request: FetchRequest| {
        let dir = dir.clone();
        async move {
            let sent = request
                .refresh
                .as_ref()
                .map(|r| r.expose_secret().to_owned());
            let settle = dir.join("settle").exists();
            let outcome =
                tokio::task::spawn_blocking(move || provider_request(&dir, sent.as_deref()))
                    .await
                    .map_err(|e| auth_core::Error::transient(e.to_string()))?
                    .map_err(|e| auth_core::Error::transient(e.to_string()))?;
            tokio::time::sleep(latency).await;
            let n = outcome.map_err(auth_core::Error::reauthentication_required)?;
            Ok(Fetched::rotated(
                Token::bearer(
                    SecretString::from(format!("tok-{n}")),
                    request.sent_at,
                    Some(request.sent_at + if settle { HOUR } else { lifetime }),
                )?,
                SecretString::from(format!("r{n}")),
            ))
        }
    }))
}

async fn fleet(
    store: &str,
    dir: PathBuf,
    latency: Duration,
    lease: Duration,
    lifetime: Duration,
) -> Result<()> {
    let store = open_store(store).await?;
    wait_for_go(&dir).await;
    let source = provider(dir, latency, lifetime);
    let mut policy = auth_core::RefreshPolicy::default();
    policy.refresh_timeout = Duration::from_secs(20);
    policy.lease_life = Some(lease);
    let manager = TokenManager::builder(source)
        .store(store)
        .policy(policy)
        .key(StoreKey::new("probe:fleet")?)
        .build()?;
    let mut out = std::io::stdout();
    match manager.token().await {
        Ok(token) => {
            let stats = manager.stats();
            // The token is the provider's fake value; printing it is what the test checks.
            writeln!(
                out,
                "{} fetches={} adopted={}",
                token.secret().expose_secret(),
                stats.fetches,
                stats.adopted
            )?;
        }
        Err(e) => writeln!(out, "error {:?} {e}", e.kind())?,
    }
    Ok(())
}

#[allow(
    clippy::disallowed_methods,
    reason = "the probe reports when each token was first served, in wall time"
)]
async fn serve(
    store: &str,
    dir: PathBuf,
    latency: Duration,
    lifetime: Duration,
    run: Duration,
) -> Result<()> {
    let store = open_store(store).await?;
    wait_for_go(&dir).await;
    let started = std::time::Instant::now();
    let source = provider(dir, latency, lifetime);
    let mut policy = auth_core::RefreshPolicy::default();
    policy.refresh_timeout = Duration::from_secs(20);
    policy.lease_life = Some(Duration::from_secs(2));
    // Refresh in the second half of each token's life, so a refresh has seconds to fail in
    // while the token is still valid.
    policy.refresh_ahead_ratio = 0.5;
    policy.jitter = 0.2;
    policy.min_refresh_interval = Duration::from_millis(200);
    policy.backoff_initial = Duration::from_millis(100);
    policy.backoff_max = Duration::from_secs(1);
    let manager = TokenManager::builder(source)
        .store(store)
        .policy(policy)
        .key(StoreKey::new("probe:fleet")?)
        .build()?;
    let mut out = std::io::stdout();
    let (mut served, mut errors, mut reauth) = (0u64, 0u64, 0u64);
    let mut last = String::new();
    while started.elapsed() < run {
        // Wall time, so the test can place each line against what it did when.
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        match manager.token().await {
            Ok(token) => {
                served += 1;
                let secret = token.secret().expose_secret();
                if secret != last {
                    // The provider's fake token; printing it is what the test checks.
                    writeln!(out, "token {ms} {secret}")?;
                    secret.clone_into(&mut last);
                }
            }
            Err(e) => {
                errors += 1;
                if e.kind() == auth_core::ErrorKind::ReauthenticationRequired {
                    reauth += 1;
                }
                writeln!(out, "error {ms} {:?}", e.kind())?;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = manager.stats();
    writeln!(
        out,
        "done {last} served={served} errors={errors} reauth={reauth} fetches={} adopted={} pending_save={}",
        stats.fetches, stats.adopted, stats.pending_save
    )?;
    Ok(())
}

async fn write_loop(store_dir: PathBuf) -> Result<()> {
    let store = FileStore::new(store_dir)?;
    let key = StoreKey::new("crash:loop")?;
    let padding = "x".repeat(8192);
    let issued = time::OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    loop {
        let current = store.load(&key).await?.map_or(0, |e| e.version);
        let version = current + 1;
        let token = Token::bearer(
            SecretString::from(format!("v{version}-{padding}")),
            issued,
            None,
        )?;
        let mut entry = StoredEntry::with_token(token);
        entry.refresh = Some(SecretString::from(format!("r{version}")));
        store.save(&key, &entry, current).await?;
    }
}
