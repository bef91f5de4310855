//! A provider's source fed whatever answer a test chooses, for property tests of its response
//! handling: a provider's parser is private, so [`Answering`] serves each [`Answer`] from a
//! loopback [`SimServer`] and the real source reads it, over HTTP, as it would a provider's.
//!
//! ```
//! use auth_core::source;
//! use auth_testkit::answers::{Answer, Answering};
//!
//! // A provider's source built against `base_url`; here a closure that fails, to keep the
//! // example short (a provider crate's tests build its real source).
//! let h = Answering::start(|_base_url| {
//!     source::from_fn("demo", |_| async {
//!         Err(auth_core::Error::protocol("no parser here"))
//!     })
//! });
//! assert!(h.fetch(Answer::new(200, Some("application/json"), "{}")).is_err());
//! ```

use std::sync::{Arc, Mutex, PoisonError};

use auth_core::{Error, FetchRequest, Fetched, SharedClock, TokenSource, time::OffsetDateTime};

use crate::{SimContext, SimRequest, SimResponse, SimServer};

/// One answer to the next request.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// A `Date` header in place of the server's own.
    pub date: Option<String>,
}

impl Answer {
    /// An answer with the server's own `Date`.
    pub fn new(status: u16, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: content_type.map(str::to_owned),
            body: body.into(),
            date: None,
        }
    }

    /// The same answer with `date` as its `Date` header.
    #[must_use]
    pub fn with_date(mut self, date: Option<String>) -> Self {
        self.date = date;
        self
    }
}

/// A source whose every request is answered with the [`Answer`] given to
/// [`fetch`](Self::fetch), on a runtime of its own (property tests are synchronous).
#[derive(Debug)]
pub struct Answering<S> {
    runtime: tokio::runtime::Runtime,
    answer: Arc<Mutex<Answer>>,
    source: S,
    _server: SimServer,
}

impl<S: TokenSource> Answering<S> {
    /// Starts the server and builds the source with `build`, given the server's base URL.
    ///
    /// # Panics
    /// When the runtime or the loopback server cannot start.
    #[allow(clippy::expect_used, reason = "a test harness: no server, no test")]
    pub fn start(build: impl FnOnce(&str) -> S) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        let answer = Arc::new(Mutex::new(Answer::default()));
        let served = answer.clone();
        let server = runtime
            .block_on(
                SimServer::builder().start(move |_: &SimRequest, _: &SimContext| {
                    let a = served
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    let response = SimResponse::new(a.status, a.content_type.as_deref(), a.body);
                    match &a.date {
                        Some(date) => response.with_header("date", date),
                        None => response,
                    }
                }),
            )
            .expect("a loopback server");
        let source = build(&server.base_url());
        Self {
            runtime,
            answer,
            source,
            _server: server,
        }
    }

    /// The source's outcome when `answer` is what it gets, sent now.
    pub fn fetch(&self, answer: Answer) -> Result<Fetched, Error> {
        self.fetch_at(answer, SharedClock::system().now())
    }

    /// The source's outcome when `answer` is what it gets, sent at `sent_at`.
    pub fn fetch_at(&self, answer: Answer, sent_at: OffsetDateTime) -> Result<Fetched, Error> {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = answer;
        self.runtime
            .block_on(self.source.fetch(FetchRequest::new(None, sent_at)))
    }
}
