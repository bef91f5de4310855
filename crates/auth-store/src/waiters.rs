//! The lock waiters of a shared store, per key, woken by the store's notifications (Redis
//! pub/sub, PostgreSQL `LISTEN/NOTIFY`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::Notify;

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
