//! The Stamps authentication API (document 003), a Django REST framework service:
//!
//! * `POST {base}/api/auth/get-access-token/` with `Content-Type: application/json` and
//!   `{"token": <authentication string>, "crm_merchant_id": <integer>}` → 200
//!   `{"access_token": <JWT>}`. The JWT is HS256-signed with the simulator's secret (default
//!   `TESTJWT`, as the document's sample) and carries, in the document's order,
//!   `token_type` (`"access"`), `exp` (now + the token lifetime, default 24 hours), `iat`,
//!   `jti` (32 hex digits), `user_id` and `merchant_id`.
//! * `POST {base}/api/auth/verify-token/` with `Authorization: Bearer <JWT>` and no body → 200
//!   with the JWT's payload when its signature checks out with the secret and it has not
//!   expired; otherwise 401 `{"detail": "Token is invalid or expired", "code":
//!   "token_not_valid"}`, or 401 `{"detail": "Authentication credentials were not provided."}`
//!   without a Bearer token.
//! * `POST {base}/api/ping` (the document's example of using a token) → 200 for
//!   `Authorization: Token <static token>` or a valid `Bearer` JWT, 401 otherwise.
//!
//! Checked exactly: the method (else 405 `{"detail": "Method \"GET\" not allowed."}`), the
//! path with its trailing slash (without it: 301 to the slashed path, as Django's
//! `APPEND_SLASH` answers; anything else 404), the JSON content type of get-access-token (else
//! 415), and its body: a JSON object with a string `token` and an integer `crm_merchant_id`
//! (else 400 with DRF's field errors, e.g. `{"crm_merchant_id": ["A valid integer is
//! required."]}`). An unknown authentication string or merchant: 401 `{"detail": "Invalid
//! token."}` (Stamps does not document its errors; these are DRF's).
//!
//! ```
//! use auth_testkit::stamps::StampsSim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sim = StampsSim::start().await?;
//! assert_eq!(sim.merchant_id(), 1);
//! assert!(!sim.auth_token().is_empty() && !sim.static_token().is_empty());
//! # Ok(()) }
//! ```

use std::{
    fmt, io,
    ops::Deref,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use http::Method;
use serde_json::{Value, json};

use crate::{
    jwt,
    server::{Handler, SimBuilder, SimContext, SimRequest, SimResponse, SimServer},
};

/// The lifetime of Stamps' JWTs: 24 hours.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);
/// The secret the document's sample JWT is signed with.
pub const DEFAULT_SECRET: &str = "TESTJWT";
/// The token endpoint's path (trailing slash included).
pub const GET_ACCESS_TOKEN_PATH: &str = "/api/auth/get-access-token/";
/// The verification endpoint's path (trailing slash included).
pub const VERIFY_TOKEN_PATH: &str = "/api/auth/verify-token/";
/// The document's example of an authenticated call.
pub const PING_PATH: &str = "/api/ping";

struct Account {
    secret: Vec<u8>,
    auth_token: String,
    merchant_id: u64,
    user_id: u64,
    static_token: String,
}

/// The Stamps [`Handler`].
#[derive(Clone)]
pub struct StampsHandler {
    account: Arc<Mutex<Account>>,
}

impl fmt::Debug for StampsHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StampsHandler").finish_non_exhaustive()
    }
}

fn detail(status: u16, text: &str) -> SimResponse {
    SimResponse::json(status, &json!({ "detail": text }))
}

fn field_error(field: &str, text: &str) -> SimResponse {
    SimResponse::json(400, &json!({ field: [text] }))
}

fn token_not_valid() -> SimResponse {
    SimResponse::json(
        401,
        &json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}),
    )
}

impl StampsHandler {
    /// A handler accepting `auth_token` for `merchant_id`, signing with `secret`, and accepting
    /// `static_token` at `/api/ping`.
    pub fn new(auth_token: &str, merchant_id: u64, static_token: &str, secret: &[u8]) -> Self {
        Self {
            account: Arc::new(Mutex::new(Account {
                secret: secret.to_vec(),
                auth_token: auth_token.to_owned(),
                merchant_id,
                user_id: 5870,
                static_token: static_token.to_owned(),
            })),
        }
    }

    fn account(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The claims of `token` when it is signed with the secret and not expired.
    fn valid_claims(&self, token: &str, ctx: &SimContext) -> Option<Value> {
        let claims = jwt::verify_hs256(token, &self.account().secret)?;
        let exp = claims.get("exp")?.as_i64()?;
        (exp > ctx.now().unix_timestamp()).then_some(claims)
    }

    fn get_access_token(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        if let Some(mime) = request.mime().filter(|m| m != "application/json") {
            return detail(
                415,
                &format!("Unsupported media type \"{mime}\" in request."),
            );
        }
        let body = if request.body.is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            match request.json() {
                Some(value) => value,
                None => return detail(400, "JSON parse error - Expecting value"),
            }
        };
        let Value::Object(body) = body else {
            return field_error(
                "non_field_errors",
                "Invalid data. Expected a dictionary, but got list.",
            );
        };
        let token = match body.get("token") {
            None => return field_error("token", "This field is required."),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) => return field_error("token", "This field may not be blank."),
            Some(_) => return field_error("token", "Not a valid string."),
        };
        let merchant_id = match body.get("crm_merchant_id") {
            None => return field_error("crm_merchant_id", "This field is required."),
            Some(v) => match v.as_u64() {
                Some(id) => id,
                None => return field_error("crm_merchant_id", "A valid integer is required."),
            },
        };
        let account = self.account();
        if token != account.auth_token || merchant_id != account.merchant_id {
            return detail(401, "Invalid token.");
        }
        let now = ctx.now().unix_timestamp();
        let lifetime = i64::try_from(ctx.token_lifetime().as_secs()).unwrap_or(i64::MAX / 2);
        let jti = format!("{:016x}{:016x}", fastrand::u64(..), ctx.serial());
        // Keys in the document's order, so tokens look exactly like the sample.
        let payload = format!(
            r#"{{"token_type":"access","exp":{},"iat":{now},"jti":"{jti}","user_id":{},"merchant_id":{merchant_id}}}"#,
            now.saturating_add(lifetime),
            account.user_id,
        );
        let access_token = jwt::hs256_raw(jwt::HS256_HEADER, &payload, &account.secret);
        ctx.record_issued(&access_token);
        SimResponse::json(200, &json!({ "access_token": access_token }))
    }

    fn verify_token(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        if !request.body.is_empty() && request.json().is_none() {
            return detail(400, "JSON parse error - Expecting value");
        }
        let Some(token) = request.authorization("Bearer") else {
            return detail(401, "Authentication credentials were not provided.");
        };
        match self.valid_claims(token, ctx) {
            Some(claims) => SimResponse::json(200, &claims),
            None => token_not_valid(),
        }
    }

    fn ping(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        let static_ok = request
            .authorization("Token")
            .is_some_and(|t| t == self.account().static_token);
        let jwt_ok = request
            .authorization("Bearer")
            .is_some_and(|t| self.valid_claims(t, ctx).is_some());
        if static_ok || jwt_ok {
            SimResponse::json(200, &json!({"detail": "pong"}))
        } else {
            detail(401, "Invalid token.")
        }
    }
}

impl Handler for StampsHandler {
    fn handle(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        type Endpoint = fn(&StampsHandler, &SimRequest, &SimContext) -> SimResponse;
        let endpoint: Endpoint = match request.path.as_str() {
            GET_ACCESS_TOKEN_PATH => Self::get_access_token,
            VERIFY_TOKEN_PATH => Self::verify_token,
            PING_PATH => Self::ping,
            path if [GET_ACCESS_TOKEN_PATH, VERIFY_TOKEN_PATH]
                .iter()
                .any(|p| p.trim_end_matches('/') == path) =>
            {
                return SimResponse::empty(301)
                    .with_header("location", &format!("{}/", request.full_path));
            }
            _ => return detail(404, "Not found."),
        };
        if request.method != Method::POST {
            return detail(
                405,
                &format!("Method \"{}\" not allowed.", request.method.as_str()),
            );
        }
        endpoint(self, request, ctx)
    }
}

/// A running Stamps simulator; dereferences to its [`SimServer`].
#[derive(Debug)]
pub struct StampsSim {
    server: SimServer,
    handler: StampsHandler,
    auth_token: String,
    merchant_id: u64,
    static_token: String,
}

impl StampsSim {
    /// Starts with 24-hour JWTs, the secret `TESTJWT`, merchant 1 and a random authentication
    /// string and static token.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(SimServer::builder().token_lifetime(DEFAULT_LIFETIME)).await
    }

    /// Starts on a configured server (its token lifetime is the JWTs' lifetime) with the
    /// secret `TESTJWT`.
    pub async fn start_with(builder: SimBuilder) -> io::Result<Self> {
        Self::start_with_secret(builder, DEFAULT_SECRET.as_bytes()).await
    }

    /// Starts on a configured server, signing JWTs with `secret`.
    pub async fn start_with_secret(builder: SimBuilder, secret: &[u8]) -> io::Result<Self> {
        let auth_token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let static_token = format!("static{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let merchant_id = 1;
        let handler = StampsHandler::new(&auth_token, merchant_id, &static_token, secret);
        let server = builder.start(handler.clone()).await?;
        Ok(Self {
            server,
            handler,
            auth_token,
            merchant_id,
            static_token,
        })
    }

    /// The authentication string accepted at get-access-token (`token`).
    pub fn auth_token(&self) -> &str {
        &self.auth_token
    }

    /// The merchant ID accepted at get-access-token (`crm_merchant_id`).
    pub fn merchant_id(&self) -> u64 {
        self.merchant_id
    }

    /// The user ID put in the JWTs (5870, as the sample).
    pub fn user_id(&self) -> u64 {
        self.handler.account().user_id
    }

    /// The static token accepted at `/api/ping`.
    pub fn static_token(&self) -> &str {
        &self.static_token
    }

    /// Changes the accepted authentication string (the old one is refused from now on), as
    /// when it is revoked.
    pub fn set_auth_token(&self, auth_token: &str) {
        self.handler.account().auth_token = auth_token.to_owned();
    }

    /// Signs a JWT with the simulator's secret and the given raw JSON payload (for tests of
    /// tokens the simulator would not issue itself, such as one without `exp`).
    pub fn sign(&self, payload_json: &str) -> String {
        jwt::hs256_raw(
            jwt::HS256_HEADER,
            payload_json,
            &self.handler.account().secret,
        )
    }
}

impl Deref for StampsSim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        &self.server
    }
}
