//! Helpers shared by the manager's unit tests (`tests.rs`, `regressions.rs`).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering::SeqCst},
};

use secrecy::{ExposeSecret, SecretString};
use time::{OffsetDateTime, macros::datetime};
use tokio::time::{Duration, sleep};

use super::*;
use crate::{Fetched, TokioClock, source::from_fn};

pub(super) const T0: OffsetDateTime = datetime!(2026-11-22 08:00 UTC);

pub(super) fn token(secret: &str, issued: OffsetDateTime, lifetime: Duration) -> Token {
    Token::bearer(
        SecretString::from(secret.to_owned()),
        issued,
        Some(issued + lifetime),
    )
    .unwrap()
}

pub(super) fn secret_of(token: &Token) -> String {
    token.secret().expose_secret().to_owned()
}

/// What a scripted source does on its n-th call (1-based).
pub(super) type Script = Arc<dyn Fn(usize, &FetchRequest) -> Result<Fetched, Error> + Send + Sync>;

/// A source that counts its calls, waits `latency` (tokio time) and follows `script`; the
/// script may panic.
pub(super) fn scripted(latency: Duration, script: Script) -> (SharedTokenSource, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let source = from_fn("test", move |req: FetchRequest| {
        let n = counter.fetch_add(1, SeqCst) + 1;
        let script = script.clone();
        async move {
            sleep(latency).await;
            script(n, &req)
        }
    });
    (SharedTokenSource::new(source), calls)
}

/// Tokens `tok-1`, `tok-2`, … living `lifetime` from the moment their request was sent.
pub(super) fn issuing(lifetime: Duration) -> Script {
    Arc::new(move |n, req| {
        Ok(Fetched::new(token(
            &format!("tok-{n}"),
            req.sent_at,
            lifetime,
        )))
    })
}

pub(super) fn key() -> StoreKey {
    StoreKey::new("test:default").unwrap()
}

pub(super) fn manager_with(
    source: SharedTokenSource,
    store: impl Into<SharedTokenStore>,
    clock: SharedClock,
) -> TokenManager {
    TokenManager::builder(source)
        .store(store)
        .clock(clock)
        .key(key())
        .build()
        .unwrap()
}

pub(super) fn manager(
    source: SharedTokenSource,
    store: impl Into<SharedTokenStore>,
) -> TokenManager {
    manager_with(source, store, SharedClock::from(TokioClock::new(T0)))
}

/// Lets spawned tasks run without moving paused time.
pub(super) async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// `tok-1` living 100 s on the first call, then `error` on every later one.
pub(super) fn one_token_then(error: Error) -> Script {
    Arc::new(move |n, req| {
        if n == 1 {
            Ok(Fetched::new(token(
                "tok-1",
                req.sent_at,
                Duration::from_secs(100),
            )))
        } else {
            Err(error.clone())
        }
    })
}
