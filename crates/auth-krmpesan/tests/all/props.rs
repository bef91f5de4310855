//! Property tests of the response handling. The parser is private, so arbitrary answers are
//! served by a loopback server (`auth_testkit::answers`), and the real source reads
//! them: never a panic, always a token or a typed error; valid answers round-trip.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use auth_core::{ErrorKind, SharedClock, http::HttpConfig, time::OffsetDateTime};
use auth_krmpesan::{KrmPesanConfig, KrmPesanSource};
use auth_testkit::answers::{
    Answer, Answering,
    strategies::{LAST_CLOCK_SECOND, assert_kinds_of_arbitrary_answers, json_value, runner},
};
use proptest::prelude::*;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

fn harness() -> Answering<KrmPesanSource> {
    Answering::start(|base_url| {
        let config = KrmPesanConfig::new(
            SecretString::from("refresh-secret-for-props"),
            SecretString::from("device-secret-for-props"),
        )
        .unwrap()
        .with_base_url(base_url)
        .unwrap();
        let http = HttpConfig::default().with_timeout(Duration::from_secs(10));
        KrmPesanSource::new(config, http).unwrap()
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "\\PC{0,200}".prop_map(String::into_bytes),
        (json_value(), json_value(), json_value()).prop_map(|(id, exp, tt)| json!({
            "AccessToken": "a", "IdToken": id, "ExpiresIn": exp, "TokenType": tt
        })
        .to_string()
        .into_bytes()),
        json_value().prop_map(|m| json!({ "message": m }).to_string().into_bytes()),
        (json_value(), json_value(), json_value()).prop_map(|(t, m, rt)| json!({
            "__type": t, "message": m, "RefreshToken": rt
        })
        .to_string()
        .into_bytes()),
        (json_value(), json_value()).prop_map(|(id, rt)| json!({
            "AuthenticationResult": {"IdToken": id, "ExpiresIn": 3600, "RefreshToken": rt},
            "ChallengeParameters": {}
        })
        .to_string()
        .into_bytes()),
    ]
}

/// Any status, content type and body: a token or a typed error, never a panic; refusals and
/// server errors get their documented kinds.
#[test]
fn arbitrary_answers_never_panic() {
    assert_kinds_of_arbitrary_answers(
        &harness(),
        192,
        200u16..600,
        body(),
        |status, _| match status {
            400 | 401 | 403 => Some(ErrorKind::ReauthenticationRequired),
            408 | 500..=599 => Some(ErrorKind::Transient),
            429 => None,
            _ => Some(ErrorKind::Protocol),
        },
        &["refresh-secret-for-props", "device-secret-for-props"],
    );
}

/// A documented answer comes back as a token with the IdToken as its secret, expiring
/// `ExpiresIn` seconds after the request was sent (or at the IdToken's `exp`, when earlier).
#[test]
fn valid_answers_round_trip() {
    let h = harness();
    let strategy = (
        "[A-Za-z0-9_-]{1,300}",
        1u32..(400 * 86_400),
        proptest::option::of(120i64..(400 * 86_400)),
    );
    runner(128)
        .run(&strategy, |(opaque, expires_in, jwt_life)| {
            let now = SharedClock::system().now().unix_timestamp();
            let id_token = match jwt_life {
                Some(life) => auth_testkit::jwt::rs256_looking(
                    &json!({"sub": opaque, "exp": now + life, "iat": now}),
                    "kid",
                ),
                None => opaque,
            };
            let body = json!({
                "AccessToken": "access", "ExpiresIn": expires_in, "TokenType": "Bearer", "IdToken": id_token
            });
            let fetched = h
                .fetch(Answer {
                    status: 200,
                    content_type: Some("application/json".to_owned()),
                    body: body.to_string().into_bytes(),
                    date: None,
                })
                .unwrap();
            prop_assert_eq!(fetched.token.secret().expose_secret(), id_token.as_str());
            prop_assert!(fetched.refresh.is_none());
            let expires = fetched.token.expires_at().unwrap();
            let by_duration = fetched.token.issued_at() + Duration::from_secs(expires_in.into());
            match jwt_life {
                Some(life) => prop_assert_eq!(
                    expires,
                    by_duration.min(auth_core::time::OffsetDateTime::from_unix_timestamp(now + life).unwrap())
                ),
                None => prop_assert_eq!(expires, by_duration),
            }
            Ok(())
        })
        .unwrap();
}

/// The moments `time` represents end with 9999-12-31T23:59:59Z.
const LAST_SECOND: i64 = 253_402_300_799;

/// `ExpiresIn` from anywhere: `9223372036854775807`, its neighbours, beyond 64 bits, any size.
fn extreme_expires_in() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!(i64::MAX)),
        Just(json!(i64::MAX - 1)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(LAST_SECOND)),
        any::<i64>().prop_map(|n| json!(n)),
        (1i64..=400 * 86_400).prop_map(|n| json!(n)),
    ]
}

/// An IdToken whose `exp` is anywhere `time` can or cannot represent, or an opaque one.
fn id_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("opaque-id-token".to_owned()),
        prop_oneof![
            Just(LAST_SECOND),
            Just(LAST_SECOND + 1),
            Just(-377_705_116_800_i64),
            Just(i64::MAX),
            Just(0),
            any::<i64>(),
            (0..=LAST_SECOND),
        ]
        .prop_map(|exp| auth_testkit::jwt::rs256_looking(
            &json!({"exp": exp, "token_use": "id"}),
            "kid"
        )),
    ]
}

/// An HTTP date anywhere from 1970 to 9999 (what a `Date` header can say), or none.
fn date() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
        Just("Thu, 01 Jan 1970 00:00:00 GMT".to_owned()),
        (0..=LAST_SECOND).prop_map(|s| {
            let at = OffsetDateTime::from_unix_timestamp(s).unwrap();
            let format = auth_core::time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            );
            at.format(format).unwrap()
        }),
    ])
}

/// A local clock anywhere from 1970 to 9999.
fn sent_at() -> impl Strategy<Value = OffsetDateTime> {
    prop_oneof![
        Just(SharedClock::system().now()),
        Just(OffsetDateTime::from_unix_timestamp(LAST_CLOCK_SECOND).unwrap()),
        (0..=LAST_CLOCK_SECOND).prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap()),
    ]
}

/// `ExpiresIn: 9223372036854775807` and its kin, IdToken `exp`s at the edges of time, a server
/// `Date` anywhere from 1970 to 9999 and a local clock anywhere in that range: a token or a
/// protocol error, never a panic; a token always expires after it was asked for.
#[test]
fn extreme_expiries_with_skewed_dates_never_panic() {
    let h = harness();
    let strategy = (extreme_expires_in(), id_token(), date(), sent_at());
    runner(192)
        .run(&strategy, |(expires_in, id_token, date, sent_at)| {
            let body = json!({
                "AccessToken": "access", "ExpiresIn": expires_in, "TokenType": "Bearer", "IdToken": id_token
            });
            let answer = Answer {
                status: 200,
                content_type: Some("application/json".to_owned()),
                body: body.to_string().into_bytes(),
                date,
            };
            match h.fetch_at(answer, sent_at) {
                Ok(fetched) => {
                    let expires = fetched.token.expires_at().unwrap();
                    // after the send, or clamped to the latest time kunci represents
                    prop_assert!(expires > sent_at || expires == auth_core::expiry::LATEST);
                }
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Protocol, "{}", e),
            }
            Ok(())
        })
        .unwrap();
}
