//! Twenty processes on one cold file store send one request between them.

use std::{
    fs,
    process::{Command, Stdio},
};

const PROBE: &str = env!("CARGO_BIN_EXE_kunci-store-probe");

#[test]
fn twenty_processes_on_a_cold_store_fetch_once() {
    let store = tempfile::tempdir().unwrap();
    let counter = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..20)
        .map(|_| {
            Command::new(PROBE)
                .arg("fetch")
                .arg(store.path())
                .arg(counter.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // All twenty are started before any may ask: they wait for this file.
    fs::write(counter.path().join("go"), b"").unwrap();
    let mut tokens = Vec::new();
    let mut fetches = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "probe failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut words = stdout.split_whitespace();
        tokens.push(words.next().unwrap().to_owned());
        fetches += words
            .next()
            .unwrap()
            .strip_prefix("fetches=")
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(
        fs::read_to_string(counter.path().join("count")).unwrap(),
        "1",
        "exactly one request to the provider"
    );
    assert_eq!(fetches, 1);
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
}
