//! Reading SehatMu's answers: both success shapes, the FHIR `OperationOutcome`, and 5xx text.

use std::{fmt, time::Duration};

use auth_core::{Error, Token, http::HttpResponse};
use http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use time::{
    OffsetDateTime,
    format_description::well_known::{Iso8601, Rfc3339},
};

use crate::NAME;

/// How long SehatMu refuses a client after a failed attempt ("1 request per minute after a
/// failed attempt").
pub const FAILURE_COOLDOWN: Duration = Duration::from_secs(60);
const FAILURE_COOLDOWN_SECONDS: time::Duration = time::Duration::seconds(60);

/// The text SehatMu sends when the client ID or secret is wrong.
pub const CREDENTIALS_REJECTED_TEXT: &str = "The user or system was not able to be authenticated (either client_id or client_secret combination is unacceptable)";
/// The text SehatMu sends when its rate limit refuses a request.
pub const RATE_LIMIT_TEXT: &str = "Authentication temporarily cannot be performed due to the rate limit policy. Rate limit: 1 request per minute after a failed attempt.";

/// A new token and what SehatMu said about it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SehatMuGrant {
    /// The bearer token.
    pub token: Token,
    /// The typed metadata of the answer.
    pub metadata: SehatMuMetadata,
}

/// The metadata of a token answer (camelCase shape: `clientId`, `client`, `userId`, `user`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SehatMuMetadata {
    /// The client the token was issued to.
    #[serde(rename = "clientId", default, deserialize_with = "string_or_number")]
    pub client_id: Option<String>,
    /// The registered client system.
    #[serde(default)]
    pub client: Option<SehatMuClient>,
    /// The user the client acts as.
    #[serde(rename = "userId", default, deserialize_with = "string_or_number")]
    pub user_id: Option<String>,
    /// The user record.
    #[serde(default)]
    pub user: Option<SehatMuUser>,
}

/// The `client` object of a token answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SehatMuClient {
    /// The system's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its contact e-mail.
    #[serde(default)]
    pub email: Option<String>,
}

/// The `user` object of a token answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SehatMuUser {
    /// The user's ID.
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: Option<String>,
    /// The user's e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// The user's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A FHIR `OperationOutcome`, as SehatMu answers every 4xx.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct OperationOutcome {
    /// `"OperationOutcome"`.
    #[serde(rename = "resourceType")]
    pub resource_type: String,
    /// The issues.
    #[serde(default)]
    pub issue: Vec<OutcomeIssue>,
}

/// One issue of an [`OperationOutcome`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct OutcomeIssue {
    /// `invalid`, `error`, …
    #[serde(default)]
    pub severity: Option<String>,
    /// `value`, `security`, …
    #[serde(default)]
    pub code: Option<String>,
    /// The human-readable part.
    #[serde(default)]
    pub details: Option<OutcomeDetails>,
}

/// The `details` of an [`OutcomeIssue`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct OutcomeDetails {
    /// The message to show.
    #[serde(default)]
    pub text: Option<String>,
}

impl OperationOutcome {
    /// Every `issue[].details.text`, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.issue
            .iter()
            .filter_map(|i| i.details.as_ref()?.text.as_deref())
    }

    /// The texts joined with `; ` (at most 500 characters, control characters replaced).
    pub fn message(&self) -> String {
        let joined = self.texts().collect::<Vec<_>>().join("; ");
        let mut out: String = joined
            .chars()
            .take(500)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if joined.chars().count() > 500 {
            out.push('…');
        }
        out
    }

    fn mentions(&self, needle: &str) -> bool {
        self.texts()
            .any(|t| t.to_ascii_lowercase().contains(needle))
    }

    /// Whether SehatMu refused the request because of its rate limit.
    pub fn is_rate_limit(&self) -> bool {
        self.mentions("rate limit")
    }

    /// Whether SehatMu rejected the client ID or secret.
    pub fn is_credentials_rejected(&self) -> bool {
        self.mentions("not able to be authenticated")
            || self.mentions("combination is unacceptable")
            || self.mentions("invalid_client")
    }
}

impl fmt::Display for OperationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message();
        if message.is_empty() {
            f.write_str("OperationOutcome without details")
        } else {
            f.write_str(&message)
        }
    }
}

impl std::error::Error for OperationOutcome {}

/// Both success shapes: the camelCase one of the page's example, and the snake_case one its
/// prose names.
#[derive(Deserialize)]
struct RawSuccess {
    #[serde(rename = "accessToken", default)]
    access_token_camel: Option<serde_json::Value>,
    #[serde(rename = "accessTokenExpiresAt", default)]
    expires_at: Option<String>,
    #[serde(default)]
    access_token: Option<serde_json::Value>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// An identifier as the model wrote it: a string, or a number (an in-memory model's `id: 1`)
/// kept as its digits; anything else is no identifier.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// Interprets the answer of `POST /oauth/token?grant_type=client_credentials`, sent at
/// `sent_at` and received at `now`.
///
/// # Errors
/// See the table in `docs/providers/sehatmu.md`: rejected credentials → re-authentication
/// required (with the `OperationOutcome` as source); the rate-limit text or 429 → rate limited
/// until `now` + 60 s (or a later `Retry-After`); 5xx and 408 → transient with the text;
/// anything else unexpected → protocol.
pub fn parse_token_response(
    response: &HttpResponse,
    sent_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<SehatMuGrant, Error> {
    let status = response.status;
    if status.is_success() {
        return parse_success(response, sent_at);
    }
    if status.is_client_error() && status != StatusCode::REQUEST_TIMEOUT {
        return Err(client_error(response, now));
    }
    Err(response.unexpected_status(NAME, now))
}

fn parse_success(response: &HttpResponse, sent_at: OffsetDateTime) -> Result<SehatMuGrant, Error> {
    let body: serde_json::Value = response.json(NAME)?;
    let raw = RawSuccess::deserialize(&body).map_err(|_| {
        Error::protocol(format!(
            "the answer from {NAME} (status {}) does not have the documented shape",
            response.status.as_u16()
        ))
    })?;
    // The metadata is what the server's model chose to return (`oauth2-server` passes the
    // model's token object on as it is): informative, never a reason to refuse a token.
    let metadata = SehatMuMetadata::deserialize(&body).unwrap_or_else(|_| {
        tracing::debug!(
            provider = NAME,
            "the token answer's metadata has an unexpected shape; it is left out"
        );
        SehatMuMetadata::default()
    });
    let secret = match raw.access_token_camel.or(raw.access_token) {
        Some(serde_json::Value::String(s)) => s,
        // The page's structure types `accessToken` as a number; its example is a string.
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(Error::protocol(
                "the answer from sehatmu has an access token that is not a string",
            ));
        }
        None => {
            return Err(Error::protocol(
                "the answer from sehatmu has neither `accessToken` nor `access_token`",
            ));
        }
    };
    let mut expiries = Vec::with_capacity(2);
    if let Some(at) = &raw.expires_at {
        let parsed = OffsetDateTime::parse(at, &Rfc3339)
            .or_else(|_| OffsetDateTime::parse(at, &Iso8601::DEFAULT))
            .map_err(|_| Error::protocol("the answer from sehatmu has an `accessTokenExpiresAt` that is not an ISO-8601 time"))?;
        // A server time: moved back by how far the server's clock is ahead of ours.
        expiries.push(shift_saturating(parsed, -response.clock_offset(sent_at)));
    }
    if let Some(value) = &raw.expires_in {
        expiries.push(shift_saturating(sent_at, expires_in(value)?));
    }
    let expires_at = expiries.into_iter().min().ok_or_else(|| {
        Error::protocol(
            "the answer from sehatmu has neither `accessTokenExpiresAt` nor `expires_in`",
        )
    })?;
    if expires_at <= sent_at {
        return Err(Error::protocol(
            "sehatmu issued a token that has already expired; check the system clock",
        ));
    }
    let token = Token::bearer(SecretString::from(secret), sent_at, Some(expires_at))?;
    Ok(SehatMuGrant { token, metadata })
}

/// Moves `at` by `by`, staying at the first or last moment `time` can represent (the years
/// ±9999) instead of leaving the range. The one place this crate does arithmetic on
/// server-supplied times; swap it for auth-core's checked-time helpers when they land.
fn shift_saturating(at: OffsetDateTime, by: time::Duration) -> OffsetDateTime {
    at.checked_add(by).unwrap_or(if by.is_negative() {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    })
}

fn expires_in(value: &serde_json::Value) -> Result<time::Duration, Error> {
    let secs = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    secs.filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e10)
        .map(time::Duration::seconds_f64)
        .ok_or_else(|| {
            Error::protocol(
                "the answer from sehatmu has an `expires_in` that is not a number of seconds",
            )
        })
}

fn client_error(response: &HttpResponse, now: OffsetDateTime) -> Error {
    let code = response.status.as_u16();
    let outcome = response
        .error_json::<OperationOutcome>()
        .ok()
        .filter(|o| o.resource_type == "OperationOutcome");
    // Rate-limit answers wait at least the page's minute, longer if `Retry-After` says so.
    let until = |at: OffsetDateTime| response.retry_after(now).map_or(at, |ra| ra.max(at));
    let a_minute_on = shift_saturating(now, FAILURE_COOLDOWN_SECONDS);
    let Some(outcome) = outcome else {
        if response.status == StatusCode::TOO_MANY_REQUESTS {
            return Error::rate_limited(
                until(a_minute_on),
                "sehatmu answered 429 Too Many Requests",
            );
        }
        let kind = response
            .mime()
            .unwrap_or_else(|| "no content type".to_owned());
        let snippet = if response.mime().as_deref() == Some("text/plain") {
            format!(": {}", response.text_snippet(200))
        } else {
            String::new()
        };
        return Error::protocol(format!(
            "sehatmu answered status {code} with a body that is not a FHIR OperationOutcome ({kind}){snippet}"
        ));
    };
    let text = outcome.message();
    if outcome.is_rate_limit() {
        let until = until(a_minute_on);
        return Error::rate_limited(
            until,
            format!("sehatmu refused the request under its rate limit (status {code}): {text}"),
        )
        .with_source(outcome);
    }
    if outcome.is_credentials_rejected() || matches!(code, 401 | 403) {
        return Error::reauthentication_required(format!(
            "sehatmu rejected the client credentials (status {code}): {text}; check SEHATMU_CLIENT_ID and SEHATMU_CLIENT_SECRET"
        ))
        .with_source(outcome);
    }
    if code == 429 {
        let until = until(a_minute_on);
        return Error::rate_limited(
            until,
            format!("sehatmu answered 429 Too Many Requests: {text}"),
        )
        .with_source(outcome);
    }
    Error::protocol(format!(
        "sehatmu refused the request (status {code}): {text}"
    ))
    .with_source(outcome)
}

#[cfg(test)]
mod tests {
    use auth_core::ErrorKind;
    use time::macros::datetime;

    use super::*;

    const SENT: OffsetDateTime = datetime!(2023-12-16 05:31:48 UTC);
    const NOW: OffsetDateTime = datetime!(2023-12-16 05:31:49 UTC);

    fn response(status: u16, content_type: &str, body: &str) -> HttpResponse {
        HttpResponse::new(
            StatusCode::from_u16(status).unwrap(),
            Some(content_type),
            body.to_owned(),
        )
    }

    fn outcome(text: &str) -> String {
        serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "invalid", "code": "value", "details": {"text": text}}]
        })
        .to_string()
    }

    const CAMEL: &str = r#"{
      "accessToken": "718d19c515f12c68dcfce7a97b7510c160c4678f",
      "accessTokenExpiresAt": "2023-12-17T05:31:48.002Z",
      "clientId": "3310fd56-10fb-4319-8044-9c0eb570a25f.sehatmu.client",
      "client": {"name": "John Doe System", "email": "john.doe@example.com"},
      "userId": "64eb3286e34e01fa5887d9b6",
      "user": {"id": "64eb3286e34e01fa5887d9b6", "email": "john.doe@example.com", "name": "John Doe System"}
    }"#;

    #[test]
    fn camel_case_sample_of_the_document() {
        let grant =
            parse_token_response(&response(200, "application/json", CAMEL), SENT, NOW).unwrap();
        assert_eq!(
            grant.token.header_value().to_str().unwrap(),
            "Bearer 718d19c515f12c68dcfce7a97b7510c160c4678f"
        );
        assert_eq!(
            grant.token.expires_at(),
            Some(datetime!(2023-12-17 05:31:48.002 UTC))
        );
        assert_eq!(grant.token.issued_at(), SENT);
        let m = grant.metadata;
        assert_eq!(
            m.client_id.as_deref(),
            Some("3310fd56-10fb-4319-8044-9c0eb570a25f.sehatmu.client")
        );
        assert_eq!(m.client.unwrap().name.as_deref(), Some("John Doe System"));
        assert_eq!(m.user_id.as_deref(), Some("64eb3286e34e01fa5887d9b6"));
        assert_eq!(
            m.user.unwrap().email.as_deref(),
            Some("john.doe@example.com")
        );
    }

    #[test]
    fn expiry_without_milliseconds_or_with_offset() {
        for (at, want) in [
            ("2023-12-17T05:31:48Z", datetime!(2023-12-17 05:31:48 UTC)),
            (
                "2023-12-17T12:31:48+07:00",
                datetime!(2023-12-17 05:31:48 UTC),
            ),
        ] {
            let body = format!(r#"{{"accessToken":"abc","accessTokenExpiresAt":"{at}"}}"#);
            let grant =
                parse_token_response(&response(200, "application/json", &body), SENT, NOW).unwrap();
            assert_eq!(grant.token.expires_at(), Some(want), "{at}");
        }
    }

    #[test]
    fn snake_case_shape_counts_from_sent_at() {
        let body = r#"{"access_token":"abc123","expires_in":3599,"token_type":"BearerToken","issued_at":"x"}"#;
        let grant =
            parse_token_response(&response(200, "application/json", body), SENT, NOW).unwrap();
        assert_eq!(
            grant.token.expires_at(),
            Some(SENT + Duration::from_secs(3599))
        );
        assert_eq!(
            grant.token.header_value().to_str().unwrap(),
            "Bearer abc123"
        );
        let body = r#"{"access_token":"abc123","expires_in":"60"}"#;
        let grant =
            parse_token_response(&response(200, "application/json", body), SENT, NOW).unwrap();
        assert_eq!(
            grant.token.expires_at(),
            Some(SENT + Duration::from_secs(60))
        );
    }

    #[test]
    fn malformed_successes_are_protocol_errors() {
        for body in [
            "",
            "{",
            "<html></html>",
            r#"{"accessToken":"abc"}"#,
            r#"{"expires_in":60}"#,
            r#"{"accessToken":"abc","accessTokenExpiresAt":"tomorrow"}"#,
            r#"{"access_token":"abc","expires_in":-5}"#,
            r#"{"access_token":{"x":1},"expires_in":5}"#,
            r#"{"access_token":"a b","expires_in":5}"#,
        ] {
            let err = parse_token_response(&response(200, "application/json", body), SENT, NOW)
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{body}: {err}");
        }
    }

    #[test]
    fn rejected_credentials_carry_the_text() {
        let err = parse_token_response(
            &response(401, "application/json", &outcome(CREDENTIALS_REJECTED_TEXT)),
            SENT,
            NOW,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
        assert!(err.to_string().contains(CREDENTIALS_REJECTED_TEXT), "{err}");
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), CREDENTIALS_REJECTED_TEXT);
        // The status does not matter: the text decides.
        let err = parse_token_response(
            &response(400, "application/json", &outcome(CREDENTIALS_REJECTED_TEXT)),
            SENT,
            NOW,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    }

    #[test]
    fn rate_limit_text_waits_a_minute() {
        let err = parse_token_response(
            &response(400, "application/json", &outcome(RATE_LIMIT_TEXT)),
            SENT,
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::RateLimited {
                until: NOW + FAILURE_COOLDOWN
            }
        );
        assert!(err.to_string().contains("1 request per minute"), "{err}");
        let later = response(429, "application/fhir+json", &outcome(RATE_LIMIT_TEXT))
            .with_retry_after("120");
        let err = parse_token_response(&later, SENT, NOW).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::RateLimited {
                until: NOW + Duration::from_secs(120)
            }
        );
    }

    #[test]
    fn other_client_errors() {
        let err = parse_token_response(
            &response(400, "application/json", &outcome("grant_type is invalid")),
            SENT,
            NOW,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("grant_type is invalid"), "{err}");
        let shape = "The body must carry exactly client_id and client_secret";
        let err = parse_token_response(
            &response(400, "application/json", &outcome(shape)),
            SENT,
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Protocol,
            "a malformed request is not a credentials problem"
        );
        let err = parse_token_response(
            &response(403, "application/json", &outcome("forbidden")),
            SENT,
            NOW,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
        for (status, ct, body) in [
            (400, "text/html", "<html>bad</html>"),
            (401, "application/json", "{}"),
            (404, "text/plain", "Not Found"),
        ] {
            let err = parse_token_response(&response(status, ct, body), SENT, NOW).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{status}");
            assert!(err.to_string().contains(&status.to_string()), "{err}");
        }
        let err =
            parse_token_response(&response(429, "text/plain", "slow down"), SENT, NOW).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::RateLimited {
                until: NOW + FAILURE_COOLDOWN
            }
        );
    }

    #[test]
    fn server_errors_are_transient_with_text() {
        let err = parse_token_response(&response(504, "text/plain", "Gateway Timeout"), SENT, NOW)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(err.to_string().contains("Gateway Timeout"), "{err}");
        let err = parse_token_response(&response(302, "text/html", ""), SENT, NOW).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
    }

    #[test]
    fn an_expiry_in_the_year_9999_with_a_server_clock_behind_does_not_panic() {
        let body = r#"{"accessToken":"abc","accessTokenExpiresAt":"9999-12-31T23:59:59Z"}"#;
        let mut answer = response(200, "application/json", body);
        answer.date = Some(SENT - Duration::from_secs(3600));
        let grant = parse_token_response(&answer, SENT, NOW).unwrap();
        assert_eq!(
            grant.token.expires_at(),
            Some(auth_core::expiry::LATEST),
            "the correction stops at the last representable moment"
        );
        // With the server's clock ahead, it is moved back as usual.
        answer.date = Some(SENT + Duration::from_secs(3600));
        let grant = parse_token_response(&answer, SENT, NOW).unwrap();
        assert_eq!(
            grant.token.expires_at(),
            Some(auth_core::expiry::LATEST),
            "moved back, then clamped like every time kunci keeps"
        );
    }

    #[test]
    fn an_expiry_that_has_passed_is_a_protocol_error() {
        for body in [
            r#"{"accessToken":"abc","accessTokenExpiresAt":"0000-01-01T00:00:00Z"}"#,
            r#"{"accessToken":"abc","accessTokenExpiresAt":"2023-12-16T05:31:47Z"}"#,
            r#"{"access_token":"abc","expires_in":0}"#,
        ] {
            let mut answer = response(200, "application/json", body);
            answer.date = Some(SENT + Duration::from_secs(7200));
            let err = parse_token_response(&answer, SENT, NOW).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{body}: {err}");
            assert!(err.to_string().contains("already expired"), "{err}");
        }
    }

    #[test]
    fn a_bare_429_waits_at_least_the_pages_minute() {
        for (retry_after, want) in [
            (None, NOW + FAILURE_COOLDOWN),
            (Some("5"), NOW + FAILURE_COOLDOWN),
            (Some("300"), NOW + Duration::from_secs(300)),
        ] {
            let mut answer = response(429, "text/plain", "Too Many Requests");
            if let Some(ra) = retry_after {
                answer = answer.with_retry_after(ra);
            }
            let err = parse_token_response(&answer, SENT, NOW).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::RateLimited { until: want },
                "{retry_after:?}"
            );
        }
    }

    #[test]
    fn metadata_as_an_in_memory_model_writes_it_never_refuses_the_token() {
        // Numeric ids, as an oauth2-server model keeping `{id: 1}` in memory answers them.
        let body = r#"{"accessToken":"0123456789abcdef0123456789abcdef01234567","accessTokenExpiresAt":"2023-12-17T05:31:48.002Z","client":{"id":"c1","grants":["client_credentials"],"name":"X"},"clientId":"c1","user":{"id":1,"email":"a@b.c"},"userId":1}"#;
        let grant =
            parse_token_response(&response(200, "application/json", body), SENT, NOW).unwrap();
        assert_eq!(grant.metadata.user_id.as_deref(), Some("1"));
        assert_eq!(grant.metadata.user.unwrap().id.as_deref(), Some("1"));
        assert_eq!(grant.metadata.client.unwrap().name.as_deref(), Some("X"));
        // Metadata of an unexpected shape is left out; the token is still a token.
        let body = r#"{"accessToken":"abc","accessTokenExpiresAt":"2023-12-17T05:31:48Z","client":"not-an-object","user":[1]}"#;
        let grant =
            parse_token_response(&response(200, "application/json", body), SENT, NOW).unwrap();
        assert_eq!(grant.metadata, SehatMuMetadata::default());
        assert_eq!(grant.token.header_value().to_str().unwrap(), "Bearer abc");
    }
}
