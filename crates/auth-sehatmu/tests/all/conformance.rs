//! SehatMuSource meets the provider contract (`auth_testkit::conformance`): its table of
//! expectations is `Simulated::faults` in `src/testing.rs`; the kit checks it and the rest
//! (the declaration, a first token, arbitrary answers, TRACE logs, a changed credential), the
//! same for every provider.

use auth_sehatmu::SehatMuSource;
use auth_testkit::conformance::{assert_conforms, subject};

#[tokio::test(flavor = "current_thread")]
async fn sehatmu_meets_the_provider_contract() {
    assert_conforms(&subject::<SehatMuSource>()).await;
}
