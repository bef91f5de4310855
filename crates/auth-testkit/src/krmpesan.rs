//! The KrmPesan token API (documents 000 and 001) as the real service behaves: a thin
//! `GET {base}/tokens?refresh_token=…&device_key=…` wrapper around AWS Cognito's
//! `InitiateAuth` with `AuthFlow: REFRESH_TOKEN_AUTH` (`REFRESH_TOKEN` and `DEVICE_KEY` as
//! `AuthParameters`).
//!
//! * The method must be `GET` (anything else: 405) and the path `/tokens` (anything else,
//!   `/token` included: 404), so a client that follows the wrong half of the documents fails.
//! * The query must carry exactly `refresh_token` and `device_key` (a `device_id`, a missing or
//!   an extra parameter: the wrapper's 400 `{"message": "refresh_token and device_key are
//!   required"}`).
//! * 200: Cognito's `AuthenticationResult` — `{"AccessToken", "ExpiresIn", "TokenType":
//!   "Bearer", "IdToken"}` — with RS256-looking Cognito JWTs (`origin_jti`, `event_id`, the
//!   AccessToken's `device_key`) whose `exp` is now + the token lifetime (default one day);
//!   `ExpiresIn` is that lifetime in seconds unless [`KrmPesanSim::set_reported_expires_in`]
//!   says otherwise. [`KrmPesanSim::set_nested`] answers the whole `InitiateAuth` result
//!   (`{"AuthenticationResult": {…}, "ChallengeParameters": {}}`) instead.
//! * With refresh-token rotation ([`KrmPesanSim::set_rotation`]), as a user pool with rotation
//!   turned on: the answer also carries a new `RefreshToken`, and the one just used is refused
//!   from then on (no grace period).
//! * Refusals are Cognito's: 400 `{"__type": "NotAuthorizedException", "message": …}` —
//!   "Refresh Token has been revoked" after [`KrmPesanSim::revoke`] (or for a rotated-away
//!   refresh token), "Invalid Refresh Token" for one the pool never issued or a device key it
//!   does not tie to it (a pool with device tracking). [`KrmPesanSim::set_echo_in_errors`]
//!   puts the refresh token sent into the message instead, as moto's `NotAuthorizedError` does
//!   in `create_tokens_from_refresh_token`.
//!
//! ```
//! use auth_testkit::krmpesan::KrmPesanSim;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sim = KrmPesanSim::start().await?;
//! assert!(!sim.refresh_token().is_empty() && !sim.device_key().is_empty());
//! # Ok(()) }
//! ```

use std::{
    fmt, io,
    ops::Deref,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use http::Method;
use serde_json::json;

use crate::{
    jwt,
    server::{Handler, SimBuilder, SimContext, SimRequest, SimResponse, SimServer},
};

/// The default lifetime of KrmPesan's IdToken: 24 hours.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);

/// Cognito's refusal of a refresh token.
pub const REVOKED_TEXT: &str = "Refresh Token has been revoked";
/// Cognito's refusal of a refresh token it never issued, or of the wrong device key.
pub const INVALID_TEXT: &str = "Invalid Refresh Token";

#[derive(Debug)]
struct Account {
    /// The refresh token accepted now (the latest issued, under rotation).
    refresh_token: String,
    device_key: String,
    /// Refresh tokens rotated away or revoked: refused as revoked.
    revoked_tokens: Vec<String>,
    revoked: bool,
    rotation: bool,
    nested: bool,
    echo_in_errors: bool,
    reported_expires_in: Option<u64>,
    origin_jti: String,
}

/// The KrmPesan [`Handler`].
#[derive(Clone)]
pub struct KrmPesanHandler {
    account: Arc<Mutex<Account>>,
}

impl fmt::Debug for KrmPesanHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KrmPesanHandler").finish_non_exhaustive()
    }
}

fn uuid() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(0x8000..0xc000),
        fastrand::u64(..1 << 48)
    )
}

/// A refresh token in Cognito's form: a JWE (five dot-separated base64url parts).
fn new_refresh_token() -> String {
    format!(
        "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIiwiYWxnIjoiUlNBLU9BRVAifQ.rt{:016x}{:016x}.iv{:016x}.ct{:016x}{:016x}.tag{:016x}",
        fastrand::u64(..),
        fastrand::u64(..),
        fastrand::u64(..),
        fastrand::u64(..),
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

impl KrmPesanHandler {
    /// A handler accepting this refresh token and device key.
    pub fn new(refresh_token: &str, device_key: &str) -> Self {
        Self {
            account: Arc::new(Mutex::new(Account {
                refresh_token: refresh_token.to_owned(),
                device_key: device_key.to_owned(),
                revoked_tokens: Vec::new(),
                revoked: false,
                rotation: false,
                nested: false,
                echo_in_errors: false,
                reported_expires_in: None,
                origin_jti: uuid(),
            })),
        }
    }

    fn account(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn message(status: u16, text: &str) -> SimResponse {
    SimResponse::json(status, &json!({ "message": text }))
}

/// Cognito's `NotAuthorizedException`, HTTP 400.
fn not_authorized(text: &str) -> SimResponse {
    SimResponse::json(
        400,
        &json!({"__type": "NotAuthorizedException", "message": text}),
    )
}

impl Handler for KrmPesanHandler {
    fn handle(&self, request: &SimRequest, ctx: &SimContext) -> SimResponse {
        if request.path != "/tokens" {
            return SimResponse::not_found();
        }
        if request.method != Method::GET {
            return SimResponse::method_not_allowed();
        }
        let mut names = request.query_names();
        names.sort_unstable();
        if names != ["device_key", "refresh_token"] {
            return message(400, "refresh_token and device_key are required");
        }
        let (Some(refresh_token), Some(device_key)) = (
            request.query_value("refresh_token"),
            request.query_value("device_key"),
        ) else {
            return message(400, "refresh_token and device_key are required");
        };
        let (reported, lifetime, rotated, nested, origin_jti) = {
            let mut account = self.account();
            let refuse = |text: &str| {
                not_authorized(if account.echo_in_errors {
                    refresh_token
                } else {
                    text
                })
            };
            if account.revoked || account.revoked_tokens.iter().any(|t| t == refresh_token) {
                return refuse(REVOKED_TEXT);
            }
            if account.refresh_token != refresh_token || account.device_key != device_key {
                return refuse(INVALID_TEXT);
            }
            let rotated = account.rotation.then(|| {
                let next = new_refresh_token();
                let old = std::mem::replace(&mut account.refresh_token, next.clone());
                account.revoked_tokens.push(old);
                account.origin_jti = uuid();
                next
            });
            (
                account.reported_expires_in,
                ctx.token_lifetime(),
                rotated,
                account.nested,
                account.origin_jti.clone(),
            )
        };
        let now = ctx.now().unix_timestamp();
        let exp = now + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let sub = "c16baf63-18b9-4600-860e-97f45152132c";
        let iss = "https://cognito-idp.ap-southeast-1.amazonaws.com/ap-southeast-1_jKTYVNfVn";
        let event_id = uuid();
        let access = jwt::rs256_looking(
            &json!({
                "sub": sub, "device_key": device_key, "cognito:groups": ["user"], "iss": iss,
                "client_id": "3gasgbrvke3j85tuup9fst88ah", "origin_jti": origin_jti,
                "event_id": event_id, "token_use": "access", "scope": "aws.cognito.signin.user.admin",
                "auth_time": now, "exp": exp, "iat": now, "jti": uuid(), "username": sub,
            }),
            "0j6Epvxq3/hlrrz07ClFUzU4nzdyp7xHU7n9/XoIow0=",
        );
        let id = jwt::rs256_looking(
            &json!({
                "sub": sub, "cognito:groups": ["user"], "email_verified": true, "iss": iss,
                "cognito:username": sub, "origin_jti": origin_jti,
                "aud": "3gasgbrvke3j85tuup9fst88ah", "event_id": event_id, "token_use": "id",
                "auth_time": now, "name": "Krm Pesan", "exp": exp, "iat": now, "jti": uuid(),
                "email": "krmsup@krmpesan.com",
            }),
            "gdBr1HtjSeMVcpYB2zUitySBmY1XEe6Ufa5P2BJigfM=",
        );
        ctx.record_issued(&access);
        ctx.record_issued(&id);
        let mut result = json!({
            "AccessToken": access,
            "ExpiresIn": reported.unwrap_or(lifetime.as_secs()),
            "TokenType": "Bearer",
            "IdToken": id,
        });
        if let Some(rotated) = rotated {
            ctx.record_issued(&rotated);
            result["RefreshToken"] = json!(rotated);
        }
        if nested {
            result = json!({"AuthenticationResult": result, "ChallengeParameters": {}});
        }
        SimResponse::json(200, &result)
    }
}

/// A running KrmPesan simulator; dereferences to its [`SimServer`].
#[derive(Debug)]
pub struct KrmPesanSim {
    server: SimServer,
    handler: KrmPesanHandler,
    refresh_token: String,
    device_key: String,
}

impl KrmPesanSim {
    /// Starts with random credentials and one-day tokens.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(SimServer::builder().token_lifetime(DEFAULT_LIFETIME)).await
    }

    /// Starts with random credentials on a configured server.
    pub async fn start_with(builder: SimBuilder) -> io::Result<Self> {
        let refresh_token = new_refresh_token();
        let device_key = format!(
            "ap-southeast-1_{:08x}-{:04x}-4593-9762-{:012x}",
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u64(..) >> 16
        );
        let handler = KrmPesanHandler::new(&refresh_token, &device_key);
        let server = builder.start(handler.clone()).await?;
        Ok(Self {
            server,
            handler,
            refresh_token,
            device_key,
        })
    }

    /// The refresh token the simulator was started with (see
    /// [`current_refresh_token`](Self::current_refresh_token) under rotation).
    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// The device key the simulator accepts.
    pub fn device_key(&self) -> &str {
        &self.device_key
    }

    /// The refresh token the simulator accepts now: the configured one, or the latest it
    /// issued under rotation.
    pub fn current_refresh_token(&self) -> String {
        self.handler.account().refresh_token.clone()
    }

    /// From now on every refresh is refused with Cognito's 400 `NotAuthorizedException`
    /// "Refresh Token has been revoked" (a global sign-out, or new values generated on the
    /// dashboard).
    pub fn revoke(&self) {
        self.handler.account().revoked = true;
    }

    /// Turns refresh-token rotation on or off: with it, each answer carries a new
    /// `RefreshToken` and the one just used is refused from then on.
    pub fn set_rotation(&self, rotation: bool) {
        self.handler.account().rotation = rotation;
    }

    /// Answers the whole `InitiateAuth` result (`{"AuthenticationResult": {…},
    /// "ChallengeParameters": {}}`) instead of the bare `AuthenticationResult`.
    pub fn set_nested(&self, nested: bool) {
        self.handler.account().nested = nested;
    }

    /// Puts the refresh token that was sent into refusals' `message`, as moto does, to test
    /// that clients never show it.
    pub fn set_echo_in_errors(&self, echo: bool) {
        self.handler.account().echo_in_errors = echo;
    }

    /// Makes `ExpiresIn` say `seconds` regardless of the tokens' real lifetime (`None`: tell the
    /// truth), to test that an earlier `exp` claim wins.
    pub fn set_reported_expires_in(&self, seconds: Option<u64>) {
        self.handler.account().reported_expires_in = seconds;
    }
}

impl AsRef<SimServer> for KrmPesanSim {
    fn as_ref(&self) -> &SimServer {
        &self.server
    }
}

impl Deref for KrmPesanSim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        &self.server
    }
}
