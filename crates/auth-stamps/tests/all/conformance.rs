//! StampsSource meets the provider contract (`auth_testkit::conformance`). This file is the
//! provider's table of expectations — each answer and the error kind it yields; the kit checks
//! the rest (the declaration, a first token, arbitrary answers, TRACE logs, a changed
//! credential), the same for every provider.

use auth_stamps::StampsSource;
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
            "504 text",
            Fault::status(504, Some("text/plain"), "Gateway Timeout"),
            Yields::Transient,
        ),
        (
            "wrong shape",
            Fault::json(200, &json!({"token": "x"})),
            Yields::Protocol,
        ),
        (
            "not a jwt",
            Fault::json(200, &json!({"access_token": "opaque-token"})),
            Yields::Protocol,
        ),
        ("302", Fault::status(302, None, ""), Yields::Protocol),
        (
            "401 detail",
            Fault::json(401, &json!({"detail": "Invalid token."})),
            Yields::Reauthentication,
        ),
        ("403 html", Fault::html_error(403), Yields::Reauthentication),
        (
            "400 field error",
            Fault::json(
                400,
                &json!({"crm_merchant_id": ["A valid integer is required."]}),
            ),
            Yields::Reauthentication,
        ),
        ("wrong content type", Fault::WrongContentType, Yields::Token),
    ]);
    faults
}

#[tokio::test(flavor = "current_thread")]
async fn stamps_meets_the_provider_contract() {
    assert_conforms(&subject::<StampsSource>(faults())).await;
}
