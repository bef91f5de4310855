//! Full flows of every provider — first token, refresh ahead of expiry, refresh after expiry,
//! refresh after a 401, a server error, a rejected credential — with every log line at TRACE
//! captured, `Debug` of the manager, the tokens and the errors logged too — and servers that
//! echo the submitted secret (gateway pages, refusal details), raw and encoded. Then every
//! configured secret, the store's encryption key and every token the simulators issued is
//! searched for, raw, URL-encoded, form-encoded and JSON-escaped, in the logs, in every error's
//! `Display`, `Debug` and source chain, and in the (encrypted) store files: none may appear.

use std::{
    fmt::Write as _,
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_testkit::{Fault, SimServer};
use kunci::{Cipher, ErrorKind, ProviderKind};
use secrecy::ExposeSecret as _;

use crate::support::{Sim, manager};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// What one provider's flows produced that must not contain a secret, and the secrets.
struct Outcome {
    kind: ProviderKind,
    texts: String,
    secrets: Vec<String>,
    handed_out: usize,
    /// How many answers echoed the secrets.
    echoes: usize,
}

fn describe(err: &kunci::Error) -> String {
    let mut text = format!("{err}\n{err:?}\n");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let _ = writeln!(text, "{s}\n{s:?}");
        source = s.source();
    }
    text
}

async fn flows(kind: ProviderKind, store_key: &str) -> Outcome {
    // Tokens live 3 s: refreshed ahead at about 2.4 s, expired at 2.85 s.
    let sim = Sim::start(
        kind,
        SimServer::builder().token_lifetime(Duration::from_secs(3)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut vars = sim.vars();
    vars.insert(kunci::ENV_STORE_KEY.to_owned(), store_key.to_owned());
    let timeout = Duration::from_secs(5);
    let manager = manager(kind, &vars, dir.path(), timeout).await.unwrap();
    let mut texts = String::new();
    let mut handed_out = Vec::new();
    let mut echoes = 0;

    // First token, then calls through refresh-ahead and past expiry.
    let first = manager.token().await.unwrap();
    tracing::info!(?manager, token = ?first, "first token");
    handed_out.push(first.secret().expose_secret().to_owned());
    let mut current = first;
    for _ in 0..36 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        current = manager.token().await.unwrap();
        handed_out.push(current.secret().expose_secret().to_owned());
    }
    // The refresh after a 401 succeeds; then a failed refresh (503 with a body).
    assert!(manager.invalidate(&current));
    let current = manager.token().await.unwrap();
    handed_out.push(current.secret().expose_secret().to_owned());
    // The 503 page quotes what was sent (a gateway echoing the request).
    sim.fail_next(Fault::status(
        503,
        Some("text/plain"),
        format!("Service Unavailable: {}", quote(&sim.configured_secrets())),
    ));
    echoes += 1;
    assert!(manager.invalidate(&current));
    let err = manager.token().await.unwrap_err();
    tracing::warn!(error = ?err, "failed refresh");
    texts.push_str(&describe(&err));
    // A 5xx is no refusal: every provider retries after its back-off.
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the back-off
    let after = manager.token().await.unwrap();
    handed_out.push(after.secret().expose_secret().to_owned());
    tracing::info!(token = ?after, stats = ?manager.stats(), "after the failure");

    // Past expiry with nobody calling: the next call waits for a refresh (a refresh token
    // outlives the 3 s access tokens here).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    match manager.token().await {
        Ok(late) => handed_out.push(late.secret().expose_secret().to_owned()),
        Err(err) => panic!("{kind:?}: {err:?}"),
    }

    // A rejected credential, in a fresh store.
    let (bad_vars, wrong) = sim.rejected_vars();
    let other = tempfile::tempdir().unwrap();
    let rejected = crate::support::manager(kind, &bad_vars, other.path(), timeout)
        .await
        .unwrap();
    let err = rejected.token().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::ReauthenticationRequired,
        "{kind:?}: {err:?}"
    );
    tracing::error!(error = %err, debug = ?err, manager = ?rejected, "rejected");
    texts.push_str(&describe(&err));

    // Servers that echo the submitted secret: a gateway's error page quoting the request, and
    // the provider's own refusal quoting the value (DRF `detail`, OperationOutcome text,
    // `jwt_error` causes, a Cognito message: `Simulated::refusal`) — raw, URL-encoded,
    // form-encoded and JSON-escaped. The credential holds characters that every encoding changes.
    let echoed = format!("ec/ho+ed=cr&ed?x#y%z\"q-{:016x}", fastrand::u64(..));
    let echo_vars = sim.vars_with_credential(&echoed);
    for fault in echo_faults(&sim, &sim.submitted_with(&echoed)) {
        let store = tempfile::tempdir().unwrap();
        let echoing = crate::support::manager(kind, &echo_vars, store.path(), timeout)
            .await
            .unwrap();
        sim.fail_next(fault);
        let err = echoing.token().await.unwrap_err();
        tracing::error!(error = %err, debug = ?err, "a server echoed the secret");
        texts.push_str(&describe(&err));
        echoes += 1;
    }

    // The store files (encrypted with KUNCI_STORE_KEY) hold no secret either.
    for entry in std::fs::read_dir(dir.path())
        .unwrap()
        .chain(std::fs::read_dir(other.path()).unwrap())
    {
        let path = entry.unwrap().path();
        texts.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
    }

    let mut secrets = sim.configured_secrets();
    secrets.push(wrong);
    secrets.push(echoed);
    secrets.extend(sim.issued_tokens());
    secrets.extend(handed_out.iter().cloned());
    let distinct = {
        let mut d = handed_out.clone();
        d.sort();
        d.dedup();
        d.len()
    };
    assert!(
        distinct >= 3,
        "{kind:?}: first, refreshed, after expiry: {distinct}"
    );
    Outcome {
        kind,
        texts,
        secrets,
        handed_out: distinct,
        echoes,
    }
}

/// The forms a server could echo `secret` in: raw, form-encoded (`+` for a space), URL-encoded
/// with upper- and lower-case hex, JSON-escaped (with and without `\/`).
fn encodings(secret: &str) -> Vec<String> {
    let percent = |lower: bool| -> String {
        secret
            .bytes()
            .map(
                |b| match (b.is_ascii_alphanumeric() || b"-._~".contains(&b), lower) {
                    (true, _) => char::from(b).to_string(),
                    (false, false) => format!("%{b:02X}"),
                    (false, true) => format!("%{b:02x}"),
                },
            )
            .collect()
    };
    let json = serde_json::to_string(secret).unwrap();
    let json = json[1..json.len() - 1].to_owned();
    let mut forms = vec![
        secret.to_owned(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        percent(false),
        percent(true),
        json.replace('/', "\\/"),
        json,
    ];
    forms.sort();
    forms.dedup();
    forms
}

/// Every form of every one of `secrets`, as a page would quote them.
fn quote(secrets: &[String]) -> String {
    let forms: Vec<String> = secrets.iter().flat_map(|s| encodings(s)).collect();
    forms.join(" | ")
}

/// Answers that quote every one of `secrets` in every form: a gateway's 502 page, a 400 page,
/// and the provider's own refusal (`Simulated::refusal`) with the secrets in its detail.
fn echo_faults(sim: &Sim, secrets: &[String]) -> Vec<Fault> {
    let forms: Vec<String> = secrets.iter().flat_map(|s| encodings(s)).collect();
    let quoted = quote(secrets);
    let page = format!(
        "502 Bad Gateway: upstream failed for GET /tokens?refresh_token={} | {quoted}",
        forms[0]
    );
    vec![
        Fault::status(502, Some("text/plain"), page.clone()),
        Fault::status(400, Some("text/plain"), page),
        sim.refusal(&format!("credential {quoted} is not valid")),
    ]
}

#[test]
fn no_secret_in_logs_errors_or_store_files() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    // Global, so the refresh tasks on the runtime's workers and the store's blocking threads
    // log into the capture too (no other test in this binary installs a subscriber).
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let store_key = Cipher::generate_key_base64().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Concurrent on this thread, not spawned: `kunci::from_lookup`'s future is not `Send`
    // (see the report); the managers' refreshes still run on the workers.
    let local = tokio::task::LocalSet::new();
    let outcomes = runtime.block_on(local.run_until(async {
        let flows: Vec<_> = ProviderKind::ALL
            .iter()
            .map(|&kind| {
                let store_key = store_key.clone();
                tokio::task::spawn_local(async move { flows(kind, &store_key).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for flow in flows {
            outcomes.push(flow.await.unwrap());
        }
        outcomes
    }));
    assert_eq!(
        outcomes.len(),
        ProviderKind::WORKSPACE.len(),
        "every provider"
    );
    drop(runtime);
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the capture works"
    );
    let mut searched = 0;
    for outcome in &outcomes {
        let mut secrets = outcome.secrets.clone();
        secrets.push(store_key.clone());
        secrets.sort();
        secrets.dedup();
        for secret in &secrets {
            assert!(
                secret.len() >= 8,
                "{:?}: a secret too short to search for",
                outcome.kind
            );
            for (what, text) in [("logs", &logs), ("errors or store files", &outcome.texts)] {
                for form in encodings(secret) {
                    assert!(
                        !text.contains(form.as_str()),
                        "{:?}: a secret in the {what}: {form}",
                        outcome.kind
                    );
                }
                // Nor a JWT's signature on its own.
                if let Some(signature) = secret
                    .rsplit('.')
                    .next()
                    .filter(|s| s.len() >= 16 && secret.contains('.'))
                {
                    assert!(
                        !text.contains(signature),
                        "{:?}: a signature in the {what}",
                        outcome.kind
                    );
                }
            }
            searched += 1;
        }
        assert_eq!(outcome.echoes, 4, "{:?}", outcome.kind);
        assert!(
            outcome.texts.contains("[redacted]"),
            "{:?}: the echoed secrets reached the errors, scrubbed",
            outcome.kind
        );
        eprintln!(
            "{:?}: {} distinct tokens handed out; {} answers echoing secrets; {} secrets searched for, each in its encodings",
            outcome.kind,
            outcome.handed_out,
            outcome.echoes,
            secrets.len()
        );
    }
    eprintln!(
        "{} bytes of TRACE logs, {searched} secret searches, none found",
        logs.len()
    );
}
