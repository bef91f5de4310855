//! The KrmPesan [`TokenSource`]: one `GET {base}/tokens` per fetch.

use std::{
    fmt,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use auth_core::{
    Credential, Error, FetchRequest, Fetched, StoreKey, Token, TokenSource,
    http::{HttpClient, HttpResponse, Url, endpoint},
    jwt,
    provider::{Declaration, EnvProvider},
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::{KrmPesanConfig, NAME};

/// The path below the base URL (see `docs/providers/krmpesan.md` for why `/tokens`).
pub const TOKENS_PATH: &str = "tokens";

/// A held IdToken is handed out only if it stays valid at least this long.
const HELD_TOKEN_MIN_REMAINING: Duration = Duration::from_secs(60);

/// KrmPesan's answer to a rejected refresh (400, 401, 403) — AWS Cognito's error, passed on
/// by the `GET /tokens` wrapper — kept as the error's [`source`](std::error::Error::source).
#[derive(Debug, Clone, thiserror::Error)]
#[error("KrmPesan answered {status}{}{}", error_type.as_deref().map(|t| format!(" {t}")).unwrap_or_default(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
#[non_exhaustive]
pub struct Rejection {
    /// The HTTP status (Cognito answers 400 for its refusals).
    pub status: u16,
    /// Cognito's error type (`__type`: `NotAuthorizedException`, …), when there was one.
    pub error_type: Option<String>,
    /// The server's message ("Refresh Token has been revoked"), with every configured secret
    /// replaced by `[redacted]`, control and bidirectional-override characters removed, at most
    /// 200 characters.
    pub message: Option<String>,
}

/// Cognito's `AuthenticationResult`, as the `GET /tokens` wrapper answers it (flat, as the
/// pages show it) or inside the whole `InitiateAuth` answer. No `Debug`: it holds tokens.
struct AuthenticationResult {
    id_token: String,
    expires_in: i64,
    token_type: Option<String>,
    refresh_token: Option<String>,
}

impl AuthenticationResult {
    /// Reads the answer. Errors name the field, never a value.
    fn read(answer: serde_json::Value) -> Result<Self, Error> {
        let serde_json::Value::Object(mut object) = answer else {
            return Err(Error::protocol(format!(
                "{NAME} answered JSON that is not an object"
            )));
        };
        // The whole `InitiateAuth` answer: the tokens are inside `AuthenticationResult`, and
        // without it Cognito asked for a challenge instead.
        if let Some(inner) = object.remove("AuthenticationResult") {
            let serde_json::Value::Object(inner) = inner else {
                return Err(Error::protocol(format!(
                    "{NAME} answered an `AuthenticationResult` that is not an object"
                )));
            };
            object = inner;
        } else if let Some(challenge) = object.get("ChallengeName") {
            let name = challenge
                .as_str()
                .filter(|n| {
                    n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .unwrap_or("?");
            return Err(Error::protocol(format!(
                "{NAME} answered Cognito's challenge `{name}` instead of tokens; a refresh needs none"
            )));
        }
        let id_token = match object.remove("IdToken") {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => {
                return Err(Error::protocol(format!(
                    "{NAME} answered an `IdToken` that is not a string"
                )));
            }
            None => return Err(Error::protocol(format!("{NAME} answered no `IdToken`"))),
        };
        let expires_in = match object.get("ExpiresIn") {
            Some(n) => n.as_i64().ok_or_else(|| {
                Error::protocol(format!(
                    "{NAME} answered an `ExpiresIn` that is not a whole number of seconds"
                ))
            })?,
            None => return Err(Error::protocol(format!("{NAME} answered no `ExpiresIn`"))),
        };
        let token_type = object
            .get("TokenType")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let refresh_token = match object.remove("RefreshToken") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
            Some(_) => {
                return Err(Error::protocol(format!(
                    "{NAME} answered a `RefreshToken` that is not a usable token"
                )));
            }
        };
        Ok(Self {
            id_token,
            expires_in,
            token_type,
            refresh_token,
        })
    }
}

/// A refusal: Cognito's own body (`{"__type", "message"}`), or boto3's rendering of it
/// (`{"Error": {"Code", "Message"}}`) if the wrapper passes that on.
#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default, rename = "__type", alias = "code")]
    error_type: Option<String>,
    #[serde(default, alias = "Message")]
    message: Option<String>,
    #[serde(default, rename = "Error")]
    boto: Option<BotoError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BotoError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Cognito's error types that mean "too many requests" (HTTP 400, like its other refusals).
const THROTTLED: [&str; 2] = ["TooManyRequestsException", "LimitExceededException"];

/// How long to wait after a throttling answer without `Retry-After`.
const THROTTLE_WAIT: time::Duration = time::Duration::seconds(60);

/// `at` moved by `by`, staying at the last moment `time` can represent (the year 9999) instead
/// of leaving the range. The one place this crate adds server-supplied amounts (`ExpiresIn`, the
/// server's clock offset) to moments; swap it for auth-core's checked-time helpers when they
/// land.
fn shift_saturating(at: OffsetDateTime, by: time::Duration) -> OffsetDateTime {
    at.checked_add(by).unwrap_or(if by.is_negative() {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    })
}

/// Whether the answer is JSON: `application/json`, `…+json`, or AWS's own
/// `application/x-amz-json-1.1` (Cognito's content type, if the wrapper passes it on).
fn is_json(response: &HttpResponse) -> bool {
    response.is_json()
        || response
            .mime()
            .is_some_and(|m| m.starts_with("application/x-amz-json"))
}

/// Server text made fit to show: every secret (raw and percent-encoded) replaced by
/// `[redacted]`, control characters replaced and bidirectional overrides removed, at most 200
/// characters. Local until the shared HTTP exchange scrubs server text itself (security issue
/// 13, item 1); then this becomes a call to it.
fn scrub(text: &str, secrets: &[&str]) -> String {
    const MAX: usize = 200;
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        // As sent (the query string is form-encoded), and as percent-encoded by others.
        let forms = [
            (*secret).to_owned(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            percent_encode(secret, false),
            percent_encode(secret, true),
        ];
        for form in forms {
            if out.contains(&form) {
                out = out.replace(&form, "[redacted]");
            }
        }
    }
    let cleaned: String = out
        .chars()
        .filter(|c| !is_bidi_control(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut shown: String = cleaned.chars().take(MAX).collect();
    if cleaned.chars().count() > MAX {
        shown.push('…');
    }
    shown
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `value` as it travels in a query string: unreserved bytes kept, the rest `%XX`.
fn percent_encode(value: &str, lower: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Refreshes KrmPesan's IdToken from the refresh token and device key.
///
/// The IdToken is the token handed out (the document: "simpan IdToken untuk digunakan pada
/// saat akses ke REST API"); it expires `ExpiresIn` seconds after the request was sent, or at
/// its own `exp` claim if that is earlier.
pub struct KrmPesanSource {
    config: KrmPesanConfig,
    http: HttpClient,
    endpoint: Url,
    held: Mutex<Option<SecretString>>,
}

impl fmt::Debug for KrmPesanSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KrmPesanSource")
            .field("config", &self.config)
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl KrmPesanSource {
    /// A source for `config`, its requests sent by `http`: an
    /// [`HttpConfig`](auth_core::http::HttpConfig) (a client of its own, built on the first
    /// request), or a clone of an [`HttpClient`] shared with other sources (one connection
    /// pool for a pool of accounts) or built on your reqwest builder
    /// ([`HttpClient::from_builder`]).
    ///
    /// # Errors
    /// None today; the signature is the one every provider's constructor has.
    pub fn new(config: KrmPesanConfig, http: impl Into<HttpClient>) -> Result<Self, Error> {
        let endpoint = endpoint(&config.base_url, TOKENS_PATH);
        let held = Mutex::new(config.id_token.clone());
        // Kept out of every server text the exchange hands back.
        let http = http.into().with_secrets(
            [&config.refresh_token, &config.device_key]
                .into_iter()
                .chain(config.id_token.as_ref()),
        );
        Ok(Self {
            config,
            http,
            endpoint,
            held,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KrmPesanConfig {
        &self.config
    }

    /// The configured IdToken, once, if its `exp` is readable and far enough away.
    fn take_held(&self, now: OffsetDateTime) -> Option<Token> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        let exp = jwt::time_claims(held.expose_secret()).ok()?.exp?;
        if exp - now < HELD_TOKEN_MIN_REMAINING {
            tracing::debug!(
                provider = NAME,
                "the configured IdToken expires too soon; fetching a new one"
            );
            return None;
        }
        Token::bearer(held, now, Some(exp)).ok()
    }

    /// Reads a 200 answer sent at `sent_at`: the IdToken, its expiry, and the rotated refresh
    /// token when the pool rotates them (compared with `refresh`, the one that was sent).
    fn parse_success(
        &self,
        response: &HttpResponse,
        sent_at: OffsetDateTime,
        refresh: &SecretString,
    ) -> Result<Fetched, Error> {
        if !is_json(response) {
            return Err(Error::protocol(format!(
                "{NAME} answered 200 with content type {} instead of JSON",
                response.mime().unwrap_or_else(|| "(none)".to_owned())
            )));
        }
        let answer = AuthenticationResult::read(response.json(NAME)?)?;
        if answer.expires_in <= 0 {
            return Err(Error::protocol(format!(
                "{NAME} answered ExpiresIn {}, not a positive lifetime",
                answer.expires_in
            )));
        }
        if let Some(kind) = answer
            .token_type
            .as_deref()
            .filter(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            tracing::debug!(provider = NAME, token_type = %kind.escape_debug(), "unexpected TokenType; sending the IdToken as Bearer");
        }
        // An `ExpiresIn` beyond the year 9999 stops there; the IdToken's `exp` bounds it anyway.
        let mut expires_at = shift_saturating(sent_at, time::Duration::seconds(answer.expires_in));
        // The IdToken is a Cognito JWT; when its `exp` (read in the server's clock, corrected
        // by the skew its `Date` header shows) is earlier, it wins.
        if let Ok(jwt::TimeClaims { exp: Some(exp), .. }) = jwt::time_claims(&answer.id_token) {
            let exp = shift_saturating(exp, -response.clock_offset(sent_at));
            if exp <= sent_at {
                return Err(Error::protocol(format!(
                    "{NAME} issued an IdToken that has already expired"
                )));
            }
            expires_at = expires_at.min(exp);
        }
        let token = Token::bearer(
            SecretString::from(answer.id_token),
            sent_at,
            Some(expires_at),
        )?;
        // A pool with refresh-token rotation answers a new refresh token: the manager saves it
        // before the IdToken is handed to anyone, and sends it next time.
        Ok(match answer.refresh_token {
            Some(rotated) if rotated != refresh.expose_secret() => {
                tracing::debug!(provider = NAME, "the refresh token was rotated");
                Fetched::rotated(token, SecretString::from(rotated))
            }
            _ => Fetched::new(token),
        })
    }

    /// The refusal of a 400, 401 or 403: Cognito's throttling is rate limited; anything else
    /// needs new values from the dashboard. Cognito's message is shown, scrubbed of every
    /// configured secret and of `refresh`, the one that was sent.
    fn rejection(
        &self,
        response: &HttpResponse,
        refresh: &SecretString,
        sent_at: OffsetDateTime,
    ) -> Error {
        let status = response.status.as_u16();
        let answer = is_json(response)
            .then(|| response.error_json::<ErrorAnswer>().ok())
            .flatten();
        let mut secrets = vec![
            refresh.expose_secret(),
            self.config.refresh_token.expose_secret(),
            self.config.device_key.expose_secret(),
        ];
        if let Some(id_token) = &self.config.id_token {
            secrets.push(id_token.expose_secret());
        }
        let show = |text: &str| Some(scrub(text, &secrets)).filter(|t| !t.trim().is_empty());
        let (error_type, message) = answer.map_or((None, None), |a| {
            let (boto_type, boto_message) = a.boto.map_or((None, None), |b| (b.code, b.message));
            (
                // `aws.cognito#NotAuthorizedException:http://…` → `NotAuthorizedException`
                a.error_type.or(boto_type).as_deref().and_then(|t| {
                    let t = t.rsplit('#').next().unwrap_or(t);
                    show(t.split(':').next().unwrap_or(t))
                }),
                a.message.or(boto_message).as_deref().and_then(show),
            )
        });
        let rejection = Rejection {
            status,
            error_type,
            message,
        };
        let said = match (&rejection.error_type, &rejection.message) {
            (Some(t), Some(m)) => format!(", {t}: {m}"),
            (Some(t), None) => format!(", {t}"),
            (None, Some(m)) => format!(": {m}"),
            (None, None) => String::new(),
        };
        if rejection
            .error_type
            .as_deref()
            .is_some_and(|t| THROTTLED.contains(&t))
        {
            let until = response
                .retry_after(sent_at)
                .unwrap_or_else(|| shift_saturating(sent_at, THROTTLE_WAIT));
            return Error::rate_limited(
                until,
                format!("{NAME} is throttling refreshes (status {status}{said})"),
            )
            .with_source(rejection);
        }
        Error::reauthentication_required(format!(
            "{NAME} rejected the refresh token or device key (status {status}{said}): generate new ones on the KrmPesan dashboard and update the configuration"
        ))
        .with_source(rejection)
    }
}

#[async_trait]
impl TokenSource for KrmPesanSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        if let Some(token) = self.take_held(request.sent_at) {
            tracing::debug!(provider = NAME, "handing out the configured IdToken");
            return Ok(Fetched::new(token));
        }
        let refresh = request
            .refresh
            .as_ref()
            .unwrap_or(&self.config.refresh_token);
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("refresh_token", refresh.expose_secret())
            .append_pair("device_key", self.config.device_key.expose_secret());
        let builder = self
            .http
            .request(http::Method::GET, url)?
            .header(http::header::ACCEPT, "application/json");
        let response = self
            .http
            .send_with_secrets(NAME, builder, [refresh])
            .await?;
        match response.status.as_u16() {
            200 => self.parse_success(&response, request.sent_at, refresh),
            400 | 401 | 403 => Err(self.rejection(&response, refresh, request.sent_at)),
            _ => Err(response.unexpected_status(NAME, request.sent_at)),
        }
    }

    fn name(&self) -> &str {
        NAME
    }

    fn store_key(&self) -> Option<StoreKey> {
        Some(self.config.store_key())
    }

    fn credential(&self) -> Option<Credential> {
        Some(
            Credential::new(NAME)
                .secret("refresh_token", &self.config.refresh_token)
                .secret("device_key", &self.config.device_key),
        )
    }
}

impl EnvProvider for KrmPesanSource {
    const DECLARATION: Declaration = crate::DECLARATION;

    fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        http: impl Into<HttpClient>,
    ) -> Result<Self, Error> {
        Self::new(KrmPesanConfig::from_lookup(lookup)?, http)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_comes_before_shortening_so_no_secret_is_cut_in_half() {
        let secret = "s".repeat(150);
        let text = format!("{}{secret}", "x".repeat(100));
        let shown = scrub(&text, &[&secret]);
        assert!(!shown.contains("sss"), "{shown}");
        assert!(shown.ends_with("[redacted]"), "{shown}");
        let long = "y".repeat(300);
        let shown = scrub(&long, &[&secret]);
        assert_eq!(shown.chars().count(), 201);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn control_and_bidirectional_characters_do_not_reach_the_message() {
        let shown = scrub("a\u{202E}b\u{2066}c\nd\u{200F}e\u{7}", &[]);
        assert_eq!(shown, "abc de ");
    }

    #[test]
    fn the_clock_correction_stays_within_representable_time() {
        let last = time::PrimitiveDateTime::MAX.assume_utc();
        assert_eq!(shift_saturating(last, time::Duration::HOUR), last);
        assert_eq!(
            shift_saturating(
                OffsetDateTime::UNIX_EPOCH,
                time::Duration::seconds(i64::MAX)
            ),
            last
        );
        let first = time::PrimitiveDateTime::MIN.assume_utc();
        assert_eq!(shift_saturating(first, -time::Duration::HOUR), first);
    }
}
