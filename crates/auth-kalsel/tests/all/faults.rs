use std::time::Duration;

use auth_core::{Error, ErrorKind, time::OffsetDateTime};
use auth_testkit::Fault;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::support::{REFRESH_POINT, same_kind, setup_with};

fn rate_limited() -> ErrorKind {
    ErrorKind::RateLimited {
        until: OffsetDateTime::UNIX_EPOCH,
    }
}

/// Every fault → the documented kind; no panic; the stored token is untouched; a new token
/// comes once the fault is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_maps_to_its_documented_kind() {
    let jwt_error = |cause: &str| json!({"status": 422, "message": "Token tidak valid", "error": "jwt_error", "causes": [cause]});
    let expired_421 = json!({"status": 421, "message": "Token expired", "error": "jwt_error", "causes": ["token has expired"]});
    let cases: Vec<(&str, Fault, ErrorKind)> = vec![
        (
            "400",
            Fault::json(
                400,
                &json!({"status": 400, "message": "refresh_token: cannot be blank.", "error": "bad_request", "causes": []}),
            ),
            ErrorKind::Protocol,
        ),
        (
            "401",
            Fault::json(401, &json!({"message": "unauthorized"})),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "403 html",
            Fault::html_error(403),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "404 json without an error field",
            Fault::json(404, &json!({"message": "Not Found"})),
            ErrorKind::Protocol,
        ),
        (
            "404 fiber route",
            Fault::status(
                404,
                Some("text/plain; charset=utf-8"),
                "Cannot POST /api/v1/refresh",
            ),
            ErrorKind::Protocol,
        ),
        (
            "404 account not found",
            Fault::json(
                404,
                &json!({"status": 404, "message": "User dengan Email a@b.co tidak ditemukan", "error": "not_found", "causes": []}),
            ),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "421",
            Fault::json(421, &expired_421),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "421 unparseable",
            Fault::status(421, Some("text/plain"), "Misdirected Request"),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "422 expired",
            Fault::json(422, &jwt_error("Token is expired")),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "422 signature",
            Fault::json(422, &jwt_error("signature is invalid")),
            ErrorKind::ReauthenticationRequired,
        ),
        (
            "422 not a refresh token",
            Fault::json(422, &jwt_error("not a refresh token")),
            ErrorKind::Configuration,
        ),
        (
            "422 without jwt_error",
            Fault::json(422, &json!({"message": "Unprocessable Entity"})),
            ErrorKind::Protocol,
        ),
        ("429 bare", Fault::status(429, None, ""), rate_limited()),
        (
            "429 rate_limiter",
            Fault::json(
                429,
                &json!({"status": 429, "message": "terlalu banyak request", "error": "rate_limiter", "causes": ["too many requests in a given amount of time"]}),
            ),
            rate_limited(),
        ),
        (
            "500",
            Fault::status(500, Some("text/plain"), "Internal Server Error"),
            ErrorKind::Transient,
        ),
        ("502 html", Fault::html_error(502), ErrorKind::Transient),
        (
            "503",
            Fault::status(503, Some("application/json"), r#"{"message":"down"}"#),
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
            "closed connection",
            Fault::CloseConnection,
            ErrorKind::Transient,
        ),
        (
            "missing expired",
            Fault::json(200, &json!({"access_token": "x"})),
            ErrorKind::Protocol,
        ),
        (
            "expired in the past",
            Fault::json(200, &json!({"access_token": "x", "expired": 1_608_781_116})),
            ErrorKind::Protocol,
        ),
        (
            "expired out of range",
            Fault::json(200, &json!({"access_token": "x", "expired": i64::MAX})),
            ErrorKind::Protocol,
        ),
        (
            "token not sendable",
            Fault::json(
                200,
                &json!({"access_token": "a\nb", "expired": 4_000_000_000_i64}),
            ),
            ErrorKind::Protocol,
        ),
        ("204", Fault::status(204, None, ""), ErrorKind::Protocol),
    ];
    for (name, fault, expected) in cases {
        let s = setup_with(|b| b, Duration::from_millis(1500)).await;
        let first = s.manager.token().await.unwrap();
        let before = s.stored().await.unwrap();
        s.clock.advance(REFRESH_POINT);
        s.sim.fail_always(fault);
        let err: Error = s.manager.token().await.unwrap_err();
        assert!(
            same_kind(err.kind(), expected),
            "{name}: expected {expected:?}, got {err:?}"
        );
        let printed = format!("{err} {err:?}");
        assert!(
            !printed.contains(first.secret().expose_secret()),
            "{name}: {printed}"
        );
        let after = s.stored().await.unwrap();
        assert!(after.token.as_ref().unwrap().same_secret(&first), "{name}");
        assert!(after.refresh.is_none(), "{name}");
        if !same_kind(expected, rate_limited()) {
            // only the failure's outcome is recorded, for processes that waited on this one
            assert!(
                after.failure.is_some() && after.version > before.version,
                "{name}: the outcome is recorded"
            );
        }

        s.sim.clear_faults();
        s.clock.advance(Duration::from_secs(90));
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

/// A parseable 200 whose content type is not JSON is accepted: a proxy on the way may label it
/// wrongly, and the token in it is good.
#[tokio::test]
async fn a_wrong_content_type_on_a_valid_answer_is_accepted() {
    let s = setup_with(|b| b, Duration::from_secs(30)).await;
    s.sim.fail_next(Fault::WrongContentType);
    let token = s.manager.token().await.unwrap();
    assert_eq!(s.sim.issued_tokens(), [token.secret().expose_secret()]);
    let stored = s.stored().await.unwrap();
    assert!(stored.token.unwrap().same_secret(&token));
}
