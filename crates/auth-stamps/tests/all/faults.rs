//! Stamps' 429: rate-limited until its `Retry-After`, the stored entry intact. (Every other
//! answer → its error kind is the table in `conformance.rs`.)

use std::time::Duration;

use auth_core::{ErrorKind, MemoryStore};
use auth_testkit::Fault;

use crate::support::{clock, jwt_source, manager, sim};

#[tokio::test(flavor = "current_thread")]
async fn a_429_is_rate_limited_until_retry_after() {
    let clock = clock();
    let sim = sim(&clock, Duration::from_secs(3600)).await;
    sim.fail_next(Fault::Status {
        status: 429,
        content_type: None,
        body: String::new(),
    });
    let manager = manager(jwt_source(&sim), &MemoryStore::new(), &clock);
    let err = manager.token().await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "{err:?}"
    );
    // Nothing more is sent while it holds.
    let err = manager.token().await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "{err:?}"
    );
    assert_eq!(sim.request_count(), 1);
}
