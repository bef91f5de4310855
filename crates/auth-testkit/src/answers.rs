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

/// The strategies the providers' property tests share (feature `proptest`): the statuses,
/// content types and JSON values an arbitrary answer is made of; each provider's tests add
/// the bodies of its own shapes.
#[cfg(feature = "proptest")]
pub mod strategies {
    use auth_core::{ErrorKind, TokenSource, time::OffsetDateTime};
    use proptest::{prelude::*, test_runner::TestRunner};
    use serde_json::json;

    use super::{Answer, Answering};

    /// `cases` cases, nothing persisted (a failure prints its input).
    pub fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A runner of [`config`]`(cases)`, for tests that hold a harness across cases.
    pub fn runner(cases: u32) -> TestRunner {
        TestRunner::new(config(cases))
    }

    /// Any status from 100 to 599.
    pub fn status() -> impl Strategy<Value = http::StatusCode> {
        (100u16..600).prop_map(|s| {
            http::StatusCode::from_u16(s).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
        })
    }

    /// No content type, a JSON one, an HTML or text one, or any printable text.
    pub fn content_type() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("application/json".to_owned())),
            Just(Some("application/fhir+json".to_owned())),
            Just(Some("text/html; charset=utf-8".to_owned())),
            Just(Some("text/plain".to_owned())),
            "[ -~]{0,40}".prop_map(Some),
        ]
    }

    /// A JSON value of any type: numbers at every size, text, null, a boolean, nesting.
    pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "\\PC{0,80}".prop_map(|s| json!(s)),
            Just(json!(null)),
            Just(json!(true)),
            Just(json!({"a": [1]})),
            Just(json!([{"details": {"text": 5}}])),
        ]
    }

    /// The last second a clock can show: the one before [`auth_core::expiry::LATEST`].
    pub const LAST_CLOCK_SECOND: i64 = auth_core::expiry::LATEST.unix_timestamp() - 1;

    /// A moment a `Date` header or a local clock can show, 1970 to 9999: `now`, the Unix
    /// epoch, [`LAST_CLOCK_SECOND`] or any second between.
    pub fn moment(now: OffsetDateTime) -> impl Strategy<Value = OffsetDateTime> {
        let at = |second: i64| {
            OffsetDateTime::from_unix_timestamp(second).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        };
        prop_oneof![
            Just(now),
            Just(OffsetDateTime::UNIX_EPOCH),
            Just(at(LAST_CLOCK_SECOND)),
            (0..=LAST_CLOCK_SECOND).prop_map(at),
        ]
    }

    /// `cases` answers of a status from `statuses`, any [`content_type`] and a body from
    /// `bodies`, each fetched by `h`'s source: a token only for a 200 (with an expiry), else an
    /// error of the kind `expected(status, body)` gives (`None`: rate-limited, whatever its
    /// `until`) whose text and `Debug` hold none of `secrets` — and never a panic.
    ///
    /// # Panics
    /// When an answer gets anything else, with the shrunk answer.
    #[allow(
        clippy::panic,
        reason = "a test helper: a failed property is a failed test"
    )]
    pub fn assert_kinds_of_arbitrary_answers<S: TokenSource>(
        h: &Answering<S>,
        cases: u32,
        statuses: impl Strategy<Value = u16>,
        bodies: impl Strategy<Value = Vec<u8>>,
        expected: impl Fn(u16, &[u8]) -> Option<ErrorKind>,
        secrets: &[&str],
    ) {
        let strategy = (statuses, content_type(), bodies);
        let outcome = runner(cases).run(&strategy, |(status, content_type, body)| {
            let expected = expected(status, &body);
            let answer = Answer {
                status,
                content_type,
                body,
                date: None,
            };
            match h.fetch(answer) {
                Ok(fetched) => {
                    prop_assert_eq!(status, 200);
                    prop_assert!(fetched.token.expires_at().is_some());
                }
                Err(e) => {
                    match expected {
                        Some(kind) => prop_assert_eq!(e.kind(), kind, "{}", e),
                        None => prop_assert!(
                            matches!(e.kind(), ErrorKind::RateLimited { .. }),
                            "{:?}",
                            e
                        ),
                    }
                    let printed = format!("{e} {e:?}");
                    for secret in secrets {
                        prop_assert!(!printed.contains(secret), "a secret in {}", printed);
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("{e}");
        }
    }
}
