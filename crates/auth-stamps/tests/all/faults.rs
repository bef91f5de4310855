//! Every injected fault → the documented error kind, no panic, the stored entry intact.

use std::time::Duration;

use auth_core::{ErrorKind, MemoryStore, TokenStore};
use auth_testkit::Fault;
use serde_json::json;

use crate::support::{clock, jwt_source, manager, sim};

/// What each fault must yield (`None`: a token, because the body is still the documented one).
fn matrix() -> Vec<(&'static str, Fault, Option<ErrorKind>)> {
    let transient = Some(ErrorKind::Transient);
    let protocol = Some(ErrorKind::Protocol);
    vec![
        (
            "500 text",
            Fault::status(500, Some("text/plain"), "Internal Server Error"),
            transient,
        ),
        ("502 html", Fault::html_error(502), transient),
        ("503 empty", Fault::status(503, None, ""), transient),
        (
            "504 text",
            Fault::status(504, Some("text/plain"), "Gateway Timeout"),
            transient,
        ),
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
            "not a jwt",
            Fault::json(200, &json!({"access_token": "opaque-token"})),
            protocol,
        ),
        ("404 html", Fault::html_error(404), protocol),
        ("302", Fault::status(302, None, ""), protocol),
        (
            "401 detail",
            Fault::json(401, &json!({"detail": "Invalid token."})),
            Some(ErrorKind::ReauthenticationRequired),
        ),
        (
            "403 html",
            Fault::html_error(403),
            Some(ErrorKind::ReauthenticationRequired),
        ),
        (
            "400 field error",
            Fault::json(
                400,
                &json!({"crm_merchant_id": ["A valid integer is required."]}),
            ),
            Some(ErrorKind::ReauthenticationRequired),
        ),
        ("wrong content type", Fault::WrongContentType, None),
    ]
}

#[tokio::test(flavor = "current_thread")]
async fn every_fault_yields_its_kind_and_keeps_the_stored_token() {
    let clock = clock();
    let sim = sim(&clock, Duration::from_secs(3600)).await;
    let store = MemoryStore::new();
    let first = manager(jwt_source(&sim), &store, &clock);
    let good = first.token().await.unwrap().clone();
    let key = first.key().clone();

    for (name, fault, expected) in matrix() {
        // The stored token has expired: the next call must ask Stamps.
        clock.advance(Duration::from_secs(3601));
        let before = store.load(&key).await.unwrap().unwrap();
        sim.fail_next(fault);
        let requests = sim.request_count();
        // A fresh manager per case (as a new process): no back-off from the previous case.
        let manager = manager(jwt_source(&sim), &store, &clock);
        let result = manager.token().await;
        assert_eq!(
            sim.request_count(),
            requests + 1,
            "{name}: exactly one request"
        );
        match (expected, result) {
            (Some(kind), Err(err)) => {
                let got = err.kind();
                let same = match (kind, got) {
                    (ErrorKind::RateLimited { .. }, ErrorKind::RateLimited { .. }) => true,
                    _ => kind == got,
                };
                assert!(same, "{name}: expected {kind:?}, got {err:?}");
                let after = store.load(&key).await.unwrap().unwrap();
                // only the failure's outcome is recorded, for processes that waited on this one
                assert!(after.failure.is_some(), "{name}: the outcome is recorded");
                assert!(
                    after
                        .token
                        .unwrap()
                        .same_secret(before.token.as_ref().unwrap()),
                    "{name}: token kept"
                );
            }
            (None, Ok(token)) => assert!(!token.same_secret(&good), "{name}"),
            (expected, result) => panic!("{name}: expected {expected:?}, got {result:?}"),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_429_is_rate_limited_until_retry_after() {
    let clock = clock();
    let sim = sim(&clock, Duration::from_secs(3600)).await;
    sim.fail_next(Fault::Status {
        status: 429,
        content_type: None,
        body: String::new(),
    });
    let manager = manager(jwt_source(&sim), &MemoryStore::new(), &clock);
    let err = manager.token().await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "{err:?}"
    );
    // Nothing more is sent while it holds.
    let err = manager.token().await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "{err:?}"
    );
    assert_eq!(sim.request_count(), 1);
}
