//! Every injected fault → the documented error kind, no panic, the stored token intact; the
//! shared cool-down after refusals only.

use std::time::Duration;

use auth_core::{ErrorKind, MemoryStore, TokenStore};
use auth_sehatmu::{CREDENTIALS_REJECTED_TEXT, RATE_LIMIT_TEXT};
use auth_testkit::{
    Fault,
    sehatmu::{gateway_timeout, operation_outcome},
};
use serde_json::json;

use crate::support::{clock, manager, sim, source};

const HOUR: Duration = Duration::from_secs(3600);

/// What each fault must yield (`None`: a token, because the body is still the documented one).
fn matrix() -> Vec<(&'static str, Fault, Option<ErrorKind>)> {
    let transient = Some(ErrorKind::Transient);
    let protocol = Some(ErrorKind::Protocol);
    let reauth = Some(ErrorKind::ReauthenticationRequired);
    let limited = Some(ErrorKind::RateLimited {
        until: auth_core::time::OffsetDateTime::UNIX_EPOCH,
    });
    vec![
        ("504 text", gateway_timeout(), transient),
        (
            "500 text",
            Fault::status(500, Some("text/plain"), "Internal Server Error"),
            transient,
        ),
        ("502 html", Fault::html_error(502), transient),
        ("503 empty", Fault::status(503, None, ""), transient),
        (
            "delay past the timeout",
            Fault::Delay(Duration::from_secs(3)),
            transient,
        ),
        ("closed connection", Fault::CloseConnection, transient),
        ("10 MB body", Fault::HugeBody(Fault::TEN_MB), protocol),
        ("html page", Fault::Html, protocol),
        ("malformed json", Fault::MalformedJson, protocol),
        (
            "wrong shape",
            Fault::json(200, &json!({"token": "x"})),
            protocol,
        ),
        (
            "no expiry",
            Fault::json(200, &json!({"accessToken": "abc"})),
            protocol,
        ),
        ("404 html", Fault::html_error(404), protocol),
        ("400 html", Fault::html_error(400), protocol),
        ("302", Fault::status(302, None, ""), protocol),
        (
            "400 outcome (oauth2-server's invalid_client)",
            Fault::json(400, &operation_outcome(CREDENTIALS_REJECTED_TEXT)),
            reauth,
        ),
        (
            "401 outcome",
            Fault::json(401, &operation_outcome(CREDENTIALS_REJECTED_TEXT)),
            reauth,
        ),
        (
            "429 outcome",
            Fault::json(429, &operation_outcome(RATE_LIMIT_TEXT)),
            limited,
        ),
        ("429 empty", Fault::status(429, None, ""), limited),
        ("wrong content type", Fault::WrongContentType, None),
    ]
}

#[tokio::test(flavor = "current_thread")]
async fn every_fault_yields_its_kind_and_keeps_the_stored_token() {
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    let store = MemoryStore::new();
    let first = manager(&source(&sim, &clock), &store, &clock);
    let good = first.token().await.unwrap().clone();
    let key = first.key().clone();

    for (name, fault, expected) in matrix() {
        // The stored token has expired and any earlier cool-down is over.
        clock.advance(2 * HOUR);
        sim.reset_rate_limit();
        let held = store.load(&key).await.unwrap().unwrap().token.unwrap();
        sim.fail_next(fault);
        let requests = sim.request_count();
        // A fresh manager per case (as a new process): no back-off from the previous case.
        let manager = manager(&source(&sim, &clock), &store, &clock);
        let result = manager.token().await;
        assert_eq!(
            sim.request_count(),
            requests + 1,
            "{name}: exactly one request"
        );
        match (expected, result) {
            (Some(kind), Err(err)) => {
                let same = match (kind, err.kind()) {
                    (ErrorKind::RateLimited { .. }, ErrorKind::RateLimited { .. }) => true,
                    (kind, got) => kind == got,
                };
                assert!(same, "{name}: expected {kind:?}, got {err:?}");
                let after = store.load(&key).await.unwrap().unwrap();
                assert!(
                    after.token.unwrap().same_secret(&held),
                    "{name}: the stored token is kept"
                );
                if matches!(
                    kind,
                    ErrorKind::ReauthenticationRequired | ErrorKind::RateLimited { .. }
                ) {
                    // A refusal: the minute is recorded for every process, which sends nothing.
                    assert!(
                        after.cooldown_until.is_some(),
                        "{name}: the cool-down is recorded"
                    );
                    assert!(manager.token().await.is_err(), "{name}");
                    let other = crate::support::manager(&source(&sim, &clock), &store, &clock);
                    assert!(other.token().await.is_err(), "{name}");
                    assert_eq!(
                        sim.request_count(),
                        requests + 1,
                        "{name}: nothing sent while cooling down"
                    );
                } else {
                    // Anything else: back-off in this process only; the next process tries.
                    assert_eq!(after.cooldown_until, None, "{name}: no cool-down recorded");
                    let other = crate::support::manager(&source(&sim, &clock), &store, &clock);
                    other
                        .token()
                        .await
                        .unwrap_or_else(|e| panic!("{name}: the next process is held back: {e:?}"));
                    assert_eq!(sim.request_count(), requests + 2, "{name}");
                }
            }
            (None, Ok(token)) => assert!(
                !token.same_secret(&good) && !token.same_secret(&held),
                "{name}"
            ),
            (expected, result) => panic!("{name}: expected {expected:?}, got {result:?}"),
        }
    }
}
