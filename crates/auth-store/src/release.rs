//! Freeing a refresh lease the store could not be told about in time — a release whose reply
//! was lost, a lock dropped without release, an acquisition whose reply was lost — so that a
//! store that comes back does not keep the fleet (this process included) waiting for the rest
//! of the lease's life.

use std::{future::Future, time::Duration};

use auth_core::StoreError;

/// The first wait between attempts; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(50);
/// The longest wait between attempts: a store that is back frees the lease within about this.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Frees a lease in the background: `free` — a compare-and-delete by holder, so repeating it
/// can never free another holder's lease — is tried until the store answers, for at most
/// `life`, after which the lease has expired by itself. Outside a tokio runtime nothing is
/// spawned and the lease expires by its TTL.
pub(crate) fn free_in_background<F, Fut>(lease: String, life: Duration, free: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, StoreError>> + Send,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let attempts = async {
            let mut wait = FIRST_WAIT;
            loop {
                match free().await {
                    Ok(freed) => return freed,
                    Err(_) => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_WAIT);
                    }
                }
            }
        };
        match tokio::time::timeout(life, attempts).await {
            Ok(true) => tracing::info!(%lease, "freed a refresh lease once the store answered"),
            Ok(false) => {}
            Err(_) => tracing::debug!(%lease, "the store did not answer within the lease's life; it expired by itself"),
        }
    });
}
