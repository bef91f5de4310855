//! The SehatMu token API (document 004) as the real service behaves: `oauth2-server` 3.x
//! (Node) behind thin glue — `grant_type` read from the query string, errors mapped to a FHIR
//! `OperationOutcome` with the page's texts, and the one-request-per-minute rule after a
//! failed authentication. `POST {base}/oauth/token?grant_type=client_credentials` with
//! `Content-Type: application/x-www-form-urlencoded` and the body `client_id`, `client_secret`.
//!
//! * The method must be `POST` and the path `/oauth/token`; the query exactly
//!   `grant_type=client_credentials`, the content type form-urlencoded and the body exactly the
//!   two fields `client_id` and `client_secret`. Anything else is refused with a 4xx FHIR
//!   `OperationOutcome` (`{"resourceType": "OperationOutcome", "issue": [{"severity":
//!   "invalid", "code": "value", "details": {"text": …}}]}`), carrying `oauth2-server`'s own
//!   message where the library refuses it (`TokenHandler`'s "Missing parameter" and
//!   "Unsupported grant type" for `grant_type`, "Invalid request: content must be
//!   application/x-www-form-urlencoded"; status 400, the library's `code` for them).
//! * Wrong client ID or secret: 400 with the page's text ([`CREDENTIALS_REJECTED_TEXT`]) —
//!   `oauth2-server`'s `InvalidClientError` is 400 when the credentials come in the body (401
//!   only when they come in an `Authorization` header, which SehatMu's clients do not send).
//! * Rate limit, per client ID, after a failed **authentication** only (a wrong secret; not a
//!   malformed request, not a server error): every request within the window (default 60 s,
//!   [`SehatMuSim::set_rate_limit_window`] to shorten it) is refused with 429 and the page's
//!   rate-limit text ([`RATE_LIMIT_TEXT`]), even with the right secret; a refused request does
//!   not restart the window. Optionally ([`SehatMuSim::set_max_tokens_per_window`]) issuing
//!   more than N tokens within a window is refused the same way.
//! * 200 `application/json`: the token object the model's `saveToken` returns, as
//!   `server.token()` resolves it — `accessToken` (40 hex digits, as `oauth2-server`'s
//!   `generateRandomToken`: a SHA-1 hex digest), `accessTokenExpiresAt` (a JavaScript `Date`,
//!   so ISO-8601 with milliseconds and `Z`), `clientId`, `client`, `userId`, `user`; or, after
//!   [`SehatMuSim::set_shape`] with [`ResponseShape::SnakeCase`], the SATUSEHAT shape the
//!   page's prose names (`access_token`, `expires_in`, `token_type`, `issued_at`, `client_id`,
//!   `developer.email`). Tokens live the server's token lifetime (default one hour).
//! * 5xx are `text/plain` (inject them with [`gateway_timeout`]); they start no rate limit.
//!
//! ```
//! use auth_testkit::sehatmu::SehatMuSim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sim = SehatMuSim::start().await?;
//! assert!(sim.client_id().ends_with(".sehatmu.client"));
//! assert_eq!(sim.client_secret().len(), 64);
//! # Ok(()) }
//! ```

use std::{
    collections::HashMap,
    fmt, io,
    ops::Deref,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use http::Method;
use serde_json::json;
use time::OffsetDateTime;

use crate::server::{Fault, Handler, SimBuilder, SimContext, SimRequest, SimResponse, SimServer};

/// The document's text for a rejected client ID or secret.
pub const CREDENTIALS_REJECTED_TEXT: &str = "The user or system was not able to be authenticated (either client_id or client_secret combination is unacceptable)";
/// The document's text for a request refused by the rate limit.
pub const RATE_LIMIT_TEXT: &str = "Authentication temporarily cannot be performed due to the rate limit policy. Rate limit: 1 request per minute after a failed attempt.";
/// The real service's rate-limit window: one minute.
pub const DEFAULT_RATE_LIMIT_WINDOW: Duration = Duration::from_secs(60);
/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth/token";

/// Which of the two documented success shapes the simulator answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResponseShape {
    /// The document's example: `accessToken`, `accessTokenExpiresAt`, `clientId`, `client`,
    /// `userId`, `user`.
    #[default]
    CamelCase,
    /// The document's prose: `access_token`, `expires_in`, `token_type`, `issued_at`,
    /// `client_id`, `developer.email`.
    SnakeCase,
}

/// A 504 `text/plain` `Gateway Timeout`, as the document's 5xx example.
pub fn gateway_timeout() -> Fault {
    Fault::status(504, Some("text/plain"), "Gateway Timeout")
}

/// An `OperationOutcome` body with one issue carrying `text`.
pub fn operation_outcome(text: &str) -> serde_json::Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "invalid", "code": "value", "details": {"text": text}}]
    })
}

fn outcome(status: u16, text: &str) -> SimResponse {
    SimResponse::json(status, &operation_outcome(text))
}

#[derive(Default)]
struct Limits {
    /// The last failed attempt.
    failed_at: Option<OffsetDateTime>,
    /// When tokens were issued within the current window.
    issued: Vec<OffsetDateTime>,
}

struct Account {
    client_id: String,
    client_secret: String,
    window: Duration,
    max_tokens_per_window: Option<usize>,
    shape: ResponseShape,
    limits: HashMap<String, Limits>,
}

/// The SehatMu [`Handler`].
#[derive(Clone)]
pub struct SehatMuHandler {
    account: Arc<Mutex<Account>>,
}

impl fmt::Debug for SehatMuHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SehatMuHandler").finish_non_exhaustive()
    }
}

fn iso_millis(at: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

impl SehatMuHandler {
    /// A handler accepting `client_id` with `client_secret`.
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        Self {
            account: Arc::new(Mutex::new(Account {
                client_id: client_id.to_owned(),
                client_secret: client_secret.to_owned(),
                window: DEFAULT_RATE_LIMIT_WINDOW,
                max_tokens_per_window: None,
                shape: ResponseShape::default(),
                limits: HashMap::new(),
            })),
        }
    }

    fn account(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_shape(request: &SimRequest) -> Result<(String, String), SimResponse> {
        // The glue moves `grant_type` from the query into the body; `TokenHandler` checks it.
        match request.query_value("grant_type") {
            None => return Err(outcome(400, "Missing parameter: `grant_type`")),
            Some("client_credentials") => {}
            Some(_) => {
                return Err(outcome(
                    400,
                    "Unsupported grant type: `grant_type` is invalid",
                ));
            }
        }
        if request.query.len() != 1 {
            return Err(outcome(
                400,
                "The query string must carry exactly grant_type=client_credentials",
            ));
        }
        if request.mime().as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(outcome(
                400,
                "Invalid request: content must be application/x-www-form-urlencoded",
            ));
        }
        let Some(form) = request.form() else {
            return Err(outcome(
                400,
                "The body is not application/x-www-form-urlencoded",
            ));
        };
        let value = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        if value("client_id").is_none() {
            return Err(outcome(400, "Missing parameter: `client_id`"));
        }
        let mut names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if names != ["client_id", "client_secret"] {
            return Err(outcome(
                400,
                "The body must carry exactly client_id and client_secret",
            ));
        }
        Ok((
            value("client_id").unwrap_or_default(),
            value("client_secret").unwrap_or_default(),
        ))
    }

    fn success(account: &Account, ctx: &SimContext, now: OffsetDateTime) -> SimResponse {
        let token = format!(
            "{:016x}{:016x}{:08x}",
            fastrand::u64(..),
            fastrand::u64(..),
            ctx.serial()
        );
        ctx.record_issued(&token);
        let lifetime = ctx.token_lifetime();
        let user_id = "64eb3286e34e01fa5887d9b6";
        let body = match account.shape {
            ResponseShape::CamelCase => json!({
                "accessToken": token,
                "accessTokenExpiresAt": iso_millis(now + lifetime),
                "clientId": account.client_id,
                "client": {"name": "John Doe System", "email": "john.doe@example.com"},
                "userId": user_id,
                "user": {"id": user_id, "email": "john.doe@example.com", "name": "John Doe System"},
            }),
            ResponseShape::SnakeCase => json!({
                "access_token": token,
                "expires_in": lifetime.as_secs(),
                "token_type": "BearerToken",
                "issued_at": iso_millis(now),
                "client_id": account.client_id,
                "developer": {"email": "john.doe@example.com"},
            }),
        };
        SimResponse::json(200, &body)
    }
}

impl Handler for SehatMuHandler {
    fn handle(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        if request.path != TOKEN_PATH {
            return outcome(404, "The requested resource was not found");
        }
        if request.method != Method::POST {
            return outcome(405, "Method not allowed: use POST");
        }
        let (client_id, client_secret) = match Self::check_shape(request) {
            Ok(credentials) => credentials,
            Err(response) => return response,
        };
        let now = ctx.now();
        let mut guard = self.account();
        let account = &mut *guard;
        let window = account.window;
        let limits = account.limits.entry(client_id.clone()).or_default();
        limits.issued.retain(|at| now - *at < window);
        if limits.failed_at.is_some_and(|at| now - at < window) {
            return outcome(429, RATE_LIMIT_TEXT);
        }
        if ctx.enforces_rate_limits()
            && account
                .max_tokens_per_window
                .is_some_and(|max| limits.issued.len() >= max)
        {
            return outcome(429, RATE_LIMIT_TEXT);
        }
        // `model.getClient(id, secret)` finds nothing: `InvalidClientError`, 400.
        if client_id != account.client_id || client_secret != account.client_secret {
            limits.failed_at = Some(now);
            return outcome(400, CREDENTIALS_REJECTED_TEXT);
        }
        limits.failed_at = None;
        limits.issued.push(now);
        Self::success(account, ctx, now)
    }
}

/// A running SehatMu simulator; dereferences to its [`SimServer`].
#[derive(Debug)]
pub struct SehatMuSim {
    server: SimServer,
    handler: SehatMuHandler,
    client_id: String,
    client_secret: String,
}

impl SehatMuSim {
    /// Starts with a random client ID and secret, tokens living one hour and the real
    /// service's one-minute rate-limit window.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(SimServer::builder()).await
    }

    /// Starts on a configured server (its token lifetime is the tokens' lifetime).
    pub async fn start_with(builder: SimBuilder) -> io::Result<Self> {
        let client_id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}.sehatmu.client",
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u16(..0x1000),
            fastrand::u16(..0x1000),
            fastrand::u64(..1 << 48)
        );
        let client_secret = format!(
            "{:016x}{:016x}{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..),
            fastrand::u64(..),
            fastrand::u64(..)
        );
        let handler = SehatMuHandler::new(&client_id, &client_secret);
        let server = builder.start(handler.clone()).await?;
        Ok(Self {
            server,
            handler,
            client_id,
            client_secret,
        })
    }

    /// The client ID the simulator accepts.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret the simulator accepts.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// How long a client is refused after a failed attempt (default 60 s).
    pub fn set_rate_limit_window(&self, window: Duration) {
        self.handler.account().window = window;
    }

    /// Refuses issuing more than `max` tokens per client within one window (`None`: no limit,
    /// the default).
    pub fn set_max_tokens_per_window(&self, max: Option<usize>) {
        self.handler.account().max_tokens_per_window = max;
    }

    /// Which success shape to answer from now on.
    pub fn set_shape(&self, shape: ResponseShape) {
        self.handler.account().shape = shape;
    }

    /// Forgets every failed attempt and issued token, lifting any rate limit.
    pub fn reset_rate_limit(&self) {
        self.handler.account().limits.clear();
    }
}

impl AsRef<SimServer> for SehatMuSim {
    fn as_ref(&self) -> &SimServer {
        &self.server
    }
}

impl Deref for SehatMuSim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        &self.server
    }
}
