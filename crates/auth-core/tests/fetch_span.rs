//! The fetch span, captured with a thread-local subscriber. In a binary of its own: tracing's
//! per-callsite interest is process-wide, and tests running beside it on other threads without
//! a subscriber made the capture come back empty under `cargo test`.

#![allow(clippy::unwrap_used, reason = "test")]

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_core::{
    FetchRequest, Fetched, MemoryStore, SharedClock, StoreKey, Token, TokenManager, TokioClock,
    source::from_fn, time::macros::datetime,
};
use secrecy::SecretString;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn fetch_span_records_provider_and_outcome_but_no_secret() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let source = from_fn("test", |req: FetchRequest| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(Fetched::new(Token::bearer(
            SecretString::from("tok-1"),
            req.sent_at,
            Some(req.sent_at + Duration::from_secs(60)),
        )?))
    });
    let m = TokenManager::builder(source)
        .store(MemoryStore::new())
        .clock(SharedClock::from(TokioClock::new(
            datetime!(2026-11-22 08:00 UTC),
        )))
        .key(StoreKey::new("test:default").unwrap())
        .build()
        .unwrap();
    m.token().await.unwrap();
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("kunci.fetch"), "{logs}");
    assert!(
        logs.contains("provider=\"test\"") || logs.contains("provider=test"),
        "{logs}"
    );
    assert!(
        logs.contains("outcome=\"ok\"") || logs.contains("outcome=ok"),
        "{logs}"
    );
    assert!(!logs.contains("tok-1"), "{logs}");
}
