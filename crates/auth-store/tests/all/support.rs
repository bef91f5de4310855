//! Helpers shared by the test modules.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use auth_core::{FetchRequest, Fetched, SharedTokenSource, StoredEntry, Token, source};
use secrecy::{ExposeSecret as _, SecretString};
use time::{OffsetDateTime, macros::datetime};

pub(crate) const T0: OffsetDateTime = datetime!(2026-03-01 08:00 UTC);

/// An entry with a token `secret` expiring an hour after `T0`, refresh material `refresh`.
pub(crate) fn entry(secret: &str, refresh: Option<&str>) -> StoredEntry {
    let token = Token::bearer(
        SecretString::from(secret),
        T0,
        Some(T0 + Duration::from_secs(3600)),
    )
    .unwrap();
    let mut entry = StoredEntry::with_token(token);
    entry.refresh = refresh.map(SecretString::from);
    entry
}

pub(crate) fn secret_of(entry: &StoredEntry) -> String {
    entry
        .token
        .as_ref()
        .unwrap()
        .secret()
        .expose_secret()
        .to_owned()
}

/// A source that counts its calls, waits `delay` (a slow provider) and answers `tok-<n>`
/// valid for `lifetime` from the moment the request was sent, issued `age` before it.
pub(crate) fn counting_source(
    delay: Duration,
    age: Duration,
    lifetime: Duration,
) -> (SharedTokenSource, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&calls);
    let source = source::from_fn("count", move |request: FetchRequest| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(delay).await;
            let token = Token::bearer(
                SecretString::from(format!("tok-{n}")),
                request.sent_at - age,
                Some(request.sent_at + lifetime),
            )?;
            Ok(Fetched::new(token))
        }
    });
    (SharedTokenSource::new(source), calls)
}
