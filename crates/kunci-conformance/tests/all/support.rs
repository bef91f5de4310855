//! Helpers shared by the scenarios.

use std::{sync::Arc, time::Duration};

use auth_core::{
    Clock as _, Error, ManualClock, MemoryStore, SharedClock, Token, TokenGuard, TokenManager,
    TokenSource, time::OffsetDateTime,
};
use futures_util::future::join_all;
use kunci_conformance::RecordingProxy;
use secrecy::ExposeSecret;

/// The wall-clock time now, read through kunci's clock (the only place allowed to read it).
pub(crate) fn now() -> OffsetDateTime {
    SharedClock::system().now()
}

/// A manual clock that starts at the real time: the manager's view of time stands still until
/// a scenario advances it, while the upstream lives in real time.
pub(crate) fn manual_clock() -> Arc<ManualClock> {
    ManualClock::new(now())
}

/// A manager for `source` (keyed by its store key) on `store`, on `clock` (the system clock if
/// `None`).
pub(crate) fn manager(
    source: impl TokenSource + 'static,
    store: &MemoryStore,
    clock: Option<&Arc<ManualClock>>,
) -> TokenManager {
    let mut builder = TokenManager::builder(source).store(store.clone());
    if let Some(clock) = clock {
        builder = builder.clock(SharedClock::from(clock.clone()));
    }
    builder.build().unwrap()
}

/// `n` callers asking at once; every one must get a token, and the same one.
pub(crate) async fn many_callers(manager: &TokenManager, n: usize) -> Token {
    let tokens = join_all((0..n).map(|_| manager.token())).await;
    let tokens: Vec<TokenGuard> = tokens.into_iter().map(Result::unwrap).collect();
    let first = Token::clone(&tokens[0]);
    for token in &tokens {
        assert!(token.same_secret(&first), "callers got different tokens");
    }
    first
}

/// Fifty callers at once of the manager `process` makes get one token, and fifty more calls
/// the same; another process (another manager sharing the store) takes the saved token: one
/// `method` `path` request through `proxy` in all. Returns the token and the first manager.
pub(crate) async fn fetched_once_for_many_callers(
    process: impl Fn() -> TokenManager,
    proxy: &RecordingProxy,
    (method, path): (&str, &str),
) -> (Token, TokenManager) {
    let manager = process();
    let token = many_callers(&manager, 50).await;
    for _ in 0..50 {
        assert!(manager.token().await.unwrap().same_secret(&token));
    }
    // Another process sharing the store takes the saved token and sends nothing.
    assert!(process().token().await.unwrap().same_secret(&token));
    assert_eq!(proxy.count(method, path), 1, "{:?}", proxy.exchanges());
    (token, manager)
}

/// Twenty callers at once after the token `first` expired: they get one new token (not
/// `first`, "the expired `what` was handed out" otherwise), fetched with one more `method`
/// `path` request through `proxy` (two in all).
pub(crate) async fn one_new_token(
    manager: &TokenManager,
    proxy: &RecordingProxy,
    (method, path): (&str, &str),
    first: &Token,
    what: &str,
) -> Token {
    let second = many_callers(manager, 20).await;
    assert!(
        !second.same_secret(first),
        "the expired {what} was handed out"
    );
    assert_eq!(proxy.count(method, path), 2, "{:?}", proxy.exchanges());
    second
}

/// A first token from `manager`, then `clock` moved [`past`] `lifetime`: twenty callers get
/// [`one_new_token`], valid on `clock`. Returns it.
pub(crate) async fn refreshed_after_manual_expiry(
    manager: &TokenManager,
    clock: &ManualClock,
    lifetime: Duration,
    proxy: &RecordingProxy,
    request: (&str, &str),
    what: &str,
) -> Token {
    let first = Token::clone(&manager.token().await.unwrap());
    clock.advance(past(lifetime));
    let second = one_new_token(manager, proxy, request, &first, what).await;
    assert!(second.expires_at().unwrap() > clock.now());
    second
}

/// The error text a user reads (the error and its sources) contains `text`, the upstream's
/// own words.
pub(crate) fn assert_carries(error: &Error, text: &str) {
    let chain = kunci_conformance::error_chain(error);
    assert!(
        chain.contains(text),
        "the error does not carry the upstream's text {text:?}: {chain}"
    );
}

/// The error text shows none of `secrets`.
pub(crate) fn assert_shows_none(error: &Error, secrets: &[&str]) {
    let shown = format!("{} {error:?}", kunci_conformance::error_chain(error));
    for secret in secrets {
        assert!(!shown.contains(secret), "the error shows a secret: {shown}");
    }
}

/// The token's secret, for comparing with what the upstream issued.
pub(crate) fn secret(token: &Token) -> String {
    token.secret().expose_secret().to_owned()
}

/// A JWT's payload, decoded here (not by kunci) from its middle part.
pub(crate) fn jwt_payload(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("a JSON payload")
}

/// A Unix time in a JSON claim.
pub(crate) fn unix(claim: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(claim.as_i64().expect("a numeric time")).unwrap()
}

/// Long enough past any token the upstreams issue here for the manager to count it expired.
pub(crate) fn past(lifetime: Duration) -> Duration {
    lifetime + Duration::from_secs(60)
}
