//! SatusehatSource meets the provider contract (`auth_testkit::conformance`): its table of
//! faults and the error kinds they yield; the kit checks the rest.

use std::sync::Arc;

use auth_core::{SharedTokenSource, provider::EnvProvider as _};
use auth_testkit::{
    Fault, Simulated,
    conformance::{FaultCase, Subject, Yields, assert_conforms, transport_faults},
};
use auth_satusehat::SatusehatSource;
use serde_json::json;

/// This provider's answers beyond the transport faults every provider shares.
fn faults() -> Vec<FaultCase> {
    let mut faults = transport_faults();
    faults.extend([
        (
            "401",
            Fault::json(401, &json!({"error": "invalid api key"})),
            Yields::Reauthentication,
        ),
        (
            "no expiry",
            Fault::json(200, &json!({"access_token": "abc"})),
            Yields::Protocol,
        ),
    ]);
    faults
}

#[tokio::test(flavor = "current_thread")]
async fn satusehat_meets_the_provider_contract() {
    assert_conforms(&Subject {
        declaration: &auth_satusehat::DECLARATION,
        start: Arc::new(<SatusehatSource as Simulated>::start_simulator),
        build: Arc::new(|lookup, http| {
            Ok(SharedTokenSource::new(SatusehatSource::from_lookup(lookup, http)?))
        }),
        faults: faults(),
    })
    .await;
}
