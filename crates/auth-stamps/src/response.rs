//! Reading Stamps' answers: the access token, the verified claims, and rejections.

use std::fmt;

use auth_core::{Error, Token, http::HttpResponse, jwt};
use http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::NAME;

/// The payload of a Stamps JWT, as `verify-token` returns it (and as the token itself carries).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct StampsClaims {
    /// `"access"` for access tokens.
    pub token_type: String,
    /// When the token expires.
    #[serde(with = "time::serde::timestamp")]
    pub exp: OffsetDateTime,
    /// When the token was issued.
    #[serde(with = "time::serde::timestamp")]
    pub iat: OffsetDateTime,
    /// The token's unique identifier.
    pub jti: String,
    /// The Stamps user the token belongs to.
    pub user_id: u64,
    /// The merchant the token gives access to.
    pub merchant_id: u64,
}

/// What `verify-token` said about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// The token is valid; these are its claims.
    Valid(StampsClaims),
    /// Stamps refused the token (expired, revoked or forged).
    Rejected(StampsRejection),
}

/// A refusal by Stamps (statuses 400, 401 and 403), with the reason it gave.
///
/// Stamps does not document its error bodies; the reason is taken from a JSON `detail`,
/// `error` or `message` field, or from the first field error, as Django REST framework
/// renders them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StampsRejection {
    /// The HTTP status.
    pub status: u16,
    /// The reason Stamps gave, if any could be read.
    pub detail: Option<String>,
}

impl fmt::Display for StampsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(detail) => write!(f, "stamps answered status {}: {detail}", self.status),
            None => write!(
                f,
                "stamps answered status {} without a readable reason",
                self.status
            ),
        }
    }
}

impl std::error::Error for StampsRejection {}

#[derive(Deserialize)]
struct AccessTokenBody {
    access_token: String,
}

/// Reads the JWT's claims without verifying its signature (the client holds no key).
///
/// # Errors
/// A [`Protocol`](auth_core::ErrorKind::Protocol) error when the value is not a JWT carrying
/// the six documented claims.
pub fn read_claims(jwt: &str) -> Result<StampsClaims, Error> {
    Ok(jwt::decode_claims(jwt)?)
}

fn is_rejection(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    )
}

/// Interprets the answer of `POST /api/auth/get-access-token/` sent at `sent_at`.
///
/// The token expires at its `exp` claim, corrected for the difference between the server's
/// `Date` and the local clock; it counts as issued at its `iat` claim (or `sent_at`).
///
/// # Errors
/// 400/401/403 → [`ReauthenticationRequired`](auth_core::ErrorKind::ReauthenticationRequired)
/// with the reason as [`StampsRejection`] source; 5xx and 408 → transient; 429 → rate limited;
/// anything else, a body that is not the documented JSON, or a JWT without a readable `exp`
/// → protocol.
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
    let offset = response.clock_offset(sent_at);
    let expires_at = exp - offset;
    let issued_at = claims
        .iat
        .map(|iat| iat - offset)
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
/// 5xx and 408 → transient; 429 → rate limited; other unexpected statuses and bodies that are
/// not the documented claims → protocol. A refusal is not an error: it is
/// [`Verification::Rejected`].
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
    Ok(Verification::Valid(response.json(NAME)?))
}

fn rejection(response: &HttpResponse) -> StampsRejection {
    let detail = response
        .error_json::<serde_json::Value>()
        .ok()
        .and_then(|v| reason(&v));
    StampsRejection {
        status: response.status.as_u16(),
        detail: detail.map(|d| shorten(&d)),
    }
}

/// `{"detail": "…"}`, `{"error": "…"}`, `{"message": "…"}`, or DRF's `{"field": ["…"]}`.
fn reason(value: &serde_json::Value) -> Option<String> {
    let object = value.as_object()?;
    for field in ["detail", "error", "message"] {
        if let Some(text) = object.get(field).and_then(serde_json::Value::as_str) {
            return Some(text.to_owned());
        }
    }
    object.iter().find_map(|(field, v)| match v {
        serde_json::Value::String(s) => Some(format!("{field}: {s}")),
        serde_json::Value::Array(items) => items
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

    /// The sample access token of the Stamps document (HS256, secret `TESTJWT`).
    pub(crate) const SAMPLE: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNjU3MzMyNjE2LCJpYXQiOjE2NTcyNDYyMTYsImp0aSI6IjRlYWRjNDAxNGQwZDRkNzc4NjkxYjg0ZDU3MGE2ZGFmIiwidXNlcl9pZCI6NTg3MCwibWVyY2hhbnRfaWQiOjF9.b_TiGJEO7mKMT0BFTrF9VjPHjoGrt5Be8FPSgvn-4bY";

    const NOW: OffsetDateTime = datetime!(2022-07-08 02:10:20 UTC);

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
        assert_eq!(claims.user_id, 5870);
        assert_eq!(claims.merchant_id, 1);
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
        let rejected = parse_verification(
            &json(
                401,
                r#"{"detail":"Token is invalid or expired","code":"token_not_valid"}"#,
            ),
            NOW,
        )
        .unwrap();
        assert_eq!(
            rejected,
            Verification::Rejected(StampsRejection {
                status: 401,
                detail: Some("Token is invalid or expired".to_owned())
            })
        );
        assert_eq!(
            parse_verification(&json(200, r#"{"exp":1}"#), NOW)
                .unwrap_err()
                .kind(),
            ErrorKind::Protocol
        );
    }
}
