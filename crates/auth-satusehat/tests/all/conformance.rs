//! SatusehatSource meets the provider contract (`auth_testkit::conformance`): its table of
//! faults and the error kinds they yield; the kit checks the rest.

use auth_satusehat::{SatusehatSource, testing::operation_outcome};
use auth_testkit::{
    Fault,
    conformance::{FaultCase, Yields, assert_conforms, subject, transport_faults},
};
use serde_json::json;

/// This provider's answers beyond the transport faults every provider shares.
fn faults() -> Vec<FaultCase> {
    let mut faults = transport_faults();
    faults.extend([
        (
            "401 outcome",
            Fault::json(
                401,
                &operation_outcome("invalid", "Invalid client credentials"),
            ),
            Yields::Reauthentication,
        ),
        (
            "400 outcome",
            Fault::json(400, &operation_outcome("invalid", "Invalid grant_type")),
            Yields::Reauthentication,
        ),
        (
            "429 outcome",
            Fault::json(429, &operation_outcome("throttled", "Rate limit exceeded")),
            Yields::RateLimited,
        ),
        (
            "not approved",
            Fault::json(
                200,
                &json!({"access_token": "a", "expires_in": "60", "status": "revoked"}),
            ),
            Yields::Reauthentication,
        ),
        (
            "expires_in not a number",
            Fault::json(200, &json!({"access_token": "a", "expires_in": "soon"})),
            Yields::Protocol,
        ),
        (
            "expires_in as a number",
            Fault::json(200, &json!({"access_token": "a", "expires_in": 3599})),
            Yields::Token,
        ),
        ("wrong content type", Fault::WrongContentType, Yields::Token),
    ]);
    faults
}

#[tokio::test(flavor = "current_thread")]
async fn satusehat_meets_the_provider_contract() {
    assert_conforms(&subject::<SatusehatSource>(faults())).await;
}
