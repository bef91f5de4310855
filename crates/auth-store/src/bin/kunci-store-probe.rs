//! A test helper for auth-store's multi-process tests; not a user tool.
//!
//! * `kunci-store-probe fetch <store-dir> <counter-dir>` — waits until `<counter-dir>/go`
//!   exists, then asks a [`TokenManager`] backed by a [`FileStore`] for a token. The token
//!   source counts its calls in `<counter-dir>/count` under an OS lock and answers `tok-<n>`.
//!   Prints the token it got (a fake one, made up by the counter) on stdout.
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
        _ => Err(
            "usage: kunci-store-probe fetch <store-dir> <counter-dir> | write-loop <store-dir>"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
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
