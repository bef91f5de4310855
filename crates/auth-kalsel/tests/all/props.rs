//! Property tests of the response handling. The parser is private, so arbitrary answers are
//! served by a loopback server (`auth_testkit::answers`), and the real source reads
//! them: never a panic, always a token or a typed error; valid answers round-trip.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use auth_core::{
    ErrorKind, SharedClock,
    http::HttpConfig,
    time::{Duration as TimeDuration, OffsetDateTime},
};
use auth_kalsel::{KalselConfig, KalselSource};
use auth_testkit::answers::{
    Answer, Answering,
    strategies::{assert_kinds_of_arbitrary_answers, json_value, runner},
};
use proptest::prelude::*;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

fn harness() -> Answering<KalselSource> {
    Answering::start(|base_url| {
        let config = KalselConfig::new(SecretString::from("refresh-secret-for-props"))
            .unwrap()
            .with_base_url(base_url)
            .unwrap();
        let http = HttpConfig::default().with_timeout(Duration::from_secs(10));
        KalselSource::new(config, http).unwrap()
    })
}

/// The moment sent, and the outcome.
fn fetch_now(
    h: &Answering<KalselSource>,
    answer: Answer,
) -> (OffsetDateTime, Result<auth_core::Fetched, auth_core::Error>) {
    let sent_at = SharedClock::system().now();
    (sent_at, h.fetch_at(answer, sent_at))
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
        (error_field(), cause()).prop_map(|(e, c)| json!({
            "status": 422, "message": "Token tidak valid", "error": e, "causes": [c]
        })
        .to_string()
        .into_bytes()),
    ]
}

fn error_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("jwt_error".to_owned()),
        Just("not_found".to_owned()),
        Just("rate_limiter".to_owned()),
        "[a-z_]{0,12}",
    ]
}

fn cause() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("not a refresh token".to_owned()),
        Just("Token is expired".to_owned()),
        Just("refresh-secret-for-props".to_owned()),
        "\\PC{0,40}",
    ]
}

/// The kind an answer must get, from its status and its body's `error` and `causes`.
fn expected_kind(status: u16, body: &[u8]) -> Option<ErrorKind> {
    let parsed: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|b| b.get("error"))
        .and_then(|e| e.as_str());
    let not_a_refresh_token = parsed
        .as_ref()
        .and_then(|b| b.get("causes"))
        .and_then(|c| c.as_array())
        .is_some_and(|c| c.iter().any(|c| c == "not a refresh token"));
    Some(match (status, error) {
        (421 | 422, Some("jwt_error")) if not_a_refresh_token => ErrorKind::Configuration,
        (401 | 403 | 421, _) | (422, Some("jwt_error")) | (404, Some("not_found")) => {
            ErrorKind::ReauthenticationRequired
        }
        (408 | 500..=599, _) => ErrorKind::Transient,
        (429, _) => return None,
        _ => ErrorKind::Protocol,
    })
}

/// Any status, content type and body: a token or a typed error, never a panic; refusals and
/// server errors get their documented kinds.
#[test]
fn arbitrary_answers_never_panic() {
    assert_kinds_of_arbitrary_answers(
        &harness(),
        256,
        prop_oneof![200u16..600, Just(422u16), Just(421u16), Just(404u16)],
        body(),
        expected_kind,
        &["refresh-secret-for-props"],
    );
}

/// A documented answer comes back as a token with `access_token` as its secret, expiring at
/// `expired` (never later than the server's longest lifetime, 10080 minutes after sending),
/// and no refresh material: nothing rotates.
#[test]
fn valid_answers_round_trip() {
    let h = harness();
    let strategy = ("[A-Za-z0-9._-]{1,400}", 5i64..(400 * 86_400));
    runner(128)
        .run(&strategy, |(token, life)| {
            let expired = SharedClock::system().now().unix_timestamp() + life;
            let body = json!({"access_token": token, "expired": expired});
            let (sent_at, fetched) = fetch_now(
                &h,
                Answer {
                    status: 200,
                    content_type: Some("application/json".to_owned()),
                    body: body.to_string().into_bytes(),
                    date: None,
                },
            );
            let fetched = fetched.unwrap();
            prop_assert_eq!(fetched.token.secret().expose_secret(), token.as_str());
            prop_assert!(fetched.refresh.is_none());
            let longest = sent_at + TimeDuration::minutes(10_080);
            let expected = OffsetDateTime::from_unix_timestamp(expired)
                .unwrap()
                .min(longest);
            prop_assert_eq!(fetched.token.expires_at(), Some(expected));
            Ok(())
        })
        .unwrap();
}

/// Extreme `expired` values under a skewed `Date` header anywhere from 1970 to 9999: a token
/// expiring after it was sent and no later than 10080 minutes after, or a protocol error —
/// never a panic.
#[test]
fn extreme_expiries_under_skewed_dates_never_panic() {
    let h = harness();
    let expired = prop_oneof![
        any::<i64>(),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(253_402_300_799i64),
        Just(-377_705_116_800i64),
        -1_000_000i64..4_000_000_000,
    ];
    let date = prop_oneof![
        Just(None),
        (0i64..253_402_300_799).prop_map(Some),
        (-7 * 86_400i64..7 * 86_400)
            .prop_map(|skew| Some(SharedClock::system().now().unix_timestamp() + skew)),
    ];
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    runner(192)
        .run(&(expired, date), |(expired, date)| {
            let date = date.map(|d| {
                OffsetDateTime::from_unix_timestamp(d)
                    .unwrap()
                    .format(format)
                    .unwrap()
            });
            let body = format!(r#"{{"access_token":"tok","expired":{expired}}}"#);
            let (sent_at, outcome) = fetch_now(
                &h,
                Answer {
                    status: 200,
                    content_type: Some("application/json".to_owned()),
                    body: body.into_bytes(),
                    date,
                },
            );
            match outcome {
                Ok(fetched) => {
                    let at = fetched.token.expires_at().unwrap();
                    prop_assert!(at > sent_at);
                    prop_assert!(at <= sent_at + TimeDuration::minutes(10_080));
                }
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Protocol, "{}", e),
            }
            Ok(())
        })
        .unwrap();
}
