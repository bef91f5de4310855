//! The one HTTP exchange every provider crate uses (feature `http`).
//!
//! It owns the rules no provider should re-implement:
//!
//! * TLS through rustls with the platform's verifier, never disabled;
//! * a connect timeout and a total timeout on every request;
//! * redirects are not followed (a token endpoint that redirects is answering something
//!   unexpected, and following it could carry credentials elsewhere);
//! * the body is read incrementally and refused past a cap (a 10 MB answer is not buffered);
//! * `http://` is accepted only for loopback addresses (the simulators);
//! * errors never carry the request URL (KrmPesan puts its refresh token in the query string
//!   and reqwest's errors print the whole URL) nor the request body;
//! * the server's `Date` header is kept, so providers can correct for clock skew.

use std::{fmt, net::IpAddr, time::Duration};

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

pub use reqwest::{
    Method, RequestBuilder, StatusCode, Url,
    header::{self, HeaderValue},
};

use crate::error::Error;

/// Timeouts and limits of the exchange.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Bound on establishing a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Bound on a whole request, body included (default 30 s).
    pub timeout: Duration,
    /// Largest response body accepted (default 256 KiB; token answers are a few KiB).
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_body_bytes: 256 * 1024,
        }
    }
}

impl HttpConfig {
    /// The default configuration with another total timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.connect_timeout = self.connect_timeout.min(timeout);
        self
    }
}

/// A reqwest client configured by [`HttpConfig`]. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    config: HttpConfig,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds a client.
    pub fn new(config: HttpConfig) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kunci/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::configuration("could not build the HTTP client").with_source(e.without_url())
            })?;
        Ok(Self { client, config })
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Starts a request; finish it with reqwest's builder methods and [`HttpClient::send`].
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends a request and reads the answer, capped. Network failures and timeouts are
    /// [`Transient`](crate::ErrorKind::Transient); an oversized body is
    /// [`Protocol`](crate::ErrorKind::Protocol). The status is not judged here.
    pub async fn send(
        &self,
        provider: &str,
        request: RequestBuilder,
    ) -> Result<HttpResponse, Error> {
        let mut response = request
            .send()
            .await
            .map_err(|e| transport_error(provider, e))?;
        let status = response.status();
        let headers = response.headers();
        let content_type = header_str(headers, header::CONTENT_TYPE);
        let date = header_str(headers, header::DATE)
            .and_then(|d| httpdate::parse_http_date(&d).ok())
            .map(OffsetDateTime::from);
        let retry_after = header_str(headers, header::RETRY_AFTER);
        let max = self.config.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > max as u64)
        {
            return Err(oversized(provider, max));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(provider, e))?
        {
            if body.len() + chunk.len() > max {
                return Err(oversized(provider, max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            content_type,
            date,
            retry_after,
            body: body.freeze(),
        })
    }
}

fn header_str(headers: &header::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn oversized(provider: &str, max: usize) -> Error {
    Error::protocol(format!(
        "{provider} answered with a body larger than {max} bytes; it was not read"
    ))
}

fn transport_error(provider: &str, e: reqwest::Error) -> Error {
    let e = e.without_url();
    let message = if e.is_timeout() {
        format!("{provider} did not answer in time")
    } else if e.is_connect() {
        format!("could not connect to {provider}")
    } else if e.is_body() || e.is_decode() {
        format!("the answer from {provider} was cut off")
    } else {
        format!("the request to {provider} failed")
    };
    Error::transient(message).with_source(e)
}

/// An answer, fully read.
#[derive(Clone)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The server's `Date` header.
    pub date: Option<OffsetDateTime>,
    retry_after: Option<String>,
    /// The body (at most [`HttpConfig::max_body_bytes`]).
    pub body: Bytes,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body may hold a token: print its size only.
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("date", &self.date)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl HttpResponse {
    /// Builds a response (for tests and custom transports).
    pub fn new(status: StatusCode, content_type: Option<&str>, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type: content_type.map(str::to_owned),
            date: None,
            retry_after: None,
            body: body.into(),
        }
    }

    /// Whether the `Content-Type` is JSON (`application/json`, `application/fhir+json`, …).
    pub fn is_json(&self) -> bool {
        self.mime().is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
    }

    /// The media type alone, lower-cased, without parameters.
    pub fn mime(&self) -> Option<String> {
        self.content_type.as_deref().map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// Parses the body as JSON; a body that does not parse is a protocol error that names where,
    /// never what (the body may hold secrets).
    pub fn json<T: DeserializeOwned>(&self, provider: &str) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Eof => "is truncated",
                serde_json::error::Category::Syntax => "is not valid JSON",
                serde_json::error::Category::Data | serde_json::error::Category::Io => {
                    "does not have the documented shape"
                }
            };
            Error::protocol(format!(
                "the answer from {provider} (status {}) {what} (line {}, column {})",
                self.status.as_u16(),
                e.line(),
                e.column()
            ))
        })
    }

    /// The body as text for an error message: at most `max_chars` characters, control
    /// characters replaced. Use only for bodies that carry no secret (error pages).
    pub fn text_snippet(&self, max_chars: usize) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut out: String = text
            .trim()
            .chars()
            .take(max_chars)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.trim().chars().count() > max_chars {
            out.push('…');
        }
        out
    }

    /// The server's `Retry-After`, as a moment (seconds are counted from `now`).
    pub fn retry_after(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let raw = self.retry_after.as_deref()?.trim();
        if let Ok(secs) = raw.parse::<u32>() {
            return Some(now + Duration::from_secs(u64::from(secs)));
        }
        httpdate::parse_http_date(raw)
            .ok()
            .map(OffsetDateTime::from)
    }

    /// Sets the raw `Retry-After` value (for tests and custom transports).
    #[must_use]
    pub fn with_retry_after(mut self, raw: &str) -> Self {
        self.retry_after = Some(raw.to_owned());
        self
    }

    /// How far the server's clock is ahead of ours (`Date` minus `local_now`); zero without a
    /// `Date` header. `Date` has one-second resolution, so offsets under two seconds are
    /// treated as none.
    pub fn clock_offset(&self, local_now: OffsetDateTime) -> time::Duration {
        match self.date {
            Some(date) if (date - local_now).abs() >= time::Duration::seconds(2) => {
                date - local_now
            }
            _ => time::Duration::ZERO,
        }
    }

    /// The error for a status the provider's document does not describe: 429 → rate limited
    /// (until `Retry-After`, or a minute), 408 and 5xx → transient (with the body's text, which
    /// for these statuses is an error page), anything else → protocol.
    pub fn unexpected_status(&self, provider: &str, now: OffsetDateTime) -> Error {
        let code = self.status.as_u16();
        let retry_after = self.retry_after(now);
        let err = if self.status == StatusCode::TOO_MANY_REQUESTS {
            let until = retry_after.unwrap_or(now + Duration::from_secs(60));
            Error::rate_limited(until, format!("{provider} answered 429 Too Many Requests"))
        } else if self.status.is_server_error() || self.status == StatusCode::REQUEST_TIMEOUT {
            let text = if self.mime().as_deref() == Some("text/html") {
                String::new()
            } else {
                self.text_snippet(200)
            };
            let sep = if text.is_empty() { "" } else { ": " };
            Error::transient(format!(
                "{provider} is unavailable (status {code}){sep}{text}"
            ))
        } else {
            Error::protocol(format!(
                "{provider} answered an unexpected status {code} ({})",
                self.mime().unwrap_or_else(|| "no content type".to_owned())
            ))
        };
        match retry_after {
            Some(at) => err.with_retry_after(at),
            None => err,
        }
    }
}

/// Parses a provider base URL. It may carry a path prefix (`https://gw.example/kalsel`); the
/// endpoint path is appended to it by [`endpoint`]. `http://` is accepted only for loopback
/// hosts.
pub fn parse_base_url(raw: &str) -> Result<Url, Error> {
    // Messages show the URL only as scheme, host and path: a base URL may carry credentials.
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::configuration(format!("the base URL is not a valid URL ({e})")))?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(Error::configuration(format!(
            "the base URL `{}` must not carry credentials, a query or a fragment",
            redact_url(&url)
        )));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(Error::configuration(format!(
            "the base URL `{}` uses plain http; kunci sends credentials only over https (http is allowed for loopback addresses)",
            redact_url(&url)
        ))),
        other => Err(Error::configuration(format!(
            "the base URL `{}` has the unsupported scheme `{other}`; use https",
            redact_url(&url)
        ))),
    }
}

fn redact_url(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `base` with `path` appended to its path prefix: `https://h/p` + `api/v1/refresh` →
/// `https://h/p/api/v1/refresh`. A trailing slash in `path` is kept.
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url
}

/// A provider's configuration variables read through a lookup, with errors that name the
/// variable and never its value. Blank values count as unset.
#[derive(Clone, Copy)]
pub struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl fmt::Debug for Vars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vars { .. }")
    }
}

impl<'a> Vars<'a> {
    /// Reads through `lookup` (a variable name → its value).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The value, or `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A required value; unset is a configuration error `"{name} is not set; {hint}"`.
    pub fn required(&self, name: &str, hint: &str) -> Result<String, Error> {
        self.get(name).ok_or_else(|| {
            let sep = if hint.is_empty() { "" } else { "; " };
            Error::configuration(format!("the variable {name} is not set{sep}{hint}"))
        })
    }

    /// A required secret (kept as read: secrets are not trimmed).
    pub fn secret(&self, name: &str, hint: &str) -> Result<secrecy::SecretString, Error> {
        self.required(name, hint).map(secrecy::SecretString::from)
    }

    /// The base URL in `name`, or `default` when unset; checked by [`parse_base_url`]. The
    /// error names the variable, not its value.
    pub fn base_url(&self, name: &str, default: &str) -> Result<Url, Error> {
        match self.get(name) {
            Some(raw) => parse_base_url(&raw).map_err(|_| {
                Error::configuration(format!(
                    "{name} is not an acceptable base URL: use https (http only for loopback addresses), without credentials, query or fragment"
                ))
            }),
            None => parse_base_url(default),
        }
    }

    /// Reads `names` from the process environment into a map to look up with [`Vars::new`]. A
    /// value that is not valid UTF-8 is a configuration error naming the variable (a plain
    /// `std::env::var(..).ok()` would silently treat it as unset).
    pub fn read_env(names: &[&str]) -> Result<std::collections::HashMap<String, String>, Error> {
        let mut values = std::collections::HashMap::new();
        for name in names {
            match std::env::var(name) {
                Ok(v) => {
                    values.insert((*name).to_owned(), v);
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::configuration(format!(
                        "the environment variable {name} is not valid UTF-8"
                    )));
                }
            }
        }
        Ok(values)
    }

    /// Prefixes a configuration error with the variable it came from.
    pub fn named(name: &str, error: Error) -> Error {
        Error::configuration(format!("{name}: {}", error.message()))
    }
}

/// A provider whose source can be configured from named variables: the process environment,
/// or a CLI profile that maps the same names to values from files or prompts.
///
/// Every provider crate implements it on its source type; the facade's generated
/// `ProviderKind` calls it, so adding a provider needs no hand edit in the facade or the CLI.
pub trait EnvProvider: crate::TokenSource + Sized + 'static {
    /// The provider's short name (`"kalsel"`), used in store keys, logs and the CLI.
    const NAME: &'static str;
    /// The variables it reads, required ones first.
    const ENV_VARS: &'static [&'static str];

    /// Builds the source from `lookup` (a variable name → its value), with `http` for its client.
    /// A missing or invalid variable is a configuration error that names the variable, never
    /// its value.
    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: HttpConfig,
    ) -> Result<Self, Error>;

    /// The store key of the account this source serves; never derived from a secret.
    fn store_key(&self) -> crate::StoreKey;

    /// The store key [`from_lookup`](Self::from_lookup) would give, without building the
    /// source. The default builds it (and so its HTTP client, which reads the system's root
    /// certificates); providers override it with their configuration alone, so a caller that
    /// only needs the key — a warm `kunci token` — pays for no client.
    fn store_key_from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<crate::StoreKey, Error> {
        Ok(Self::from_lookup(lookup, HttpConfig::default())?.store_key())
    }

    /// [`from_lookup`](Self::from_lookup) over the process environment ([`ENV_VARS`](Self::ENV_VARS)).
    fn from_env(http: HttpConfig) -> Result<Self, Error> {
        let env = Vars::read_env(Self::ENV_VARS)?;
        Self::from_lookup(&|name| env.get(name).cloned(), http)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn base_urls() {
        assert!(parse_base_url("https://kalsel.dev").is_ok());
        assert!(parse_base_url("http://127.0.0.1:8080/prefix").is_ok());
        assert!(parse_base_url("http://[::1]:8080").is_ok());
        assert!(parse_base_url("http://localhost:1").is_ok());
        for bad in [
            "http://kalsel.dev",
            "ftp://x",
            "not a url",
            "https://u:p@h",
            "https://h/?q=1",
        ] {
            let err = parse_base_url(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Configuration, "{bad}");
        }
        assert!(
            !parse_base_url("https://u:hunter2@h")
                .unwrap_err()
                .to_string()
                .contains("hunter2")
        );
    }

    #[test]
    fn vars_name_the_variable_never_the_value() {
        let lookup = |name: &str| match name {
            "X_SECRET" => Some("hunter2".to_owned()),
            "X_BLANK" => Some("   ".to_owned()),
            "X_URL" => Some("http://hunter2.example".to_owned()),
            _ => None,
        };
        let vars = Vars::new(&lookup);
        assert_eq!(vars.get("X_BLANK"), None, "blank counts as unset");
        let err = vars.required("X_MISSING", "ask the admin").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Configuration);
        assert!(err.message().contains("X_MISSING") && err.message().contains("ask the admin"));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&vars.secret("X_SECRET", "").unwrap()),
            "hunter2"
        );
        let err = vars
            .base_url("X_URL", "https://default.example")
            .unwrap_err();
        assert!(
            err.message().contains("X_URL") && !err.to_string().contains("hunter2"),
            "{err}"
        );
        assert_eq!(
            vars.base_url("X_NONE", "https://default.example")
                .unwrap()
                .as_str(),
            "https://default.example/"
        );
        let named = Vars::named("X_SECRET", Error::configuration("too short"));
        assert_eq!(named.message(), "X_SECRET: too short");
    }

    #[test]
    fn endpoints_keep_prefix_and_trailing_slash() {
        let base = parse_base_url("https://h.example/gw/").unwrap();
        assert_eq!(
            endpoint(&base, "/api/auth/get-access-token/").as_str(),
            "https://h.example/gw/api/auth/get-access-token/"
        );
        let bare = parse_base_url("https://h.example").unwrap();
        assert_eq!(
            endpoint(&bare, "tokens").as_str(),
            "https://h.example/tokens"
        );
    }

    #[test]
    fn status_mapping() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let r = HttpResponse::new(
            StatusCode::GATEWAY_TIMEOUT,
            Some("text/plain"),
            "Gateway Timeout",
        );
        let e = r.unexpected_status("sehatmu", now);
        assert_eq!(e.kind(), crate::ErrorKind::Transient);
        assert!(e.message().contains("Gateway Timeout"));
        let r = HttpResponse::new(StatusCode::TOO_MANY_REQUESTS, None, "").with_retry_after("120");
        assert_eq!(
            r.unexpected_status("x", now).kind(),
            crate::ErrorKind::RateLimited {
                until: now + Duration::from_secs(120)
            }
        );
        let r = HttpResponse::new(StatusCode::SERVICE_UNAVAILABLE, None, "")
            .with_retry_after("Wed, 21 Oct 2026 07:28:00 GMT");
        assert_eq!(
            r.unexpected_status("x", now).retry_after(),
            Some(datetime!(2026-10-21 07:28:00 UTC))
        );
        let r = HttpResponse::new(StatusCode::IM_A_TEAPOT, Some("text/html"), "<html>");
        assert_eq!(
            r.unexpected_status("x", now).kind(),
            crate::ErrorKind::Protocol
        );
    }

    #[test]
    fn json_errors_do_not_echo_the_body() {
        let r = HttpResponse::new(
            StatusCode::OK,
            Some("application/json"),
            r#"{"access_token": "SECRET" "#,
        );
        let e = r.json::<serde_json::Value>("kalsel").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Protocol);
        assert!(!e.to_string().contains("SECRET"));
    }

    #[test]
    fn content_types() {
        assert!(
            HttpResponse::new(StatusCode::OK, Some("application/json; charset=utf-8"), "")
                .is_json()
        );
        assert!(HttpResponse::new(StatusCode::OK, Some("application/fhir+json"), "").is_json());
        assert!(!HttpResponse::new(StatusCode::OK, Some("text/html"), "").is_json());
        assert!(!HttpResponse::new(StatusCode::OK, None, "").is_json());
    }

    #[test]
    fn clock_offset_ignores_rounding() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let mut r = HttpResponse::new(StatusCode::OK, None, "");
        r.date = Some(now + Duration::from_secs(1));
        assert_eq!(r.clock_offset(now), time::Duration::ZERO);
        r.date = Some(now - Duration::from_secs(300));
        assert_eq!(r.clock_offset(now), time::Duration::seconds(-300));
    }
}
