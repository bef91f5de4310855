//! The Kalsel.dev refresh API (document 002): `POST {base}/api/v1/refresh` with
//! `Content-Type: application/json` and `{"refresh_token": …, "limit": …}`.
//!
//! * Method `POST` (else 405), path `/api/v1/refresh` (else 404), a JSON content type and a
//!   JSON object with a string `refresh_token`, an optional integer `limit` and nothing else
//!   (else 400 `{"status":400,"message":…,"error":"bad_request"}`); `limit` outside 10..=10080:
//!   400 as well.
//! * The refresh token is an HS256 JWT signed with the simulator's secret. Only the most
//!   recently issued token is accepted ("the new token overwrites the old";
//!   [`KalselSim::set_strict_rotation`] turns this off): an expired one is answered 421 with
//!   the document's body, a superseded, forged or unknown one 421 too, with another cause.
//! * 200: `{"access_token": <JWT>, "expired": <unix seconds>}`; the access token becomes the
//!   refresh token for the next call. Its lifetime is `limit` minutes, or without `limit` the
//!   simulator's token lifetime (default 10080 minutes, as the real service).
//!
//! ```
//! use auth_testkit::kalsel::KalselSim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sim = KalselSim::start().await?;
//! assert_eq!(sim.refresh_token().split('.').count(), 3);
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

/// The server's default lifetime: 10080 minutes (7 days).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(10_080 * 60);

/// The longest lifetime a refresh token the simulator starts with lives (30 days).
const INITIAL_REFRESH_LIFETIME: i64 = 30 * 86_400;

struct State {
    secret: Vec<u8>,
    current: String,
    strict: bool,
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

fn bad_request(message: &str) -> SimResponse {
    SimResponse::json(
        400,
        &json!({"status": 400, "message": message, "error": "bad_request"}),
    )
}

fn jwt_error(message: &str, cause: &str) -> SimResponse {
    SimResponse::json(
        421,
        &json!({"status": 421, "message": message, "error": "jwt_error", "causes": [cause]}),
    )
}

impl KalselHandler {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sign(secret: &[u8], ctx: &SimContext, exp: i64) -> String {
        jwt::hs256(
            &json!({
                "exp": exp, "identity": "whois.muchlis@gmail.com", "is_admin": true,
                "jti": ctx.unique("jti-"), "name": "Real Muchlis",
            }),
            secret,
        )
    }
}

impl Handler for KalselHandler {
    fn handle(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        if request.path != "/api/v1/refresh" {
            return SimResponse::not_found();
        }
        if request.method != Method::POST {
            return SimResponse::method_not_allowed();
        }
        if request.mime().as_deref() != Some("application/json") {
            return bad_request("Content-Type must be application/json");
        }
        let Some(Value::Object(body)) = request.json() else {
            return bad_request("the body is not a JSON object");
        };
        if body.keys().any(|k| k != "refresh_token" && k != "limit") {
            return bad_request("unknown field in the body");
        }
        let Some(refresh_token) = body.get("refresh_token").and_then(Value::as_str) else {
            return bad_request("refresh_token is required");
        };
        let limit = match body.get("limit") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(minutes @ 10..=10_080) => Some(Duration::from_secs(minutes * 60)),
                _ => return bad_request("limit must be an integer from 10 to 10080"),
            },
        };
        let mut state = self.state();
        let Some(claims) = jwt::verify_hs256(refresh_token, &state.secret) else {
            return jwt_error("Token invalid", "signature is invalid");
        };
        let now = ctx.now().unix_timestamp();
        if claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_none_or(|exp| exp <= now)
        {
            return jwt_error("Token expired", "token has expired");
        }
        if state.strict && refresh_token != state.current {
            return jwt_error("Token invalid", "token has been replaced by a newer one");
        }
        let lifetime = limit.unwrap_or_else(|| ctx.token_lifetime());
        let expired = now + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let access_token = Self::sign(&state.secret, ctx, expired);
        state.current.clone_from(&access_token);
        ctx.record_issued(&access_token);
        SimResponse::json(
            200,
            &json!({"access_token": access_token, "expired": expired}),
        )
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
    /// Starts with a fresh refresh token (valid 30 days) and the server's default lifetime.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(SimServer::builder().token_lifetime(DEFAULT_LIFETIME)).await
    }

    /// Starts on a configured server.
    pub async fn start_with(builder: SimBuilder) -> io::Result<Self> {
        let secret: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
        let handler = KalselHandler {
            state: Arc::new(Mutex::new(State {
                secret,
                current: String::new(),
                strict: true,
            })),
        };
        let server = builder.start(handler.clone()).await?;
        let ctx_now = server.now().unix_timestamp();
        let initial = {
            let mut state = handler.state();
            let token = jwt::hs256(
                &json!({
                    "exp": ctx_now + INITIAL_REFRESH_LIFETIME, "identity": "whois.muchlis@gmail.com",
                    "is_admin": true, "jti": format!("login-{:016x}", fastrand::u64(..)), "name": "Real Muchlis",
                }),
                &state.secret,
            );
            state.current.clone_from(&token);
            token
        };
        Ok(Self {
            server,
            handler,
            initial,
        })
    }

    /// The refresh token the simulator accepts now (the last one it issued).
    pub fn refresh_token(&self) -> String {
        self.handler.state().current.clone()
    }

    /// Whether only the most recently issued token is accepted (default `true`). With
    /// `false`, any unexpired token the simulator signed is, as a stateless JWT server would.
    pub fn set_strict_rotation(&self, strict: bool) {
        self.handler.state().strict = strict;
    }

    /// The refresh token the simulator started with (what a login handed out).
    pub fn initial_refresh_token(&self) -> &str {
        &self.initial
    }

    /// What a new login with username and password does: issues a fresh refresh token, valid for
    /// the configured lifetime, which replaces the accepted one; returns it.
    pub fn login(&self) -> String {
        let mut state = self.handler.state();
        let exp = (self.server.now() + self.server.token_lifetime()).unix_timestamp();
        let token = jwt::hs256(
            &json!({"exp": exp, "identity": "whois.muchlis@gmail.com", "jti": format!("login-{exp}"), "name": "Real Muchlis"}),
            &state.secret,
        );
        state.current.clone_from(&token);
        token
    }

    /// Replaces the accepted refresh token with one that expired an hour ago (signed with the
    /// simulator's secret) and returns it: the next refresh with it is answered 421.
    pub fn expire_refresh_token(&self) -> String {
        let mut state = self.handler.state();
        let exp = self.server.now().unix_timestamp() - 3600;
        let token = jwt::hs256(
            &json!({"exp": exp, "identity": "whois.muchlis@gmail.com", "jti": "expired", "name": "Real Muchlis"}),
            &state.secret,
        );
        state.current.clone_from(&token);
        token
    }
}

impl Deref for KalselSim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        &self.server
    }
}
