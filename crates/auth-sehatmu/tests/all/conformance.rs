//! SehatMuSource meets the provider contract (`auth_testkit::conformance`): its table of faults
//! and the error kinds they yield; the kit checks the rest (arbitrary answers, logs, a
//! changed credential).

use std::sync::Arc;

use auth_core::{SharedTokenSource, provider::EnvProvider as _};
use auth_sehatmu::SehatMuSource;
use auth_testkit::{
    Fault, Simulated,
    conformance::{FaultCase, Subject, Yields, assert_conforms, transport_faults},
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
                &auth_testkit::sehatmu::operation_outcome(auth_sehatmu::CREDENTIALS_REJECTED_TEXT),
            ),
            Yields::Reauthentication,
        ),
        (
            "429 outcome",
            Fault::json(
                429,
                &auth_testkit::sehatmu::operation_outcome(auth_sehatmu::RATE_LIMIT_TEXT),
            ),
            Yields::RateLimited,
        ),
        (
            "no expiry",
            Fault::json(200, &json!({"accessToken": "abc"})),
            Yields::Protocol,
        ),
        ("wrong content type", Fault::WrongContentType, Yields::Token),
    ]);
    faults
}

#[tokio::test(flavor = "current_thread")]
async fn sehatmu_meets_the_provider_contract() {
    assert_conforms(&Subject {
        declaration: &auth_sehatmu::DECLARATION,
        start: Arc::new(<SehatMuSource as Simulated>::start_simulator),
        build: Arc::new(|lookup, http| {
            Ok(SharedTokenSource::new(SehatMuSource::from_lookup(
                lookup, http,
            )?))
        }),
        faults: faults(),
    })
    .await;
}
