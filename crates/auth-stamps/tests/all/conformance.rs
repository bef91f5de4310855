//! StampsSource meets the provider contract (`auth_testkit::conformance`): its table of faults
//! and the error kinds they yield; the kit checks the rest (arbitrary answers, logs, a
//! changed credential).

use std::sync::Arc;

use auth_core::{SharedTokenSource, provider::EnvProvider as _};
use auth_stamps::StampsSource;
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
            "401 detail",
            Fault::json(401, &json!({"detail": "Invalid token."})),
            Yields::Reauthentication,
        ),
        ("403 html", Fault::html_error(403), Yields::Reauthentication),
        (
            "not a jwt",
            Fault::json(200, &json!({"access_token": "opaque-token"})),
            Yields::Protocol,
        ),
        ("302", Fault::status(302, None, ""), Yields::Protocol),
        ("wrong content type", Fault::WrongContentType, Yields::Token),
    ]);
    faults
}

#[tokio::test(flavor = "current_thread")]
async fn stamps_meets_the_provider_contract() {
    assert_conforms(&Subject {
        declaration: &auth_stamps::DECLARATION,
        start: Arc::new(<StampsSource as Simulated>::start_simulator),
        build: Arc::new(|lookup, http| {
            Ok(SharedTokenSource::new(StampsSource::from_lookup(
                lookup, http,
            )?))
        }),
        faults: faults(),
    })
    .await;
}
