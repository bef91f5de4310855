//! Waiting for a lock held by another store handle, as the Redis and PostgreSQL tests check it:
//! a waiter that polls hourly must be woken by the release's note (pub/sub, NOTIFY).

use std::time::Duration;

use auth_core::{StoreError, StoreKey, StoreLock, TokenStore};
use tokio::{sync::mpsc::UnboundedReceiver, task::JoinHandle};

use crate::support::entry;

/// How long a test waits for a note or a woken waiter.
const IN_TIME: Duration = Duration::from_secs(30);

/// A task in which `store` waits for the lock under `key` (to hold it a minute).
pub(crate) fn spawn_waiter<S>(
    store: &S,
    key: &StoreKey,
) -> JoinHandle<Result<Box<dyn StoreLock>, StoreError>>
where
    S: TokenStore + Clone + 'static,
{
    let (store, key) = (store.clone(), key.clone());
    tokio::spawn(async move { store.lock(&key, Duration::from_secs(60)).await })
}

/// The lock `waiter` took within [`IN_TIME`] (`why` it was woken, should it not be).
pub(crate) async fn woken(
    waiter: JoinHandle<Result<Box<dyn StoreLock>, StoreError>>,
    why: &str,
) -> Box<dyn StoreLock> {
    tokio::time::timeout(IN_TIME, waiter)
        .await
        .expect(why)
        .unwrap()
        .unwrap()
}

/// `holder` takes the lock under `key` for `hold`, a waiter on `waiting` starts waiting, and
/// the release wakes it: the note path works (and the listener of `waiting` is started).
pub(crate) async fn a_release_wakes_a_waiter<S>(
    holder: &S,
    waiting: &S,
    key: &StoreKey,
    hold: Duration,
) where
    S: TokenStore + Clone + 'static,
{
    let held = holder.lock(key, hold).await.unwrap();
    let waiter = spawn_waiter(waiting, key);
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.release().await.unwrap();
    woken(waiter, "the release woke the waiter")
        .await
        .release()
        .await
        .unwrap();
}

/// The next note on `notes`, within [`IN_TIME`].
pub(crate) async fn next_note(notes: &mut UnboundedReceiver<String>) -> String {
    tokio::time::timeout(IN_TIME, notes.recv())
        .await
        .unwrap()
        .unwrap()
}

/// `holder` holds the lock under `key` for an hour while a waiter on `waiting` (which polls
/// hourly) waits: a save notes `s:<key>` on `notes` and frees nothing; the release notes
/// `r:<key>` and wakes the waiter long before its poll. Returns the waiter's lock.
pub(crate) async fn waiters_are_woken_by_the_release_note<S>(
    holder: &S,
    waiting: &S,
    key: &StoreKey,
    notes: &mut UnboundedReceiver<String>,
) -> Box<dyn StoreLock>
where
    S: TokenStore + Clone + 'static,
{
    let held = holder.lock(key, Duration::from_secs(3600)).await.unwrap();
    let waiter = spawn_waiter(waiting, key);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the lock is held");

    holder.save(key, &entry("x", None), 0).await.unwrap();
    assert_eq!(next_note(notes).await, format!("s:{key}"), "a save notes");
    assert!(!waiter.is_finished(), "a save does not free the lock");

    held.release().await.unwrap();
    assert_eq!(
        next_note(notes).await,
        format!("r:{key}"),
        "a release notes"
    );
    woken(
        waiter,
        "the waiter was woken by the release's note, not by its hourly poll",
    )
    .await
}
