//! SehatMuSource meets the provider contract (`auth_testkit::conformance`). This file is the
//! provider's table of expectations — each answer and the error kind it yields; the kit checks
//! the rest (the declaration, a first token, arbitrary answers, TRACE logs, a changed
//! credential), the same for every provider.

use auth_sehatmu::{CREDENTIALS_REJECTED_TEXT, RATE_LIMIT_TEXT};
use auth_testkit::sehatmu::{gateway_timeout, operation_outcome};

use auth_sehatmu::SehatMuSource;
use auth_testkit::{
    Fault,
    conformance::{FaultCase, Yields, assert_conforms, subject, transport_faults},
};
use serde_json::json;

/// Every answer this provider's document (or its server's source) gives, and what it yields.
fn faults() -> Vec<FaultCase> {
    let mut faults = transport_faults();
    faults.extend(vec![
        ("504 text", gateway_timeout(), Yields::Transient),
        (
            "wrong shape",
            Fault::json(200, &json!({"token": "x"})),
            Yields::Protocol,
        ),
        (
            "no expiry",
            Fault::json(200, &json!({"accessToken": "abc"})),
            Yields::Protocol,
        ),
        ("400 html", Fault::html_error(400), Yields::Protocol),
        ("302", Fault::status(302, None, ""), Yields::Protocol),
        (
            "400 outcome (oauth2-server's invalid_client)",
            Fault::json(400, &operation_outcome(CREDENTIALS_REJECTED_TEXT)),
            Yields::Reauthentication,
        ),
        (
            "401 outcome",
            Fault::json(401, &operation_outcome(CREDENTIALS_REJECTED_TEXT)),
            Yields::Reauthentication,
        ),
        (
            "429 outcome",
            Fault::json(429, &operation_outcome(RATE_LIMIT_TEXT)),
            Yields::RateLimited,
        ),
        (
            "429 empty",
            Fault::status(429, None, ""),
            Yields::RateLimited,
        ),
        ("wrong content type", Fault::WrongContentType, Yields::Token),
    ]);
    faults
}

#[tokio::test(flavor = "current_thread")]
async fn sehatmu_meets_the_provider_contract() {
    assert_conforms(&subject::<SehatMuSource>(faults())).await;
}
