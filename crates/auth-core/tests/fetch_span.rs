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
    Clock, FetchRequest, Fetched, MemoryStore, MonoTime, SharedClock, StoreKey, Token,
    TokenManager, TokioClock, source::from_fn, time, time::macros::datetime,
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

impl Buf {
    /// What was logged, once the spans that were open have closed.
    async fn logs(&self) -> String {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Captures this thread's logs, spans' closing included, until the guard is dropped.
fn capture() -> (Buf, tracing::subscriber::DefaultGuard) {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(start_paused = true)]
async fn fetch_span_records_provider_and_outcome_but_no_secret() {
    let (buf, _guard) = capture();
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
    let logs = buf.logs().await;
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

/// Tokio's paused time, with the monotonic reading made coarse (4 ms steps, as the system
/// clock's is on Linux) and the precise one exact.
#[derive(Debug)]
struct CoarseClock(Arc<TokioClock>);

impl Clock for CoarseClock {
    fn now(&self) -> time::OffsetDateTime {
        self.0.now()
    }
    fn monotonic(&self) -> MonoTime {
        let nanos = self.0.monotonic().as_nanos();
        MonoTime::from_nanos(nanos - nanos % 4_000_000)
    }
    fn precise_monotonic(&self) -> MonoTime {
        self.0.monotonic()
    }
}

#[tokio::test(start_paused = true)]
async fn the_fetch_spans_latency_comes_from_the_precise_clock_to_the_microsecond() {
    let (buf, _guard) = capture();
    // The request takes exactly 5.25 ms of (paused, injected) time: a coarse reading would
    // report 4 or 8.
    let source = from_fn("test", |req: FetchRequest| async move {
        tokio::time::advance(Duration::from_micros(5_250)).await;
        Ok(Fetched::new(Token::bearer(
            SecretString::from("tok-2"),
            req.sent_at,
            Some(req.sent_at + Duration::from_secs(60)),
        )?))
    });
    let m = TokenManager::builder(source)
        .store(MemoryStore::new())
        .clock(SharedClock::new(CoarseClock(TokioClock::new(datetime!(
            2026-11-22 08:00 UTC
        )))))
        .key(StoreKey::new("test:default").unwrap())
        .build()
        .unwrap();
    m.token().await.unwrap();
    let logs = buf.logs().await;
    assert!(logs.contains("latency_ms=5.25"), "{logs}");
}
