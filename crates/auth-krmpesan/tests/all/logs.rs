use std::time::Duration;

use auth_testkit::{Fault, logs::LogCapture};

use crate::support::setup;

/// A whole flow at TRACE: fetch with refresh-token rotation, cache, expiry, refresh, a fault, a
/// rejection whose message echoes the refresh token. No secret, no issued token and no rotated
/// refresh token may appear in the logs.
#[tokio::test(flavor = "current_thread")]
async fn trace_logs_hold_no_secret() {
    let captured = LogCapture::default();
    let _guard = captured.install();

    let s = setup().await;
    s.sim.set_rotation(true);
    let t = s.manager.token().await.unwrap();
    tracing::info!(token = ?*t, "the test logs a token's Debug too");
    drop(t);
    s.clock.advance(Duration::from_secs(25 * 3600));
    s.manager.token().await.unwrap();
    s.clock.advance(Duration::from_secs(25 * 3600));
    s.sim.fail_next(Fault::MalformedJson);
    assert!(s.manager.token().await.is_err());
    s.clock.advance(Duration::from_secs(600));
    s.sim.set_echo_in_errors(true);
    s.sim.revoke();
    let err = s.manager.token().await.unwrap_err();
    tracing::error!(error = %err, debug = ?err, "logged like an application would");

    let logs = captured.text();
    assert!(logs.contains("krmpesan"), "nothing was captured: {logs}");
    let mut secrets = vec![
        s.sim.refresh_token().to_owned(),
        s.sim.device_key().to_owned(),
    ];
    secrets.extend(s.sim.issued_tokens());
    assert!(
        secrets.len() >= 6,
        "IdTokens, AccessTokens and rotated refresh tokens"
    );
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
