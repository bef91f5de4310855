//! The file store: one file per key in a private directory, written atomically, with a
//! cross-process advisory lock for the refresh.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Write as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use auth_core::{
    Clock as _, StoreError, StoreKey, StoreLock, StoredEntry, SystemClock, TokenStore,
};
use zeroize::Zeroizing;

use crate::{
    cipher::Cipher,
    codec::{self, DecodeError, next_version},
};

/// A token store in a directory of files: the default on one machine.
///
/// * One file per key, `<key>.json` (`:` in a key becomes `+`), holding a format-versioned
///   JSON document (see `docs/stores.md`), optionally encrypted by a [`Cipher`].
/// * The directory is created mode 0700 and every file mode 0600, from the start. An existing
///   directory must belong to the current user and must not be writable by group or others
///   (otherwise [`StoreError::Configuration`] names it and says how to fix it).
/// * Entries and lock files are opened without following symbolic links and without blocking,
///   and must be regular files: a link or a FIFO planted in the directory is refused, never
///   followed and never waited on.
/// * Every write goes to a temporary file in the same directory, is fsync-ed, renamed over the
///   entry and the directory is fsync-ed: a crash leaves the old entry or the new one.
/// * [`save`](TokenStore::save) is compare-and-swap on the version, under a short per-key
///   write lock (`<key>~write.lock`).
/// * [`lock`](TokenStore::lock) is an OS advisory lock on `<key>~refresh.lock`, so one process
///   refreshes and the others wait; the OS frees it when its holder dies, so `ttl` is not
///   needed.
/// * A file that is not a kunci entry is renamed to `<key>.json~corrupt-<unix time>` and
///   reported as [`StoreError::Corrupt`] naming both paths; it is never overwritten.
///
/// Cloning is cheap; clones share the directory and cipher.
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    cipher: Option<Cipher>,
    /// Wait for a held refresh lock by polling (the old behaviour) instead of blocking.
    polling_lock: bool,
}

/// The files of one key.
#[derive(Debug, Clone)]
struct Paths {
    dir: PathBuf,
    stem: String,
    entry: PathBuf,
}

impl Paths {
    fn new(dir: &Path, key: &StoreKey) -> Self {
        // Keys are `[A-Za-z0-9._:@-]`; `:` is not portable (Windows), `+` and `~` never occur
        // in a key, so the mapping is one-to-one and no key's files collide with another's.
        let stem = key.as_str().replace(':', "+");
        Self {
            dir: dir.to_owned(),
            entry: dir.join(format!("{stem}.json")),
            stem,
        }
    }

    /// The key whose entry file is `<stem>.json`: [`new`](Self::new)'s mapping backwards
    /// (`+` → `:`); `None` for a stem no key maps to.
    fn key_of(stem: &str) -> Option<StoreKey> {
        StoreKey::new(stem.replace('+', ":")).ok()
    }

    fn refresh_lock(&self) -> PathBuf {
        self.dir.join(format!("{}~refresh.lock", self.stem))
    }

    fn write_lock(&self) -> PathBuf {
        self.dir.join(format!("{}~write.lock", self.stem))
    }

    fn temp(&self) -> PathBuf {
        self.dir
            .join(format!("{}.json~tmp-{:016x}", self.stem, fastrand::u64(..)))
    }

    fn aside(&self) -> PathBuf {
        let ts = SystemClock::new().now().unix_timestamp();
        let first = self.dir.join(format!("{}.json~corrupt-{ts}", self.stem));
        if first.exists() {
            self.dir.join(format!(
                "{}.json~corrupt-{ts}-{:04x}",
                self.stem,
                fastrand::u16(..)
            ))
        } else {
            first
        }
    }
}

impl FileStore {
    /// A store in `dir`, created (with its missing parents) mode 0700 if it does not exist.
    ///
    /// An existing directory must belong to the current user and must not be writable by its
    /// group or others: another user could otherwise replace entries or plant links and
    /// FIFOs. Such a directory is refused with [`StoreError::Configuration`] naming it and the
    /// fix. One that others can only read is used, with a warning in the log (the entry files
    /// themselves are always 0600).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        if dir.as_os_str().is_empty() {
            return Err(StoreError::Configuration {
                message: "the store directory is empty: name a directory".to_owned(),
            });
        }
        create_private_dir(&dir).map_err(|e| create_error(&dir, e))?;
        check_trusted_dir(&dir)?;
        remove_stale_temp_files(&dir);
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                cipher: None,
                polling_lock: false,
            }),
        })
    }

    /// The platform's data directory for kunci: `$XDG_DATA_HOME/kunci` or
    /// `~/.local/share/kunci` on Linux, `~/Library/Application Support/kunci` on macOS,
    /// `%APPDATA%\kunci\data` on Windows.
    pub fn default_location() -> Result<PathBuf, StoreError> {
        directories::ProjectDirs::from("", "", "kunci").map(|dirs| dirs.data_dir().to_owned()).ok_or_else(|| {
            StoreError::Configuration {
                message: "no home directory is known, so there is no default token store location; pass a directory"
                    .to_owned(),
            }
        })
    }

    /// A store in [`default_location`](Self::default_location).
    pub fn open_default() -> Result<Self, StoreError> {
        Self::new(Self::default_location()?)
    }

    /// Encrypts every entry written from now on with `cipher`, and requires every entry read to
    /// be encrypted with it.
    #[must_use]
    pub fn with_cipher(self, cipher: Cipher) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: self.inner.dir.clone(),
                cipher: Some(cipher),
                polling_lock: self.inner.polling_lock,
            }),
        }
    }

    /// Waits for a held refresh lock by polling a non-blocking `flock` (2 ms doubling to
    /// 25 ms, jittered) instead of a blocking `flock` on a blocking thread: the behaviour
    /// before kernel wake-ups, kept for comparison (`cargo xtask bench fleet`).
    #[must_use]
    pub fn with_polling_lock(self, polling: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: self.inner.dir.clone(),
                cipher: self.inner.cipher.clone(),
                polling_lock: polling,
            }),
        }
    }

    /// The directory holding the entries.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The file holding `key`'s entry.
    pub fn entry_path(&self, key: &StoreKey) -> PathBuf {
        Paths::new(&self.inner.dir, key).entry
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::other("the file store task failed", e))?
    }
}

impl Inner {
    fn decode(&self, key: &StoreKey, bytes: &[u8]) -> Result<StoredEntry, DecodeError> {
        codec::decode(key, bytes, self.cipher.as_ref())
    }

    /// Reads the entry without any lock (rename makes every state a reader can see whole).
    fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError> {
        let paths = Paths::new(&self.dir, key);
        let Some(bytes) = read_if_exists(&paths.entry)? else {
            return Ok(None);
        };
        match self.decode(key, &bytes) {
            Ok(entry) => Ok(Some(entry)),
            Err(e) if e.is_malformed() => {
                // Set it aside under the write lock, after reading it again: a writer may have
                // replaced it meanwhile, and its new entry must not be moved away.
                let _guard = WriteLock::acquire(&paths)?;
                self.read_locked(key, &paths)
            }
            Err(e) => Err(corrupt(&paths.entry, &e, None)),
        }
    }

    /// Reads the entry while holding the write lock; a malformed file is moved aside.
    fn read_locked(
        &self,
        key: &StoreKey,
        paths: &Paths,
    ) -> Result<Option<StoredEntry>, StoreError> {
        let Some(bytes) = read_if_exists(&paths.entry)? else {
            return Ok(None);
        };
        match self.decode(key, &bytes) {
            Ok(entry) => Ok(Some(entry)),
            Err(e) if e.is_malformed() => {
                let aside = paths.aside();
                fs::rename(&paths.entry, &aside)
                    .and_then(|()| sync_dir(&paths.dir))
                    .map_err(|io| {
                        io_error(
                            format!(
                                "cannot move the corrupt entry {} aside",
                                paths.entry.display()
                            ),
                            io,
                        )
                    })?;
                tracing::error!(path = %paths.entry.display(), aside = %aside.display(), error = %e, "corrupt token store entry moved aside");
                Err(corrupt(&paths.entry, &e, Some(&aside)))
            }
            Err(e) => Err(corrupt(&paths.entry, &e, None)),
        }
    }

    fn save(&self, key: &StoreKey, entry: &StoredEntry, expected: u64) -> Result<u64, StoreError> {
        let paths = Paths::new(&self.dir, key);
        let _guard = WriteLock::acquire(&paths)?;
        let found = self.read_locked(key, &paths)?.map_or(0, |e| e.version);
        if found != expected {
            return Err(StoreError::Conflict {
                key: key.clone(),
                expected,
                found,
            });
        }
        let version = next_version(key, found)?;
        let bytes = codec::encode(key, entry, version, self.cipher.as_ref())
            .map_err(|e| StoreError::other(format!("cannot write {}", paths.entry.display()), e))?;
        write_atomic(&paths, &bytes)
            .map_err(|e| io_error(format!("cannot write {}", paths.entry.display()), e))?;
        Ok(version)
    }

    /// The keys of the entries in the directory under `prefix`: each `<stem>.json` file, its
    /// stem mapped back (`+` → `:`); lock, temporary and set-aside files are not entries.
    fn keys(&self, prefix: &str) -> Result<Vec<StoreKey>, StoreError> {
        let listing = match fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(format!("cannot list {}", self.dir.display()), e)),
        };
        let mut keys = Vec::new();
        for file in listing {
            let file =
                file.map_err(|e| io_error(format!("cannot list {}", self.dir.display()), e))?;
            let name = file.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(key) = Paths::key_of(stem).filter(|k| k.as_str().starts_with(prefix)) {
                keys.push(key);
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let paths = Paths::new(&self.dir, key);
        let _guard = WriteLock::acquire(&paths)?;
        match fs::remove_file(&paths.entry) {
            Ok(()) => sync_dir(&paths.dir)
                .map_err(|e| io_error(format!("cannot sync {}", paths.dir.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(
                format!("cannot delete {}", paths.entry.display()),
                e,
            )),
        }
    }
}

/// Refuses a store directory that another user owns or that group or others may write to.
#[cfg(unix)]
fn check_trusted_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(dir).map_err(|e| {
        io_error(
            format!("cannot inspect the store directory {}", dir.display()),
            e,
        )
    })?;
    if !meta.is_dir() {
        return Err(StoreError::Configuration {
            message: format!("the store location {} is not a directory", dir.display()),
        });
    }
    let me = current_uid();
    if meta.uid() != me {
        return Err(StoreError::Configuration {
            message: format!(
                "the store directory {} belongs to user id {}, not to this user (id {me}); kunci keeps tokens only in a directory of its own: choose another directory, or make this one yours (`chown {me} {}`)",
                dir.display(),
                meta.uid(),
                dir.display()
            ),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StoreError::Configuration {
            message: format!(
                "the store directory {} is writable by its group or by others (mode {mode:04o}), so another user could replace its entries: run `chmod 700 {}`",
                dir.display(),
                dir.display()
            ),
        });
    }
    if mode & 0o044 != 0 {
        tracing::warn!(dir = %dir.display(), mode = %format!("{mode:04o}"), "the token store directory can be listed by other users; consider mode 0700");
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_trusted_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// The effective user id of this process.
#[cfg(unix)]
#[allow(unsafe_code, reason = "geteuid has no preconditions and cannot fail")]
fn current_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and always succeeds.
    unsafe { libc::geteuid() }
}

/// A temporary file older than this was left by a writer that crashed (a write takes
/// milliseconds), and is removed when a store is opened.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Removes `*.json~tmp-*` files left by crashed writers. Best effort: failures are ignored,
/// and a file younger than [`STALE_TEMP_AGE`] may belong to a write in progress, so it stays.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemClock::new().now();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().contains(".json~tmp-") {
            continue;
        }
        let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        let age = now - time::OffsetDateTime::from(modified);
        if age > STALE_TEMP_AGE {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed a temporary file left by a crashed writer")
                }
                Err(e) => {
                    tracing::debug!(path = %entry.path().display(), error = %e, "could not remove a stale temporary file")
                }
            }
        }
    }
}

fn corrupt(path: &Path, e: &DecodeError, aside: Option<&Path>) -> StoreError {
    let message = match aside {
        Some(aside) => format!(
            "{}: {e}; moved aside to {} for inspection",
            path.display(),
            aside.display()
        ),
        None => format!("{}: {e}; the file was left in place", path.display()),
    };
    StoreError::Corrupt {
        message,
        source: None,
    }
}

fn io_error(message: String, e: io::Error) -> StoreError {
    StoreError::other(message, e)
}

/// Why the store directory could not be created. A location that cannot be a directory of
/// this user's (a file is in the way, a parent is not a directory or not writable, a
/// read-only file system) is the configuration's fault: a retry will not help, choosing
/// another directory will. Anything else (a full disk, an I/O error) is the store failing.
fn create_error(dir: &Path, e: io::Error) -> StoreError {
    use io::ErrorKind as K;
    let message = format!("cannot create the store directory {}", dir.display());
    match e.kind() {
        K::AlreadyExists
        | K::NotADirectory
        | K::NotFound
        | K::PermissionDenied
        | K::ReadOnlyFilesystem
        | K::InvalidInput => StoreError::Configuration {
            message: format!("{message}: {e}; choose another directory"),
        },
        _ => io_error(message, e),
    }
}

fn read_if_exists(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    let mut options = OpenOptions::new();
    options.read(true);
    no_follow(&mut options);
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(open_error(path, e)),
    };
    check_regular(&file, path)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes)
        .map_err(|e| io_error(format!("cannot read {}", path.display()), e))?;
    Ok(Some(bytes))
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Opens without following a symbolic link (the open fails instead) and without blocking (a
/// FIFO would otherwise wait for a writer).
fn no_follow(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    let _ = options;
}

/// The error for a failed open: a symbolic link is named as such.
fn open_error(path: &Path, e: io::Error) -> StoreError {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return StoreError::Other {
            message: format!(
                "{} is a symbolic link; the token store never follows links in its directory: remove it",
                path.display()
            ),
            source: Some(Box::new(e)),
        };
    }
    io_error(format!("cannot open {}", path.display()), e)
}

/// Refuses anything but a regular file (a FIFO, a device, a directory) where an entry or a
/// lock belongs.
fn check_regular(file: &File, path: &Path) -> Result<(), StoreError> {
    let meta = file
        .metadata()
        .map_err(|e| io_error(format!("cannot inspect {}", path.display()), e))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(StoreError::Other {
            message: format!(
                "{} is not a regular file; the token store uses only files it created: remove it",
                path.display()
            ),
            source: None,
        })
    }
}

/// Opens (creating mode 0600) a regular file for reading and writing, never through a link.
fn open_private_checked(path: &Path) -> Result<File, StoreError> {
    let file = open_private(path, false).map_err(|e| open_error(path, e))?;
    check_regular(&file, path)?;
    Ok(file)
}

/// Opens (creating mode 0600) a file for reading and writing, never through a link.
fn open_private(path: &Path, create_new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    no_follow(&mut options);
    options.open(path)
}

/// Temporary file (0600, exclusive create), write, fsync, rename over the entry, fsync the
/// directory.
fn write_atomic(paths: &Paths, bytes: &[u8]) -> io::Result<()> {
    let temp = paths.temp();
    let result = (|| {
        let mut file = open_private(&temp, true)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &paths.entry)?;
        sync_dir(&paths.dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The short per-key lock around read-compare-write. Blocking: held only for one write.
#[derive(Debug)]
struct WriteLock(File);

impl WriteLock {
    fn acquire(paths: &Paths) -> Result<Self, StoreError> {
        let path = paths.write_lock();
        let file = open_private_checked(&path)?;
        fs4::FileExt::lock(&file)
            .map_err(|e| io_error(format!("cannot lock {}", path.display()), e))?;
        Ok(Self(file))
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first is only tidier.
        let _ = fs4::FileExt::unlock(&self.0);
    }
}

/// The refresh lock of a [`FileStore`]: an OS advisory lock, freed when released, dropped, or
/// when the holding process dies.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

#[async_trait]
impl StoreLock for FileLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        fs4::FileExt::unlock(&self.file)
            .map_err(|e| io_error(format!("cannot unlock {}", self.path.display()), e))
    }
}

/// The first wait between attempts at a held refresh lock; doubles up to [`LOCK_POLL_MAX`].
const LOCK_POLL_MIN: Duration = Duration::from_millis(2);
const LOCK_POLL_MAX: Duration = Duration::from_millis(25);

#[async_trait]
impl TokenStore for FileStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<StoredEntry>, StoreError> {
        let key = key.clone();
        self.blocking(move |inner| inner.load(&key)).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        entry: &StoredEntry,
        expected: u64,
    ) -> Result<u64, StoreError> {
        let key = key.clone();
        let entry = entry.clone();
        self.blocking(move |inner| inner.save(&key, &entry, expected))
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |inner| inner.delete(&key)).await
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<StoreKey>, StoreError> {
        let prefix = prefix.to_owned();
        self.blocking(move |inner| inner.keys(&prefix)).await
    }

    /// Tries a non-blocking `flock`; while the lock is held, waits in a blocking `flock` on a
    /// blocking thread, so the kernel wakes the waiter the moment the holder releases (or
    /// dies). A caller that gives up (the manager's timeout) leaves the thread to take the
    /// lock and drop it at once: its result, the descriptor, is discarded and closed.
    async fn lock(&self, key: &StoreKey, _ttl: Duration) -> Result<Box<dyn StoreLock>, StoreError> {
        let path = Paths::new(&self.inner.dir, key).refresh_lock();
        let file = open_private_checked(&path)?;
        let mut wait = LOCK_POLL_MIN;
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => return Ok(Box::new(FileLock { file, path })),
                Err(fs4::TryLockError::WouldBlock) if !self.inner.polling_lock => {
                    let file = tokio::task::spawn_blocking(move || {
                        fs4::FileExt::lock(&file).map(|()| file)
                    })
                    .await
                    .map_err(|e| StoreError::other("the lock waiting thread failed", e))?
                    .map_err(|e| io_error(format!("cannot lock {}", path.display()), e))?;
                    return Ok(Box::new(FileLock { file, path }));
                }
                Err(fs4::TryLockError::WouldBlock) => {
                    tokio::time::sleep(wait.mul_f64(0.5 + fastrand::f64())).await;
                    wait = (wait * 2).min(LOCK_POLL_MAX);
                }
                Err(fs4::TryLockError::Error(e)) => {
                    return Err(io_error(format!("cannot lock {}", path.display()), e));
                }
            }
        }
    }

    fn describe(&self) -> String {
        match &self.inner.cipher {
            Some(cipher) => format!(
                "file:{} (encrypted, key id {})",
                self.inner.dir.display(),
                cipher.key_id()
            ),
            None => format!("file:{}", self.inner.dir.display()),
        }
    }
}
