//! Property tests of the response parsers: arbitrary answers never panic and always come back
//! as a typed error or a value; valid answers round-trip.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use auth_core::{ErrorKind, http::HttpResponse, time::OffsetDateTime};
use auth_stamps::{ClaimId, Verification, parse_access_token, parse_verification, read_claims};
use auth_testkit::answers::strategies::{config, content_type, moment, status};
use http::StatusCode;
use proptest::prelude::*;
use secrecy::ExposeSecret as _;
use serde_json::json;

const CASES: u32 = 256;

/// A fixed "now" (2026-03-01T08:00:00Z), so expiries are comparable.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_772_352_000).unwrap()
}

/// Bytes that are sometimes JSON-looking, sometimes not at all.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "\\PC{0,200}".prop_map(String::into_bytes),
        (
            "[a-z_]{1,15}",
            prop_oneof![
                any::<i64>().prop_map(|n| json!(n)),
                "\\PC{0,60}".prop_map(|s| json!(s)),
                Just(json!(null)),
                Just(json!([1, "x", {"a": []}])),
                any::<f64>().prop_map(|f| json!(f)),
            ]
        )
            .prop_map(|(k, v)| json!({ k: v }).to_string().into_bytes()),
        "[A-Za-z0-9_.-]{0,300}".prop_map(|t| json!({ "access_token": t }).to_string().into_bytes()),
    ]
}

/// A JWT-shaped string: three dot-separated segments of base64url text or arbitrary text.
fn jwt_like() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[A-Za-z0-9_-]{0,80}",
        proptest::collection::vec(any::<u8>(), 0..120).prop_map(|b| b64(&b)),
        "\\PC{0,20}",
    ];
    prop_oneof![
        (segment.clone(), segment.clone(), segment).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        "\\PC{0,200}",
        // A real header and an arbitrary JSON payload.
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(|payload| format!(
            "{}.{}.c2ln",
            b64(br#"{"typ":"JWT","alg":"HS256"}"#),
            b64(&payload)
        )),
    ]
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// An identifier claim as simplejwt writes it: a number (5.5.0 and earlier) or a string
/// (5.5.1 on; also UUIDs for user models keyed by one).
fn id() -> impl Strategy<Value = ClaimId> {
    prop_oneof![
        any::<i64>().prop_map(ClaimId::Integer),
        any::<u32>().prop_map(|n| ClaimId::Text(n.to_string())),
        "\\PC{0,40}".prop_map(ClaimId::Text),
    ]
}

fn response(status: StatusCode, content_type: Option<&str>, body: Vec<u8>) -> HttpResponse {
    HttpResponse::new(status, content_type, body)
}

proptest! {
    #![proptest_config(config(CASES))]

    /// Any status, content type and body: a token or a typed error, never a panic.
    #[test]
    fn arbitrary_answers_never_panic(status in status(), ct in content_type(), body in body()) {
        let r = response(status, ct.as_deref(), body);
        match parse_access_token(&r, now()) {
            Ok(token) => prop_assert!(status.is_success() && token.expires_at().is_some()),
            Err(e) => {
                if matches!(status.as_u16(), 400 | 401 | 403) {
                    prop_assert_eq!(e.kind(), ErrorKind::ReauthenticationRequired);
                }
                prop_assert!(!e.to_string().is_empty());
            }
        }
        match parse_verification(&r, now()) {
            Ok(Verification::Rejected(rejection)) => {
                prop_assert_eq!(rejection.status, status.as_u16());
                prop_assert!(rejection.detail.is_none_or(|d| d.chars().count() <= 201));
            }
            Ok(_) => prop_assert!(status.is_success()),
            Err(e) => prop_assert!(!matches!(e.kind(), ErrorKind::ReauthenticationRequired)),
        }
    }

    /// Arbitrary strings and JWT-shaped strings: claims or a protocol error, never a panic.
    #[test]
    fn the_claim_reader_never_panics(jwt in jwt_like()) {
        if let Err(e) = read_claims(&jwt) {
            prop_assert_eq!(e.kind(), ErrorKind::Protocol);
        }
        let body = json!({ "access_token": jwt }).to_string().into_bytes();
        let _ = parse_access_token(&response(StatusCode::OK, Some("application/json"), body), now());
    }

    /// Documented claims → a JWT → the same claims; the access-token answer carrying it
    /// becomes a token with that secret expiring at `exp`; verify-token's answer of those
    /// claims is `Valid` with the same claims.
    #[test]
    fn valid_tokens_round_trip(
        token_type in "[a-z]{1,10}",
        lifetime in 1i64..(400 * 86_400),
        age in 0i64..86_400,
        jti in "[a-f0-9]{1,32}",
        user_id in id(),
        merchant_id in id(),
        secret in proptest::collection::vec(any::<u8>(), 1..32),
    ) {
        let iat = now().unix_timestamp() - age;
        let exp = now().unix_timestamp() + lifetime;
        let claims = json!({
            "token_type": token_type, "exp": exp, "iat": iat, "jti": jti,
            "user_id": user_id, "merchant_id": merchant_id,
        });
        let jwt = auth_testkit::jwt::hs256(&claims, &secret);
        let read = read_claims(&jwt).unwrap();
        prop_assert_eq!(&read.token_type, &token_type);
        prop_assert_eq!(read.exp.unix_timestamp(), exp);
        prop_assert_eq!(read.iat.unix_timestamp(), iat);
        prop_assert_eq!(&read.jti, &jti);
        prop_assert_eq!(&read.user_id, &user_id);
        prop_assert_eq!(&read.merchant_id, &merchant_id);
        // Printed back exactly as written: strings stay strings, numbers numbers.
        prop_assert_eq!(serde_json::to_value(&read).unwrap(), claims.clone());

        let body = json!({ "access_token": jwt }).to_string().into_bytes();
        let token = parse_access_token(&response(StatusCode::OK, Some("application/json"), body), now()).unwrap();
        prop_assert_eq!(token.secret().expose_secret(), jwt.as_str());
        prop_assert_eq!(token.expires_at().map(OffsetDateTime::unix_timestamp), Some(exp));
        prop_assert_eq!(token.issued_at().unix_timestamp(), iat);

        let answer = response(StatusCode::OK, Some("application/json"), claims.to_string().into_bytes());
        prop_assert_eq!(parse_verification(&answer, now()).unwrap(), Verification::Valid(read));
    }

    /// A refusal with any reason text is a re-authentication error for the token endpoint and
    /// a `Rejected` verification carrying the (shortened, control-free) reason.
    #[test]
    fn rejections_keep_a_clean_reason(status in prop::sample::select(vec![400u16, 401, 403]), detail in "\\PC{0,400}") {
        let body = json!({ "detail": detail }).to_string().into_bytes();
        let r = response(StatusCode::from_u16(status).unwrap(), Some("application/json"), body);
        prop_assert_eq!(parse_access_token(&r, now()).unwrap_err().kind(), ErrorKind::ReauthenticationRequired);
        let Verification::Rejected(rejection) = parse_verification(&r, now()).unwrap() else {
            return Err(TestCaseError::fail("not rejected"));
        };
        let reason = rejection.detail.unwrap();
        prop_assert!(!reason.chars().any(char::is_control));
        let expected: String = detail.chars().take(200).collect();
        prop_assert!(reason.starts_with(&expected));
    }
}

/// The moments `time` represents: from the year -9999 to the year 9999.
const FIRST_SECOND: i64 = -377_705_116_800;
const LAST_SECOND: i64 = 253_402_300_799;

/// A NumericDate from anywhere: the edges of the representable range (9999-12-31T23:59:59Z,
/// the year -9999, the year 0), any `i64`, any moment in range, any float.
fn extreme_time() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        prop::sample::select(vec![
            LAST_SECOND,
            LAST_SECOND - 1,
            LAST_SECOND + 1,
            FIRST_SECOND,
            FIRST_SECOND - 1,
            -62_167_219_200, // 0000-01-01T00:00:00Z
            -62_167_219_201,
            0,
            i64::MAX,
            i64::MIN,
        ])
        .prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        (FIRST_SECOND..=LAST_SECOND).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
    ]
}

proptest! {
    #![proptest_config(config(CASES))]

    /// `exp` and `iat` near the year 9999 or before the year 0, read with a server `Date` that
    /// is anywhere from 1970 to 9999 and a local clock anywhere in that range: a token or a
    /// protocol error, never a panic. A token always expires after it was asked for and no
    /// earlier than it was issued.
    #[test]
    fn extreme_times_with_skewed_dates_never_panic(
        exp in extreme_time(),
        iat in proptest::option::of(extreme_time()),
        date in proptest::option::of(moment(now())),
        sent_at in moment(now()),
    ) {
        let mut payload = json!({"token_type": "access", "exp": exp, "jti": "a", "user_id": "5870", "merchant_id": 1});
        if let Some(iat) = iat {
            payload["iat"] = iat;
        }
        let jwt = auth_testkit::jwt::hs256(&payload, b"TESTJWT");
        let body = json!({ "access_token": jwt }).to_string().into_bytes();
        let mut answer = response(StatusCode::OK, Some("application/json"), body);
        answer.date = date;
        match parse_access_token(&answer, sent_at) {
            Ok(token) => {
                let expires = token.expires_at().unwrap();
                // after the send, or clamped to the latest time kunci represents
                prop_assert!(
                    expires > sent_at || expires == auth_core::expiry::LATEST,
                    "{} <= {}",
                    expires,
                    sent_at
                );
                prop_assert!(token.issued_at() <= expires);
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Protocol, "{}", e),
        }
        // The claim reader copes with the same values.
        if let Err(e) = read_claims(&jwt) {
            prop_assert_eq!(e.kind(), ErrorKind::Protocol);
        }
    }
}
