//! The provider contract as a kit: any provider's source against its simulator. A provider's
//! table of expectations — each answer its document gives and the error kind it must yield —
//! is [`Simulated::faults`](crate::Simulated::faults), in the provider's `src/testing.rs`;
//! its crate's tests call [`assert_conforms`] on [`subject`] in one line, and the facade's
//! reliability suite runs the same kit, table included, over every provider compiled in.
//!
//! What it checks:
//!
//! 1. **the declaration** is well formed ([`Declaration::problems`]), the source answers the
//!    declared name and a store key under it;
//! 2. **a first token** is fetched from the simulator with the variables it gives;
//! 3. **the fault table** ([`Simulator::faults`](crate::Simulator::faults)): each injected
//!    fault yields its error kind (or a token), and no error message or `Debug` holds a secret;
//! 4. **arbitrary answers never panic**: random statuses, content types and bodies (JSON with
//!    absurd numbers, wrong types, text, bytes) are answered with a result, never a panic;
//! 5. **TRACE logs hold no secret**: everything logged while checks 2 to 4 ran is searched for
//!    every secret variable's value and every token the simulator issued;
//! 6. **a credential change is noticed**: a token stored by a source with one credential is
//!    not served to a source configured with another ([`Simulator::other_credential`](crate::Simulator::other_credential));
//! 7. **an expired token is refreshed once**: through a manager on a manual clock shared with
//!    the simulator, calls while the token is valid send nothing more, and once it expired,
//!    twenty callers at once cause exactly one request and all get the one new token.

use std::{fmt, sync::Arc, time::Duration};

use auth_core::{
    Error, ErrorKind, FetchRequest, ManualClock, MemoryStore, SharedClock, SharedTokenSource,
    TokenManager, clock::Clock, http::HttpConfig, provider::Declaration,
};
use secrecy::ExposeSecret as _;

use crate::{Fault, SimBuilder, SimServer, Started, logs::LogCapture};

/// What an answer must yield: an error of a kind, or a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Yields {
    /// A token: the answer is still the documented success.
    Token,
    /// [`ErrorKind::Configuration`].
    Configuration,
    /// [`ErrorKind::ReauthenticationRequired`].
    Reauthentication,
    /// [`ErrorKind::RateLimited`], whatever its `until`.
    RateLimited,
    /// [`ErrorKind::Transient`].
    Transient,
    /// [`ErrorKind::Protocol`].
    Protocol,
    /// [`ErrorKind::Store`].
    Store,
}

impl Yields {
    /// What `result` yielded.
    pub fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => Self::Token,
            Err(e) => match e.kind() {
                ErrorKind::Configuration => Self::Configuration,
                ErrorKind::ReauthenticationRequired => Self::Reauthentication,
                ErrorKind::RateLimited { .. } => Self::RateLimited,
                ErrorKind::Transient => Self::Transient,
                ErrorKind::Protocol => Self::Protocol,
                _ => Self::Store,
            },
        }
    }
}

/// One row of a provider's fault table.
pub type FaultCase = (&'static str, Fault, Yields);

/// Builds a provider's source from variables (`lookup`) with `http`.
pub type Build = dyn Fn(&dyn Fn(&str) -> Option<String>, HttpConfig) -> Result<SharedTokenSource, Error>
    + Send
    + Sync;

/// A provider put through the kit.
pub struct Subject {
    /// What the provider declares.
    pub declaration: Declaration,
    /// Starts its simulator ([`Simulated::start_simulator`](crate::Simulated::start_simulator)).
    pub start: Arc<dyn Fn(SimBuilder) -> Started + Send + Sync>,
    /// Builds its source from variables (`EnvProvider::from_lookup`).
    pub build: Arc<Build>,
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("provider", &self.declaration.name)
            .finish_non_exhaustive()
    }
}

/// The timeout of the sources the kit builds; [`Fault::Delay`] rows wait past it.
pub const TIMEOUT: Duration = Duration::from_millis(1500);

/// The faults every provider answers alike, because the shared HTTP exchange decides them:
/// no answer, an answer too late, a 5xx, a body past the cap, an HTML page instead of JSON.
pub fn transport_faults() -> Vec<FaultCase> {
    vec![
        (
            "closed connection",
            Fault::CloseConnection,
            Yields::Transient,
        ),
        (
            "an answer past the timeout",
            Fault::Delay(TIMEOUT + Duration::from_secs(1)),
            Yields::Transient,
        ),
        (
            "500 text",
            Fault::status(500, Some("text/plain"), "Internal Server Error"),
            Yields::Transient,
        ),
        ("502 html", Fault::html_error(502), Yields::Transient),
        ("503 empty", Fault::status(503, None, ""), Yields::Transient),
        (
            "10 MB body",
            Fault::HugeBody(Fault::TEN_MB),
            Yields::Protocol,
        ),
        ("200 html page", Fault::Html, Yields::Protocol),
        ("200 cut-off json", Fault::MalformedJson, Yields::Protocol),
        ("404 html", Fault::html_error(404), Yields::Protocol),
    ]
}

/// Runs the whole kit on `subject` and answers what failed (empty: it conforms). Call it on a
/// current-thread runtime: the log capture listens on this thread.
pub async fn check(subject: &Subject) -> Vec<String> {
    let logs = LogCapture::default();
    let guard = logs.install();
    let mut failures = Vec::new();
    let name = subject.declaration.name;
    let mut fail = |what: String| failures.push(format!("{name}: {what}"));

    for problem in subject.declaration.problems() {
        fail(format!("the declaration: {problem}"));
    }
    let sim = match (subject.start)(SimServer::builder()).await {
        Ok(sim) => sim,
        Err(e) => {
            fail(format!("its simulator did not start: {e}"));
            return failures;
        }
    };
    let variables = sim.variables();
    let secrets: Vec<String> = variables
        .iter()
        .chain(sim.other_credential().iter())
        .filter(|(n, _)| subject.declaration.is_secret(n))
        .map(|(_, v)| v.clone())
        .collect();
    if !variables
        .iter()
        .any(|(n, _)| subject.declaration.is_secret(n))
    {
        fail("the simulator's variables hold no declared secret".to_owned());
    }
    let build = |vars: &[(&'static str, String)]| {
        let lookup = |n: &str| {
            vars.iter()
                .find(|(name, _)| *name == n)
                .map(|(_, v)| v.clone())
        };
        (subject.build)(&lookup, crate::setup::http_config(TIMEOUT))
    };
    let source = match build(&variables) {
        Ok(source) => source,
        Err(e) => {
            fail(format!(
                "the source cannot be built from the simulator's variables: {e}"
            ));
            return failures;
        }
    };

    // 1. The source says who it is.
    if source.name() != name {
        fail(format!("the source's name is `{}`", source.name()));
    }
    match source.store_key() {
        Some(key) if key.as_str().starts_with(&format!("{name}:")) => {}
        other => fail(format!(
            "the source's store key is {other:?}, not `{name}:…`"
        )),
    }

    // 2. A first token.
    let fetch = |source: SharedTokenSource| async move {
        let now = auth_core::SystemClock::new().now();
        let task = tokio::spawn(async move { source.fetch(FetchRequest::new(None, now)).await });
        task.await
    };
    match fetch(source.clone()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => fail(format!("no first token from the simulator: {e}")),
        Err(e) => fail(format!("the first fetch panicked: {e}")),
    }

    // 3. The fault table (a row repeating an earlier fault is run once).
    let faults = sim.faults();
    if !transport_faults()
        .iter()
        .all(|(_, shared, _)| faults.iter().any(|(_, f, _)| f == shared))
    {
        fail("the fault table does not start from `transport_faults()`".to_owned());
    }
    for (i, (case, fault, expected)) in faults.iter().enumerate() {
        if faults[..i].iter().any(|(_, f, _)| f == fault) {
            continue;
        }
        sim.server().clear_faults();
        sim.server().fail_next(fault.clone());
        match fetch(source.clone()).await {
            Err(e) => fail(format!("{case}: the fetch panicked: {e}")),
            Ok(result) => {
                let got = Yields::of(&result);
                if got != *expected {
                    fail(format!("{case}: expected {expected:?}, got {result:?}"));
                }
                if let Err(e) = &result {
                    let shown = format!("{e} {e:?}");
                    if secrets.iter().any(|s| shown.contains(s.as_str())) {
                        fail(format!("{case}: the error shows a secret"));
                    }
                }
            }
        }
    }
    sim.server().clear_faults();

    // 4. Arbitrary answers.
    let mut rng = fastrand::Rng::with_seed(0x006b_756e_6369);
    for i in 0..ARBITRARY_ANSWERS {
        let fault = arbitrary_answer(&mut rng, &secrets);
        let shown = format!("{fault:?}");
        sim.server().fail_next(fault);
        if let Err(e) = fetch(source.clone()).await {
            fail(format!(
                "arbitrary answer #{i} made the fetch panic ({e}): {shown}"
            ));
        }
    }
    sim.server().clear_faults();

    // 6. A credential change is noticed (before the logs are read: it logs too).
    let store = MemoryStore::new();
    let first = manager(source.clone(), &store);
    match first.token().await {
        Ok(first_token) => {
            let first_token = first_token.into_owned();
            match build(&sim.other_credential()) {
                Err(e) => fail(format!(
                    "the other credential is refused as configuration: {e}"
                )),
                Ok(other) => {
                    let before = sim.server().request_count();
                    let served = manager(other, &store).token().await;
                    let sent = sim.server().request_count() - before;
                    if let Ok(token) = served
                        && token.same_secret(&first_token)
                        && sent == 0
                    {
                        fail(
                            "a token stored with one credential was served to a source configured with another, without a request"
                                .to_owned(),
                        );
                    }
                }
            }
        }
        Err(e) => fail(format!("no token through a manager: {e}")),
    }

    // 7. An expired token is refreshed once for many callers.
    if let Err(what) = expiry_is_refreshed_once(subject).await {
        fail(what);
    }

    // 5. Nothing secret in the logs.
    drop(guard);
    let text = logs.text();
    for secret in &secrets {
        if text.contains(secret.as_str()) {
            fail("a secret variable's value is in the TRACE logs".to_owned());
        }
    }
    for issued in sim.server().issued_tokens() {
        if text.contains(&issued) {
            fail("an issued token is in the TRACE logs".to_owned());
        }
    }
    if !text.contains(name) {
        fail(
            "the log capture saw no line naming the provider: the search proves nothing".to_owned(),
        );
    }
    failures
}

/// The subject for provider source `S`: its declaration, its simulator (and so its fault
/// table), its `EnvProvider::from_lookup`.
pub fn subject<S: crate::Simulated>() -> Subject {
    Subject {
        declaration: S::DECLARATION,
        start: Arc::new(S::start_simulator),
        build: Arc::new(|lookup, http| Ok(SharedTokenSource::new(S::from_lookup(lookup, http)?))),
    }
}

/// Check 7 on a simulator of its own, whose clock is the manager's.
async fn expiry_is_refreshed_once(subject: &Subject) -> Result<(), String> {
    let clock = ManualClock::new(auth_core::SystemClock::new().now());
    let sim = (subject.start)(crate::setup::sim_builder(&clock, Duration::from_secs(3600)))
        .await
        .map_err(|e| format!("its simulator did not start on a manual clock: {e}"))?;
    let vars = sim.variables();
    let lookup = |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
    let source = (subject.build)(&lookup, crate::setup::http_config(TIMEOUT))
        .map_err(|e| format!("expiry: the source cannot be built: {e}"))?;
    let manager = TokenManager::builder(source)
        .clock(SharedClock::from(clock.clone()))
        .build()
        .map_err(|e| format!("expiry: no manager: {e}"))?;
    let secret = |m: TokenManager| async move {
        m.token()
            .await
            .map(|t| t.secret().expose_secret().to_owned())
    };
    let first = secret(manager.clone())
        .await
        .map_err(|e| format!("expiry: no first token: {e}"))?;
    for _ in 0..5 {
        secret(manager.clone())
            .await
            .map_err(|e| format!("expiry: a cached token refused: {e}"))?;
    }
    let before = sim.server().request_count();
    if before != 1 {
        return Err(format!(
            "expiry: {before} requests for one token and five cached calls"
        ));
    }
    clock.advance(Duration::from_secs(2 * 3600));
    let callers: Vec<_> = (0..20)
        .map(|_| tokio::spawn(secret(manager.clone())))
        .collect();
    let mut secrets = Vec::new();
    for caller in callers {
        match caller.await {
            Ok(Ok(s)) => secrets.push(s),
            Ok(Err(e)) => return Err(format!("expiry: a caller got no token: {e}")),
            Err(e) => return Err(format!("expiry: a caller panicked: {e}")),
        }
    }
    let sent = sim.server().request_count() - before;
    if sent != 1 {
        return Err(format!(
            "expiry: twenty callers after expiry caused {sent} requests, not one"
        ));
    }
    if secrets.iter().any(|s| *s != secrets[0]) || secrets[0] == first {
        return Err("expiry: the callers did not all get the one new token".to_owned());
    }
    Ok(())
}

/// [`check`], asserting that nothing failed.
///
/// # Panics
/// When the provider does not conform, listing every failure.
pub async fn assert_conforms(subject: &Subject) {
    let failures = check(subject).await;
    assert!(
        failures.is_empty(),
        "{} does not conform:\n  {}",
        subject.declaration.name,
        failures.join("\n  ")
    );
}

/// How many random answers check 4 sends.
pub const ARBITRARY_ANSWERS: usize = 96;

fn manager(source: SharedTokenSource, store: &MemoryStore) -> TokenManager {
    match TokenManager::builder(source).store(store.clone()).build() {
        Ok(manager) => manager,
        Err(e) => unreachable_manager(&e),
    }
}

#[allow(
    clippy::panic,
    reason = "a test kit: a manager that cannot be built is a failed check"
)]
fn unreachable_manager(e: &Error) -> ! {
    panic!("a manager could not be built: {e}")
}

/// Keys a provider's answers commonly carry, so random objects sometimes look almost right.
const KEYS: &[&str] = &[
    "access_token",
    "accessToken",
    "AccessToken",
    "IdToken",
    "token",
    "expires_in",
    "ExpiresIn",
    "expired",
    "expires_at",
    "accessTokenExpiresAt",
    "issued_at",
    "token_type",
    "TokenType",
    "refresh_token",
    "RefreshToken",
    "status",
    "success",
    "message",
    "data",
    "error",
    "resourceType",
    "issue",
];

fn arbitrary_value(rng: &mut fastrand::Rng, depth: u32, secrets: &[String]) -> serde_json::Value {
    use serde_json::{Value, json};
    match rng.u8(0..12) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => [
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(-1),
            json!(0),
            json!(1e308),
            json!(-1e308),
        ][rng.usize(0..7)]
        .clone(),
        4 => json!(
            [
                "14399",
                "-1",
                "1e400",
                "NaN",
                "",
                "9999-12-31T23:59:59Z",
                "0001-01-01"
            ][rng.usize(0..7)]
        ),
        5 => json!(rng.f64() * 1e12),
        6 if !secrets.is_empty() => json!(secrets[rng.usize(0..secrets.len())]),
        7 => Value::String((0..rng.usize(0..40)).map(|_| rng.char(..)).collect()),
        8 | 9 if depth < 3 => {
            let mut map = serde_json::Map::new();
            for _ in 0..rng.usize(0..6) {
                let key = KEYS[rng.usize(0..KEYS.len())].to_owned();
                map.insert(key, arbitrary_value(rng, depth + 1, secrets));
            }
            Value::Object(map)
        }
        10 if depth < 3 => Value::Array(
            (0..rng.usize(0..4))
                .map(|_| arbitrary_value(rng, depth + 1, secrets))
                .collect(),
        ),
        _ => json!("BearerToken"),
    }
}

fn arbitrary_answer(rng: &mut fastrand::Rng, secrets: &[String]) -> Fault {
    const STATUSES: &[u16] = &[
        200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 409, 421, 422, 429, 500, 502, 503,
    ];
    const TYPES: &[Option<&str>] = &[
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("application/fhir+json"),
        Some("text/plain"),
        Some("text/html"),
        None,
    ];
    let status = STATUSES[rng.usize(0..STATUSES.len())];
    let content_type = TYPES[rng.usize(0..TYPES.len())];
    let body = match rng.u8(0..4) {
        0 => String::from_utf8_lossy(
            &(0..rng.usize(0..200))
                .map(|_| rng.u8(..))
                .collect::<Vec<_>>(),
        )
        .into_owned(),
        _ => arbitrary_value(rng, 0, secrets).to_string(),
    };
    Fault::status(status, content_type, body)
}

/// Whether `token`'s secret equals `secret` (for tests that hold a raw value).
pub fn holds(token: &auth_core::Token, secret: &str) -> bool {
    token.secret().expose_secret() == secret
}
