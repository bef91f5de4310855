//! Reading Kalsel.dev's answers: its error body (`rest_err.APIError` of `erru_utils_go`:
//! `{"status", "message", "error", "causes"}`), classified by status and `error`, with the
//! server's words kept for the user once every configured secret is scrubbed from them.

use auth_core::{
    Error,
    http::HttpResponse,
    time::{Duration, OffsetDateTime},
};
use serde::Deserialize;

use crate::NAME;

/// The `error` of an invalid token (`utils/mjwt/mjwt.go`, `service/user_service.go`).
pub(crate) const JWT_ERROR: &str = "jwt_error";
/// The `error` of the rate limiter (`middleware/limiter.go`).
pub(crate) const RATE_LIMITER: &str = "rate_limiter";
/// The `error` of an account that no longer exists (`dao/user_dao.go`).
pub(crate) const NOT_FOUND: &str = "not_found";
/// The one cause kunci reads: an access token sent where a refresh token belongs
/// (`service/user_service.go`, `Refresh`).
pub(crate) const NOT_A_REFRESH_TOKEN: &str = "not a refresh token";
/// The most causes kept, and the longest text kept of each field.
const MAX_CAUSES: usize = 10;
const MAX_CHARS: usize = 200;

/// Kalsel.dev's error answer, kept as the error's [`source`](std::error::Error::source): the
/// status and the body's `message`, `error` and `causes`, with every configured secret
/// replaced by `[redacted]` and control and bidirectional-override characters removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Kalsel.dev answered {status}: {}", self.summary())]
#[non_exhaustive]
pub struct Rejection {
    /// The HTTP status (422, 421, 401, 404, 429, 400).
    pub status: u16,
    /// The server's `message` (`Token tidak valid`).
    pub message: String,
    /// The server's `error` (`jwt_error`, `rate_limiter`, `unauthorized`, `not_found`,
    /// `bad_request`).
    pub error: String,
    /// The server's `causes` (`Token is expired`, `not a refresh token`).
    pub causes: Vec<String>,
}

impl Rejection {
    /// `jwt_error: Token is expired` (the `error` and the causes, or the message when there are
    /// no causes).
    pub fn summary(&self) -> String {
        let detail = if self.causes.is_empty() {
            self.message.clone()
        } else {
            self.causes.join("; ")
        };
        match (self.error.is_empty(), detail.is_empty()) {
            (true, true) => "no details".to_owned(),
            (true, false) => detail,
            (false, true) => self.error.clone(),
            (false, false) => format!("{}: {detail}", self.error),
        }
    }

    /// Whether the server said this (`error`).
    pub(crate) fn is(&self, error: &str) -> bool {
        self.error == error
    }

    /// Whether one of the causes is exactly `cause`.
    pub(crate) fn has_cause(&self, cause: &str) -> bool {
        self.causes.iter().any(|c| c == cause)
    }
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    causes: Option<serde_json::Value>,
}

/// The error body of `response`, scrubbed of `secrets`; `None` when it is not the server's
/// JSON error shape.
pub(crate) fn rejection(response: &HttpResponse, secrets: &[&str]) -> Option<Rejection> {
    // Only a JSON object (serde would also read a struct from an array).
    let serde_json::Value::Object(object) = response.error_json().ok()? else {
        return None;
    };
    let body: Body = serde_json::from_value(serde_json::Value::Object(object)).ok()?;
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => scrub(&s, secrets),
        _ => String::new(),
    };
    let causes = match body.causes {
        Some(serde_json::Value::Array(causes)) => causes
            .into_iter()
            .take(MAX_CAUSES)
            .map(|c| match c {
                serde_json::Value::String(s) => scrub(&s, secrets),
                other => scrub(&other.to_string(), secrets),
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(Rejection {
        status: response.status.as_u16(),
        message: text(body.message),
        error: text(body.error),
        causes,
    })
}

/// `(status 422, jwt_error: Token is expired)` for a message.
pub(crate) fn detail(status: u16, rejection: Option<&Rejection>) -> String {
    match rejection {
        Some(r) => format!("status {status}, {}", r.summary()),
        None => format!("status {status}"),
    }
}

/// Attaches the rejection as the source, when there is one.
pub(crate) fn with_rejection(error: Error, rejection: Option<Rejection>) -> Error {
    match rejection {
        Some(r) => error.with_source(r),
        None => error,
    }
}

/// 429: rate limited until the server's `Retry-After` (the seconds left in its one-minute
/// window), else a minute from `now`.
pub(crate) fn rate_limited(
    response: &HttpResponse,
    rejection: Option<Rejection>,
    now: OffsetDateTime,
) -> Error {
    let until = response
        .retry_after(now)
        .filter(|t| *t > now)
        .unwrap_or_else(|| now.saturating_add(Duration::minutes(1)));
    let limiter = if rejection.as_ref().is_some_and(|r| r.is(RATE_LIMITER)) {
        "; the server allows 30 requests a minute per client address"
    } else {
        ""
    };
    let error = Error::rate_limited(
        until,
        format!(
            "{NAME} is rate limiting this client ({}{limiter})",
            detail(429, rejection.as_ref())
        ),
    );
    with_rejection(error, rejection)
}

/// Any other status: the shared exchange's error (429 rate limited, 408/5xx transient with the
/// error page's text, anything else protocol), with every secret redacted from its message (a
/// gateway's error page may echo the request).
pub(crate) fn unexpected(response: &HttpResponse, secrets: &[&str], now: OffsetDateTime) -> Error {
    let error = response.unexpected_status(NAME, now);
    let clean = redact(error.message(), secrets);
    if clean == error.message() {
        return error;
    }
    let redacted = Error::new(error.kind(), clean);
    match error.retry_after() {
        Some(at) => redacted.with_retry_after(at),
        None => redacted,
    }
}

/// `text` with every secret, as sent and URL-encoded, replaced by `[redacted]`.
fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        for form in [
            (*secret).to_owned(),
            percent_encoded(secret, false),
            percent_encoded(secret, true),
        ] {
            if out.contains(&form) {
                out = out.replace(&form, "[redacted]");
            }
        }
    }
    out
}

/// Server text as it may be shown: every secret (as sent, and URL-encoded) replaced, control
/// and bidirectional-formatting characters removed, at most 200 characters.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let out = redact(text, secrets);
    let mut kept: String = out
        .chars()
        .filter(|c| !c.is_control() && !is_bidi(*c))
        .take(MAX_CHARS)
        .collect();
    if out.chars().count() > MAX_CHARS {
        kept.push('…');
    }
    kept
}

/// Percent-encoding of everything but RFC 3986's unreserved characters; with `plus`, a space
/// becomes `+` (form encoding).
fn percent_encoded(secret: &str, plus: bool) -> String {
    let mut out = String::with_capacity(secret.len());
    for b in secret.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E,
/// U+2066–U+2069), which can make text read other than it is.
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use auth_core::http::{HttpResponse, StatusCode};

    use super::*;

    #[test]
    fn secrets_are_scrubbed_raw_and_url_encoded() {
        let secret = "p@ss word/+";
        for echoed in [secret, "p%40ss%20word%2F%2B", "p%40ss+word%2F%2B"] {
            let text = format!("invalid value `{echoed}` given");
            let clean = scrub(&text, &[secret]);
            assert_eq!(clean, "invalid value `[redacted]` given", "{echoed}");
        }
    }

    #[test]
    fn an_error_page_echoing_a_secret_is_redacted_and_keeps_its_kind() {
        let page = HttpResponse::new(
            StatusCode::BAD_GATEWAY,
            Some("text/plain"),
            "upstream failed for body {\"password\":\"hunter2-SECRET\"}",
        )
        .with_retry_after("30");
        let now = auth_core::time::macros::datetime!(2026-03-01 08:00 UTC);
        let err = unexpected(&page, &["hunter2-SECRET"], now);
        assert_eq!(err.kind(), auth_core::ErrorKind::Transient);
        assert!(
            !format!("{err} {err:?}").contains("hunter2-SECRET"),
            "{err}"
        );
        assert!(err.message().contains("[redacted]"), "{err}");
        assert_eq!(err.retry_after(), Some(now + Duration::seconds(30)));
    }

    #[test]
    fn control_and_bidi_characters_are_removed_and_text_is_capped() {
        assert_eq!(scrub("a\u{202E}b\nc\u{2066}d", &[]), "abcd");
        let long = "x".repeat(500);
        let capped = scrub(&long, &[]);
        assert_eq!(capped.chars().count(), MAX_CHARS + 1);
        assert!(capped.ends_with('…'));
    }

    #[test]
    fn the_servers_error_body_is_read_whatever_its_shape() {
        let response = |body: &str| {
            HttpResponse::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("application/json"),
                body.to_owned(),
            )
        };
        let r = rejection(
            &response(r#"{"status":422,"message":"Token tidak valid","error":"jwt_error","causes":["Token is expired"]}"#),
            &[],
        )
        .unwrap();
        assert!(r.is(JWT_ERROR) && r.has_cause("Token is expired"));
        assert_eq!(
            r.to_string(),
            "Kalsel.dev answered 422: jwt_error: Token is expired"
        );
        let odd = rejection(
            &response(r#"{"error":7,"causes":[1,{"a":"SECRET"}]}"#),
            &["SECRET"],
        )
        .unwrap();
        assert_eq!(odd.error, "");
        assert_eq!(odd.causes, ["1", r#"{"a":"[redacted]"}"#]);
        assert!(rejection(&response("Unprocessable Entity"), &[]).is_none());
        assert!(rejection(&response("[1]"), &[]).is_none());
    }
}
