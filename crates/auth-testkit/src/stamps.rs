//! The Stamps authentication API (document 003) as the real service behaves: a Django REST
//! framework service issuing its JWTs with djangorestframework-simplejwt.
//!
//! * `POST {base}/api/auth/get-access-token/` with `Content-Type: application/json` and
//!   `{"token": <authentication string>, "crm_merchant_id": <integer>}` → 200
//!   `{"access_token": <JWT>}`. The authentication string is a DRF token key; the JWT is what
//!   simplejwt's `AccessToken.for_user(user)` makes, plus a `merchant_id` claim: HS256 with the
//!   simulator's signing key (default `TESTJWT`, as the document's sample), claims in
//!   simplejwt's order `token_type` (`"access"`), `exp` (now + the token lifetime, default 24
//!   hours), `iat`, `jti` (`uuid4().hex`: 32 hex digits), `user_id`, `merchant_id`. From
//!   simplejwt 5.5.1 on `user_id` is a **string** (`"5870"`); [`SimpleJwt`] selects an earlier
//!   release, which writes a number as the page's sample does.
//! * `POST {base}/api/auth/verify-token/` with `Authorization: Bearer <JWT>` → 200 with the
//!   JWT's payload, after the checks of simplejwt's `JWTAuthentication`: signature with the
//!   current signing key, `exp` passed (no leeway), `jti` and `token_type == "access"` present,
//!   then the user named by `user_id` found and active.
//! * `POST {base}/api/ping` (the document's example of an authenticated call) → 200
//!   `{"detail": "pong"}` for DRF's `Authorization: Token <static token>` or a valid Bearer
//!   JWT.
//!
//! Refusals are the libraries' own bodies (see `docs/providers/stamps.md` for the sources):
//!
//! | situation | answer |
//! |---|---|
//! | no usable `Authorization` header | 401 `{"detail": "Authentication credentials were not provided."}` (DRF `NotAuthenticated`) |
//! | unknown authentication string or merchant, unknown `Token` key | 401 `{"detail": "Invalid token."}` (DRF `TokenAuthentication`) |
//! | the user is inactive, asked with a `Token` key or at get-access-token | 401 `{"detail": "User inactive or deleted."}` |
//! | a JWT refused (bad signature, old key, expired, no `jti`, wrong type) | 401 `{"detail": "Given token not valid for any token type", "code": "token_not_valid", "messages": [{"token_class": "AccessToken", "token_type": "access", "message": …}]}` |
//! | a valid JWT whose user is inactive / unknown | 401 `{"detail": "User is inactive", "code": "user_inactive"}` / `{"detail": "User not found", "code": "user_not_found"}` |
//! | `Bearer` with more than one value | 401 `{"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"}` |
//!
//! [`StampsSim::set_refusals_forbidden`] answers them 403 instead, as DRF does when a view's
//! first authentication class sends no `WWW-Authenticate` header.
//!
//! Checked exactly: the method (else 405 `{"detail": "Method \"GET\" not allowed."}`), the
//! path with its trailing slash (without it: 301 to the slashed path, as Django's
//! `APPEND_SLASH` answers; anything else 404), the JSON content type of get-access-token (else
//! 415), and its body: a JSON object with a string `token` and an integer `crm_merchant_id`
//! (else 400 with DRF's field errors, e.g. `{"crm_merchant_id": ["A valid integer is
//! required."]}`).
//!
//! ```
//! use auth_testkit::stamps::StampsSim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sim = StampsSim::start().await?;
//! assert_eq!(sim.merchant_id(), 1);
//! assert_eq!(sim.user_id_claim(), serde_json::json!("5870")); // simplejwt 5.5.1 and later
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
/// The user the simulated account belongs to (the sample token's `user_id`).
pub const USER_ID: u64 = 5870;

/// simplejwt's `detail` when no token class accepted a JWT.
pub const TOKEN_NOT_VALID_DETAIL: &str = "Given token not valid for any token type";

/// Which djangorestframework-simplejwt release the simulated Stamps runs. What differs between
/// them is the JSON type of `user_id` and the texts of refusals — which is why kunci reads
/// `user_id` as a string or a number and classifies refusals by status and `code` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SimpleJwt {
    /// 5.4 and earlier: `user_id` is a number; any undecodable or expired JWT is "Token is
    /// invalid or expired".
    V5_4,
    /// 5.5.0: `user_id` is a number; "Token is invalid" and "Token is expired" apart.
    V5_5_0,
    /// 5.5.1 and later (the default): `user_id` is a string (`Token.for_user` calls
    /// `str(user_id)`); "Token is invalid" and "Token is expired".
    #[default]
    V5_5_1,
}

impl SimpleJwt {
    fn invalid(self) -> &'static str {
        match self {
            Self::V5_4 => "Token is invalid or expired",
            Self::V5_5_0 | Self::V5_5_1 => "Token is invalid",
        }
    }

    fn expired(self) -> &'static str {
        match self {
            Self::V5_4 => "Token is invalid or expired",
            Self::V5_5_0 | Self::V5_5_1 => "Token is expired",
        }
    }

    fn user_id(self, id: u64) -> Value {
        match self {
            Self::V5_4 | Self::V5_5_0 => json!(id),
            Self::V5_5_1 => json!(id.to_string()),
        }
    }
}

struct Account {
    secret: Vec<u8>,
    auth_token: String,
    merchant_id: u64,
    user_id: u64,
    user_active: bool,
    static_token: String,
    simplejwt: SimpleJwt,
    user_id_claim: Option<Value>,
    refusal_status: u16,
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

/// An authentication failure: DRF renders `{"detail": …}` (simplejwt adds `code` and
/// `messages`), 401 — or 403 when the view's first authenticator sends no `WWW-Authenticate`.
fn refused(account: &Account, body: Value) -> SimResponse {
    let response = SimResponse::json(account.refusal_status, &body);
    if account.refusal_status == 401 {
        response.with_header("www-authenticate", "Bearer realm=\"api\"")
    } else {
        response
    }
}

/// simplejwt's `InvalidToken` from `JWTAuthentication.get_validated_token`.
fn token_not_valid(account: &Account, message: &str) -> SimResponse {
    refused(
        account,
        json!({
            "detail": TOKEN_NOT_VALID_DETAIL,
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
        }),
    )
}

/// How an `Authorization` header reads to DRF: no credentials for this keyword, a malformed
/// header, or a value.
enum Credential<'a> {
    Absent,
    Malformed,
    Value(&'a str),
}

fn credential<'a>(request: &'a SimRequest, keyword: &str) -> Credential<'a> {
    let Some(header) = request.header("authorization") else {
        return Credential::Absent;
    };
    let parts: Vec<&str> = header.split_whitespace().collect();
    match parts.as_slice() {
        [word, ..] if !word.eq_ignore_ascii_case(keyword) => Credential::Absent,
        [_, value] => Credential::Value(value),
        _ => Credential::Malformed,
    }
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
                user_id: USER_ID,
                user_active: true,
                static_token: static_token.to_owned(),
                simplejwt: SimpleJwt::default(),
                user_id_claim: None,
                refusal_status: 401,
            })),
        }
    }

    fn account(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// simplejwt's `JWTAuthentication`: the claims of a valid access token whose user exists
    /// and is active, or the refusal the library answers.
    fn authenticate_jwt(&self, token: &str, ctx: &SimContext) -> Result<Value, SimResponse> {
        let account = self.account();
        let version = account.simplejwt;
        // `TokenBackend.decode`: PyJWT checks the signature, then `exp` (no leeway by default).
        let Some(claims) = jwt::verify_hs256(token, &account.secret) else {
            return Err(token_not_valid(&account, version.invalid()));
        };
        let exp = match claims.get("exp") {
            None => return Err(token_not_valid(&account, "Token has no 'exp' claim")),
            Some(exp) => match exp.as_i64() {
                Some(exp) => exp,
                None => return Err(token_not_valid(&account, version.invalid())),
            },
        };
        if exp <= ctx.now().unix_timestamp() {
            return Err(token_not_valid(&account, version.expired()));
        }
        // `Token.verify`: a `jti`, then the token type.
        if claims.get("jti").is_none() {
            return Err(token_not_valid(&account, "Token has no id"));
        }
        match claims.get("token_type").and_then(Value::as_str) {
            None => return Err(token_not_valid(&account, "Token has no type")),
            Some("access") => {}
            Some(_) => return Err(token_not_valid(&account, "Token has wrong type")),
        }
        // `get_user`: Django's `User.objects.get(id=…)` takes the id as a number or a string.
        let user = match claims.get("user_id") {
            None => {
                return Err(refused(
                    &account,
                    json!({"detail": "Token contained no recognizable user identification", "code": "token_not_valid"}),
                ));
            }
            // An integral float (`5870.0`) is taken too, as Django's `int()` takes it.
            Some(Value::Number(n)) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && (0.0..1e15).contains(f))
                    .map(|f| f as u64)
            }),
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            Some(_) => None,
        };
        if user != Some(account.user_id) {
            return Err(refused(
                &account,
                json!({"detail": "User not found", "code": "user_not_found"}),
            ));
        }
        if !account.user_active {
            return Err(refused(
                &account,
                json!({"detail": "User is inactive", "code": "user_inactive"}),
            ));
        }
        Ok(claims)
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
        // The token key is looked up as DRF's `TokenAuthentication.authenticate_credentials`.
        if token != account.auth_token || merchant_id != account.merchant_id {
            return refused(&account, json!({"detail": "Invalid token."}));
        }
        if !account.user_active {
            return refused(&account, json!({"detail": "User inactive or deleted."}));
        }
        let now = ctx.now().unix_timestamp();
        let lifetime = i64::try_from(ctx.token_lifetime().as_secs()).unwrap_or(i64::MAX / 2);
        let jti = format!("{:016x}{:016x}", fastrand::u64(..), ctx.serial());
        let user_id = account
            .user_id_claim
            .clone()
            .unwrap_or_else(|| account.simplejwt.user_id(account.user_id));
        // Keys in simplejwt's order (`Token.__init__`, then `for_user`, then the view's claim).
        let payload = format!(
            r#"{{"token_type":"access","exp":{},"iat":{now},"jti":"{jti}","user_id":{user_id},"merchant_id":{merchant_id}}}"#,
            now.saturating_add(lifetime),
        );
        let access_token = jwt::hs256_raw(jwt::HS256_HEADER, &payload, &account.secret);
        ctx.record_issued(&access_token);
        SimResponse::json(200, &json!({ "access_token": access_token }))
    }

    fn verify_token(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        if !request.body.is_empty() && request.json().is_none() {
            return detail(400, "JSON parse error - Expecting value");
        }
        match credential(request, "Bearer") {
            Credential::Absent => refused(
                &self.account(),
                json!({"detail": "Authentication credentials were not provided."}),
            ),
            Credential::Malformed => refused(
                &self.account(),
                json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"}),
            ),
            Credential::Value(token) => match self.authenticate_jwt(token, ctx) {
                Ok(claims) => SimResponse::json(200, &claims),
                Err(refusal) => refusal,
            },
        }
    }

    /// A view with `TokenAuthentication` and `JWTAuthentication`: each ignores a header with
    /// the other's keyword, and with neither the request is not authenticated.
    fn ping(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        match credential(request, "Token") {
            Credential::Malformed => {
                let account = self.account();
                let text = if request.authorization("Token").is_some() {
                    "Invalid token header. Token string should not contain spaces."
                } else {
                    "Invalid token header. No credentials provided."
                };
                return refused(&account, json!({ "detail": text }));
            }
            Credential::Value(key) => {
                let account = self.account();
                if key != account.static_token {
                    return refused(&account, json!({"detail": "Invalid token."}));
                }
                if !account.user_active {
                    return refused(&account, json!({"detail": "User inactive or deleted."}));
                }
                return SimResponse::json(200, &json!({"detail": "pong"}));
            }
            Credential::Absent => {}
        }
        match credential(request, "Bearer") {
            Credential::Absent => refused(
                &self.account(),
                json!({"detail": "Authentication credentials were not provided."}),
            ),
            Credential::Malformed => refused(
                &self.account(),
                json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"}),
            ),
            Credential::Value(token) => match self.authenticate_jwt(token, ctx) {
                Ok(_) => SimResponse::json(200, &json!({"detail": "pong"})),
                Err(refusal) => refusal,
            },
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

    /// The ID of the user the tokens belong to ([`USER_ID`], as the sample).
    pub fn user_id(&self) -> u64 {
        self.handler.account().user_id
    }

    /// The `user_id` claim as the simulator writes it now: `"5870"` (simplejwt 5.5.1 on),
    /// `5870` (earlier releases), or the value set by [`set_user_id_claim`](Self::set_user_id_claim).
    pub fn user_id_claim(&self) -> Value {
        let account = self.handler.account();
        account
            .user_id_claim
            .clone()
            .unwrap_or_else(|| account.simplejwt.user_id(account.user_id))
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

    /// Which simplejwt release to behave as from now on (default [`SimpleJwt::V5_5_1`]).
    pub fn set_simplejwt(&self, release: SimpleJwt) {
        self.handler.account().simplejwt = release;
    }

    /// Writes `claim` as the `user_id` of new tokens (`None`: what the simplejwt release
    /// writes). For tests of claims that do not fit, such as `true` or `58.5`.
    pub fn set_user_id_claim(&self, claim: Option<Value>) {
        self.handler.account().user_id_claim = claim;
    }

    /// Marks the user active or not (Django's `is_active`): an inactive user's token key, JWTs
    /// and static token are refused.
    pub fn set_user_active(&self, active: bool) {
        self.handler.account().user_active = active;
    }

    /// Answers authentication failures 403 instead of 401 (`true`), as DRF does when the
    /// view's first authentication class has no `WWW-Authenticate` header to send.
    pub fn set_refusals_forbidden(&self, forbidden: bool) {
        self.handler.account().refusal_status = if forbidden { 403 } else { 401 };
    }

    /// Signs from now on with another key, as when Django's `SECRET_KEY` (simplejwt's
    /// `SIGNING_KEY`) is rotated: every JWT made under the old key is refused.
    pub fn set_signing_key(&self, secret: &[u8]) {
        self.handler.account().secret = secret.to_vec();
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

impl AsRef<SimServer> for StampsSim {
    fn as_ref(&self) -> &SimServer {
        &self.server
    }
}

impl Deref for StampsSim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        &self.server
    }
}
