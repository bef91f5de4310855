//! The generic loopback server every provider simulator runs on.
//!
//! [`SimServer`] binds `127.0.0.1:0`, speaks HTTP/1.1 (hyper), and for each request:
//!
//! 1. reads it completely into a [`SimRequest`] and records it ([`SimServer::requests`]);
//! 2. takes the next injected [`Fault`], if any;
//! 3. waits the configured latency ([`SimBuilder::latency`]), if any;
//! 4. answers the fault, or — when there is none, or the fault only delays or rewrites the
//!    answer — calls the provider's [`Handler`] and sends its [`SimResponse`] with a `Date`
//!    header from the simulator's clock (skewed by [`SimServer::set_clock_skew`]).
//!
//! A request whose path lies outside the base URL's path prefix gets 404 without reaching
//! the handler. The server stops when the [`SimServer`] is dropped.

use std::{
    collections::VecDeque,
    convert::Infallible,
    fmt, io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use auth_core::SharedClock;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

/// Request bodies larger than this are answered 413 (token requests are tiny).
const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// One request as the simulator received it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SimRequest {
    /// The method.
    pub method: Method,
    /// The path below the base URL's prefix, starting with `/` (`/tokens`).
    pub path: String,
    /// The path as sent, prefix included (`/gw/tokens`).
    pub full_path: String,
    /// The raw query string, if any.
    pub raw_query: Option<String>,
    /// The query pairs, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl SimRequest {
    /// The first query value named `name`.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query parameter names, in order.
    pub fn query_names(&self) -> Vec<&str> {
        self.query.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// A header as text (`None` when absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of the body, lower-cased, without parameters (`application/json`).
    pub fn mime(&self) -> Option<String> {
        self.header("content-type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body parsed as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Option<Vec<(String, String)>> {
        serde_urlencoded::from_bytes(&self.body).ok()
    }

    /// The token of an `Authorization: <scheme> <token>` header, when the scheme matches
    /// (case-insensitively).
    pub fn authorization(&self, scheme: &str) -> Option<&str> {
        let value = self.header("authorization")?;
        let (word, token) = value.split_once(' ')?;
        word.eq_ignore_ascii_case(scheme).then_some(token)
    }
}

/// What a handler answers.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SimResponse {
    /// The status.
    pub status: StatusCode,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Further headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Bytes,
}

impl SimResponse {
    /// A response with a body and content type.
    pub fn new(status: u16, content_type: Option<&str>, body: impl Into<Bytes>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type: content_type.map(str::to_owned),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A JSON answer (`application/json`).
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, Some("application/json"), value.to_string())
    }

    /// A `text/plain` answer.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self::new(status, Some("text/plain; charset=utf-8"), text.into())
    }

    /// An HTML page, as a proxy, a load balancer or a captive portal would answer.
    pub fn html(status: u16) -> Self {
        let body = format!(
            "<!DOCTYPE html><html><head><title>{status}</title></head>\
             <body><h1>{status}</h1><p>nginx</p></body></html>"
        );
        Self::new(status, Some("text/html; charset=utf-8"), body)
    }

    /// An empty answer.
    pub fn empty(status: u16) -> Self {
        Self::new(status, None, Bytes::new())
    }

    /// 404 with a JSON body, for paths the simulated API does not have.
    pub fn not_found() -> Self {
        Self::json(404, &serde_json::json!({"message": "Not Found"}))
    }

    /// 405 with a JSON body, for a known path with the wrong method.
    pub fn method_not_allowed() -> Self {
        Self::json(405, &serde_json::json!({"message": "Method Not Allowed"}))
    }

    /// Adds a header (ignored if the name or value is invalid).
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            self.headers.push((name, value));
        }
        self
    }
}

/// A provider's token API: answers one request.
///
/// Implemented by every provider simulator, and by any `Fn(&SimRequest, &SimContext) ->
/// SimResponse` closure. Handlers run synchronously between reading the request and writing
/// the answer; state they keep (issued tokens, rate-limit windows) lives behind a `Mutex`.
pub trait Handler: Send + Sync + 'static {
    /// Answers `request`.
    fn handle(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse;
}

impl<F> Handler for F
where
    F: Fn(&SimRequest, &SimContext) -> SimResponse + Send + Sync + 'static,
{
    fn handle(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        self(request, ctx)
    }
}

/// A fault injected in place of (or on top of) the handler's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this status, content type and body instead of calling the handler.
    Status {
        /// The status code.
        status: u16,
        /// The `Content-Type`, if any.
        content_type: Option<String>,
        /// The body.
        body: String,
    },
    /// Wait this long, then answer normally (use it past the client's timeout).
    Delay(Duration),
    /// 200 `application/json` with a body of this many bytes, streamed in chunks without a
    /// `Content-Length` (see [`Fault::TEN_MB`]).
    HugeBody(usize),
    /// 200 with an HTML page (`text/html`), as a captive portal answers.
    Html,
    /// 200 `application/json` whose body is cut off mid-way.
    MalformedJson,
    /// The handler's answer, with its `Content-Type` replaced by `text/plain`.
    WrongContentType,
    /// Close the connection after reading the request, without any answer.
    CloseConnection,
}

impl Fault {
    /// 10 MiB, for [`Fault::HugeBody`].
    pub const TEN_MB: usize = 10 * 1024 * 1024;

    /// [`Fault::Status`] with a body and content type.
    pub fn status(status: u16, content_type: Option<&str>, body: impl Into<String>) -> Self {
        Self::Status {
            status,
            content_type: content_type.map(str::to_owned),
            body: body.into(),
        }
    }

    /// [`Fault::Status`] with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::status(status, Some("application/json"), body.to_string())
    }

    /// [`Fault::Status`] with an HTML error page (a proxy's `502 Bad Gateway`).
    pub fn html_error(status: u16) -> Self {
        let page = SimResponse::html(status);
        Self::status(
            status,
            page.content_type.as_deref(),
            String::from_utf8_lossy(&page.body).into_owned(),
        )
    }
}

/// What a handler may use besides the request: the simulator's clock, the configured token
/// lifetime, unique values, and the list of issued tokens.
#[derive(Clone)]
pub struct SimContext {
    shared: Arc<Shared>,
}

impl fmt::Debug for SimContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimContext").finish_non_exhaustive()
    }
}

impl SimContext {
    /// The simulator's wall-clock time (its clock plus the configured skew).
    pub fn now(&self) -> OffsetDateTime {
        self.shared.now()
    }

    /// The lifetime of the tokens the simulator issues.
    pub fn token_lifetime(&self) -> Duration {
        self.shared.settings().token_lifetime
    }

    /// Whether the provider's own rate limit applies (yes, unless the server was built
    /// [`without_rate_limits`](SimBuilder::without_rate_limits)).
    pub fn enforces_rate_limits(&self) -> bool {
        self.shared.settings().rate_limits
    }

    /// A number unique within this simulator, counting from 1.
    pub fn serial(&self) -> u64 {
        self.shared.serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A value unique across simulators and runs: `{prefix}{serial}-{16 random hex digits}`.
    pub fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}-{:016x}", self.serial(), fastrand::u64(..))
    }

    /// Records a token the simulator handed out (see [`SimServer::issued_tokens`]).
    pub fn record_issued(&self, token: &str) {
        lock(&self.shared.issued).push(token.to_owned());
    }
}

#[derive(Clone, Debug)]
struct Settings {
    token_lifetime: Duration,
    latency: Option<Duration>,
    skew: time::Duration,
    rate_limits: bool,
}

struct Shared {
    handler: Box<dyn Handler>,
    prefix: String,
    clock: SharedClock,
    settings: Mutex<Settings>,
    faults: Mutex<VecDeque<(Fault, Option<u32>)>>,
    requests: Mutex<Vec<SimRequest>>,
    issued: Mutex<Vec<String>>,
    serial: AtomicU64,
}

impl Shared {
    fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now() + self.settings().skew
    }

    fn next_fault(&self) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let (fault, remaining) = faults.front_mut()?;
        let fault = fault.clone();
        if let Some(n) = remaining {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.pop_front();
            }
        }
        Some(fault)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Configures a [`SimServer`] before it starts.
#[derive(Debug, Clone)]
pub struct SimBuilder {
    prefix: String,
    token_lifetime: Duration,
    latency: Option<Duration>,
    skew: time::Duration,
    clock: Option<SharedClock>,
    rate_limits: bool,
}

/// A bare server is its own [`Simulated::Sim`](crate::Simulated::Sim).
impl AsRef<SimServer> for SimServer {
    fn as_ref(&self) -> &SimServer {
        self
    }
}

impl Default for SimBuilder {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            token_lifetime: Duration::from_secs(3600),
            latency: None,
            skew: time::Duration::ZERO,
            clock: None,
            rate_limits: true,
        }
    }
}

impl SimBuilder {
    /// Serves the API below a path prefix (`/gateway`): [`SimServer::base_url`] then ends with
    /// it, and requests outside it are answered 404.
    #[must_use]
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        let trimmed = prefix.trim_matches('/');
        self.prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// The lifetime of issued tokens (default one hour; each simulator documents how it uses
    /// it).
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// A fixed delay before every answer (benchmarks use 50 ms).
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// How far the simulator's clock is ahead of the real one (negative: behind).
    #[must_use]
    pub fn clock_skew(mut self, skew: time::Duration) -> Self {
        self.skew = skew;
        self
    }

    /// The clock the simulator reads (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Leaves out the provider's own request limit (a simulator that has one reads
    /// [`SimContext::enforces_rate_limits`]: Kalsel.dev's 30 requests a minute, SehatMu's
    /// optional tokens per window), as a server does for clients on its own host: Kalsel.dev's
    /// exempts `127.0.0.1`. SehatMu's minute after a rejected secret stays: it is how that
    /// provider refuses a credential, not a limit on a well-behaved client. For benchmarks, which measure kunci and not the
    /// provider's limit, and which see every provider the same way through
    /// [`Simulated`](crate::Simulated).
    #[must_use]
    pub fn without_rate_limits(mut self) -> Self {
        self.rate_limits = false;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving with `handler` on the current tokio runtime.
    pub async fn start(self, handler: impl Handler) -> io::Result<SimServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            prefix: self.prefix,
            clock: self.clock.unwrap_or_default(),
            settings: Mutex::new(Settings {
                token_lifetime: self.token_lifetime,
                latency: self.latency,
                skew: self.skew,
                rate_limits: self.rate_limits,
            }),
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            serial: AtomicU64::new(0),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
        Ok(SimServer {
            shared,
            addr,
            shutdown,
            task,
        })
    }
}

/// A running simulator on `127.0.0.1`. Stops when dropped.
///
/// ```
/// use auth_testkit::{Fault, SimResponse, SimServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let sim = SimServer::builder()
///     .path_prefix("/gw")
///     .start(|_req: &auth_testkit::SimRequest, ctx: &auth_testkit::SimContext| {
///         SimResponse::json(200, &serde_json::json!({"token": ctx.unique("t-")}))
///     })
///     .await?;
/// assert!(sim.base_url().starts_with("http://127.0.0.1:"));
/// assert!(sim.base_url().ends_with("/gw"));
/// sim.fail_next(Fault::status(503, Some("text/plain"), "Service Unavailable"));
/// assert_eq!(sim.request_count(), 0);
/// # Ok(()) }
/// ```
pub struct SimServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for SimServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimServer")
            .field("addr", &self.addr)
            .field("prefix", &self.shared.prefix)
            .field("requests", &self.request_count())
            .finish_non_exhaustive()
    }
}

impl SimServer {
    /// A builder with the defaults: no prefix, tokens living one hour, no latency, no skew.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    /// Starts a simulator with the defaults.
    pub async fn start(handler: impl Handler) -> io::Result<Self> {
        SimBuilder::default().start(handler).await
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by the path prefix, if any; what a provider's
    /// `base_url` is set to.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.prefix)
    }

    /// The full URL of `path` below the base URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// Every request received so far, in order (faulted ones included).
    pub fn requests(&self) -> Vec<SimRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<SimRequest> {
        lock(&self.shared.requests).last().cloned()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Every token the handler recorded as issued, in order.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.issued).clone()
    }

    /// Applies `fault` to the next request only.
    pub fn fail_next(&self, fault: Fault) {
        self.fail_next_n(fault, 1);
    }

    /// Applies `fault` to the next `n` requests. Faults queue: one injected after another
    /// applies once the earlier one is used up.
    pub fn fail_next_n(&self, fault: Fault, n: u32) {
        if n > 0 {
            lock(&self.shared.faults).push_back((fault, Some(n)));
        }
    }

    /// Applies `fault` to every request until [`SimServer::clear_faults`].
    pub fn fail_always(&self, fault: Fault) {
        lock(&self.shared.faults).push_back((fault, None));
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many faults are still queued.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.shared.settings).token_lifetime = lifetime;
    }

    /// The lifetime of tokens issued now.
    pub fn token_lifetime(&self) -> Duration {
        self.shared.settings().token_lifetime
    }

    /// Sets (or with `None` removes) the fixed delay before every answer.
    pub fn set_latency(&self, latency: Option<Duration>) {
        lock(&self.shared.settings).latency = latency;
    }

    /// Sets how far the simulator's clock (its `Date` header, its expiry times) is ahead of
    /// the real one.
    pub fn set_clock_skew(&self, skew: time::Duration) {
        lock(&self.shared.settings).skew = skew;
    }

    /// The simulator's current time (its clock plus the skew).
    pub fn now(&self) -> OffsetDateTime {
        self.shared.now()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let mut shutdown = shutdown.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| serve(shared.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = shutdown.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
                while connections.try_join_next().is_some() {}
            }
            _ = shutdown.changed() => break,
        }
    }
    // Dropping the set aborts the connections still open.
}

/// The error a connection's service returns to make hyper close it without answering.
#[derive(Debug)]
struct CloseWithoutAnswer;

impl fmt::Display for CloseWithoutAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault injected: connection closed without an answer")
    }
}

impl std::error::Error for CloseWithoutAnswer {}

async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, CloseWithoutAnswer> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(render(&shared, SimResponse::text(413, "Payload Too Large"))),
    };
    let full_path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().map(str::to_owned);
    let query = raw_query
        .as_deref()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let path = if shared.prefix.is_empty() {
        Some(full_path.clone())
    } else {
        full_path
            .strip_prefix(&shared.prefix)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| {
                if rest.is_empty() {
                    "/".to_owned()
                } else {
                    rest.to_owned()
                }
            })
    };
    let request = SimRequest {
        method: parts.method,
        path: path.clone().unwrap_or_else(|| full_path.clone()),
        full_path,
        raw_query,
        query,
        headers: parts.headers,
        body,
    };
    lock(&shared.requests).push(request.clone());

    let fault = shared.next_fault();
    if let Some(latency) = shared.settings().latency {
        tokio::time::sleep(latency).await;
    }
    let ctx = SimContext {
        shared: shared.clone(),
    };
    let handle = |request: &SimRequest| {
        if path.is_some() {
            shared.handler.handle(request, &ctx)
        } else {
            SimResponse::not_found()
        }
    };
    let response = match fault {
        None => handle(&request),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            handle(&request)
        }
        Some(Fault::Status {
            status,
            content_type,
            body,
        }) => SimResponse::new(status, content_type.as_deref(), body),
        Some(Fault::Html) => SimResponse::html(200),
        Some(Fault::MalformedJson) => SimResponse::new(
            200,
            Some("application/json"),
            r#"{"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE2MTEzMTgy"#,
        ),
        Some(Fault::WrongContentType) => {
            let mut response = handle(&request);
            response.content_type = Some("text/plain; charset=utf-8".to_owned());
            response
        }
        Some(Fault::CloseConnection) => return Err(CloseWithoutAnswer),
        Some(Fault::HugeBody(len)) => {
            let mut response = Response::new(SimBody::huge(len));
            *response.status_mut() = StatusCode::OK;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            add_date(&shared, response.headers_mut());
            return Ok(response);
        }
    };
    Ok(render(&shared, response))
}

fn render(shared: &Shared, answer: SimResponse) -> Response<SimBody> {
    let mut response = Response::new(SimBody::full(answer.body));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    if let Some(ct) = answer
        .content_type
        .as_deref()
        .and_then(|ct| HeaderValue::try_from(ct).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    add_date(shared, headers);
    for (name, value) in answer.headers {
        headers.insert(name, value);
    }
    response
}

fn add_date(shared: &Shared, headers: &mut HeaderMap) {
    if let Some(date) = http_date(shared.now()) {
        headers.insert(header::DATE, date);
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate).
fn http_date(at: OffsetDateTime) -> Option<HeaderValue> {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let text = at.to_offset(time::UtcOffset::UTC).format(FORMAT).ok()?;
    HeaderValue::try_from(text).ok()
}

/// A response body: complete, or a large one produced chunk by chunk.
#[derive(Debug)]
pub(crate) enum SimBody {
    Full(Option<Bytes>),
    Huge {
        remaining: usize,
        chunk: Bytes,
        started: bool,
    },
}

impl SimBody {
    fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes))
    }

    fn huge(len: usize) -> Self {
        Self::Huge {
            remaining: len,
            chunk: Bytes::from(vec![b'a'; 64 * 1024]),
            started: false,
        }
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Self::Huge {
                remaining,
                chunk,
                started,
            } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                // Start like a token answer, so only the size gives it away.
                let data = if *started {
                    chunk.slice(..chunk.len().min(*remaining))
                } else {
                    *started = true;
                    let head = Bytes::from_static(br#"{"access_token":""#);
                    head.slice(..head.len().min(*remaining))
                };
                *remaining -= data.len();
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Self::Huge { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            // No exact size: sent chunked, so the client has to count.
            Self::Huge { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::setup::client;

    async fn echo() -> SimServer {
        SimServer::builder()
            .path_prefix("/gw/")
            .token_lifetime(Duration::from_secs(42))
            .start(|req: &SimRequest, ctx: &SimContext| {
                let token = ctx.unique("t-");
                ctx.record_issued(&token);
                SimResponse::json(
                    200,
                    &json!({"path": req.path, "token": token, "lifetime": ctx.token_lifetime().as_secs()}),
                )
                .with_header("x-sim", "1")
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn records_requests_and_answers() {
        let sim = echo().await;
        assert!(sim.base_url().ends_with("/gw"));
        let res = client()
            .post(sim.url("/x/y?a=1&b=two%20words"))
            .header("content-type", "application/json")
            .body(r#"{"k":"v"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().contains_key("date"));
        assert_eq!(res.headers()["x-sim"], "1");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["path"], "/x/y");
        assert_eq!(body["lifetime"], 42);
        let req = sim.last_request().unwrap();
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.full_path, "/gw/x/y");
        assert_eq!(req.query_value("b"), Some("two words"));
        assert_eq!(req.query_names(), ["a", "b"]);
        assert_eq!(req.mime().as_deref(), Some("application/json"));
        assert_eq!(req.json().unwrap()["k"], "v");
        assert_eq!(sim.issued_tokens(), [body["token"].as_str().unwrap()]);

        // outside the prefix: 404, recorded, handler not called
        let res = client()
            .get(format!("http://{}/x", sim.addr()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(sim.request_count(), 2);
        assert_eq!(sim.issued_tokens().len(), 1);
    }

    #[tokio::test]
    async fn tokens_are_distinct() {
        let sim = echo().await;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let body: serde_json::Value = client()
                .get(sim.url("t"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(seen.insert(body["token"].as_str().unwrap().to_owned()));
        }
    }

    #[tokio::test]
    async fn faults_apply_in_order_and_run_out() {
        let sim = echo().await;
        sim.fail_next_n(
            Fault::status(503, Some("text/plain"), "Service Unavailable"),
            2,
        );
        sim.fail_next(Fault::Html);
        sim.fail_next(Fault::MalformedJson);
        sim.fail_next(Fault::WrongContentType);
        sim.fail_next(Fault::html_error(502));
        let c = client();
        for expected in [
            (503, "text/plain"),
            (503, "text/plain"),
            (200, "text/html; charset=utf-8"),
        ] {
            let res = c.get(sim.url("t")).send().await.unwrap();
            assert_eq!(res.status().as_u16(), expected.0);
            assert_eq!(res.headers()["content-type"], expected.1);
        }
        let res = c.get(sim.url("t")).send().await.unwrap();
        assert!(res.json::<serde_json::Value>().await.is_err());
        let res = c.get(sim.url("t")).send().await.unwrap();
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        assert!(serde_json::from_slice::<serde_json::Value>(&res.bytes().await.unwrap()).is_ok());
        let res = c.get(sim.url("t")).send().await.unwrap();
        assert_eq!(res.status(), 502);
        assert!(res.text().await.unwrap().contains("<html>"));
        assert_eq!(sim.pending_faults(), 0);
        assert_eq!(c.get(sim.url("t")).send().await.unwrap().status(), 200);
        assert_eq!(sim.request_count(), 7);
    }

    #[tokio::test]
    async fn fail_always_until_cleared() {
        let sim = echo().await;
        sim.fail_always(Fault::status(500, None, ""));
        for _ in 0..3 {
            assert_eq!(
                client().get(sim.url("t")).send().await.unwrap().status(),
                500
            );
        }
        sim.clear_faults();
        assert_eq!(
            client().get(sim.url("t")).send().await.unwrap().status(),
            200
        );
    }

    #[tokio::test]
    async fn close_connection_gives_no_answer() {
        let sim = echo().await;
        sim.fail_always(Fault::CloseConnection);
        let err = client().get(sim.url("t")).send().await.unwrap_err();
        assert!(!err.is_status());
        assert!(sim.request_count() >= 1);
        sim.clear_faults();
        assert_eq!(
            client().get(sim.url("t")).send().await.unwrap().status(),
            200
        );
    }

    #[tokio::test]
    async fn huge_body_is_streamed_without_length() {
        let sim = echo().await;
        sim.fail_next(Fault::HugeBody(Fault::TEN_MB));
        let mut res = client().get(sim.url("t")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.content_length(), None);
        let mut total = 0;
        while let Some(chunk) = res.chunk().await.unwrap() {
            total += chunk.len();
        }
        assert_eq!(total, Fault::TEN_MB);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_then_answer() {
        let sim = echo().await;
        sim.fail_next(Fault::Delay(Duration::from_secs(3600)));
        // With paused time the hour passes at once; the answer is a normal one.
        auth_core::http::ensure_crypto_provider().unwrap();
        let res = reqwest::Client::new()
            .get(sim.url("t"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    #[tokio::test]
    async fn clock_skew_moves_the_date_header() {
        let sim = echo().await;
        sim.set_clock_skew(time::Duration::hours(-2));
        let res = client().get(sim.url("t")).send().await.unwrap();
        let date = res.headers()["date"].to_str().unwrap().to_owned();
        assert!(date.ends_with(" GMT"), "{date}");
        let expected = http_date(sim.now()).unwrap();
        // same minute at least (the second may tick)
        assert_eq!(&date[..20], &expected.to_str().unwrap()[..20]);
    }

    #[tokio::test]
    async fn stops_on_drop() {
        let sim = echo().await;
        let url = sim.url("t");
        drop(sim);
        tokio::task::yield_now().await;
        assert!(client().get(url).send().await.is_err());
    }
}
