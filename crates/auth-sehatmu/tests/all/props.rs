//! Property tests of the response parser: arbitrary answers never panic and always come back
//! as a typed error or a grant; valid answers (both documented shapes) round-trip.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use auth_core::{ErrorKind, http::HttpResponse, time::OffsetDateTime};
use auth_sehatmu::{CREDENTIALS_REJECTED_TEXT, RATE_LIMIT_TEXT, parse_token_response};
use auth_testkit::answers::strategies::{config, content_type, json_value, moment, status};
use http::StatusCode;
use proptest::prelude::*;
use secrecy::ExposeSecret as _;
use serde_json::json;

/// 2023-12-16T05:31:48Z, the document's sample time.
fn sent() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_702_704_708).unwrap()
}

/// Bytes that are sometimes one of the documented shapes with wrong values, sometimes noise.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "\\PC{0,200}".prop_map(String::into_bytes),
        (json_value(), json_value()).prop_map(|(t, e)| {
            json!({"accessToken": t, "accessTokenExpiresAt": e})
                .to_string()
                .into_bytes()
        }),
        (json_value(), json_value()).prop_map(|(t, e)| json!({"access_token": t, "expires_in": e})
            .to_string()
            .into_bytes()),
        (json_value(), json_value()).prop_map(|(rt, issue)| {
            json!({"resourceType": rt, "issue": issue})
                .to_string()
                .into_bytes()
        }),
        "\\PC{0,300}".prop_map(|text| json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "invalid", "code": "value", "details": {"text": text}}]
        })
        .to_string()
        .into_bytes()),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Any status, content type and body: a grant or a typed error, never a panic.
    #[test]
    fn arbitrary_answers_never_panic(status in status(), ct in content_type(), body in body(), retry_after in proptest::option::of("[ -~]{0,40}")) {
        let mut r = HttpResponse::new(status, ct.as_deref(), body);
        if let Some(raw) = retry_after {
            r = r.with_retry_after(&raw);
        }
        match parse_token_response(&r, sent(), sent() + Duration::from_secs(1)) {
            Ok(grant) => prop_assert!(status.is_success() && grant.token.expires_at().is_some()),
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                if status.is_server_error() {
                    prop_assert_eq!(e.kind(), ErrorKind::Transient);
                }
                if let ErrorKind::RateLimited { until } = e.kind() {
                    prop_assert!(until > sent());
                }
            }
        }
    }

    /// The camelCase shape: the token and `accessTokenExpiresAt` come back as they were sent.
    #[test]
    fn camel_case_round_trips(token in "[A-Za-z0-9._~+/=-]{1,200}", millis in 1i64..(400 * 86_400_000), id in "[a-z0-9-]{0,40}") {
        let expires = sent() + time::Duration::milliseconds(millis);
        let at = expires.format(&time::format_description::well_known::Rfc3339).unwrap();
        let body = json!({"accessToken": token, "accessTokenExpiresAt": at, "clientId": id, "userId": "u"}).to_string();
        let grant = parse_token_response(
            &HttpResponse::new(StatusCode::OK, Some("application/json"), body),
            sent(),
            sent(),
        )
        .unwrap();
        prop_assert_eq!(grant.token.secret().expose_secret(), token.as_str());
        prop_assert_eq!(grant.token.expires_at(), Some(expires));
        prop_assert_eq!(grant.metadata.client_id.as_deref(), Some(id.as_str()));
    }

    /// The snake_case shape: `expires_in` counts from the moment the request was sent.
    #[test]
    fn snake_case_round_trips(token in "[A-Za-z0-9._~+/=-]{1,200}", secs in 1u32..(400 * 86_400), as_text in any::<bool>()) {
        let expires_in = if as_text { json!(secs.to_string()) } else { json!(secs) };
        let body = json!({"access_token": token, "expires_in": expires_in}).to_string();
        let grant = parse_token_response(
            &HttpResponse::new(StatusCode::OK, Some("application/json"), body),
            sent(),
            sent(),
        )
        .unwrap();
        prop_assert_eq!(grant.token.secret().expose_secret(), token.as_str());
        prop_assert_eq!(grant.token.expires_at(), Some(sent() + Duration::from_secs(secs.into())));
    }

    /// An `OperationOutcome` is classified by its text and status, whatever else it says.
    #[test]
    fn outcomes_are_classified(status in 400u16..500, noise in "[a-z ]{0,40}") {
        prop_assume!(status != 408);
        let outcome = |text: &str| json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "invalid", "code": "value", "details": {"text": text}}]
        }).to_string();
        let parse = |text: &str| parse_token_response(
            &HttpResponse::new(StatusCode::from_u16(status).unwrap(), Some("application/json"), outcome(text)),
            sent(),
            sent(),
        ).unwrap_err();
        prop_assert!(matches!(parse(&format!("{noise}{RATE_LIMIT_TEXT}")).kind(), ErrorKind::RateLimited { .. }), "rate limit");
        let rejected = parse(&format!("{noise}{CREDENTIALS_REJECTED_TEXT}"));
        prop_assert_eq!(rejected.kind(), ErrorKind::ReauthenticationRequired);
        prop_assert!(rejected.to_string().contains(CREDENTIALS_REJECTED_TEXT));
    }
}

/// 9999-12-31T23:59:59Z, the last second `time` (and RFC 3339) can write.
const LAST_SECOND: i64 = 253_402_300_799;

/// An `accessTokenExpiresAt` from anywhere: the last moment RFC 3339 can write (the value
/// `oauth2-server` would give a token living "forever"), the year 0000, the epoch, any moment in
/// between with or without milliseconds, any offset.
fn extreme_expiry() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:00:00+23:59",
            "1970-01-01T00:00:00.000Z",
        ])
        .prop_map(str::to_owned),
        (-62_167_219_200i64..=LAST_SECOND, 0u16..1000).prop_map(|(s, ms)| {
            let at = OffsetDateTime::from_unix_timestamp(s).unwrap()
                + Duration::from_millis(u64::from(ms));
            at.format(&auth_core::time::format_description::well_known::Rfc3339)
                .unwrap()
        }),
    ]
}

fn extreme_expires_in() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!(9_999_999_999u64)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!("9999999999")),
        Just(json!(1e300)),
        any::<u32>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// `accessTokenExpiresAt: 9999-12-31T23:59:59Z` and its kin, `expires_in` of any size, a
    /// server `Date` anywhere from 1970 to 9999 and a local clock anywhere in that range: a
    /// grant or a protocol error, never a panic; a grant always expires after it was asked for.
    #[test]
    fn extreme_expiries_with_skewed_dates_never_panic(
        expires_at in proptest::option::of(extreme_expiry()),
        expires_in in proptest::option::of(extreme_expires_in()),
        date in proptest::option::of(moment(sent())),
        sent_at in moment(sent()),
    ) {
        let mut body = json!({"accessToken": "718d19c515f12c68dcfce7a97b7510c160c4678f"});
        if let Some(at) = &expires_at {
            body["accessTokenExpiresAt"] = json!(at);
        }
        if let Some(secs) = &expires_in {
            body["expires_in"] = secs.clone();
        }
        let mut answer = HttpResponse::new(StatusCode::OK, Some("application/json"), body.to_string());
        answer.date = date;
        match parse_token_response(&answer, sent_at, sent_at) {
            Ok(grant) => {
                let expires = grant.token.expires_at().unwrap();
                // after the send, or clamped to the latest time kunci represents
                prop_assert!(expires > sent_at || expires == auth_core::expiry::LATEST);
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Protocol, "{}", e),
        }
    }
}
