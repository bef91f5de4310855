//! A writer killed with SIGKILL at random instants, 200 times: the store always loads a whole
//! entry, the old one or the new one.

use std::{fs, process::Command, time::Duration};

use auth_core::{StoreKey, TokenStore as _};
use auth_store::FileStore;
use secrecy::ExposeSecret as _;

const PROBE: &str = env!("CARGO_BIN_EXE_kunci-store-probe");

#[tokio::test]
async fn sigkill_never_leaves_a_torn_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let key = StoreKey::new("crash:loop").unwrap();
    let mut last_version = 0;
    let mut advanced = 0;
    for round in 0..200 {
        let mut child = Command::new(PROBE)
            .arg("write-loop")
            .arg(dir.path())
            .spawn()
            .unwrap();
        // Let it run for a random 0-15 ms so the kill lands anywhere in the write sequence.
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..15_000)));
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        let entry = store
            .load(&key)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        if let Some(entry) = entry {
            let token = entry.token.unwrap();
            let secret = token.secret().expose_secret();
            let (head, padding) = secret.split_once('-').unwrap();
            assert_eq!(
                head,
                format!("v{}", entry.version),
                "round {round}: the secret matches its version"
            );
            assert_eq!(padding.len(), 8192, "round {round}: whole secret");
            assert_eq!(
                entry.refresh.unwrap().expose_secret(),
                format!("r{}", entry.version)
            );
            assert!(
                entry.version >= last_version,
                "round {round}: never goes back"
            );
            if entry.version > last_version {
                advanced += 1;
            }
            last_version = entry.version;
        }
    }
    // Each `~tmp-` file left behind is a kill that landed between creating the temporary file
    // and renaming it: the instants where a non-atomic write would have torn the entry.
    let mid_write = files_named(dir.path(), "~tmp-");
    eprintln!(
        "200 kills: the writer advanced in {advanced} rounds, to version {last_version}; {mid_write} kills landed mid-write"
    );
    assert!(advanced > 0, "the writer made progress");
    let leftovers = files_named(dir.path(), "~corrupt-");
    assert_eq!(leftovers, 0, "nothing was ever found corrupt");
}

/// How many files in `dir` have `part` in their name.
fn files_named(dir: &std::path::Path, part: &str) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(part)
        })
        .count()
}
