//! Reading Stamps' answers: the access token, the verified claims, and refusals.
//!
//! Stamps is Django REST framework with djangorestframework-simplejwt, so its refusals are
//! DRF's and simplejwt's: `{"detail": "Invalid token."}` (DRF's `TokenAuthentication`),
//! `{"detail": "Authentication credentials were not provided."}` (401, or 403 when the view's
//! first authentication class sends no `WWW-Authenticate`), and simplejwt's
//! `{"detail": "Given token not valid for any token type", "code": "token_not_valid",
//! "messages": [{"token_class", "token_type", "message"}]}`. Their texts changed between
//! versions ("Token is invalid or expired" became "Token is invalid" / "Token is expired" in
//! simplejwt 5.5), so answers are classified by status and `code`, never by text.

use std::fmt;

use auth_core::{Error, Token, http::HttpResponse, jwt};
use http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::{NAME, claims::StampsClaims};

/// What `verify-token` said about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// The token is valid; these are its claims.
    Valid(StampsClaims),
    /// Stamps refused the token (expired, revoked, forged, or its user refused).
    Rejected(StampsRejection),
}

/// simplejwt's `code` for a JWT it refused (expired, bad signature, old signing key, wrong
/// token type): `InvalidToken.default_code` in `rest_framework_simplejwt/exceptions.py`.
pub const TOKEN_NOT_VALID: &str = "token_not_valid";

/// A refusal by Stamps (statuses 400, 401 and 403), with what it said.
///
/// The reason is taken from DRF's `{"detail": …}` (or another JSON `error`/`message` field, or
/// the first field error such as `{"crm_merchant_id": ["A valid integer is required."]}`);
/// simplejwt adds a `code` and per-token-class `messages`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StampsRejection {
    /// The HTTP status.
    pub status: u16,
    /// The reason Stamps gave, if any could be read (at most 200 characters, control
    /// characters replaced).
    pub detail: Option<String>,
    /// simplejwt's machine-readable `code` (`token_not_valid`, `user_inactive`,
    /// `user_not_found`, `bad_authorization_header`, …); DRF's own refusals carry none.
    pub code: Option<String>,
    /// The `message` of each of simplejwt's `messages` (why each token class refused it, e.g.
    /// "Token is expired"), shortened like `detail`.
    pub messages: Vec<String>,
}

impl StampsRejection {
    /// A refusal with only a status and a reason (no simplejwt `code`).
    pub fn new(status: u16, detail: Option<String>) -> Self {
        Self {
            status,
            detail,
            code: None,
            messages: Vec::new(),
        }
    }

    /// Whether the JWT itself was refused (simplejwt's `code: "token_not_valid"`: expired, a
    /// bad signature, an old signing key, not an access token) — a new token fixes it — as
    /// opposed to the credential or the user behind it.
    pub fn is_token_not_valid(&self) -> bool {
        self.code.as_deref() == Some(TOKEN_NOT_VALID)
    }
}

impl fmt::Display for StampsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stamps answered status {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        match &self.detail {
            Some(detail) => write!(f, ": {detail}")?,
            None => f.write_str(" without a readable reason")?,
        }
        if !self.messages.is_empty() {
            write!(f, " ({})", self.messages.join("; "))?;
        }
        Ok(())
    }
}

impl std::error::Error for StampsRejection {}

#[derive(Deserialize)]
struct AccessTokenBody {
    access_token: String,
}

fn is_rejection(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    )
}

/// Moves `at` by `by`, or `None` when the result is not a moment `time` can represent (beyond
/// the years ±9999). The one place this crate does arithmetic on server-supplied times (an
/// `exp` or `iat` moved by the server's clock offset); swap it for auth-core's checked-time
/// helpers when they land.
fn shift(at: OffsetDateTime, by: time::Duration) -> Option<OffsetDateTime> {
    at.checked_add(by)
}

/// [`shift`], staying at the first or last representable moment instead of leaving the range.
fn shift_saturating(at: OffsetDateTime, by: time::Duration) -> OffsetDateTime {
    shift(at, by).unwrap_or(if by.is_negative() {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    })
}

/// Interprets the answer of `POST /api/auth/get-access-token/` sent at `sent_at`.
///
/// The token expires at its `exp` claim, corrected for the difference between the server's
/// `Date` and the local clock (an `exp` that the correction would carry beyond the year 9999
/// stays at the last representable moment); it counts as issued at its `iat` claim (or
/// `sent_at`).
///
/// # Errors
/// 400/401/403 → [`ReauthenticationRequired`](auth_core::ErrorKind::ReauthenticationRequired)
/// with the reason as [`StampsRejection`] source; 5xx and 408 → transient; 429 → rate limited;
/// anything else, a body that is not the documented JSON, a JWT without a readable `exp`, or
/// one that has already expired → protocol.
pub fn parse_access_token(
    response: &HttpResponse,
    sent_at: OffsetDateTime,
) -> Result<Token, Error> {
    if is_rejection(response.status) {
        let rejection = rejection(response);
        return Err(Error::reauthentication_required(format!(
            "stamps refused the authentication string or merchant ID (status {}); check STAMPS_TOKEN and STAMPS_MERCHANT_ID{}",
            rejection.status,
            rejection.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
        ))
        .with_source(rejection));
    }
    if !response.status.is_success() {
        return Err(response.unexpected_status(NAME, sent_at));
    }
    let body: AccessTokenBody = response.json(NAME)?;
    let claims = jwt::time_claims(&body.access_token)?;
    let exp = claims.require_exp()?;
    // The server's clock is `offset` ahead of ours: its moments are that much "later".
    let back = -response.clock_offset(sent_at);
    let expires_at = shift_saturating(exp, back);
    if expires_at <= sent_at {
        return Err(Error::protocol(
            "stamps issued a token whose `exp` has already passed; check the system clock",
        ));
    }
    let issued_at = claims
        .iat
        .and_then(|iat| shift(iat, back))
        .filter(|iat| *iat <= expires_at)
        .unwrap_or(sent_at);
    Token::bearer(
        SecretString::from(body.access_token),
        issued_at,
        Some(expires_at),
    )
}

/// Interprets the answer of `POST /api/auth/verify-token/`.
///
/// # Errors
/// 5xx and 408 → transient; 429 → rate limited; other unexpected statuses, bodies that are
/// not a JSON object, and claims that do not fit (the error names the claim) → protocol. A
/// refusal is not an error: it is [`Verification::Rejected`].
pub fn parse_verification(
    response: &HttpResponse,
    now: OffsetDateTime,
) -> Result<Verification, Error> {
    if is_rejection(response.status) {
        return Ok(Verification::Rejected(rejection(response)));
    }
    if !response.status.is_success() {
        return Err(response.unexpected_status(NAME, now));
    }
    let Value::Object(raw) = response.json::<Value>(NAME)? else {
        return Err(Error::protocol(
            "stamps answered verify-token with something other than a JSON object of claims",
        ));
    };
    Ok(Verification::Valid(StampsClaims::from_object(
        raw,
        "stamps' verify-token answer",
    )?))
}

fn rejection(response: &HttpResponse) -> StampsRejection {
    let body = response.error_json::<Value>().ok();
    let object = body.as_ref().and_then(Value::as_object);
    let text = |v: &Value| v.as_str().map(shorten);
    StampsRejection {
        status: response.status.as_u16(),
        detail: body.as_ref().and_then(reason).map(|d| shorten(&d)),
        code: object.and_then(|o| o.get("code")).and_then(text),
        messages: object
            .and_then(|o| o.get("messages"))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|m| m.get("message").and_then(text))
                    .take(5)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `{"detail": "…"}`, `{"error": "…"}`, `{"message": "…"}`, or DRF's `{"field": ["…"]}`.
fn reason(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    for field in ["detail", "error", "message"] {
        if let Some(text) = object.get(field).and_then(Value::as_str) {
            return Some(text.to_owned());
        }
    }
    object.iter().find_map(|(field, v)| match v {
        Value::String(s) => Some(format!("{field}: {s}")),
        Value::Array(items) => items
            .iter()
            .find_map(|i| i.as_str())
            .map(|s| format!("{field}: {s}")),
        _ => None,
    })
}

fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use auth_core::ErrorKind;
    use time::macros::datetime;

    use super::*;
    use crate::{ClaimId, read_claims};

    /// The sample access token of the Stamps document (HS256, secret `TESTJWT`).
    pub(crate) const SAMPLE: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNjU3MzMyNjE2LCJpYXQiOjE2NTcyNDYyMTYsImp0aSI6IjRlYWRjNDAxNGQwZDRkNzc4NjkxYjg0ZDU3MGE2ZGFmIiwidXNlcl9pZCI6NTg3MCwibWVyY2hhbnRfaWQiOjF9.b_TiGJEO7mKMT0BFTrF9VjPHjoGrt5Be8FPSgvn-4bY";

    const NOW: OffsetDateTime = datetime!(2022-07-08 02:10:20 UTC);

    fn signed(payload: &str) -> String {
        auth_testkit::jwt::hs256_raw(auth_testkit::jwt::HS256_HEADER, payload, b"TESTJWT")
    }

    fn json(status: u16, body: &str) -> HttpResponse {
        HttpResponse::new(
            StatusCode::from_u16(status).unwrap(),
            Some("application/json"),
            body.to_owned(),
        )
    }

    #[test]
    fn sample_claims_are_read_as_the_document_lists_them() {
        let claims = read_claims(SAMPLE).unwrap();
        assert_eq!(claims.token_type, "access");
        assert_eq!(claims.exp.unix_timestamp(), 1_657_332_616);
        assert_eq!(claims.iat.unix_timestamp(), 1_657_246_216);
        assert_eq!(claims.jti, "4eadc4014d0d4d778691b84d570a6daf");
        // The page's sample predates simplejwt 5.5.1: its `user_id` is a number.
        assert_eq!(claims.user_id, ClaimId::Integer(5870));
        assert_eq!(claims.merchant_id, ClaimId::Integer(1));
    }

    #[test]
    fn access_token_expires_at_exp() {
        let token = parse_access_token(
            &json(200, &format!(r#"{{"access_token":"{SAMPLE}"}}"#)),
            NOW,
        )
        .unwrap();
        assert_eq!(token.expires_at(), Some(datetime!(2022-07-09 02:10:16 UTC)));
        assert_eq!(token.issued_at(), datetime!(2022-07-08 02:10:16 UTC));
        assert_eq!(
            token.header_value().to_str().unwrap(),
            format!("Bearer {SAMPLE}")
        );
    }

    #[test]
    fn jwt_without_exp_is_a_protocol_error() {
        // {"token_type":"access","iat":1657246216}
        let no_exp =
            "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiaWF0IjoxNjU3MjQ2MjE2fQ.c2ln";
        for token in [no_exp, "not-a-jwt", "a.b.c"] {
            let err =
                parse_access_token(&json(200, &format!(r#"{{"access_token":"{token}"}}"#)), NOW)
                    .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{token}: {err}");
            assert!(!err.to_string().contains(token), "{err}");
        }
    }

    #[test]
    fn bodies_without_the_documented_shape_are_protocol_errors() {
        for body in [
            "",
            "{",
            r#"{"token":"x"}"#,
            r#"{"access_token": 5}"#,
            "<html>oops</html>",
        ] {
            let err = parse_access_token(&json(200, body), NOW).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{body}");
        }
    }

    #[test]
    fn rejections_require_new_credentials_and_carry_the_reason() {
        let err =
            parse_access_token(&json(401, r#"{"detail":"Invalid token."}"#), NOW).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
        assert!(err.to_string().contains("Invalid token."), "{err}");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("Invalid token."), "{source}");

        let err = parse_access_token(
            &json(
                400,
                r#"{"crm_merchant_id":["A valid integer is required."]}"#,
            ),
            NOW,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("crm_merchant_id: A valid integer is required."),
            "{err}"
        );

        let err = parse_access_token(
            &HttpResponse::new(StatusCode::FORBIDDEN, Some("text/html"), "<h1>no"),
            NOW,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
        assert!(err.to_string().contains("403"), "{err}");
    }

    #[test]
    fn other_statuses() {
        let r = HttpResponse::new(StatusCode::BAD_GATEWAY, Some("text/plain"), "Bad Gateway");
        let err = parse_access_token(&r, NOW).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(err.to_string().contains("Bad Gateway"));
        let r = HttpResponse::new(StatusCode::TOO_MANY_REQUESTS, None, "").with_retry_after("30");
        assert!(matches!(
            parse_access_token(&r, NOW).unwrap_err().kind(),
            ErrorKind::RateLimited { .. }
        ));
        let r = HttpResponse::new(StatusCode::NOT_FOUND, Some("text/html"), "<html>");
        assert_eq!(
            parse_access_token(&r, NOW).unwrap_err().kind(),
            ErrorKind::Protocol
        );
    }

    #[test]
    fn verification_answers() {
        let body = r#"{"token_type":"access","exp":1657332616,"iat":1657246216,"jti":"4eadc4014d0d4d778691b84d570a6daf","user_id":5870,"merchant_id":1}"#;
        let Verification::Valid(claims) = parse_verification(&json(200, body), NOW).unwrap() else {
            panic!("expected valid")
        };
        assert_eq!(claims, read_claims(SAMPLE).unwrap());
        assert_eq!(
            parse_verification(&json(200, r#"{"exp":1}"#), NOW)
                .unwrap_err()
                .kind(),
            ErrorKind::Protocol
        );
        let err = parse_verification(&json(200, "[1]"), NOW).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    }

    /// simplejwt 5.5.1's `JWTAuthentication.get_validated_token` answer for an expired token,
    /// byte for byte as DRF renders it.
    const SIMPLEJWT_EXPIRED: &str = r#"{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"token_class":"AccessToken","token_type":"access","message":"Token is expired"}]}"#;

    #[test]
    fn simplejwts_refusal_is_read_with_its_code_and_messages() {
        let Verification::Rejected(rejection) =
            parse_verification(&json(401, SIMPLEJWT_EXPIRED), NOW).unwrap()
        else {
            panic!("a refusal")
        };
        assert_eq!(rejection.status, 401);
        assert_eq!(
            rejection.detail.as_deref(),
            Some("Given token not valid for any token type")
        );
        assert_eq!(rejection.code.as_deref(), Some(TOKEN_NOT_VALID));
        assert_eq!(rejection.messages, ["Token is expired"]);
        assert!(rejection.is_token_not_valid());
        assert_eq!(
            rejection.to_string(),
            "stamps answered status 401 (token_not_valid): Given token not valid for any token type (Token is expired)"
        );
    }

    #[test]
    fn refusals_are_classified_by_status_and_code_never_by_text() {
        // The same classification whatever the text says, in any simplejwt version or language.
        for (status, body, token_not_valid) in [
            (401, SIMPLEJWT_EXPIRED, true),
            (
                401,
                r#"{"detail":"Token is invalid or expired","code":"token_not_valid"}"#,
                true,
            ),
            (
                401,
                r#"{"detail":"Token tidak valid","code":"token_not_valid","messages":[]}"#,
                true,
            ),
            (
                401,
                r#"{"detail":"User is inactive","code":"user_inactive"}"#,
                false,
            ),
            (401, r#"{"detail":"Invalid token."}"#, false),
            (403, r#"{"detail":"User inactive or deleted."}"#, false),
            (
                403,
                r#"{"detail":"Authentication credentials were not provided."}"#,
                false,
            ),
            // A "token" in the text does not make it a token refusal: only `code` does.
            (401, r#"{"detail":"Token is expired"}"#, false),
        ] {
            let answer = json(status, body);
            let err = parse_access_token(&answer, NOW).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{body}");
            let Verification::Rejected(rejection) = parse_verification(&answer, NOW).unwrap()
            else {
                panic!("{body}: a refusal")
            };
            assert_eq!(rejection.is_token_not_valid(), token_not_valid, "{body}");
            assert_eq!(rejection.status, status);
        }
    }

    #[test]
    fn an_exp_near_the_year_9999_with_a_server_clock_behind_does_not_panic() {
        // exp = 9999-12-31T23:59:59Z; the server's clock is an hour behind ours, so its
        // moments are an hour "earlier" and the correction would leave the representable range.
        let token = signed(
            r#"{"token_type":"access","exp":253402300799,"iat":253402214399,"jti":"a","user_id":"1","merchant_id":1}"#,
        );
        let mut answer = json(200, &format!(r#"{{"access_token":"{token}"}}"#));
        answer.date = Some(NOW - std::time::Duration::from_secs(3600));
        let parsed = parse_access_token(&answer, NOW).unwrap();
        assert_eq!(parsed.expires_at(), Some(auth_core::expiry::LATEST));
        assert_eq!(
            parsed.issued_at(),
            auth_core::expiry::LATEST,
            "iat is corrected too, and clamped like every time kunci keeps"
        );
    }

    #[test]
    fn an_exp_before_the_year_0_or_already_passed_is_a_protocol_error() {
        for (exp, iat) in [
            // year -9999, the earliest moment `time` represents, with the server ahead
            (-377_705_116_800_i64, -377_705_116_800_i64),
            (1_000, 0),
            (NOW.unix_timestamp() - 1, NOW.unix_timestamp() - 100),
        ] {
            let token = signed(&format!(
                r#"{{"token_type":"access","exp":{exp},"iat":{iat},"jti":"a","user_id":"1","merchant_id":1}}"#
            ));
            let mut answer = json(200, &format!(r#"{{"access_token":"{token}"}}"#));
            answer.date = Some(NOW + std::time::Duration::from_secs(7200));
            let err = parse_access_token(&answer, NOW).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{exp}: {err}");
            assert!(err.to_string().contains("exp"), "{err}");
        }
    }
}
