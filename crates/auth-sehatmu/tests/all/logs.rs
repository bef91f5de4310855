//! No secret and no issued token in logs captured at TRACE level.

use std::time::Duration;

use auth_core::MemoryStore;
use auth_testkit::sehatmu::gateway_timeout;
use secrecy::ExposeSecret;

use crate::support::{LogCapture, clock, manager, sim, source, source_with_secret};

#[tokio::test(flavor = "current_thread")]
async fn trace_logs_hold_no_secret() {
    let logs = LogCapture::default();
    let _guard = logs.install();

    let clock = clock();
    let sim = sim(&clock, Duration::from_secs(600)).await;
    let store = MemoryStore::new();
    let source = source(&sim, &clock);
    let first = manager(&source, &store, &clock);
    let token = first.token().await.unwrap();
    tracing::info!(?token, ?source, config = ?source.config(), "debug output of the token and the source");

    clock.advance(Duration::from_secs(601));
    sim.fail_next(gateway_timeout());
    let _ = first.token().await.unwrap_err();
    let _ = first.token().await.unwrap_err();

    clock.advance(Duration::from_secs(61));
    let wrong = manager(
        &source_with_secret(&sim, "wrong-but-still-secret", &clock),
        &MemoryStore::new(),
        &clock,
    );
    let _ = wrong.token().await.unwrap_err();
    clock.advance(Duration::from_secs(61)); // SehatMu refuses the client for a minute after that
    let second = manager(&source, &store, &clock).token().await.unwrap();

    let text = logs.text();
    assert!(
        text.contains("fetched a new token"),
        "the capture works: {text}"
    );
    assert!(
        !text.contains(sim.client_secret()),
        "the client secret leaked:\n{text}"
    );
    assert!(
        !text.contains("wrong-but-still-secret"),
        "a wrong secret leaked:\n{text}"
    );
    for issued in sim.issued_tokens() {
        assert!(!text.contains(&issued), "an issued token leaked:\n{text}");
    }
    assert!(!text.contains(second.secret().expose_secret()));
}
