//! KrmPesanSource meets the provider contract (`auth_testkit::conformance`): its table of faults
//! and the error kinds they yield; the kit checks the rest (arbitrary answers, logs, a
//! changed credential).

use std::sync::Arc;

use auth_core::{SharedTokenSource, provider::EnvProvider as _};
use auth_krmpesan::KrmPesanSource;
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
            "401",
            Fault::json(401, &json!({"message": "Invalid Refresh Token"})),
            Yields::Reauthentication,
        ),
        ("403 html", Fault::html_error(403), Yields::Reauthentication),
        (
            "429 empty",
            Fault::status(429, None, ""),
            Yields::RateLimited,
        ),
        ("204", Fault::status(204, None, ""), Yields::Protocol),
        (
            "an expired IdToken",
            Fault::json(200, &json!({"IdToken": "x", "ExpiresIn": 0})),
            Yields::Protocol,
        ),
    ]);
    faults
}

#[tokio::test(flavor = "current_thread")]
async fn krmpesan_meets_the_provider_contract() {
    assert_conforms(&Subject {
        declaration: &auth_krmpesan::DECLARATION,
        start: Arc::new(<KrmPesanSource as Simulated>::start_simulator),
        build: Arc::new(|lookup, http| {
            Ok(SharedTokenSource::new(KrmPesanSource::from_lookup(
                lookup, http,
            )?))
        }),
        faults: faults(),
    })
    .await;
}
