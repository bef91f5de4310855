//! Property tests of the response handling. The parser is private, so arbitrary answers are
//! served by a loopback [`SimServer`] whose handler returns them, and the real source reads
//! them: never a panic, always a token or a typed error; valid answers round-trip.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_core::{
    ErrorKind, FetchRequest, SharedClock, TokenSource as _,
    http::{HttpClient, HttpConfig},
};
use auth_kalsel::{KalselConfig, KalselSource};
use auth_testkit::{SimContext, SimRequest, SimResponse, SimServer};
use proptest::{prelude::*, test_runner::TestRunner};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

#[derive(Clone, Debug, Default)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    answer: Arc<Mutex<Answer>>,
    source: KalselSource,
    _sim: SimServer,
}

impl Harness {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let answer = Arc::new(Mutex::new(Answer::default()));
        let served = answer.clone();
        let sim = runtime
            .block_on(
                SimServer::builder().start(move |_: &SimRequest, _: &SimContext| {
                    let a = served.lock().unwrap().clone();
                    SimResponse::new(a.status, a.content_type.as_deref(), a.body)
                }),
            )
            .unwrap();
        let config = KalselConfig::new(SecretString::from("refresh-secret-for-props"))
            .unwrap()
            .with_base_url(&sim.base_url())
            .unwrap();
        let http =
            HttpClient::new(HttpConfig::default().with_timeout(Duration::from_secs(10))).unwrap();
        Self {
            runtime,
            answer,
            source: KalselSource::new(config, http),
            _sim: sim,
        }
    }

    fn fetch(&self, answer: Answer) -> Result<auth_core::Fetched, auth_core::Error> {
        *self.answer.lock().unwrap() = answer;
        let sent_at = SharedClock::system().now();
        self.runtime
            .block_on(self.source.fetch(FetchRequest::new(None, sent_at)))
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("text/html; charset=utf-8".to_owned())),
        "[!-~]{1,40}".prop_map(Some),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,80}".prop_map(|s| json!(s)),
        Just(json!(null)),
        Just(json!({"a": [1]})),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "\\PC{0,200}".prop_map(String::into_bytes),
        (json_value(), json_value()).prop_map(|(token, expired)| json!({
            "access_token": token, "expired": expired
        })
        .to_string()
        .into_bytes()),
        (json_value(), json_value(), json_value()).prop_map(|(m, e, c)| json!({
            "status": 421, "message": m, "error": e, "causes": [c]
        })
        .to_string()
        .into_bytes()),
    ]
}

/// Any status, content type and body: a token or a typed error, never a panic; refusals and
/// server errors get their documented kinds.
#[test]
fn arbitrary_answers_never_panic() {
    let h = Harness::start();
    let strategy = (200u16..600, content_type(), body());
    runner(192)
        .run(&strategy, |(status, content_type, body)| {
            let result = h.fetch(Answer {
                status,
                content_type,
                body,
            });
            match result {
                Ok(fetched) => {
                    prop_assert_eq!(status, 200);
                    prop_assert!(fetched.token.expires_at().is_some());
                }
                Err(e) => {
                    let expected = match status {
                        401 | 403 | 421 => Some(ErrorKind::ReauthenticationRequired),
                        408 | 500..=599 => Some(ErrorKind::Transient),
                        429 => None,
                        _ => Some(ErrorKind::Protocol),
                    };
                    match expected {
                        Some(kind) => prop_assert_eq!(e.kind(), kind, "{}", e),
                        None => prop_assert!(
                            matches!(e.kind(), ErrorKind::RateLimited { .. }),
                            "{:?}",
                            e
                        ),
                    }
                    let printed = format!("{e} {e:?}");
                    prop_assert!(!printed.contains("refresh-secret-for-props"));
                }
            }
            Ok(())
        })
        .unwrap();
}

/// A documented answer comes back as a token with `access_token` as its secret, expiring at
/// `expired`, and the same value as the rotated refresh token.
#[test]
fn valid_answers_round_trip() {
    let h = Harness::start();
    let strategy = ("[A-Za-z0-9._-]{1,400}", 5i64..(400 * 86_400));
    runner(128)
        .run(&strategy, |(token, life)| {
            let expired = SharedClock::system().now().unix_timestamp() + life;
            let body = json!({"access_token": token, "expired": expired});
            let fetched = h
                .fetch(Answer {
                    status: 200,
                    content_type: Some("application/json".to_owned()),
                    body: body.to_string().into_bytes(),
                })
                .unwrap();
            prop_assert_eq!(fetched.token.secret().expose_secret(), token.as_str());
            prop_assert_eq!(
                fetched
                    .refresh
                    .as_ref()
                    .map(|r| r.expose_secret().to_owned()),
                Some(token.clone())
            );
            prop_assert_eq!(
                fetched
                    .token
                    .expires_at()
                    .map(auth_core::time::OffsetDateTime::unix_timestamp),
                Some(expired)
            );
            Ok(())
        })
        .unwrap();
}
