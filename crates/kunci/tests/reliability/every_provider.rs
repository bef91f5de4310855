//! Every provider compiled in, through the facade's `ProviderKind` (so a provider added with
//! `cargo xtask new-provider` is here without a hand edit): its simulator started by
//! `ProviderKind::start_simulator`, its source built by `ProviderKind::source_from_lookup`,
//! and the provider contract kit (`auth_testkit::conformance`) run against both, each
//! provider's own fault table (`Simulated::faults`) included.

use std::sync::Arc;

use auth_testkit::conformance::{Subject, check};
use kunci::ProviderKind;

#[tokio::test(flavor = "current_thread")]
async fn every_provider_compiled_in_meets_the_provider_contract() {
    let mut failures = Vec::new();
    for &kind in ProviderKind::ALL {
        let subject = Subject {
            declaration: *kind.declaration(),
            start: Arc::new(move |builder| kind.start_simulator(builder)),
            build: Arc::new(move |lookup, http| kind.source_from_lookup(lookup, http)),
        };
        failures.extend(check(&subject).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(ProviderKind::ALL.len(), ProviderKind::WORKSPACE.len());
}
