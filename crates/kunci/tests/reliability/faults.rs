//! Every provider × every injected fault, through `kunci::from_lookup` with a file store:
//! the documented error kind (from each provider's table in `docs/providers/<name>.md`), no
//! panic, exactly one request, no secret in the error, and the stored entry unchanged — its
//! token, expiry and refresh material are those of before; only a cool-down may be added, and
//! for SehatMu exactly when the answer was a refusal (rejected credentials or its rate limit).

use std::time::Duration;

use auth_testkit::{
    Fault, SimServer,
    sehatmu::{CREDENTIALS_REJECTED_TEXT, RATE_LIMIT_TEXT, operation_outcome},
};
use kunci::core::StoredEntry;
use kunci::{ErrorKind, FileStore, ProviderKind, StoreKey, TokenStore as _};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::support::{Sim, manager};

/// The HTTP timeout the managers use; the delayed answer comes well after it.
const TIMEOUT: Duration = Duration::from_millis(400);
const DELAY: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug)]
enum Case {
    Status(u16),
    DelayPastTimeout,
    TenMegabytes,
    Html,
    MalformedJson,
    ClosedConnection,
    WrongContentType,
    /// A 502 as a proxy's HTML page rather than text.
    ProxyHtml502,
}

const CASES: [Case; 16] = [
    Case::Status(400),
    Case::Status(401),
    Case::Status(403),
    Case::Status(421),
    Case::Status(422),
    Case::Status(429),
    Case::Status(500),
    Case::Status(502),
    Case::Status(503),
    Case::DelayPastTimeout,
    Case::TenMegabytes,
    Case::Html,
    Case::MalformedJson,
    Case::ClosedConnection,
    Case::WrongContentType,
    Case::ProxyHtml502,
];

/// `None`: a token (the body is still the documented one).
fn expected(kind: ProviderKind, case: Case) -> Option<ErrorKind> {
    use ErrorKind::{Protocol, ReauthenticationRequired as Reauth, Transient};
    let limited = ErrorKind::RateLimited {
        until: kunci::core::time::OffsetDateTime::UNIX_EPOCH,
    };
    Some(match (kind, case) {
        (_, Case::Status(429)) => limited,
        (_, Case::Status(500 | 502 | 503) | Case::ProxyHtml502) => Transient,
        (_, Case::Status(401 | 403)) => Reauth,
        // KrmPesan, Stamps and SehatMu (whose 400 here carries the rejected-credentials text)
        // refuse credentials with a 400; Kalsel.dev's 400 means the request shape was refused.
        (ProviderKind::Kalsel, Case::Status(400)) => Protocol,
        (_, Case::Status(400)) => Reauth,
        // Kalsel.dev's server answers 422 `jwt_error` for a refresh token it refuses (expired,
        // forged); its page documents 421. Both mean "log in again"; for the others, an
        // undocumented status.
        (ProviderKind::Kalsel, Case::Status(421 | 422)) => Reauth,
        (_, Case::Status(_)) => Protocol,
        (_, Case::DelayPastTimeout | Case::ClosedConnection) => Transient,
        (_, Case::TenMegabytes | Case::Html | Case::MalformedJson) => Protocol,
        // KrmPesan requires JSON; the others accept the documented body under any type.
        (ProviderKind::KrmPesan, Case::WrongContentType) => Protocol,
        (_, Case::WrongContentType) => return None,
    })
}

/// The fault, with the error body the provider itself sends for that status.
fn fault(kind: ProviderKind, case: Case) -> Fault {
    let status = match case {
        Case::DelayPastTimeout => return Fault::Delay(DELAY),
        Case::TenMegabytes => return Fault::HugeBody(Fault::TEN_MB),
        Case::Html => return Fault::Html,
        Case::MalformedJson => return Fault::MalformedJson,
        Case::ClosedConnection => return Fault::CloseConnection,
        Case::WrongContentType => return Fault::WrongContentType,
        Case::ProxyHtml502 => return Fault::html_error(502),
        Case::Status(s) => s,
    };
    if status >= 500 {
        return Fault::status(status, Some("text/plain"), "Service Unavailable");
    }
    if status == 429 && kind != ProviderKind::SehatMu {
        return Fault::status(429, None, "");
    }
    match kind {
        // Cognito's refusal as the `GET /tokens` wrapper passes it on.
        ProviderKind::KrmPesan => Fault::json(
            status,
            &json!({"__type": "NotAuthorizedException", "message": "Refresh Token has been revoked"}),
        ),
        ProviderKind::Kalsel => match status {
            400 => Fault::json(
                400,
                &json!({"status": 400, "message": "refresh_token: cannot be blank.", "error": "bad_request", "causes": []}),
            ),
            // the page's 421 body
            421 => Fault::json(
                421,
                &json!({"status": 421, "message": "Token expired", "error": "jwt_error", "causes": ["token has expired"]}),
            ),
            // the server's (service/user_service.go, utils/mjwt/mjwt.go)
            422 => Fault::json(
                422,
                &json!({"status": 422, "message": "Token tidak valid", "error": "jwt_error", "causes": ["Token is expired"]}),
            ),
            _ => Fault::json(
                status,
                &json!({"status": status, "message": "Unauthorized", "error": "unauthorized", "causes": []}),
            ),
        },
        // Django REST framework's own bodies: a field error, `TokenAuthentication`'s refusal.
        ProviderKind::Stamps => match status {
            400 => Fault::json(
                400,
                &json!({"crm_merchant_id": ["A valid integer is required."]}),
            ),
            _ => Fault::json(status, &json!({"detail": "Invalid token."})),
        },
        ProviderKind::SehatMu => Fault::json(
            status,
            &operation_outcome(match status {
                400 | 401 | 403 => CREDENTIALS_REJECTED_TEXT,
                429 => RATE_LIMIT_TEXT,
                _ => "Misdirected request",
            }),
        ),
        other => panic!("{other:?}"),
    }
}

fn same_kind(a: ErrorKind, b: ErrorKind) -> bool {
    std::mem::discriminant(&a) == std::mem::discriminant(&b)
}

fn refresh_of(entry: &StoredEntry) -> Option<String> {
    entry.refresh.as_ref().map(|r| r.expose_secret().to_owned())
}

/// One provider through every case; returns how many cases ran.
async fn matrix(kind: ProviderKind) -> usize {
    let mut ran = 0;
    for case in CASES {
        let name = format!("{kind:?} × {case:?}");
        let sim = Sim::start(
            kind,
            SimServer::builder().token_lifetime(Duration::from_secs(3600)),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let manager = manager(kind, &sim.vars(), dir.path(), TIMEOUT)
            .await
            .unwrap();
        let first = manager.token().await.unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        let key: StoreKey = manager.key().clone();
        let before = store
            .load(&key)
            .await
            .unwrap()
            .expect("the first token was stored");

        sim.fail_always(fault(kind, case));
        let requests = sim.request_count();
        // As after a 401 from the API: the next call must ask the provider.
        assert!(manager.invalidate(&first), "{name}");
        let result = manager.token().await;
        assert_eq!(
            sim.request_count(),
            requests + 1,
            "{name}: exactly one request"
        );
        let after = store
            .load(&key)
            .await
            .unwrap()
            .expect("the entry is still there");

        match (expected(kind, case), result) {
            (Some(want), Err(err)) => {
                assert!(
                    same_kind(err.kind(), want),
                    "{name}: expected {want:?}, got {err:?}"
                );
                let printed = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
                for secret in sim.configured_secrets().iter().chain(&sim.issued_tokens()) {
                    assert!(
                        !printed.contains(secret.as_str()),
                        "{name}: a secret in {printed}"
                    );
                }
                let (b, a) = (
                    before.token.as_ref().unwrap(),
                    after.token.as_ref().unwrap(),
                );
                assert!(a.same_secret(b), "{name}: the stored token is kept");
                assert_eq!(a.expires_at(), b.expires_at(), "{name}: its expiry too");
                assert_eq!(
                    refresh_of(&after),
                    refresh_of(&before),
                    "{name}: the refresh material is kept"
                );
                assert!(
                    after.version == before.version
                        || after.cooldown_until.is_some()
                        || after.failure.is_some(),
                    "{name}: only a cool-down or the failure's outcome may be written ({before:?} → {after:?})"
                );
                if kind == ProviderKind::SehatMu {
                    // The minute follows refusals only; a 5xx, a timeout, a dropped connection
                    // or an unreadable answer stops no other process.
                    let refusal = matches!(
                        err.kind(),
                        ErrorKind::ReauthenticationRequired | ErrorKind::RateLimited { .. }
                    );
                    assert_eq!(
                        after.cooldown_until.is_some(),
                        refusal,
                        "{name}: a cool-down is stored exactly after a refusal"
                    );
                }
            }
            (None, Ok(token)) => {
                // Kalsel.dev's tokens carry no `jti` or `iat` (utils/mjwt/mjwt.go): two issued
                // in the same second are the same bytes. The request above was still sent.
                if kind != ProviderKind::Kalsel {
                    assert!(!token.same_secret(&first), "{name}: a new token");
                }
                assert!(
                    after.token.unwrap().same_secret(&token),
                    "{name}: stored before handed out"
                );
            }
            (want, got) => panic!("{name}: expected {want:?}, got {got:?}"),
        }
        ran += 1;
    }
    ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn krmpesan_every_fault() {
    assert_eq!(matrix(ProviderKind::KrmPesan).await, CASES.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kalsel_every_fault() {
    assert_eq!(matrix(ProviderKind::Kalsel).await, CASES.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamps_every_fault() {
    assert_eq!(matrix(ProviderKind::Stamps).await, CASES.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sehatmu_every_fault() {
    assert_eq!(matrix(ProviderKind::SehatMu).await, CASES.len());
}
