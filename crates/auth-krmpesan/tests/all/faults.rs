use std::time::Duration;

use auth_core::{Error, ErrorKind, time::OffsetDateTime};
use auth_testkit::Fault;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::support::{same_kind, setup_with};

fn rate_limited() -> ErrorKind {
    ErrorKind::RateLimited {
        until: OffsetDateTime::UNIX_EPOCH,
    }
}

/// Every fault → the documented kind; no panic; the stored entry is untouched; recovery after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_maps_to_its_documented_kind() {
    let cases: Vec<(&str, Fault, ErrorKind)> = vec![
        (
            "400 NotAuthorizedException",
            Fault::json(
                400,
                &json!({"__type": "NotAuthorizedException", "message": "Refresh Token has been revoked"}),
            ),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "400 TooManyRequestsException",
            Fault::json(
                400,
                &json!({"__type": "TooManyRequestsException", "message": "Rate exceeded"}),
            ),
            rate_limited(),
        ),
        (
            "401 message only",
            Fault::json(401, &json!({"message": "Invalid Refresh Token"})),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "403 html",
            Fault::html_error(403),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "404",
            Fault::json(404, &json!({"message": "Not Found"})),
            ErrorKind::Protocol,
        ),
        ("429", Fault::status(429, None, ""), rate_limited()),
        (
            "500",
            Fault::status(500, Some("text/plain"), "Internal Server Error"),
            ErrorKind::Transient,
        ),
        ("502 html", Fault::html_error(502), ErrorKind::Transient),
        (
            "503",
            Fault::status(
                503,
                Some("application/json"),
                r#"{"message":"Service Unavailable"}"#,
            ),
            ErrorKind::Transient,
        ),
        (
            "504",
            Fault::status(504, Some("text/plain"), "Gateway Timeout"),
            ErrorKind::Transient,
        ),
        (
            "delay past timeout",
            Fault::Delay(Duration::from_secs(5)),
            ErrorKind::Transient,
        ),
        (
            "10 MB body",
            Fault::HugeBody(Fault::TEN_MB),
            ErrorKind::Protocol,
        ),
        ("html page", Fault::Html, ErrorKind::Protocol),
        ("malformed json", Fault::MalformedJson, ErrorKind::Protocol),
        (
            "wrong content type",
            Fault::WrongContentType,
            ErrorKind::Protocol,
        ),
        (
            "closed connection",
            Fault::CloseConnection,
            ErrorKind::Transient,
        ),
        (
            "missing IdToken",
            Fault::json(200, &json!({"AccessToken": "x", "ExpiresIn": 86400})),
            ErrorKind::Protocol,
        ),
        (
            "zero ExpiresIn",
            Fault::json(200, &json!({"IdToken": "x", "ExpiresIn": 0})),
            ErrorKind::Protocol,
        ),
        (
            "token not sendable",
            Fault::json(200, &json!({"IdToken": "a b", "ExpiresIn": 60})),
            ErrorKind::Protocol,
        ),
        ("204", Fault::status(204, None, ""), ErrorKind::Protocol),
        (
            "ExpiresIn beyond 64 bits",
            Fault::status(
                200,
                Some("application/json"),
                r#"{"IdToken": "x", "ExpiresIn": 99999999999999999999}"#,
            ),
            ErrorKind::Protocol,
        ),
        (
            "RefreshToken not a string",
            Fault::json(
                200,
                &json!({"IdToken": "x", "ExpiresIn": 60, "RefreshToken": 5}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "a challenge instead of tokens",
            Fault::json(
                200,
                &json!({"ChallengeName": "SMS_MFA", "ChallengeParameters": {}}),
            ),
            ErrorKind::Protocol,
        ),
    ];
    for (name, fault, expected) in cases {
        // A short client timeout, so the delayed answer is given up on.
        let s = setup_with(|b| b, Duration::from_millis(1500)).await;
        let first = s.manager.token().await.unwrap();
        let before = s.stored().await.unwrap();
        s.clock.advance(Duration::from_secs(25 * 3600));
        s.sim.fail_always(fault);
        let err: Error = s.manager.token().await.unwrap_err();
        assert!(
            same_kind(err.kind(), expected),
            "{name}: expected {expected:?}, got {err:?}"
        );
        let printed = format!("{err} {err:?}");
        assert!(
            !printed.contains(s.sim.refresh_token()) && !printed.contains(s.sim.device_key()),
            "{name}: {printed}"
        );
        let after = s.stored().await.unwrap();
        // The token and refresh material are kept; only a cool-down may have been recorded.
        assert_eq!(after.refresh.is_some(), before.refresh.is_some(), "{name}");
        if !same_kind(expected, rate_limited()) {
            // only the failure's outcome is recorded, for processes that waited on this one
            assert!(
                after.failure.is_some() && after.version > before.version,
                "{name}: the outcome is recorded"
            );
        }
        assert!(after.token.as_ref().unwrap().same_secret(&first), "{name}");

        // Once the fault is gone and the back-off has passed, a new token comes.
        s.sim.clear_faults();
        s.clock.advance(Duration::from_secs(600));
        let next = s
            .manager
            .token()
            .await
            .unwrap_or_else(|e| panic!("{name}: no recovery: {e:?}"));
        assert_ne!(
            next.secret().expose_secret(),
            first.secret().expose_secret(),
            "{name}"
        );
    }
}
