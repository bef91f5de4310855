//! The Kalsel.dev [`TokenSource`]: one `POST {base}/api/v1/refresh` per fetch, always with the
//! configured refresh token (it never rotates).

use std::fmt;

use async_trait::async_trait;
use auth_core::{
    Error, FetchRequest, Fetched, StoreKey, Token, TokenSource,
    http::{HttpClient, HttpResponse, Url, endpoint},
    provider::{Declaration, EnvProvider},
    time::{Duration, OffsetDateTime},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    ENV_REFRESH_TOKEN, KalselConfig, MAX_LIFETIME_MINUTES, NAME,
    answer::{
        self, JWT_ERROR, NOT_A_REFRESH_TOKEN, NOT_FOUND, Rejection, detail, rate_limited,
        with_rejection,
    },
};

/// The path below the base URL.
pub const REFRESH_PATH: &str = "api/v1/refresh";

/// How long before the refresh token expires every refresh logs a warning: one day.
pub const EXPIRY_WARNING: Duration = Duration::DAY;

#[derive(Serialize)]
struct RefreshBody<'a> {
    refresh_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
}

/// The 200 answer (`dto.UserRefreshTokenResponse`). No `Debug`: it holds a token.
#[derive(Deserialize)]
struct RefreshAnswer {
    access_token: String,
    expired: i64,
}

/// Renews a Kalsel.dev access token with the configured refresh token.
///
/// The server never rotates the refresh token (its answer is `{"access_token", "expired"}`),
/// so every fetch sends the configured one and returns [`Fetched::new`]: no refresh material
/// is stored, and refresh material the store may hold from an earlier kunci (which wrongly
/// treated the last access token as the next refresh token) is ignored.
pub struct KalselSource {
    config: KalselConfig,
    http: HttpClient,
    endpoint: Url,
}

impl fmt::Debug for KalselSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KalselSource")
            .field("config", &self.config)
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl KalselSource {
    /// A source for `config`, its requests sent by `http`: an
    /// [`HttpConfig`](auth_core::http::HttpConfig) (a client of its own, built on the first
    /// request), or a clone of an [`HttpClient`] shared with other sources (one connection
    /// pool for a pool of accounts) or built on your reqwest builder
    /// ([`HttpClient::from_builder`]).
    ///
    /// # Errors
    /// None today; the signature is the one every provider's constructor has.
    pub fn new(config: KalselConfig, http: impl Into<HttpClient>) -> Result<Self, Error> {
        let endpoint = endpoint(&config.base_url, REFRESH_PATH);
        // Kept out of every server text the exchange hands back.
        let http = http.into().with_secrets([&config.refresh_token]);
        Ok(Self {
            config,
            http,
            endpoint,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KalselConfig {
        &self.config
    }

    /// Logs a warning when the refresh token expires within [`EXPIRY_WARNING`] of `now`, or
    /// has expired (the request is still sent: the server's clock decides).
    fn warn_if_expiring(&self, now: OffsetDateTime) {
        let Some(at) = self.config.refresh_token_expires_at() else {
            return;
        };
        let shown = auth_core::clock::format_rfc3339(at);
        if at <= now {
            tracing::warn!(
                provider = NAME,
                refresh_token_expires_at = %shown,
                "the refresh token has expired: log in again with email and password and configure the new refresh token"
            );
        } else if at - now <= EXPIRY_WARNING {
            tracing::warn!(
                provider = NAME,
                refresh_token_expires_at = %shown,
                "the refresh token expires within a day: log in again before then"
            );
        }
    }

    /// One refresh request with the configured refresh token.
    async fn refresh(&self, sent_at: OffsetDateTime) -> Result<Fetched, Error> {
        let refresh = &self.config.refresh_token;
        let body = serde_json::to_vec(&RefreshBody {
            refresh_token: refresh.expose_secret(),
            limit: self.config.limit,
        })
        .map_err(|_| Error::protocol(format!("the {NAME} request body could not be encoded")))?;
        let builder = self
            .http
            .request(http::Method::POST, self.endpoint.clone())?
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body);
        let response = self
            .http
            .send_with_secrets(NAME, builder, [refresh])
            .await?;
        if response.status.as_u16() == 200 {
            return self.parse_success(&response, sent_at);
        }
        Err(self.classify(&response, sent_at))
    }

    fn parse_success(
        &self,
        response: &HttpResponse,
        sent_at: OffsetDateTime,
    ) -> Result<Fetched, Error> {
        // The content type is not required to be JSON: a parseable 200 answer is the token,
        // whatever a proxy on the way labelled it. A body that does not parse is refused.
        if !response.is_json() {
            tracing::debug!(provider = NAME, content_type = ?response.mime(), "200 answer without a JSON content type; parsing it anyway");
        }
        let answer: RefreshAnswer = response.json(NAME)?;
        let limit = self.config.limit.unwrap_or(MAX_LIFETIME_MINUTES);
        let expires_at = expiry(answer.expired, response, sent_at, limit)?;
        let token = Token::bearer(
            SecretString::from(answer.access_token),
            sent_at,
            Some(expires_at),
        )?;
        Ok(Fetched::new(token))
    }

    /// Every answer but 200, by status and the body's `error` — never by its prose, except the
    /// one documented cause "not a refresh token".
    fn classify(&self, response: &HttpResponse, now: OffsetDateTime) -> Error {
        let status = response.status.as_u16();
        let rejection = answer::rejection(response, &[self.config.refresh_token.expose_secret()]);
        let jwt = rejection.as_ref().is_some_and(|r| r.is(JWT_ERROR));
        match status {
            421 | 422
                if jwt
                    && rejection
                        .as_ref()
                        .is_some_and(|r| r.has_cause(NOT_A_REFRESH_TOKEN)) =>
            {
                with_rejection(
                    Error::configuration(format!(
                        "{ENV_REFRESH_TOKEN} holds an access token, not a refresh token ({NAME} answered {}): configure the `refresh_token` of a login",
                        detail(status, rejection.as_ref())
                    )),
                    rejection,
                )
            }
            // 422 is what the server answers for any invalid refresh token (expired, forged,
            // malformed); 421 is what its page documents for an expired one; 401 and 403 are a
            // gateway's or an older server's refusal.
            421 | 401 | 403 => reauthenticate(status, rejection),
            422 if jwt => reauthenticate(status, rejection),
            404 if rejection.as_ref().is_some_and(|r| r.is(NOT_FOUND)) => with_rejection(
                Error::reauthentication_required(format!(
                    "{NAME} no longer knows the account of the refresh token ({}): log in again with email and password and configure the new refresh token",
                    detail(status, rejection.as_ref())
                )),
                rejection,
            ),
            429 => rate_limited(response, rejection, now),
            400 => with_rejection(
                Error::protocol(format!(
                    "{NAME} refused the request as malformed ({})",
                    detail(status, rejection.as_ref())
                )),
                rejection,
            ),
            _ => with_rejection(
                answer::unexpected(response, &[self.config.refresh_token.expose_secret()], now),
                rejection,
            ),
        }
    }
}

fn reauthenticate(status: u16, rejection: Option<Rejection>) -> Error {
    let error = Error::reauthentication_required(format!(
        "{NAME} refused the refresh token ({}): log in again with email and password and configure the new refresh token",
        detail(status, rejection.as_ref())
    ));
    with_rejection(error, rejection)
}

/// The token's expiry in our clock: `expired` (unix seconds in the server's clock) moved by
/// the server's clock offset (its `Date` header against the moment the request was sent, so
/// time on the network counts against the token), and never later than `limit` minutes after
/// sending — the server issues no longer lifetime, so a later `expired` is not believed. Every
/// step is checked: an absurd `expired` is a protocol error, never a panic.
pub(crate) fn expiry(
    expired: i64,
    response: &HttpResponse,
    sent_at: OffsetDateTime,
    limit_minutes: u32,
) -> Result<OffsetDateTime, Error> {
    let invalid = || {
        Error::protocol(format!(
            "{NAME} answered an `expired` that is not a valid time"
        ))
    };
    let expired = OffsetDateTime::from_unix_timestamp(expired).map_err(|_| invalid())?;
    let expires_at = expired
        .checked_sub(response.clock_offset(sent_at))
        .ok_or_else(invalid)?;
    if expires_at <= sent_at {
        return Err(Error::protocol(format!(
            "{NAME} issued a token that has already expired"
        )));
    }
    let longest = sent_at
        .checked_add(Duration::minutes(i64::from(limit_minutes)))
        .ok_or_else(invalid)?;
    if expires_at > longest {
        tracing::debug!(
            provider = NAME,
            "`expired` lies beyond the lifetime asked for; the lifetime asked for is used"
        );
    }
    Ok(expires_at.min(longest))
}

#[async_trait]
impl TokenSource for KalselSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        if request.refresh.is_some() {
            // Written by an earlier kunci, which took the last access token for a rotated
            // refresh token; the server refuses those ("not a refresh token").
            tracing::debug!(
                provider = NAME,
                "ignoring refresh material held in the store: Kalsel.dev does not rotate"
            );
        }
        self.warn_if_expiring(request.sent_at);
        self.refresh(request.sent_at).await
    }

    fn name(&self) -> &str {
        NAME
    }

    fn store_key(&self) -> Option<StoreKey> {
        Some(self.config.store_key())
    }

    fn credential_expires_at(&self) -> Option<OffsetDateTime> {
        self.config.refresh_token_expires_at()
    }

    fn credential(&self) -> Option<auth_core::Credential> {
        Some(auth_core::Credential::new(NAME).secret("refresh_token", &self.config.refresh_token))
    }
}

impl EnvProvider for KalselSource {
    const DECLARATION: Declaration = crate::DECLARATION;

    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: impl Into<HttpClient>,
    ) -> Result<Self, Error> {
        Self::new(KalselConfig::from_lookup(lookup)?, http)
    }
}

#[cfg(test)]
mod tests {
    use auth_core::{ErrorKind, http::StatusCode, time::macros::datetime};
    use proptest::prelude::*;

    use super::*;

    const SENT: OffsetDateTime = datetime!(2026-03-01 08:00 UTC);

    fn answered_with_date(date: Option<OffsetDateTime>) -> HttpResponse {
        let mut response = HttpResponse::new(StatusCode::OK, Some("application/json"), "");
        response.date = date;
        response
    }

    #[test]
    fn absurd_expired_values_are_protocol_errors_never_panics() {
        let plain = answered_with_date(None);
        for expired in [i64::MAX, i64::MIN, -1, 0, 253_402_300_800, -377_705_116_800] {
            let err = expiry(expired, &plain, SENT, 10_080).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{expired}");
        }
        // a far-future but valid `expired` is clamped to the lifetime asked for
        let far = datetime!(9999-12-31 23:59:59 UTC).unix_timestamp();
        assert_eq!(
            expiry(far, &plain, SENT, 60).unwrap(),
            SENT + Duration::minutes(60)
        );
        // a server clock at the end of time makes the offset huge: checked, not a panic
        let skewed = answered_with_date(Some(datetime!(9999-12-31 23:59:59 UTC)));
        assert_eq!(
            expiry(far, &skewed, SENT, 60).unwrap_err().kind(),
            ErrorKind::Protocol,
            "the server's `expired` and clock agree on its own now: the token is already expired"
        );
        let behind = answered_with_date(Some(datetime!(-9999-01-01 00:00:00 UTC)));
        assert!(expiry(far, &behind, SENT, 60).is_err());
    }

    proptest! {
        /// Any `expired`, any server `Date` (including the ends of the representable range)
        /// and any lifetime: a time within (sent, sent + limit] or a protocol error.
        #[test]
        fn skewed_dates_and_extreme_expiries_never_panic(
            expired in prop_oneof![any::<i64>(), -400_000_000_000i64..400_000_000_000, Just(i64::MAX), Just(i64::MIN)],
            date in prop_oneof![
                Just(None),
                (-377_705_116_800i64..253_402_300_799).prop_map(Some),
                (SENT.unix_timestamp() - 86_400 * 365..SENT.unix_timestamp() + 86_400 * 365).prop_map(Some),
            ],
            limit in 10u32..=10_080,
        ) {
            let date = date.map(|d| OffsetDateTime::from_unix_timestamp(d).unwrap());
            match expiry(expired, &answered_with_date(date), SENT, limit) {
                Ok(at) => {
                    prop_assert!(at > SENT);
                    prop_assert!(at <= SENT + Duration::minutes(i64::from(limit)));
                }
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Protocol),
            }
        }
    }
}
