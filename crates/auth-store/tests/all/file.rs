//! The file store on real files: the store contract (auth-core's conformance kit), then what
//! only files have: names, permissions, corrupt files, encryption on disk, stale temporaries.

use std::{fs, os::unix::fs::PermissionsExt as _, time::Duration};

use auth_core::{
    StoreError, StoreKey, TokenManager, TokenStore as _,
    store::conformance::{self, Expectations},
};
use auth_store::{Cipher, FileStore};
use secrecy::ExposeSecret as _;

use crate::support::{counting_source, entry, secret_of};

/// The path of `key()`'s entry in `store`, and its name without the extension (the stem its
/// lock files are named after).
fn entry_path_and_stem(store: &FileStore) -> (std::path::PathBuf, String) {
    let entry_path = store.entry_path(&key());
    let stem = entry_path
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    (entry_path, stem)
}

fn key() -> StoreKey {
    StoreKey::new("sehatmu:client-1@example.com").unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_meets_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    // Each handle is a separate `FileStore` on the directory, as another process would open;
    // once plain, once encrypted (the codec's other path).
    let cipher = Cipher::from_key_bytes(&[42u8; 32]).unwrap();
    for (sub, cipher) in [("plain", None), ("encrypted", Some(cipher))] {
        let path = dir.path().join(sub);
        conformance::run(
            || {
                let store = FileStore::new(&path).unwrap();
                let store = match &cipher {
                    Some(c) => store.with_cipher(c.clone()),
                    None => store,
                };
                async move { store }
            },
            &Expectations::lock_freed_on_drop(),
        )
        .await;
    }
}

#[tokio::test]
async fn entry_files_have_portable_names_and_describe_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    store.save(&key(), &entry("x", None), 0).await.unwrap();
    // `:` is mapped to `+`.
    assert_eq!(
        store.entry_path(&key()).file_name().unwrap(),
        "sehatmu+client-1@example.com.json"
    );
    assert!(store.entry_path(&key()).exists());
    assert_eq!(store.describe(), format!("file:{}", dir.path().display()));
}

#[tokio::test]
async fn directory_is_0700_and_files_0600() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("a").join("kunci");
    let store = FileStore::new(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&parent.path().join("a")), 0o700);
    store.save(&key(), &entry("x", None), 0).await.unwrap();
    let lock = store.lock(&key(), Duration::from_secs(5)).await.unwrap();
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(names.len() >= 3, "{names:?}"); // entry, write lock, refresh lock
    for path in &names {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
    lock.release().await.unwrap();
    let no_temp = names.iter().all(|p| !p.to_string_lossy().contains("~tmp-"));
    assert!(
        no_temp,
        "a successful write leaves no temporary file: {names:?}"
    );
}

#[tokio::test]
async fn a_corrupt_file_is_reported_and_moved_aside_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let path = store.entry_path(&key());
    fs::write(
        &path,
        b"{\"format\":1,\"version\":3,\"token\":{\"secret\":\"s3cr3t-half",
    )
    .unwrap();
    let err = store.load(&key()).await.unwrap_err();
    let StoreError::Corrupt { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("moved aside"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");
    assert!(!path.exists());
    let aside: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".json~corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        message.contains(&aside[0].display().to_string()),
        "{message}"
    );
    assert!(
        fs::read(&aside[0])
            .unwrap()
            .starts_with(b"{\"format\":1,\"version\":3"),
        "kept byte for byte"
    );
    // The key is usable again; the corrupt copy stays.
    assert!(store.load(&key()).await.unwrap().is_none());
    assert_eq!(store.save(&key(), &entry("new", None), 0).await.unwrap(), 1);
    assert!(aside[0].exists());
}

#[tokio::test]
async fn a_newer_format_is_refused_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let path = store.entry_path(&key());
    fs::write(&path, br#"{"format":2,"version":9}"#).unwrap();
    let err = store.load(&key()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { message, .. } if message.contains("format 2") && message.contains("left in place")),
        "{err}"
    );
    let err = store.save(&key(), &entry("x", None), 0).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(fs::read(&path).unwrap(), br#"{"format":2,"version":9}"#);
}

#[tokio::test]
async fn encrypted_entries_hide_secrets_and_refuse_wrong_keys_tampering_and_moves() {
    let dir = tempfile::tempdir().unwrap();
    let cipher = Cipher::from_key_bytes(&[42u8; 32]).unwrap();
    let store = FileStore::new(dir.path())
        .unwrap()
        .with_cipher(cipher.clone());
    store
        .save(&key(), &entry("s3cr3t-token", Some("r3fresh")), 0)
        .await
        .unwrap();
    let path = store.entry_path(&key());
    let raw = fs::read_to_string(&path).unwrap();
    assert!(!raw.contains("s3cr3t") && !raw.contains("r3fresh"), "{raw}");
    assert!(raw.contains(cipher.key_id()), "{raw}");
    let back = store.load(&key()).await.unwrap().unwrap();
    assert_eq!(secret_of(&back), "s3cr3t-token");
    assert!(
        store.describe().contains("encrypted"),
        "{}",
        store.describe()
    );
    assert!(!format!("{store:?}").contains("42, 42"), "{store:?}");

    // Wrong key: a clear error, and the file is left alone (it is not corrupt).
    let wrong = FileStore::new(dir.path())
        .unwrap()
        .with_cipher(Cipher::from_key_bytes(&[7u8; 32]).unwrap());
    let err = wrong.load(&key()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { message, .. } if message.contains("cannot decrypt: wrong key or tampered entry")),
        "{err}"
    );
    assert!(path.exists());
    // No key configured.
    let plain = FileStore::new(dir.path()).unwrap();
    let err = plain.load(&key()).await.unwrap_err();
    assert!(
        err.to_string().contains("no encryption key is configured"),
        "{err}"
    );

    // Copied under another key: the associated data does not match.
    let other = StoreKey::new("sehatmu:client-2").unwrap();
    fs::copy(&path, store.entry_path(&other)).unwrap();
    let err = store.load(&other).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot decrypt: wrong key or tampered entry"),
        "{err}"
    );

    // Tampered: one character of the ciphertext changed.
    let mut doc: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let ct = doc["ciphertext"].as_str().unwrap().to_owned();
    let flipped: String = ct
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' { 'B' } else { 'A' }
            } else {
                c
            }
        })
        .collect();
    doc["ciphertext"] = flipped.into();
    fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let err = store.load(&key()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot decrypt: wrong key or tampered entry"),
        "{err}"
    );
}

#[tokio::test]
async fn keys_load_from_env_and_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = Cipher::generate_key_base64();
    let file = dir.path().join("store.key");
    fs::write(&file, format!("{}\n", text.as_str())).unwrap();
    let from_file = Cipher::from_key_file(&file).unwrap();
    assert_eq!(
        from_file.key_id(),
        Cipher::from_encoded(&text).unwrap().key_id()
    );
    let raw = dir.path().join("raw.key");
    fs::write(&raw, [5u8; 32]).unwrap();
    assert_eq!(
        Cipher::from_key_file(&raw).unwrap().key_id(),
        Cipher::from_key_bytes(&[5u8; 32]).unwrap().key_id()
    );
    let err = Cipher::from_env("KUNCI_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the environment variable `KUNCI_TEST_SURELY_UNSET_VARIABLE` is not set"
    );
    let err = Cipher::from_key_file(dir.path().join("missing.key")).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read the key file"),
        "{err}"
    );
    let core: auth_core::Error = err.into();
    assert_eq!(core.kind(), auth_core::ErrorKind::Configuration);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_in_one_process_share_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let (source, calls) = counting_source(
        Duration::from_millis(100),
        Duration::ZERO,
        Duration::from_secs(3600),
    );
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let manager = TokenManager::builder(source.clone())
            .store(FileStore::new(dir.path()).unwrap())
            .key(key())
            .build()
            .unwrap();
        tasks.push(tokio::spawn(async move {
            manager
                .token()
                .await
                .unwrap()
                .secret()
                .expose_secret()
                .to_owned()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "tok-1");
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let stored = FileStore::new(dir.path())
        .unwrap()
        .load(&key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret_of(&stored), "tok-1");
}

#[test]
fn the_default_location_is_the_platform_data_dir() {
    let dir = FileStore::default_location().unwrap();
    assert!(dir.ends_with("kunci"), "{}", dir.display());
    assert!(dir.is_absolute(), "{}", dir.display());
}

#[test]
fn temporary_files_left_by_crashed_writers_are_removed_when_old() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("k.json~tmp-00000000000000aa");
    let fresh = dir.path().join("k.json~tmp-00000000000000bb");
    fs::write(&old, b"partial").unwrap();
    fs::write(&fresh, b"in progress").unwrap();
    let two_hours_ago = fs::metadata(&old).unwrap().modified().unwrap() - Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    FileStore::new(dir.path()).unwrap();
    assert!(
        !old.exists(),
        "a two-hour-old temporary file is a crashed writer's"
    );
    assert!(fresh.exists(), "a recent one may be a write in progress");
}

fn my_uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    let probe = tempfile::tempdir().unwrap();
    fs::metadata(probe.path()).unwrap().uid()
}

#[test]
fn a_store_directory_owned_by_another_user_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    // As root, a private directory handed to another user (65534, `nobody`); otherwise `/`,
    // which root owns.
    let dir = if my_uid() == 0 {
        let dir = parent.path().join("theirs");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        dir
    } else {
        std::path::PathBuf::from("/")
    };
    let err = FileStore::new(&dir).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Configuration { .. }), "{err:?}");
    assert!(
        message.contains(&dir.display().to_string()) && message.contains("chown"),
        "{message}"
    );
    assert_eq!(
        auth_core::Error::from(err).kind(),
        auth_core::ErrorKind::Configuration
    );
}

#[test]
fn a_store_directory_writable_by_group_or_others_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("shared");
    fs::create_dir(&dir).unwrap();
    for writable in [0o777, 0o770, 0o730, 0o703, 0o1777] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(writable)).unwrap();
        let err = FileStore::new(&dir).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, StoreError::Configuration { .. })
                && message.contains(&dir.display().to_string())
                && message.contains("chmod 700"),
            "{writable:o}: {message}"
        );
    }
    // Readable by others is allowed (with a warning): the entries themselves are 0600.
    for readable in [0o700, 0o750, 0o755] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(readable)).unwrap();
        FileStore::new(&dir).unwrap();
    }
}

#[tokio::test]
async fn links_planted_in_the_directory_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let (entry_path, stem) = entry_path_and_stem(&store);

    // The entry is a link to a file elsewhere: not read.
    let victim = elsewhere.path().join("victim");
    fs::write(&victim, "not yours").unwrap();
    std::os::unix::fs::symlink(&victim, &entry_path).unwrap();
    let err = store.load(&key()).await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    fs::remove_file(&entry_path).unwrap();

    // The write lock and the refresh lock are dangling links: nothing is created through them.
    for (lock, which) in [("write", "save"), ("refresh", "lock")] {
        let target = elsewhere.path().join(format!("created-through-{lock}"));
        let link = dir.path().join(format!("{stem}~{lock}.lock"));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = match which {
            "save" => store
                .save(&key(), &entry("s3cr3t", None), 0)
                .await
                .unwrap_err(),
            _ => store
                .lock(&key(), Duration::from_secs(1))
                .await
                .map(|_| ())
                .unwrap_err(),
        };
        assert!(err.to_string().contains("symbolic link"), "{lock}: {err}");
        assert!(
            !target.exists(),
            "{lock}: a file was created through the link"
        );
        fs::remove_file(&link).unwrap();
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "not yours");
    // Without the links the store works.
    store.save(&key(), &entry("s3cr3t", None), 0).await.unwrap();
}

#[test]
fn a_fifo_planted_as_an_entry_or_lock_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let (entry_path, stem) = entry_path_and_stem(&store);
    let refresh_lock = dir.path().join(format!("{stem}~refresh.lock"));
    for path in [&entry_path, &refresh_lock] {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success());
    }
    // On a thread of its own, so a store stuck opening a FIFO fails the test instead of
    // hanging it (the stuck thread is left behind).
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let load = store.load(&key()).await.map(|_| ());
            let lock = store.lock(&key(), Duration::from_secs(1)).await.map(|_| ());
            (load, lock)
        });
        let _ = done.send(result);
    });
    let (load, lock) = outcome
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the file store hangs on a FIFO"));
    for (what, result) in [("entry", load), ("refresh lock", lock)] {
        let err = result.unwrap_err();
        assert!(
            err.to_string().contains("not a regular file"),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn versions_never_wrap_around() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    for version in [u64::MAX, i64::MAX as u64] {
        // An entry at the largest versions (edited by hand, or 2^63 saves later).
        let document = format!(
            r#"{{"format":1,"version":{version},"token":null,"refresh":null,"cooldown_until":null}}"#
        );
        fs::write(store.entry_path(&key()), document).unwrap();
        let found = store.load(&key()).await.unwrap().unwrap().version;
        assert_eq!(found, version);
        let err = store
            .save(&key(), &entry("s3cr3t", None), found)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { .. }) && err.to_string().contains("cannot grow"),
            "{err:?}"
        );
        assert_eq!(store.load(&key()).await.unwrap().unwrap().version, version);
    }
}

#[test]
fn a_location_that_cannot_be_a_directory_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "x").unwrap();
    // a file where the directory should be; a file as a parent; no directory at all
    for location in [file.clone(), file.join("store"), std::path::PathBuf::new()] {
        let err = FileStore::new(&location).unwrap_err();
        assert!(
            matches!(err, StoreError::Configuration { .. }),
            "{}: {err:?}",
            location.display()
        );
        assert_eq!(
            auth_core::Error::from(err).kind(),
            auth_core::ErrorKind::Configuration
        );
    }
}
