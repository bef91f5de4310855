//! Kalsel.dev as its server behaves: the Go (fiber) application `muchlist/KalselDevApi`, whose
//! source is public. Each rule below names the file of that repository it comes from; where the
//! simulator differs, it says so.
//!
//! * **Rate limit** (`middleware/limiter.go`, fiber v2.3.2's `limiter`): before anything else,
//!   30 requests per fixed one-minute window per client address, counting every request
//!   (refused ones too); over it, 429 with `Retry-After` (seconds until the window ends) and
//!   `{"status":429,"message":"terlalu banyak request","error":"rate_limiter","causes":["too many
//!   requests in a given amount of time"]}`. Allowed answers carry `X-RateLimit-Limit`,
//!   `-Remaining` and `-Reset`. The server exempts `127.0.0.1`; every client of this
//!   loopback simulator comes from there, so the simulator does not (or it could never answer
//!   429) and all its clients share one window. [`KalselSim::set_rate_limit`] changes or
//!   removes the limit; a server built
//!   [`without_rate_limits`](crate::SimBuilder::without_rate_limits) exempts every client, as
//!   the real one exempts its own host.
//! * **Routes** (`app/url_mappings.go`): `POST /api/v1/login`, `POST /api/v1/refresh`,
//!   `GET /api/v1/ping`; case-insensitive, a trailing `/` allowed (fiber's defaults). Another
//!   path: 404 `text/plain` `Cannot POST /x`; a known path with another method: 405
//!   `Method Not Allowed`.
//! * **Bodies** (`handler/user_handler.go`, fiber's `BodyParser`): a `Content-Type` starting
//!   with `application/json` is decoded as Go's `encoding/json` would (unknown fields ignored,
//!   names matched case-insensitively, `limit` a whole number); a form content type decodes to
//!   empty fields; any other content type is 400 `Unprocessable Entity`. A decoding error is
//!   400 `bad_request` with the decoder's text (approximated: the Go texts differ in detail).
//! * **Validation** (`dto/user_dto.go`, ozzo-validation v4.3.0): refresh needs a non-empty
//!   `refresh_token` (400 `refresh_token: cannot be blank.`); login needs an email
//!   (`must be a valid email address`; the server also resolves its domain, the simulator checks
//!   the shape only) and a password of 3 to 20 characters.
//! * **Login** (`service/user_service.go`): an unknown email or a wrong password is 401
//!   `{"error":"unauthorized","message":"Username atau password tidak valid"}`. `limit` 0 or
//!   above 10080 becomes 10080; there is no minimum (a negative `limit` gives a token that has
//!   already expired). The answer is `{"email","name","is_admin","avatar","access_token",
//!   "refresh_token","expired"}`: an access token (`type` 0, `fresh` true) living `limit`
//!   minutes and a refresh token (`type` 1) living **7 days**, whatever `limit` is.
//! * **Tokens** (`utils/mjwt/mjwt.go`): HS256 JWTs, header `{"alg":"HS256","typ":"JWT"}`,
//!   claims `exp`, `fresh`, `identity`, `is_admin`, `name`, `type` (Go writes a map's keys
//!   sorted). Checked by jwt-go v3.2.0: any failure (malformed, another algorithm, a bad
//!   signature, `exp` passed) is 422 `{"status":422,"message":"Token tidak valid",
//!   "error":"jwt_error","causes":[<jwt-go's text>]}` — `Token is expired`, `signature is
//!   invalid`, `token contains an invalid number of segments`, …
//! * **Refresh** (`service/user_service.go`): a valid token whose `type` is not 1 (an access
//!   token) is 422 with `"causes":["not a refresh token"]`; a refresh token whose user no longer
//!   exists is 404 `not_found`. Otherwise `{"access_token","expired"}`: a new access token
//!   (`fresh` false) living `limit` minutes (clamped as for login). **No refresh token in the
//!   answer, nothing rotates, nothing is revoked**: every refresh token stays valid until its own
//!   `exp`.
//!
//! For tests, a `limit` that is omitted, 0 or above 10080 gives the simulator's token lifetime
//! ([`SimBuilder::token_lifetime`]; [`KalselSim::start`] uses the server's 10080 minutes), so a
//! test can have short-lived access tokens without a `limit` the client would refuse.
//!
//! ```
//! use auth_testkit::kalsel::KalselSim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sim = KalselSim::start().await?;
//! let claims = auth_testkit::jwt::claims(sim.refresh_token().as_str()).unwrap();
//! assert_eq!(claims["type"], 1); // a refresh token
//! # Ok(()) }
//! ```

use std::{
    collections::HashMap,
    fmt, io,
    ops::Deref,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use hmac::{Hmac, Mac};
use http::Method;
use serde_json::{Map, Value};
use sha2::{Sha256, Sha384, Sha512};

use crate::{
    jwt,
    server::{Handler, SimBuilder, SimContext, SimRequest, SimResponse, SimServer},
};

/// The server's default (and longest) access-token lifetime: 10080 minutes (7 days).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(10_080 * 60);
/// How long a refresh token lives: 7 days from the login, whatever `limit` says.
pub const REFRESH_LIFETIME: Duration = Duration::from_secs(10_080 * 60);
/// Requests allowed per client address in one one-minute window.
pub const RATE_LIMIT: u32 = 30;
/// The email of the account the simulator starts with.
pub const EMAIL: &str = "whois.muchlis@gmail.com";
/// Its password (a test value, not a secret of anyone's).
pub const PASSWORD: &str = "Password";
/// Its name.
pub const NAME: &str = "Real Muchlis";

/// The header jwt-go writes (Go's `encoding/json` sorts a map's keys).
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// The one client address of a loopback simulator.
const LOOPBACK: &str = "127.0.0.1";
/// The limiter's window.
const WINDOW_SECS: i64 = 60;
/// Token types (`utils/mjwt/custom_claim.go`).
const ACCESS: i64 = 0;
const REFRESH: i64 = 1;

#[derive(Clone, Debug)]
struct User {
    name: String,
    is_admin: bool,
    avatar: String,
    password: String,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    hits: u32,
    /// Unix seconds at which the window ends.
    exp: i64,
}

struct State {
    secret: Vec<u8>,
    users: HashMap<String, User>,
    rate_limit: Option<u32>,
    windows: HashMap<String, Window>,
    /// The refresh and access token of the last login.
    last_login: (String, String),
}

/// The Kalsel.dev [`Handler`].
#[derive(Clone)]
pub struct KalselHandler {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for KalselHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KalselHandler").finish_non_exhaustive()
    }
}

/// `rest_err.NewAPIError` marshalled (`erru_utils_go` v1.0.4): fields in struct order.
fn api_error(status: u16, message: &str, error: &str, causes: &[&str]) -> SimResponse {
    let causes: Vec<Value> = causes.iter().map(|c| Value::from(*c)).collect();
    let body = format!(
        r#"{{"status":{status},"message":{},"error":{},"causes":{}}}"#,
        Value::from(message),
        Value::from(error),
        Value::Array(causes)
    );
    SimResponse::new(status, Some("application/json"), body)
}

fn bad_request(message: &str) -> SimResponse {
    api_error(400, message, "bad_request", &[])
}

fn jwt_error(cause: &str) -> SimResponse {
    api_error(422, "Token tidak valid", "jwt_error", &[cause])
}

/// fiber's `DefaultErrorHandler` and router texts.
fn plain(status: u16, text: String) -> SimResponse {
    SimResponse::new(status, Some("text/plain; charset=utf-8"), text)
}

/// The claims jwt-go writes, keys sorted as Go's `encoding/json` writes a map.
fn claims_json(identity: &str, user: &User, kind: i64, fresh: bool, exp: i64) -> String {
    format!(
        r#"{{"exp":{exp},"fresh":{fresh},"identity":{},"is_admin":{},"name":{},"type":{kind}}}"#,
        Value::from(identity),
        user.is_admin,
        Value::from(user.name.as_str()),
    )
}

/// Go's `base64.URLEncoding` as jwt-go v3.2.0's `DecodeSegment` uses it: padding added,
/// trailing bits ignored.
const GO_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn decode_segment(segment: &str) -> Result<Vec<u8>, String> {
    GO_URL.decode(segment).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(at, _)
            | base64::DecodeError::InvalidLastSymbol(at, _) => at,
            base64::DecodeError::InvalidLength(len) => len,
            base64::DecodeError::InvalidPadding => segment.len(),
        };
        format!("illegal base64 data at input byte {at}")
    })
}

/// An approximation of Go's `encoding/json` error texts.
fn go_json_error(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "unexpected end of JSON input".to_owned()
    } else {
        format!(
            "invalid character looking for beginning of value (line {}, column {})",
            e.line(),
            e.column()
        )
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn hmac_ok<M: Mac + hmac::digest::KeyInit>(secret: &[u8], input: &[u8], signature: &[u8]) -> bool {
    match <M as Mac>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(input);
            mac.verify_slice(signature).is_ok()
        }
        Err(_) => false,
    }
}

/// jwt-go v3.2.0's `Parse` with `mjwt.ValidateToken`'s key function: the claims, or the text
/// of the error it returns (which the server puts in `causes`).
fn validate(token: &str, secret: &[u8], now: i64) -> Result<Map<String, Value>, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_segment, payload, signature] = parts[..] else {
        return Err("token contains an invalid number of segments".to_owned());
    };
    let header_bytes = match decode_segment(header_segment) {
        Ok(bytes) => bytes,
        Err(_) if token.to_ascii_lowercase().starts_with("bearer ") => {
            return Err("tokenstring should not contain 'bearer '".to_owned());
        }
        Err(e) => return Err(e),
    };
    let header: Map<String, Value> = match serde_json::from_slice::<Value>(&header_bytes) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_type(&other)
            ));
        }
        Err(e) => return Err(go_json_error(&e)),
    };
    let claims: Map<String, Value> =
        match serde_json::from_slice::<Value>(&decode_segment(payload)?) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(format!(
                    "json: cannot unmarshal {} into Go value of type jwt.MapClaims",
                    go_type(&other)
                ));
            }
            Err(e) => return Err(go_json_error(&e)),
        };
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => return Err("signing method (alg) is unspecified.".to_owned()),
    };
    let hmac: fn(&[u8], &[u8], &[u8]) -> bool = match alg {
        "HS256" => hmac_ok::<Hmac<Sha256>>,
        "HS384" => hmac_ok::<Hmac<Sha384>>,
        "HS512" => hmac_ok::<Hmac<Sha512>>,
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "ES512"
        | "none" => {
            // The key function refuses every non-HMAC method with an APIError, whose text
            // jwt-go returns as is.
            return Err(
                "message: Token signing method salah - status: 422 - error: jwt_error - causes: [ [] ]"
                    .to_owned(),
            );
        }
        _ => return Err("signing method (alg) is unavailable.".to_owned()),
    };
    // Claims first (MapClaims.Valid: exp, then iat, then nbf; the last failure's text wins),
    // then the signature, whose failure replaces any claims error.
    let number = |name: &str| -> i64 {
        match claims.get(name) {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "Go's int64(float64) conversion, saturating here"
            )]
            Some(Value::Number(n)) => n.as_f64().map_or(0, |f| f as i64),
            _ => 0,
        }
    };
    let mut error = None;
    let (exp, iat, nbf) = (number("exp"), number("iat"), number("nbf"));
    if exp != 0 && now > exp {
        error = Some("Token is expired");
    }
    if iat != 0 && now < iat {
        error = Some("Token used before issued");
    }
    if nbf != 0 && now < nbf {
        error = Some("Token is not valid yet");
    }
    let signing_input = format!("{header_segment}.{payload}");
    let valid_signature =
        decode_segment(signature).is_ok_and(|sig| hmac(secret, signing_input.as_bytes(), &sig));
    if !valid_signature {
        error = Some("signature is invalid");
    }
    match error {
        Some(text) => Err(text.to_owned()),
        None => Ok(claims),
    }
}

/// `mjwt.ReadToken`'s claims. The server asserts their types without checking and would
/// panic on a validly signed token without them; only [`KalselSim::sign`] can make one.
struct Claims {
    identity: String,
    kind: i64,
}

fn read_claims(claims: &Map<String, Value>) -> Option<Claims> {
    let identity = claims.get("identity")?.as_str()?.to_owned();
    claims.get("name")?.as_str()?;
    claims.get("exp")?.as_f64()?;
    claims.get("is_admin")?.as_bool()?;
    claims.get("fresh")?.as_bool()?;
    #[allow(
        clippy::cast_possible_truncation,
        reason = "Go's int(float64) conversion"
    )]
    let kind = claims.get("type")?.as_f64()? as i64;
    Some(Claims { identity, kind })
}

/// A field of a JSON body as Go's `encoding/json` finds it: the exact name, else a
/// case-insensitive match.
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).or_else(|| {
        body.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The body decoded into the handler's Go struct: `strings` fields and an `int` `limit`.
struct Decoded {
    strings: Vec<String>,
    limit: i64,
}

/// fiber's `BodyParser` and `json.Unmarshal` into a struct named `go_struct`.
fn decode(request: &SimRequest, go_struct: &str, strings: &[&str]) -> Result<Decoded, SimResponse> {
    let content_type = request
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if !content_type.starts_with("application/json") {
        let form = [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "text/xml",
            "application/xml",
        ];
        if form.iter().any(|f| content_type.starts_with(f)) {
            // The struct has no `form`/`xml` tags: nothing is filled in.
            return Ok(Decoded {
                strings: vec![String::new(); strings.len()],
                limit: 0,
            });
        }
        return Err(bad_request("Unprocessable Entity"));
    }
    let value: Value =
        serde_json::from_slice(&request.body).map_err(|e| bad_request(&go_json_error(&e)))?;
    let body = match value {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            return Err(bad_request(&format!(
                "json: cannot unmarshal {} into Go value of type dto.{go_struct}",
                go_type(&other)
            )));
        }
    };
    let mismatch = |name: &str, v: &Value, want: &str| {
        let what = match v {
            Value::Number(n) => format!("number {n}"),
            other => go_type(other).to_owned(),
        };
        bad_request(&format!(
            "json: cannot unmarshal {what} into Go struct field {go_struct}.{name} of type {want}"
        ))
    };
    let mut decoded = Decoded {
        strings: Vec::new(),
        limit: 0,
    };
    for name in strings {
        decoded.strings.push(match field(&body, name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(mismatch(name, other, "string")),
        });
    }
    match field(&body, "limit") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Number(n)) => match n.as_i64() {
            // Go decodes a number literal into an int only when it is written as one.
            Some(limit) if !n.to_string().contains(['.', 'e', 'E']) => decoded.limit = limit,
            _ => return Err(mismatch("limit", v, "int")),
        },
        Some(other) => return Err(mismatch("limit", other, "int")),
    }
    Ok(decoded)
}

/// govalidator's email shape, without the DNS lookup the server also does.
fn is_email(email: &str) -> bool {
    let Some((user, host)) = email.rsplit_once('@') else {
        return false;
    };
    (6..=254).contains(&email.len())
        && !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('.')
        && !user.ends_with('.')
        && !user.contains("..")
        && host.contains('.')
        && !host.starts_with('.')
        && !host.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// ozzo-validation's `Errors.Error()`: `key: text` sorted by key, joined by `; `, with a `.`.
fn validation_message(errors: &[(&str, &str)]) -> Option<String> {
    if errors.is_empty() {
        return None;
    }
    let mut errors = errors.to_vec();
    errors.sort_unstable();
    let joined: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    Some(format!("{}.", joined.join("; ")))
}

/// `limit` as the server uses it: 0 or above 10080 → the default.
fn lifetime(limit: i64, default: Duration) -> i64 {
    if limit == 0 || limit > 10_080 {
        i64::try_from(default.as_secs()).unwrap_or(i64::MAX)
    } else {
        limit.saturating_mul(60)
    }
}

impl KalselHandler {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fiber limiter: `None` to go on, or the 429.
    fn limit(&self, now: i64) -> Result<Option<(u32, u32, i64)>, SimResponse> {
        let mut state = self.state();
        let Some(max) = state.rate_limit else {
            return Ok(None);
        };
        let window = state.windows.entry(LOOPBACK.to_owned()).or_insert(Window {
            hits: 0,
            exp: now + WINDOW_SECS,
        });
        if now >= window.exp {
            *window = Window {
                hits: 0,
                exp: now + WINDOW_SECS,
            };
        }
        window.hits = window.hits.saturating_add(1);
        let reset = window.exp - now;
        if window.hits > max {
            return Err(api_error(
                429,
                "terlalu banyak request",
                "rate_limiter",
                &["too many requests in a given amount of time"],
            )
            .with_header("Retry-After", &reset.to_string()));
        }
        Ok(Some((max, max - window.hits, reset)))
    }

    fn login(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        let decoded = match decode(request, "UserLoginRequest", &["email", "password"]) {
            Ok(d) => d,
            Err(response) => return response,
        };
        let (email, password) = (&decoded.strings[0], &decoded.strings[1]);
        let mut errors = Vec::new();
        if email.is_empty() {
            errors.push(("email", "cannot be blank"));
        } else if !is_email(email) {
            errors.push(("email", "must be a valid email address"));
        }
        let chars = password.chars().count();
        if password.is_empty() {
            errors.push(("password", "cannot be blank"));
        } else if !(3..=20).contains(&chars) {
            errors.push(("password", "the length must be between 3 and 20"));
        }
        if let Some(message) = validation_message(&errors) {
            return bad_request(&message);
        }
        let email = email.to_lowercase();
        let mut state = self.state();
        let Some(user) = state
            .users
            .get(&email)
            .filter(|u| u.password == *password)
            .cloned()
        else {
            return api_error(
                401,
                "Username atau password tidak valid",
                "unauthorized",
                &[],
            );
        };
        let now = ctx.now().unix_timestamp();
        let expired = now.saturating_add(lifetime(decoded.limit, ctx.token_lifetime()));
        let refresh_exp = now + i64::try_from(REFRESH_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        let access = jwt::hs256_raw(
            HEADER,
            &claims_json(&email, &user, ACCESS, true, expired),
            &state.secret,
        );
        let refresh = jwt::hs256_raw(
            HEADER,
            &claims_json(&email, &user, REFRESH, false, refresh_exp),
            &state.secret,
        );
        ctx.record_issued(&access);
        ctx.record_issued(&refresh);
        state.last_login = (refresh.clone(), access.clone());
        let body = format!(
            r#"{{"email":{},"name":{},"is_admin":{},"avatar":{},"access_token":{},"refresh_token":{},"expired":{expired}}}"#,
            Value::from(email),
            Value::from(user.name),
            user.is_admin,
            Value::from(user.avatar),
            Value::from(access),
            Value::from(refresh),
        );
        SimResponse::new(200, Some("application/json"), body)
    }

    fn refresh(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        let decoded = match decode(request, "UserRefreshTokenRequest", &["refresh_token"]) {
            Ok(d) => d,
            Err(response) => return response,
        };
        let refresh_token = &decoded.strings[0];
        if refresh_token.is_empty() {
            return bad_request("refresh_token: cannot be blank.");
        }
        let now = ctx.now().unix_timestamp();
        let state = self.state();
        let claims = match validate(refresh_token, &state.secret, now) {
            Ok(claims) => claims,
            Err(cause) => return jwt_error(&cause),
        };
        let Some(claims) = read_claims(&claims) else {
            return plain(
                500,
                "simulator: the real server panics on a validly signed token without its claims (mjwt.ReadToken)".to_owned(),
            );
        };
        if claims.kind != REFRESH {
            return jwt_error("not a refresh token");
        }
        let email = claims.identity.to_lowercase();
        let Some(user) = state.users.get(&email).cloned() else {
            return api_error(
                404,
                &format!("User dengan Email {email} tidak ditemukan"),
                "not_found",
                &[],
            );
        };
        let expired = now.saturating_add(lifetime(decoded.limit, ctx.token_lifetime()));
        let access = jwt::hs256_raw(
            HEADER,
            &claims_json(&email, &user, ACCESS, false, expired),
            &state.secret,
        );
        ctx.record_issued(&access);
        let body = format!(
            r#"{{"access_token":{},"expired":{expired}}}"#,
            Value::from(access)
        );
        SimResponse::new(200, Some("application/json"), body)
    }
}

impl Handler for KalselHandler {
    fn handle(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        let headers = if ctx.enforces_rate_limits() {
            match self.limit(ctx.now().unix_timestamp()) {
                Err(too_many) => return too_many,
                Ok(headers) => headers,
            }
        } else {
            None
        };
        let path = request.path.to_ascii_lowercase();
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(&path);
        let route = match path {
            "/api/v1/login" => Some(Method::POST),
            "/api/v1/refresh" => Some(Method::POST),
            "/api/v1/ping" => Some(Method::GET),
            _ => None,
        };
        let response = match route {
            None => plain(
                404,
                format!("Cannot {} {}", request.method, request.full_path),
            ),
            Some(method) if method != request.method => plain(405, "Method Not Allowed".to_owned()),
            Some(_) => match path {
                "/api/v1/login" => self.login(request, ctx),
                "/api/v1/refresh" => self.refresh(request, ctx),
                _ => SimResponse::json(
                    200,
                    &serde_json::json!({"msg": "PONG!", "time": ctx.now().unix_timestamp()}),
                ),
            },
        };
        match headers {
            Some((max, remaining, reset)) => response
                .with_header("X-RateLimit-Limit", &max.to_string())
                .with_header("X-RateLimit-Remaining", &remaining.to_string())
                .with_header("X-RateLimit-Reset", &reset.to_string()),
            None => response,
        }
    }
}

/// A running Kalsel.dev simulator; dereferences to its [`SimServer`].
#[derive(Debug)]
pub struct KalselSim {
    server: SimServer,
    handler: KalselHandler,
    initial: String,
}

impl KalselSim {
    /// Starts with one account ([`EMAIL`], [`PASSWORD`]), logged in once (see
    /// [`initial_refresh_token`](Self::initial_refresh_token)), and the server's default
    /// lifetime.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(SimServer::builder().token_lifetime(DEFAULT_LIFETIME)).await
    }

    /// Starts on a configured server.
    pub async fn start_with(builder: SimBuilder) -> io::Result<Self> {
        let secret: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
        let user = User {
            name: NAME.to_owned(),
            is_admin: true,
            avatar: String::new(),
            password: PASSWORD.to_owned(),
        };
        let handler = KalselHandler {
            state: Arc::new(Mutex::new(State {
                secret,
                users: HashMap::from([(EMAIL.to_owned(), user)]),
                rate_limit: Some(RATE_LIMIT),
                windows: HashMap::new(),
                last_login: (String::new(), String::new()),
            })),
        };
        let server = builder.start(handler.clone()).await?;
        let mut sim = Self {
            server,
            handler,
            initial: String::new(),
        };
        sim.initial = sim.login();
        Ok(sim)
    }

    /// The refresh token of the login the simulator started with (valid 7 days from then).
    pub fn initial_refresh_token(&self) -> &str {
        &self.initial
    }

    /// The refresh token of the last login. Refreshing never changes it.
    pub fn refresh_token(&self) -> String {
        self.handler.state().last_login.0.clone()
    }

    /// The access token of the last login (`type` 0): sent as a refresh token, it gets 422
    /// "not a refresh token".
    pub fn access_token(&self) -> String {
        self.handler.state().last_login.1.clone()
    }

    /// What `POST /api/v1/login` does for the account, without a request (nothing is
    /// counted by the rate limiter): a new refresh token valid 7 days from the simulator's
    /// now, returned. Earlier refresh tokens stay valid: the server revokes nothing.
    pub fn login(&self) -> String {
        let now = self.server.now().unix_timestamp();
        let mut state = self.handler.state();
        let user = state.users.get(EMAIL).cloned().unwrap_or(User {
            name: NAME.to_owned(),
            is_admin: true,
            avatar: String::new(),
            password: PASSWORD.to_owned(),
        });
        let lifetime = i64::try_from(REFRESH_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        let access_life = i64::try_from(self.server.token_lifetime().as_secs()).unwrap_or(i64::MAX);
        let refresh = jwt::hs256_raw(
            HEADER,
            &claims_json(EMAIL, &user, REFRESH, false, now + lifetime),
            &state.secret,
        );
        let access = jwt::hs256_raw(
            HEADER,
            &claims_json(EMAIL, &user, ACCESS, true, now.saturating_add(access_life)),
            &state.secret,
        );
        state.last_login = (refresh.clone(), access);
        refresh
    }

    /// A refresh token of the account, signed by the server, that expired an hour ago: the
    /// server answers it 422 `Token is expired`. Changes nothing else.
    pub fn expired_refresh_token(&self) -> String {
        let now = self.server.now().unix_timestamp();
        let state = self.handler.state();
        let user = state.users.get(EMAIL).cloned().unwrap_or(User {
            name: NAME.to_owned(),
            is_admin: true,
            avatar: String::new(),
            password: String::new(),
        });
        jwt::hs256_raw(
            HEADER,
            &claims_json(EMAIL, &user, REFRESH, false, now - 3600),
            &state.secret,
        )
    }

    /// Signs any claims with the server's secret and header (for tokens the server itself
    /// would never issue).
    pub fn sign(&self, claims: &Value) -> String {
        jwt::hs256_raw(HEADER, &claims.to_string(), &self.handler.state().secret)
    }

    /// Removes the account: its refresh tokens are then answered 404 `not_found`, a login 401.
    pub fn delete_account(&self) {
        self.handler.state().users.remove(EMAIL);
    }

    /// Requests allowed per one-minute window (default [`RATE_LIMIT`]); `None` turns the
    /// limiter off (load tests that send more than the real server allows).
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        let mut state = self.handler.state();
        state.rate_limit = per_minute;
        state.windows.clear();
    }
}

impl AsRef<SimServer> for KalselSim {
    fn as_ref(&self) -> &SimServer {
        &self.server
    }
}

impl Deref for KalselSim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        &self.server
    }
}

#[cfg(test)]
mod tests;
