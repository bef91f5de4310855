//! The agent's routes (a stable, versioned API):
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/token/{profile}` | `{"profile","token","scheme","expires_at","expires_in","fingerprint"}`, or the token alone with `Accept: text/plain` |
//! | `GET /v1/header/{profile}` | `{"profile","name","value","expires_at","expires_in","fingerprint"}`, or `Bearer <token>` with `Accept: text/plain` |
//! | `POST /v1/invalidate/{profile}` | body: the rejected token or its fingerprint (as text, or `{"token"}` / `{"fingerprint"}`); `{"invalidated": bool}` |
//! | `GET /v1/status` | every profile's state, never a secret |
//! | `GET /healthz` | `{"status":"ok"}` |
//! | `GET /metrics` | Prometheus text, or OpenMetrics when asked for (`Accept: application/openmetrics-text`) |
//!
//! Errors: an HTTP status and `{"error": class, "exit_code", "message", "until"}` with the
//! classes of the CLI's exit codes (see [`ApiError`]).

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use kunci::ErrorKind;
use kunci::metrics::prometheus_client::registry::Registry;
use secrecy::ExposeSecret as _;
use serde::Serialize;
use time::OffsetDateTime;

use super::{
    State,
    metrics::Route,
    tokens::{Lookup, Unserved},
};
use crate::failure::{code, exit_code};

/// The largest request body accepted (an invalidation carries one token).
pub(crate) const MAX_BODY: usize = 16 * 1024;
/// How long a request body may take to arrive.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// An error answer: a status, one of the CLI's exit-code classes and a message (never a secret).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    class: &'static str,
    exit_code: u8,
    message: String,
    until: Option<OffsetDateTime>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    exit_code: u8,
    message: &'a str,
    #[serde(with = "time::serde::rfc3339::option")]
    until: Option<OffsetDateTime>,
}

impl ApiError {
    /// A configuration-class error with its own status (400, 403, 404, 405, 413…).
    pub(crate) fn configuration(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            class: "configuration",
            exit_code: code::CONFIGURATION,
            message: message.into(),
            until: None,
        }
    }

    /// The answer for a manager's error:
    ///
    /// | kind | status | class (exit code) |
    /// |---|---|---|
    /// | configuration | 500 | `configuration` (2) |
    /// | re-authentication required | 502 | `reauthenticate` (3) |
    /// | rate limited until T | 429, `Retry-After` | `rate_limited` (4), `until` |
    /// | transient | 503 | `unavailable` (5) |
    /// | store | 503 | `unavailable` (5) |
    /// | protocol | 502 | `protocol` (6) |
    pub(crate) fn from_error(e: &kunci::Error) -> Self {
        let kind = e.kind();
        let (status, class, until) = match kind {
            ErrorKind::Configuration => (StatusCode::INTERNAL_SERVER_ERROR, "configuration", None),
            ErrorKind::ReauthenticationRequired => {
                (StatusCode::BAD_GATEWAY, "reauthenticate", None)
            }
            ErrorKind::RateLimited { until } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", Some(until))
            }
            ErrorKind::Protocol => (StatusCode::BAD_GATEWAY, "protocol", None),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
        };
        Self {
            status,
            class,
            exit_code: exit_code(kind),
            message: e.to_string(),
            until,
        }
    }

    fn from_lookup(lookup: Lookup, profile: &str) -> Self {
        match lookup {
            Lookup::Unknown => Self::configuration(
                StatusCode::NOT_FOUND,
                format!("the agent serves no profile `{}`", profile.escape_debug()),
            ),
            Lookup::Unconfigured(Unserved { code, message, .. }) => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                class: "configuration",
                exit_code: code,
                message,
                until: None,
            },
            Lookup::Failed(e) => Self::from_error(&e),
        }
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::to_vec(&ErrorBody {
            error: self.class,
            exit_code: self.exit_code,
            message: &self.message,
            until: self.until,
        })
        .unwrap_or_default();
        let mut response = json_response(self.status, body);
        if let Some(until) = self.until {
            let now = auth_core::Clock::now(&auth_core::SystemClock::new());
            let secs = (until - now).whole_seconds().max(1);
            if let Ok(v) = HeaderValue::try_from(secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        response
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn text_response(
    status: StatusCode,
    body: Vec<u8>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether the client asked for plain text: the first of `text/plain` and `application/json`
/// named in `Accept` wins; neither (or `*/*`) means JSON.
fn wants_text(req: &Request<Incoming>) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/plain") {
            return true;
        }
        if media.eq_ignore_ascii_case("application/json") {
            return false;
        }
    }
    false
}

/// Decodes `%XX` escapes in a path segment (profile names are ASCII letters, digits and
/// `._-@`, so anything else simply names no profile).
fn decode_segment(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Serialize)]
struct TokenBody<'a> {
    profile: &'a str,
    token: &'a str,
    scheme: &'a str,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    expires_in: Option<i64>,
    fingerprint: &'a str,
}

#[derive(Serialize)]
struct HeaderBody<'a> {
    profile: &'a str,
    name: &'static str,
    value: &'a str,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    expires_in: Option<i64>,
    fingerprint: &'a str,
}

fn expires_in(at: Option<OffsetDateTime>) -> Option<i64> {
    let now = auth_core::Clock::now(&auth_core::SystemClock::new());
    at.map(|at| (at - now).whole_seconds().max(0))
}

/// Serves one request of an allowed peer.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (route, response) = route(&state, req).await;
    state.requests.count(route, response.status());
    Ok(response)
}

async fn route(state: &State, req: Request<Incoming>) -> (Route, Response<Full<Bytes>>) {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let mut segments = path.trim_start_matches('/').split('/');
    let first = segments.next().unwrap_or("");
    let second = segments.next();
    let third = segments.next();
    let extra = segments.next().is_some();
    let (route, result) = match (first, second, third, extra) {
        ("v1", Some("token"), Some(p), false) => (
            Route::Token,
            only(&method, &Method::GET).and_then(|()| profile_of(p)),
        ),
        ("v1", Some("header"), Some(p), false) => (
            Route::Header,
            only(&method, &Method::GET).and_then(|()| profile_of(p)),
        ),
        ("v1", Some("invalidate"), Some(p), false) => (
            Route::Invalidate,
            only(&method, &Method::POST).and_then(|()| profile_of(p)),
        ),
        ("v1", Some("status"), None, false) => (
            Route::Status,
            only(&method, &Method::GET).map(|()| String::new()),
        ),
        ("healthz", None, None, false) => (
            Route::Health,
            only(&method, &Method::GET).map(|()| String::new()),
        ),
        ("metrics", None, None, false) => (
            Route::Metrics,
            only(&method, &Method::GET).map(|()| String::new()),
        ),
        _ => (
            Route::Other,
            Err(ApiError::configuration(
                StatusCode::NOT_FOUND,
                "no such route: see /v1/token/{profile}, /v1/header/{profile}, /v1/invalidate/{profile}, /v1/status, /healthz, /metrics",
            )),
        ),
    };
    let profile = match result {
        Ok(profile) => profile,
        Err(e) => return (route, e.into_response()),
    };
    let response = match route {
        Route::Token | Route::Header => token(state, &req, &profile, route).await,
        Route::Invalidate => invalidate(state, req, &profile).await,
        Route::Status => status(state),
        Route::Health => Ok(json_response(
            StatusCode::OK,
            br#"{"status":"ok"}"#.to_vec(),
        )),
        Route::Metrics => Ok(metrics(&state.registry, &req)),
        Route::Other => Err(ApiError::configuration(
            StatusCode::NOT_FOUND,
            "no such route",
        )),
    };
    (route, response.unwrap_or_else(ApiError::into_response))
}

fn only(method: &Method, wanted: &Method) -> Result<(), ApiError> {
    if method == wanted || (wanted == Method::GET && method == Method::HEAD) {
        Ok(())
    } else {
        Err(ApiError::configuration(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("this route answers {wanted} only"),
        ))
    }
}

fn profile_of(segment: &str) -> Result<String, ApiError> {
    decode_segment(segment)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            ApiError::configuration(
                StatusCode::NOT_FOUND,
                "the profile in the path is not valid",
            )
        })
}

async fn token(
    state: &State,
    req: &Request<Incoming>,
    profile: &str,
    route: Route,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let tokens = state.tokens.load();
    let (served, token) = tokens
        .token(profile)
        .await
        .map_err(|l| ApiError::from_lookup(l, profile))?;
    let text = wants_text(req);
    let secret = token.secret().expose_secret();
    let response = match (route, text) {
        (Route::Header, true) => text_response(
            StatusCode::OK,
            token.header_value().as_bytes().to_vec(),
            "text/plain; charset=utf-8",
        ),
        (_, true) => text_response(
            StatusCode::OK,
            secret.as_bytes().to_vec(),
            "text/plain; charset=utf-8",
        ),
        (Route::Header, false) => {
            let fingerprint = served.fingerprint_of(&token);
            let value = token.header_value().to_str().unwrap_or_default();
            let body = serde_json::to_vec(&HeaderBody {
                profile,
                name: "Authorization",
                value,
                expires_at: token.expires_at(),
                expires_in: expires_in(token.expires_at()),
                fingerprint: &fingerprint,
            })
            .unwrap_or_default();
            json_response(StatusCode::OK, body)
        }
        (_, false) => {
            let fingerprint = served.fingerprint_of(&token);
            let body = serde_json::to_vec(&TokenBody {
                profile,
                token: secret,
                scheme: token.scheme().as_str(),
                expires_at: token.expires_at(),
                expires_in: expires_in(token.expires_at()),
                fingerprint: &fingerprint,
            })
            .unwrap_or_default();
            json_response(StatusCode::OK, body)
        }
    };
    Ok(response)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateBody {
    token: Option<String>,
    fingerprint: Option<String>,
}

async fn invalidate(
    state: &State,
    req: Request<Incoming>,
    profile: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let body = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    .map_err(|_| {
        ApiError::configuration(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )
    })?
    .map_err(|_| {
        ApiError::configuration(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {MAX_BODY} bytes or was cut off"),
        )
    })?
    .to_bytes();
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::configuration(StatusCode::BAD_REQUEST, "the request body is not UTF-8")
    })?;
    let trimmed = text.trim();
    let presented = if trimmed.starts_with('{') {
        let parsed: InvalidateBody = serde_json::from_str(trimmed).map_err(|_| {
            ApiError::configuration(
                StatusCode::BAD_REQUEST,
                "the JSON body must be {\"token\": …} or {\"fingerprint\": …}",
            )
        })?;
        parsed.token.or(parsed.fingerprint).unwrap_or_default()
    } else {
        trimmed.to_owned()
    };
    if presented.is_empty() {
        return Err(ApiError::configuration(
            StatusCode::BAD_REQUEST,
            "send the rejected token or its fingerprint (hex SHA-256) as the body",
        ));
    }
    let tokens = state.tokens.load();
    let invalidated = tokens
        .invalidate(profile, &presented)
        .await
        .map_err(|l| ApiError::from_lookup(l, profile))?;
    if invalidated {
        tracing::info!(profile, "a client reported a rejected token: refreshing");
    }
    let body =
        serde_json::to_vec(&serde_json::json!({ "invalidated": invalidated })).unwrap_or_default();
    Ok(json_response(StatusCode::OK, body))
}

fn status(state: &State) -> Result<Response<Full<Bytes>>, ApiError> {
    let tokens = state.tokens.load();
    let body = serde_json::to_vec(&serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "profiles": tokens.status(),
    }))
    .unwrap_or_default();
    Ok(json_response(StatusCode::OK, body))
}

/// The metrics, in the format the client asked for.
pub(crate) fn metrics(registry: &Registry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let openmetrics = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let mut out = String::new();
    let (encoded, content_type) = if openmetrics {
        (
            kunci::metrics::prometheus_client::encoding::text::encode(&mut out, registry),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            kunci::metrics::prometheus_client::encoding::prometheus_text::encode(
                &mut out, registry,
            ),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    match encoded {
        Ok(()) => text_response(StatusCode::OK, out.into_bytes(), content_type),
        Err(_) => ApiError::configuration(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
        )
        .into_response(),
    }
}

/// The loopback TCP port's service: `/metrics` and `/healthz`, nothing else.
pub(crate) fn metrics_only(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => metrics(&state.registry, req),
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec()),
        _ => ApiError::configuration(
            StatusCode::NOT_FOUND,
            "this port serves /metrics and /healthz only",
        )
        .into_response(),
    };
    let route = if req.uri().path() == "/metrics" {
        Route::Metrics
    } else {
        Route::Other
    };
    state.requests.count(route, response.status());
    response
}

/// The answer to every request of a peer that is not allowed.
pub(crate) fn forbidden(uid: u32) -> Response<Full<Bytes>> {
    let mut response = ApiError::configuration(
        StatusCode::FORBIDDEN,
        format!("uid {uid} may not use this agent: add it to allow_uids (or its group to allow_gids) in the [agent] table"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode() {
        assert_eq!(decode_segment("toko").as_deref(), Some("toko"));
        assert_eq!(decode_segment("a%40b").as_deref(), Some("a@b"));
        assert_eq!(decode_segment("a%4"), None);
        assert_eq!(decode_segment("%zz"), None);
        assert_eq!(decode_segment("%ff"), None, "not UTF-8");
    }

    #[test]
    fn error_classes_follow_the_exit_codes() {
        let until = time::macros::datetime!(2030-01-01 00:00 UTC);
        let cases = [
            (kunci::Error::configuration("x"), 500, "configuration", 2),
            (
                kunci::Error::reauthentication_required("x"),
                502,
                "reauthenticate",
                3,
            ),
            (
                kunci::Error::rate_limited(until, "x"),
                429,
                "rate_limited",
                4,
            ),
            (kunci::Error::transient("x"), 503, "unavailable", 5),
            (kunci::Error::store("x"), 503, "unavailable", 5),
            (kunci::Error::protocol("x"), 502, "protocol", 6),
        ];
        for (e, status, class, exit) in cases {
            let api = ApiError::from_error(&e);
            assert_eq!(api.status.as_u16(), status, "{e}");
            assert_eq!(api.class, class);
            assert_eq!(api.exit_code, exit);
        }
        let response =
            ApiError::from_error(&kunci::Error::rate_limited(until, "x")).into_response();
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }
}
