//! kunci's provider crates against the real upstream libraries their servers are built on.
//!
//! `cargo xtask conformance` starts the upstreams of `conformance/` (Django REST framework with
//! simplejwt for Stamps, express with oauth2-server for SehatMu, moto's Cognito for KrmPesan) on
//! loopback and runs this crate's integration tests with their URLs in
//! [`STAMPS_URL`], [`SEHATMU_URL`] and [`KRMPESAN_URL`]. The tests drive the provider crates
//! through `auth_core::TokenManager`, exactly as an application would.
//!
//! This library is the tests' support:
//!
//! * [`Upstream::from_env`] — the harness URL a scenario needs, or a printed reason why the
//!   scenario skips (when run by plain `cargo test`). Under [`REQUIRED`] (set by `cargo xtask
//!   conformance`) a missing URL fails the scenario instead, so a skip cannot pass unnoticed.
//! * [`RecordingProxy`] — a loopback HTTP proxy in front of an upstream that records every
//!   exchange, so a scenario counts the requests that reached the upstream and reads what the
//!   upstream answered (its own error texts, its own expiry).
//!
//! ```no_run
//! # async fn scenario() {
//! use kunci_conformance::{STAMPS_URL, Upstream};
//!
//! let Some(stamps) = Upstream::from_env(STAMPS_URL, "my_scenario") else { return };
//! let proxy = stamps.proxy().await; // point the provider crate at proxy.base_url()
//! // … drive a TokenManager …
//! assert_eq!(proxy.count("POST", "/api/auth/get-access-token/"), 1);
//! # }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test support: a failed step is a failed scenario, and a skip says why"
)]

use std::{
    convert::Infallible,
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinHandle};

/// The Stamps upstream's base URL (Django REST framework + simplejwt).
pub const STAMPS_URL: &str = "KUNCI_CONFORMANCE_STAMPS_URL";
/// The SehatMu upstream's base URL (express + oauth2-server 3.x).
pub const SEHATMU_URL: &str = "KUNCI_CONFORMANCE_SEHATMU_URL";
/// The KrmPesan upstream's base URL (the `/tokens` shim in front of moto's Cognito).
pub const KRMPESAN_URL: &str = "KUNCI_CONFORMANCE_KRMPESAN_URL";
/// Set (to anything) by `cargo xtask conformance`: every upstream must be there.
pub const REQUIRED: &str = "KUNCI_CONFORMANCE_REQUIRED";

/// An upstream of the harness, at the URL `cargo xtask conformance` handed over.
#[derive(Debug, Clone)]
pub struct Upstream {
    base_url: String,
    http: reqwest::Client,
}

/// An HTTP answer, as the upstream sent it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {}", self.body))
    }
}

impl Upstream {
    /// The upstream named by the environment variable `variable`.
    ///
    /// When it is not set, prints why `test` skips and returns `None` — unless [`REQUIRED`] is
    /// set, which makes it a failure.
    pub fn from_env(variable: &str, test: &str) -> Option<Self> {
        match std::env::var(variable) {
            Ok(url) if !url.is_empty() => Some(Self::new(url.trim_end_matches('/'))),
            _ if std::env::var_os(REQUIRED).is_some() => panic!(
                "{test}: {variable} is not set, but {REQUIRED} is: the upstream must be running"
            ),
            _ => {
                eprintln!(
                    "{test}: skipped, {variable} is not set (`cargo xtask conformance` starts the upstreams and sets it)"
                );
                None
            }
        }
    }

    fn new(base_url: &str) -> Self {
        auth_core::http::ensure_crypto_provider().expect("kunci's TLS crypto provider");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Self {
            base_url: base_url.to_owned(),
            http,
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A new [`RecordingProxy`] in front of this upstream.
    pub async fn proxy(&self) -> RecordingProxy {
        RecordingProxy::start(self.base_url.clone()).await
    }

    /// Sends a request straight to the upstream (not through a proxy).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&HeaderValue>,
        content: Option<(&str, String)>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value.clone());
        }
        if let Some((content_type, body)) = content {
            request = request
                .header(header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// `GET {base}{path}` with `Authorization: <authorization>`.
    pub async fn get(&self, path: &str, authorization: &HeaderValue) -> Answer {
        self.send(Method::GET, path, Some(authorization), None)
            .await
    }

    /// `POST {base}{path}` with a JSON body: the harness's own routes (under `/harness/`),
    /// which set up what a scenario needs. Panics unless the answer is 2xx JSON.
    pub async fn harness(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let answer = self
            .send(
                Method::POST,
                path,
                None,
                Some(("application/json", body.to_string())),
            )
            .await;
        assert!(
            (200..300).contains(&answer.status),
            "{path} answered {}: {}",
            answer.status,
            answer.body
        );
        answer.json()
    }
}

/// One request that went through a [`RecordingProxy`], and the upstream's answer.
#[derive(Clone)]
pub struct Exchange {
    /// The request method.
    pub method: String,
    /// The request path (without the query).
    pub path: String,
    /// The raw query, if any.
    pub query: Option<String>,
    /// The upstream's status.
    pub status: u16,
    /// The upstream's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The upstream's body, as text.
    pub body: String,
}

impl Exchange {
    /// The upstream's answer as an [`Answer`].
    pub fn answer(&self) -> Answer {
        Answer {
            status: self.status,
            content_type: self.content_type.clone(),
            body: self.body.clone(),
        }
    }
}

impl fmt::Debug for Exchange {
    // The query and bodies carry the scenario's (throw-away) credentials; keep them out of
    // assertion messages anyway.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A loopback HTTP/1.1 proxy in front of one upstream that records every exchange. Stops when
/// dropped.
pub struct RecordingProxy {
    base_url: String,
    log: Arc<Mutex<Vec<Exchange>>>,
    task: JoinHandle<()>,
}

impl fmt::Debug for RecordingProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingProxy")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Forwarder {
    upstream: String,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<Exchange>>>,
}

/// Headers that belong to one hop, not to the request or answer.
const HOP_BY_HOP: &[header::HeaderName] = &[
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
    header::HOST,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in HOP_BY_HOP {
        out.remove(name);
    }
    out.remove("keep-alive");
    out
}

impl Forwarder {
    async fn forward(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().map(str::to_owned);
        let target = match &query {
            Some(q) => format!("{}{path}?{q}", self.upstream),
            None => format!("{}{path}", self.upstream),
        };
        let sent = self
            .http
            .request(parts.method.clone(), target)
            .headers(end_to_end(&parts.headers))
            .body(body)
            .send()
            .await;
        let (status, headers, body) = match sent {
            Ok(answer) => {
                let status = answer.status();
                let headers = end_to_end(answer.headers());
                let body = answer.bytes().await.unwrap_or_default();
                (status, headers, body)
            }
            Err(e) => (
                http::StatusCode::BAD_GATEWAY,
                HeaderMap::new(),
                Bytes::from(format!("recording proxy: the upstream failed: {e}")),
            ),
        };
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Exchange {
                method: parts.method.to_string(),
                path,
                query,
                status: status.as_u16(),
                content_type: headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

impl RecordingProxy {
    /// Starts a proxy on a free loopback port, forwarding to `upstream` (a base URL).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let base_url = format!("http://{}", listener.local_addr().expect("an address"));
        let log = Arc::new(Mutex::new(Vec::new()));
        auth_core::http::ensure_crypto_provider().expect("kunci's TLS crypto provider");
        let forwarder = Arc::new(Forwarder {
            upstream,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            log: log.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let forwarder = forwarder.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let forwarder = forwarder.clone();
                        async move { Ok::<_, Infallible>(forwarder.forward(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base_url,
            log,
            task,
        }
    }

    /// The proxy's base URL (`http://127.0.0.1:PORT`), to configure a provider crate with.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Every exchange so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The exchanges with this method and path.
    pub fn to(&self, method: &str, path: &str) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(|e| e.method == method && e.path == path)
            .collect()
    }

    /// How many requests with this method and path reached the upstream.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.to(method, path).len()
    }

    /// The last exchange with this method and path; panics when there is none.
    pub fn last(&self, method: &str, path: &str) -> Exchange {
        self.to(method, path)
            .pop()
            .unwrap_or_else(|| panic!("no {method} {path} went through the proxy"))
    }
}

/// An error and its chain of sources, as one line: what a user of kunci would read.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        out.push_str(" / ");
        out.push_str(&source.to_string());
        next = source.source();
    }
    out
}

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
