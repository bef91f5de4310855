//! KrmPesanSource meets the provider contract (`auth_testkit::conformance`). This file is the
//! provider's table of expectations — each answer and the error kind it yields; the kit checks
//! the rest (the declaration, a first token, arbitrary answers, TRACE logs, a changed
//! credential), the same for every provider.

use auth_krmpesan::KrmPesanSource;
use auth_testkit::{
    Fault,
    conformance::{FaultCase, Yields, assert_conforms, subject, transport_faults},
};
use serde_json::json;

/// Every answer this provider's document (or its server's source) gives, and what it yields.
fn faults() -> Vec<FaultCase> {
    let mut faults = transport_faults();
    faults.extend(vec![
        (
            "400 NotAuthorizedException",
            Fault::json(
                400,
                &json!({"__type": "NotAuthorizedException", "message": "Refresh Token has been revoked"}),
            ),
            Yields::Reauthentication,
        ),
        (
            "400 TooManyRequestsException",
            Fault::json(
                400,
                &json!({"__type": "TooManyRequestsException", "message": "Rate exceeded"}),
            ),
            Yields::RateLimited,
        ),
        (
            "401 message only",
            Fault::json(401, &json!({"message": "Invalid Refresh Token"})),
            Yields::Reauthentication,
        ),
        (
            "403 html",
            Fault::html_error(403),
            Yields::Reauthentication,
        ),
        (
            "404",
            Fault::json(404, &json!({"message": "Not Found"})),
            Yields::Protocol,
        ),
        ("429", Fault::status(429, None, ""), Yields::RateLimited),
        (
            "503",
            Fault::status(
                503,
                Some("application/json"),
                r#"{"message":"Service Unavailable"}"#,
            ),
            Yields::Transient,
        ),
        (
            "504",
            Fault::status(504, Some("text/plain"), "Gateway Timeout"),
            Yields::Transient,
        ),
        (
            "wrong content type",
            Fault::WrongContentType,
            Yields::Protocol,
        ),
        (
            "missing IdToken",
            Fault::json(200, &json!({"AccessToken": "x", "ExpiresIn": 86400})),
            Yields::Protocol,
        ),
        (
            "zero ExpiresIn",
            Fault::json(200, &json!({"IdToken": "x", "ExpiresIn": 0})),
            Yields::Protocol,
        ),
        (
            "token not sendable",
            Fault::json(200, &json!({"IdToken": "a b", "ExpiresIn": 60})),
            Yields::Protocol,
        ),
        ("204", Fault::status(204, None, ""), Yields::Protocol),
        (
            "ExpiresIn beyond 64 bits",
            Fault::status(
                200,
                Some("application/json"),
                r#"{"IdToken": "x", "ExpiresIn": 99999999999999999999}"#,
            ),
            Yields::Protocol,
        ),
        (
            "RefreshToken not a string",
            Fault::json(
                200,
                &json!({"IdToken": "x", "ExpiresIn": 60, "RefreshToken": 5}),
            ),
            Yields::Protocol,
        ),
        (
            "a challenge instead of tokens",
            Fault::json(
                200,
                &json!({"ChallengeName": "SMS_MFA", "ChallengeParameters": {}}),
            ),
            Yields::Protocol,
        ),
    ]);
    faults
}

#[tokio::test(flavor = "current_thread")]
async fn krmpesan_meets_the_provider_contract() {
    assert_conforms(&subject::<KrmPesanSource>(faults())).await;
}
