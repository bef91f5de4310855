//! KalselSource meets the provider contract (`auth_testkit::conformance`): its table of faults
//! and the error kinds they yield; the kit checks the rest (arbitrary answers, logs, a
//! changed credential).

use std::sync::Arc;

use auth_core::{SharedTokenSource, provider::EnvProvider as _};
use auth_kalsel::KalselSource;
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
            Fault::json(401, &json!({"message": "unauthorized"})),
            Yields::Reauthentication,
        ),
        ("403 html", Fault::html_error(403), Yields::Reauthentication),
        (
            "421 expired",
            Fault::json(
                421,
                &json!({"status": 421, "message": "Token expired", "error": "jwt_error", "causes": ["token has expired"]}),
            ),
            Yields::Reauthentication,
        ),
        (
            "400 bad request",
            Fault::json(
                400,
                &json!({"status": 400, "message": "refresh_token: cannot be blank.", "error": "bad_request", "causes": []}),
            ),
            Yields::Protocol,
        ),
        ("429 empty", Fault::status(429, None, ""), Yields::RateLimited),
    ]);
    faults
}

#[tokio::test(flavor = "current_thread")]
async fn kalsel_meets_the_provider_contract() {
    assert_conforms(&Subject {
        declaration: &auth_kalsel::DECLARATION,
        start: Arc::new(<KalselSource as Simulated>::start_simulator),
        build: Arc::new(|lookup, http| {
            Ok(SharedTokenSource::new(KalselSource::from_lookup(
                lookup, http,
            )?))
        }),
        faults: faults(),
    })
    .await;
}
