//! The KrmPesan token API (documents 000 and 001), as kunci calls it:
//! `GET {base}/tokens?refresh_token=…&device_key=…`.
//!
//! * The method must be `GET` (anything else: 405) and the path `/tokens` (anything else,
//!   `/token` included: 404), so a client that follows the wrong half of the documents fails.
//! * The query must carry exactly `refresh_token` and `device_key` (a `device_id`, a missing or
//!   an extra parameter: 400); values that do not match the account: 401, as Cognito's
//!   `NotAuthorizedException` (`{"message": "Invalid Refresh Token"}`).
//! * 200: `{"AccessToken", "ExpiresIn", "TokenType": "Bearer", "IdToken"}` with RS256-looking
//!   Cognito JWTs whose `exp` is now + the token lifetime; `ExpiresIn` is that lifetime in
//!   seconds unless [`KrmPesanSim::set_reported_expires_in`] says otherwise.
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

#[derive(Debug)]
struct Account {
    refresh_token: String,
    device_key: String,
    revoked: bool,
    reported_expires_in: Option<u64>,
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

impl KrmPesanHandler {
    /// A handler accepting this refresh token and device key.
    pub fn new(refresh_token: &str, device_key: &str) -> Self {
        Self {
            account: Arc::new(Mutex::new(Account {
                refresh_token: refresh_token.to_owned(),
                device_key: device_key.to_owned(),
                revoked: false,
                reported_expires_in: None,
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
        let (reported, lifetime) = {
            let account = self.account();
            if account.revoked || account.refresh_token != refresh_token {
                return message(401, "Invalid Refresh Token");
            }
            if account.device_key != device_key {
                return message(401, "Invalid device key");
            }
            (account.reported_expires_in, ctx.token_lifetime())
        };
        let now = ctx.now().unix_timestamp();
        let exp = now + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let sub = "c16baf63-18b9-4600-860e-97f45152132c";
        let iss = "https://cognito-idp.ap-southeast-1.amazonaws.com/ap-southeast-1_jKTYVNfVn";
        let access = jwt::rs256_looking(
            &json!({
                "sub": sub, "device_key": device_key, "iss": iss, "client_id": "3gasgbrvke3j85tuup9fst88ah",
                "token_use": "access", "scope": "aws.cognito.signin.user.admin",
                "exp": exp, "iat": now, "jti": ctx.unique("access-"), "username": sub,
            }),
            "0j6Epvxq3/hlrrz07ClFUzU4nzdyp7xHU7n9/XoIow0=",
        );
        let id = jwt::rs256_looking(
            &json!({
                "sub": sub, "email_verified": true, "iss": iss, "aud": "3gasgbrvke3j85tuup9fst88ah",
                "token_use": "id", "name": "Krm Pesan", "email": "krmsup@krmpesan.com",
                "exp": exp, "iat": now, "jti": ctx.unique("id-"),
            }),
            "gdBr1HtjSeMVcpYB2zUitySBmY1XEe6Ufa5P2BJigfM=",
        );
        ctx.record_issued(&access);
        ctx.record_issued(&id);
        SimResponse::json(
            200,
            &json!({
                "AccessToken": access,
                "ExpiresIn": reported.unwrap_or(lifetime.as_secs()),
                "TokenType": "Bearer",
                "IdToken": id,
            }),
        )
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
    /// Starts with random credentials and 24-hour tokens.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(SimServer::builder().token_lifetime(DEFAULT_LIFETIME)).await
    }

    /// Starts with random credentials on a configured server.
    pub async fn start_with(builder: SimBuilder) -> io::Result<Self> {
        let refresh_token = format!(
            "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIn0.rt-{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        );
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

    /// The refresh token the simulator accepts.
    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// The device key the simulator accepts.
    pub fn device_key(&self) -> &str {
        &self.device_key
    }

    /// From now on every request is answered 401 (the credentials were revoked on the
    /// dashboard).
    pub fn revoke(&self) {
        self.handler.account().revoked = true;
    }

    /// Makes `ExpiresIn` say `seconds` regardless of the tokens' real lifetime (`None`: tell the
    /// truth), to test that an earlier `exp` claim wins.
    pub fn set_reported_expires_in(&self, seconds: Option<u64>) {
        self.handler.account().reported_expires_in = seconds;
    }
}

impl Deref for KrmPesanSim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        &self.server
    }
}
