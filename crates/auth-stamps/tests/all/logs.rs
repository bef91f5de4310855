//! No secret and no issued token in logs captured at TRACE level.

use std::time::Duration;

use auth_core::MemoryStore;
use auth_stamps::{StampsConfig, StampsSource};
use auth_testkit::Fault;
use secrecy::{ExposeSecret, SecretString};

use crate::support::{LogCapture, clock, jwt_source, manager, sim};

#[tokio::test(flavor = "current_thread")]
async fn trace_logs_hold_no_secret() {
    let logs = LogCapture::default();
    let _guard = logs.install();

    let clock = clock();
    let sim = sim(&clock, Duration::from_secs(600)).await;
    let source = jwt_source(&sim);
    let store = MemoryStore::new();
    let jwt_manager = manager(source.clone(), &store, &clock);
    let token = jwt_manager.token().await.unwrap();
    let _ = source.verify(token.secret()).await.unwrap();
    clock.advance(Duration::from_secs(601));
    sim.fail_next(Fault::status(
        503,
        Some("text/plain"),
        "Service Unavailable",
    ));
    let _ = jwt_manager.token().await.unwrap_err();
    let fresh = manager_again(&sim, &store, &clock).token().await.unwrap();
    tracing::info!(?fresh, ?source, "debug output of the token and the source");

    let static_config = StampsConfig::static_token(SecretString::from(sim.static_token()))
        .with_base_url(&sim.base_url())
        .unwrap();
    let static_manager = manager(
        StampsSource::new(static_config, auth_core::http::HttpConfig::default()).unwrap(),
        &store,
        &clock,
    );
    let static_token = static_manager.token().await.unwrap();
    tracing::info!(?static_token, "static");

    let text = logs.text();
    assert!(
        text.contains("fetched a new token"),
        "the capture works: {text}"
    );
    assert!(
        !text.contains(sim.auth_token()),
        "the authentication string leaked:\n{text}"
    );
    assert!(
        !text.contains(sim.static_token()),
        "the static token leaked:\n{text}"
    );
    for issued in sim.issued_tokens() {
        assert!(!text.contains(&issued), "an issued token leaked:\n{text}");
        // Not even its signature or payload.
        for part in issued.split('.').skip(1) {
            assert!(
                !text.contains(part),
                "part of an issued token leaked:\n{text}"
            );
        }
    }
    assert!(!text.contains(token.secret().expose_secret()));
}

fn manager_again(
    sim: &auth_testkit::stamps::StampsSim,
    store: &MemoryStore,
    clock: &std::sync::Arc<auth_core::ManualClock>,
) -> auth_core::TokenManager {
    manager(jwt_source(sim), store, clock)
}
