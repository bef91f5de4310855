//! The lock waiters of a shared store, per key, woken by the store's notifications (Redis
//! pub/sub, PostgreSQL `LISTEN/NOTIFY`).

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::{Notify, oneshot, watch};

/// The waiters on each key's lock.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    by_key: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waiters {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        // Every critical section is one map operation: a poisoned map is still consistent.
        self.by_key.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The wake-up of `key`'s waiters.
    pub(crate) fn of(&self, key: &str) -> Arc<Notify> {
        Arc::clone(self.map().entry(key.to_owned()).or_default())
    }

    /// Wakes the waiters of `key`.
    pub(crate) fn wake(&self, key: &str) {
        if let Some(notify) = self.map().get(key) {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter (a notification may have been missed).
    pub(crate) fn wake_all(&self) {
        for notify in self.map().values() {
            notify.notify_waiters();
        }
    }

    /// Wakes the waiters a notification payload names: `r:<key>` (released) or `s:<key>`
    /// (saved).
    pub(crate) fn wake_payload(&self, payload: &str) {
        if let Some((_, key)) = payload.split_once(':') {
            self.wake(key);
        }
    }
}

/// Runs `session` — one connection's subscription (Redis `SUBSCRIBE`, PostgreSQL `LISTEN`),
/// which marks `listening` once subscribed and returns why it ended — again and again until
/// `stop`. After each session: not listening, every waiter woken (a notification may have been
/// missed), then a jittered back-off from 50 ms doubling to 2 s, started again after a session
/// that had been listening.
pub(crate) async fn resubscribe<F, S>(
    waiters: &Waiters,
    listening: &watch::Sender<bool>,
    mut stop: oneshot::Receiver<()>,
    connection: &str,
    channel: &str,
    mut session: F,
) where
    F: FnMut() -> S,
    S: Future<Output = Result<(), String>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            result = session() => {
                if let Err(e) = result {
                    tracing::debug!(channel, error = %e, "the token store's {connection} connection failed");
                }
            }
        }
        let was_listening = listening.send_replace(false);
        waiters.wake_all();
        if was_listening {
            backoff = Duration::from_millis(50);
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64())) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
