//! Freeing a refresh lease the store could not be told about in time — a release whose reply
//! was lost, a lock dropped without release, an acquisition whose reply was lost — so that a
//! store that comes back does not keep the fleet (this process included) waiting for the rest
//! of the lease's life.

use std::{
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use auth_core::StoreError;

/// The first wait between attempts; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(50);
/// The longest wait between attempts: a store that is back frees the lease within about this.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Frees a lease in the background: `free` — a compare-and-delete by holder, so repeating it
/// can never free another holder's lease — is tried until the store answers, for at most
/// `life`, after which the lease has expired by itself. Only [`StoreError::Unavailable`] (no
/// answer) is tried again: any other error is an answer (a refused privilege, a malformed
/// reply) that trying again would only repeat, so the lease is left to its TTL. Outside a
/// tokio runtime nothing is spawned and the lease expires by its TTL.
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
                    Err(StoreError::Unavailable { .. }) => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_WAIT);
                    }
                    Err(e) => {
                        tracing::debug!(%lease, error = %e, "the store refused to free a refresh lease; it expires by itself");
                        return false;
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

/// `duration` in whole milliseconds, at least 1, saturating (a lease of no time is no lease).
pub(crate) fn whole_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A lease's life as last asked for — at its taking, then by each renewal that held: how long
/// a release that failed is retried.
#[derive(Debug)]
pub(crate) struct Life(AtomicU64);

impl Life {
    pub(crate) fn new(life: Duration) -> Self {
        Self(AtomicU64::new(whole_millis(life)))
    }

    pub(crate) fn renewed(&self, life: Duration) {
        self.0.store(whole_millis(life), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Relaxed))
    }
}

/// A release's answer: freed; already expired (logged: another holder may have taken the
/// lease since); or none — then `free_later` retries it in the background, and the error is
/// still returned, so the caller knows the lease may outlive the call.
pub(crate) fn settle(
    lease: &str,
    answer: Result<bool, StoreError>,
    free_later: impl FnOnce(),
) -> Result<(), StoreError> {
    match answer {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::warn!(%lease, "the refresh lease had already expired when released");
            Ok(())
        }
        Err(e) => {
            free_later();
            Err(e)
        }
    }
}
