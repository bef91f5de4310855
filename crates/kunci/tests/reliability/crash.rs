//! A process that refreshes Kalsel.dev tokens through a file store as fast as it can (each
//! token invalidated as soon as it is handed out, so every call is a refresh and a save) is
//! SIGKILLed 50 times at random instants. After each kill:
//!
//! * the store loads a whole entry;
//! * every token the process handed out (printed) is the stored token or older than it — a
//!   token is saved before it is handed out, so none is handed out that the store never held;
//! * if the server issued a newer token than the stored one (the kill landed between the
//!   server's answer and the save), that token was never handed out;
//! * one more refresh (with the configured refresh token: Kalsel.dev does not rotate it)
//!   succeeds, and its token is saved, so the next round starts from it.
//!
//! The child is this test binary itself, re-run with `KUNCI_RELIABILITY_CRASH_CHILD` set to
//! run [`crash_child`] (which returns at once when the variable is not set).

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
    time::Duration,
};

use auth_testkit::{SimServer, kalsel::KalselSim};
use kunci::{
    FileStore, HttpConfig, ProviderKind, StoreKey, TokenSource as _, TokenStore as _,
    core::{FetchRequest, SharedClock, StoredEntry},
    providers::kalsel::{KalselConfig, KalselSource},
};
use secrecy::{ExposeSecret as _, SecretString};

const CHILD_ENV: &str = "KUNCI_RELIABILITY_CRASH_CHILD";
const ROUNDS: usize = 50;
const PREFIX: &str = "handed-out ";
/// Printed by the child once its manager is built, so the kill instants are drawn from the
/// child's own working time, not from a process start that a loaded machine makes slow.
const READY: &str = "ready";

/// The child's body: refresh and print until killed (bounded: 60 s, 100,000 tokens).
#[test]
fn crash_child() {
    let Ok(vars) = std::env::var(CHILD_ENV) else {
        return; // not a child: nothing to do
    };
    let vars: HashMap<String, String> = serde_json::from_str(&vars).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let manager = kunci::from_lookup(
            ProviderKind::Kalsel,
            &|name| vars.get(name).cloned(),
            HttpConfig::default(),
        )
        .await
        .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY}").unwrap();
        out.flush().unwrap();
        for _ in 0..100_000 {
            if tokio::time::Instant::now() > deadline {
                break;
            }
            let token = manager.token().await.unwrap();
            // Handed out: a fake token from the simulator, printed for the parent to check.
            writeln!(out, "{PREFIX}{}", token.secret().expose_secret()).unwrap();
            out.flush().unwrap();
            manager.invalidate(&token);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_leaves_a_handed_out_token_unstored() {
    let sim = KalselSim::start_with(SimServer::builder()).await.unwrap();
    // The child sends far more than the server's 30 requests a minute; the server exempts
    // clients on its own host (127.0.0.1) from its limiter, and so does this test.
    sim.set_rate_limit(None);
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let config = KalselConfig::new(SecretString::from(sim.initial_refresh_token().to_owned()))
        .unwrap()
        .with_base_url(&sim.base_url())
        .unwrap();
    let key: StoreKey = config.store_key();
    let verifier = KalselSource::new(config, HttpConfig::default()).unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        (
            "KALSEL_REFRESH_TOKEN",
            sim.initial_refresh_token().to_owned(),
        ),
        ("KALSEL_BASE_URL", sim.base_url()),
        (kunci::ENV_STORE, dir.path().to_string_lossy().into_owned()),
    ]);
    let vars = serde_json::to_string(&vars).unwrap();
    let exe = std::env::current_exe().unwrap();

    let (mut printed_total, mut latest_stored, mut unsaved_window, mut empty) = (0, 0, 0, 0);
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &vars)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            // libtest prints `test crash::crash_child ... ` without a line break before it
            if lines.by_ref().any(|l| l.ends_with(READY)) {
                let _ = ready_tx.send(());
            }
            lines
                .filter_map(|l| l.strip_prefix(PREFIX).map(str::to_owned))
                .collect::<Vec<_>>()
        });
        let started = tokio::task::spawn_blocking(move || {
            ready_rx.recv_timeout(Duration::from_secs(60)).is_ok()
        })
        .await
        .unwrap();
        assert!(
            started,
            "round {round}: the child never got its manager built"
        );
        // From the first instant a token could be asked for to well into the refresh loop:
        // some kills land before the first save, most between an answer and its save or after.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..250))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let printed = reader.join().unwrap();
        // A request the child sent just before dying may still be answered by the in-process
        // simulator (issuing one more token, to nobody). Read the server's state only once it has
        // stopped receiving requests.
        let mut seen = sim.request_count();
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = sim.request_count();
            if now == seen {
                break;
            }
            seen = now;
        }
        printed_total += printed.len();

        let entry = store
            .load(&key)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the entry does not load: {e}"));
        let Some(entry) = entry else {
            assert!(
                printed.is_empty(),
                "round {round}: handed out but not stored"
            );
            empty += 1;
            continue;
        };
        assert!(entry.refresh.is_none(), "round {round}: nothing rotates");
        let stored = entry
            .token
            .as_ref()
            .unwrap_or_else(|| panic!("round {round}: an entry without a token"))
            .secret()
            .expose_secret()
            .to_owned();
        let issued = sim.issued_tokens();
        let position = |t: &str| issued.iter().position(|i| i == t);
        let stored_at = position(&stored);
        assert!(
            stored_at.is_some(),
            "round {round}: the stored token was issued by the server"
        );
        for token in &printed {
            assert!(
                position(token) <= stored_at,
                "round {round}: a handed-out token is newer than the stored one: it was handed out before it was saved"
            );
        }
        let latest = issued.last().unwrap().clone();
        if stored == latest {
            latest_stored += 1;
        } else {
            // The server answered after the stored token and the process died before saving:
            // that token must never have been handed out.
            assert!(
                !printed.contains(&latest),
                "round {round}: a handed-out token was never stored"
            );
            unsaved_window += 1;
        }
        // One more refresh, saved, so the next round continues from it.
        let now = SharedClock::system().now();
        let fetched = verifier
            .fetch(FetchRequest::new(None, now))
            .await
            .unwrap_or_else(|e| {
                panic!("round {round}: the configured refresh token was refused: {e:?}")
            });
        assert!(fetched.refresh.is_none());
        store
            .save(&key, &StoredEntry::with_token(fetched.token), entry.version)
            .await
            .unwrap();
    }
    eprintln!(
        "{ROUNDS} SIGKILLs: {printed_total} tokens handed out in all; the stored token was the latest issued after {latest_stored} kills, \
         {unsaved_window} kills landed between the server's answer and the save (that token never handed out), \
         {empty} before the first save"
    );
    assert!(printed_total > 0, "the child made progress");
}
