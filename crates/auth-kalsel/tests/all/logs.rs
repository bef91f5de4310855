use std::time::Duration;

use auth_testkit::{Fault, logs::LogCapture};

use crate::support::{REFRESH_POINT, setup};

/// A whole flow at TRACE: fetch, cache, expiry, a fault, a refresh token past its expiry
/// (with its warning). No secret and no issued token may appear in the logs.
#[tokio::test(flavor = "current_thread")]
async fn trace_logs_hold_no_secret() {
    let captured = LogCapture::default();
    let _guard = captured.install();

    let s = setup().await;
    let t = s.manager.token().await.unwrap();
    tracing::info!(token = ?*t, "the test logs a token's Debug too");
    drop(t);
    s.clock.advance(REFRESH_POINT);
    s.manager.token().await.unwrap();
    s.clock.advance(REFRESH_POINT);
    s.sim.fail_next(Fault::MalformedJson);
    assert!(s.manager.token().await.is_err());
    s.clock.advance(Duration::from_secs(7 * 86_400));
    let err = s.manager.token().await.unwrap_err();
    tracing::error!(error = %err, debug = ?err, stats = ?s.manager.stats(), "logged like an application would");

    let logs = captured.text();
    assert!(logs.contains("kalsel"), "nothing was captured: {logs}");
    assert!(logs.contains("the refresh token has expired"), "{logs}");
    let mut secrets = vec![
        s.sim.initial_refresh_token().to_owned(),
        s.sim.access_token(),
    ];
    secrets.extend(s.sim.issued_tokens());
    assert!(secrets.len() >= 4);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret leaked into the logs:\n{logs}"
        );
        // nor its signature or payload part alone
        for part in secret.split('.').filter(|p| p.len() > 16) {
            assert!(
                !logs.contains(part),
                "part of a secret leaked into the logs:\n{logs}"
            );
        }
    }
}
