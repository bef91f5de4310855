//! Full flows of every provider — first token, refresh ahead of expiry, refresh after expiry,
//! refresh after a 401, a server error, a rejected credential — with every log line at TRACE
//! captured, `Debug` of the manager, the tokens and the errors logged too. Then every
//! configured secret, the store's encryption key and every token the simulators issued is
//! searched for in the logs, in every error's `Display`, `Debug` and source chain, and in the
//! (encrypted) store files: none may appear.

use std::{
    fmt::Write as _,
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_testkit::{Fault, SimServer};
use kunci::{Cipher, ErrorKind, ProviderKind};
use secrecy::ExposeSecret as _;

use crate::support::{PROVIDERS, Sim, manager};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// What one provider's flows produced that must not contain a secret, and the secrets.
struct Outcome {
    kind: ProviderKind,
    texts: String,
    secrets: Vec<String>,
    handed_out: usize,
}

fn describe(err: &kunci::Error) -> String {
    let mut text = format!("{err}\n{err:?}\n");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let _ = writeln!(text, "{s}\n{s:?}");
        source = s.source();
    }
    text
}

async fn flows(kind: ProviderKind, store_key: &str) -> Outcome {
    // Tokens live 3 s: refreshed ahead at about 2.4 s, expired at 2.85 s.
    let sim = Sim::start(
        kind,
        SimServer::builder().token_lifetime(Duration::from_secs(3)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut vars = sim.vars();
    vars.insert(kunci::ENV_STORE_KEY.to_owned(), store_key.to_owned());
    let timeout = Duration::from_secs(5);
    let manager = manager(kind, &vars, dir.path(), timeout).await.unwrap();
    let mut texts = String::new();
    let mut handed_out = Vec::new();

    // First token, then calls through refresh-ahead and past expiry.
    let first = manager.token().await.unwrap();
    tracing::info!(?manager, token = ?first, "first token");
    handed_out.push(first.secret().expose_secret().to_owned());
    let mut current = first;
    for _ in 0..36 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        current = manager.token().await.unwrap();
        handed_out.push(current.secret().expose_secret().to_owned());
    }
    // The refresh after a 401 succeeds; then a failed refresh (503 with a body).
    assert!(manager.invalidate(&current));
    let current = manager.token().await.unwrap();
    handed_out.push(current.secret().expose_secret().to_owned());
    sim.fail_next(Fault::status(
        503,
        Some("text/plain"),
        "Service Unavailable",
    ));
    assert!(manager.invalidate(&current));
    let err = manager.token().await.unwrap_err();
    tracing::warn!(error = ?err, "failed refresh");
    texts.push_str(&describe(&err));
    // A 5xx is no refusal: every provider, SehatMu included, retries after its back-off.
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the back-off
    let after = manager.token().await.unwrap();
    handed_out.push(after.secret().expose_secret().to_owned());
    tracing::info!(token = ?after, stats = ?manager.stats(), "after the failure");

    // Past expiry with nobody calling: the next call waits for a refresh (Kalsel.dev's refresh
    // token lives 7 days, far longer than its 3 s access tokens here).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    match manager.token().await {
        Ok(late) => handed_out.push(late.secret().expose_secret().to_owned()),
        Err(err) => panic!("{kind:?}: {err:?}"),
    }

    // A rejected credential, in a fresh store.
    let (bad_vars, wrong) = sim.rejected_vars();
    let other = tempfile::tempdir().unwrap();
    let rejected = crate::support::manager(kind, &bad_vars, other.path(), timeout)
        .await
        .unwrap();
    let err = rejected.token().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::ReauthenticationRequired,
        "{kind:?}: {err:?}"
    );
    tracing::error!(error = %err, debug = ?err, manager = ?rejected, "rejected");
    texts.push_str(&describe(&err));

    // The store files (encrypted with KUNCI_STORE_KEY) hold no secret either.
    for entry in std::fs::read_dir(dir.path())
        .unwrap()
        .chain(std::fs::read_dir(other.path()).unwrap())
    {
        let path = entry.unwrap().path();
        texts.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
    }

    let mut secrets = sim.configured_secrets();
    secrets.push(wrong);
    secrets.extend(sim.issued_tokens());
    secrets.extend(handed_out.iter().cloned());
    let distinct = {
        let mut d = handed_out.clone();
        d.sort();
        d.dedup();
        d.len()
    };
    assert!(
        distinct >= 3,
        "{kind:?}: first, refreshed, after expiry: {distinct}"
    );
    Outcome {
        kind,
        texts,
        secrets,
        handed_out: distinct,
    }
}

#[test]
fn no_secret_in_logs_errors_or_store_files() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    // Global, so the refresh tasks on the runtime's workers and the store's blocking threads
    // log into the capture too (no other test in this binary installs a subscriber).
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let store_key = Cipher::generate_key_base64().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Joined, not spawned: `kunci::from_lookup`'s future is not `Send` (see the report).
    let outcomes = runtime.block_on(async {
        let [a, b, c, d] = PROVIDERS;
        let (a, b, c, d) = tokio::join!(
            flows(a, &store_key),
            flows(b, &store_key),
            flows(c, &store_key),
            flows(d, &store_key)
        );
        vec![a, b, c, d]
    });
    drop(runtime);
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the capture works"
    );
    let mut searched = 0;
    for outcome in &outcomes {
        let mut secrets = outcome.secrets.clone();
        secrets.push(store_key.clone());
        secrets.sort();
        secrets.dedup();
        for secret in &secrets {
            assert!(
                secret.len() >= 8,
                "{:?}: a secret too short to search for",
                outcome.kind
            );
            for (what, text) in [("logs", &logs), ("errors or store files", &outcome.texts)] {
                assert!(
                    !text.contains(secret.as_str()),
                    "{:?}: a secret in the {what}: {secret}",
                    outcome.kind
                );
                // Nor a JWT's signature on its own.
                if let Some(signature) = secret
                    .rsplit('.')
                    .next()
                    .filter(|s| s.len() >= 16 && secret.contains('.'))
                {
                    assert!(
                        !text.contains(signature),
                        "{:?}: a signature in the {what}",
                        outcome.kind
                    );
                }
            }
            searched += 1;
        }
        eprintln!(
            "{:?}: {} distinct tokens handed out; {} secrets searched for",
            outcome.kind,
            outcome.handed_out,
            secrets.len()
        );
    }
    eprintln!(
        "{} bytes of TRACE logs, {searched} secret searches, none found",
        logs.len()
    );
}
