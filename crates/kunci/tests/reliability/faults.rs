//! Every provider × every answer of its table of expectations (`Simulated::faults`, in the
//! provider's `src/testing.rs`, the table its own conformance test runs), through
//! `kunci::from_lookup` with a file store: the expected error kind or a token, no panic,
//! exactly one request, no secret in the error, and the stored entry unchanged — its token,
//! expiry and refresh material are those of before; only a cool-down or the failure's outcome
//! may be added, and a cool-down only after a refusal (rejected credentials or a rate limit).
//! The providers are `ProviderKind::ALL`: one added with `cargo xtask new-provider` is here
//! with no hand edit.

use std::time::Duration;

use auth_testkit::{
    SimServer,
    conformance::{TIMEOUT, Yields},
};
use kunci::core::StoredEntry;
use kunci::{ErrorKind, FileStore, ProviderKind, StoreKey, TokenStore as _};
use secrecy::ExposeSecret as _;

use crate::support::{Sim, manager};

fn refresh_of(entry: &StoredEntry) -> Option<String> {
    entry.refresh.as_ref().map(|r| r.expose_secret().to_owned())
}

/// One provider through every row of its table; returns how many rows ran.
async fn matrix(kind: ProviderKind) -> usize {
    let rows = Sim::start(kind, SimServer::builder()).await.faults();
    assert!(!rows.is_empty(), "{kind}: an empty fault table");
    let mut ran = 0;
    for (case, fault, expected) in rows {
        let name = format!("{kind} × {case}");
        let sim = Sim::start(
            kind,
            SimServer::builder().token_lifetime(Duration::from_secs(3600)),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        // The kit's timeout: its delayed answers come well after it.
        let manager = manager(kind, &sim.vars(), dir.path(), TIMEOUT)
            .await
            .unwrap();
        let first = manager.token().await.unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        let key: StoreKey = manager.key().clone();
        let before = store
            .load(&key)
            .await
            .unwrap()
            .expect("the first token was stored");

        sim.fail_always(fault);
        let requests = sim.request_count();
        // As after a 401 from the API: the next call must ask the provider.
        assert!(manager.invalidate(&first), "{name}");
        let result = manager.token().await;
        assert_eq!(
            sim.request_count(),
            requests + 1,
            "{name}: exactly one request"
        );
        let after = store
            .load(&key)
            .await
            .unwrap()
            .expect("the entry is still there");

        let got = Yields::of(&result);
        assert_eq!(got, expected, "{name}: {result:?}");
        match result {
            Err(err) => {
                let printed = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
                for secret in sim.configured_secrets().iter().chain(&sim.issued_tokens()) {
                    assert!(
                        !printed.contains(secret.as_str()),
                        "{name}: a secret in {printed}"
                    );
                }
                let (b, a) = (
                    before.token.as_ref().unwrap(),
                    after.token.as_ref().unwrap(),
                );
                assert!(a.same_secret(b), "{name}: the stored token is kept");
                assert_eq!(a.expires_at(), b.expires_at(), "{name}: its expiry too");
                assert_eq!(
                    refresh_of(&after),
                    refresh_of(&before),
                    "{name}: the refresh material is kept"
                );
                assert!(
                    after.version == before.version
                        || after.cooldown_until.is_some()
                        || after.failure.is_some(),
                    "{name}: only a cool-down or the failure's outcome may be written ({before:?} → {after:?})"
                );
                // A 5xx, a timeout, a dropped connection or an unreadable answer stops no
                // other process: a cool-down follows refusals only.
                let refusal = matches!(
                    err.kind(),
                    ErrorKind::ReauthenticationRequired | ErrorKind::RateLimited { .. }
                );
                assert!(
                    refusal || after.cooldown_until.is_none(),
                    "{name}: a cool-down is stored after a refusal only"
                );
            }
            Ok(token) => {
                // Refreshed, not the first token served again (some providers' tokens carry no
                // `jti` or `iat`, so the bytes may repeat: the manager's generation does not).
                assert_ne!(
                    token.generation(),
                    first.generation(),
                    "{name}: a new token"
                );
                assert!(
                    after.token.unwrap().same_secret(&token),
                    "{name}: stored before handed out"
                );
            }
        }
        ran += 1;
    }
    ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_every_fault_of_its_table() {
    let mut ran = Vec::new();
    for &kind in ProviderKind::ALL {
        ran.push((kind, matrix(kind).await));
    }
    eprintln!("rows run: {ran:?}");
    assert_eq!(
        ran.len(),
        ProviderKind::WORKSPACE.len(),
        "every provider ran"
    );
}
