//! The Redis store against a real server. `KUNCI_TEST_REDIS_URL` names it; when it is unset
//! the tests print why and return, when it is set and the server cannot be reached they fail.

use std::{
    process::{Child, Command, Stdio},
    sync::atomic::Ordering,
    time::Duration,
};

use auth_core::{
    StoreError, StoreKey, TokenManager, TokenStore as _,
    store::conformance::{self, Expectations},
};
use auth_store::{Cipher, RedisOptions, RedisStore};
use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use secrecy::ExposeSecret as _;

use crate::{
    servers::free_port,
    support::{assert_unreachable_hides_the_password, counting_source, entry, secret_of},
    waiters::waiters_are_woken_by_the_release_note,
};

fn redis_url(test: &str) -> Option<String> {
    match std::env::var("KUNCI_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!(
                "{test}: skipped, KUNCI_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379)"
            );
            None
        }
    }
}

/// A prefix no other test or run shares.
fn prefix() -> String {
    format!("kunci-test-{:016x}:", fastrand::u64(..))
}

async fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::connect(url, RedisOptions::default().prefix(prefix))
        .await
        .unwrap_or_else(|e| panic!("KUNCI_TEST_REDIS_URL is set but Redis cannot be used: {e}"))
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn cleanup(url: &str, prefix: &str) {
    let mut conn = raw(url).await;
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    for key in keys {
        let _: () = conn.del(key).await.unwrap();
    }
}

fn key() -> StoreKey {
    StoreKey::new("sehatmu:client-1").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_meets_the_store_contract() {
    let Some(url) = redis_url("the_redis_store_meets_the_store_contract") else {
        return;
    };
    // Each handle is its own connection, as another process would have; once plain, once
    // encrypted.
    let cipher = Cipher::from_key_bytes(&[11u8; 32]).unwrap();
    for cipher in [None, Some(cipher)] {
        let prefix = prefix();
        conformance::run(
            || {
                let mut options = RedisOptions::default().prefix(&prefix);
                if let Some(c) = &cipher {
                    options = options.cipher(c.clone());
                }
                let url = url.clone();
                async move { RedisStore::connect(&url, options).await.unwrap() }
            },
            &Expectations::lock_expires_after_ttl(),
        )
        .await;
        cleanup(&url, &prefix).await;
    }
}

#[tokio::test]
async fn encrypted_values_in_redis_hold_no_secret_and_a_wrong_key_is_a_clear_error() {
    let Some(url) =
        redis_url("encrypted_values_in_redis_hold_no_secret_and_a_wrong_key_is_a_clear_error")
    else {
        return;
    };
    let prefix = prefix();
    let cipher = Cipher::from_key_bytes(&[11u8; 32]).unwrap();
    let sealed = RedisStore::connect(&url, RedisOptions::default().prefix(&prefix).cipher(cipher))
        .await
        .unwrap();
    sealed
        .save(&key(), &entry("s3cr3t-sealed", Some("r3fresh")), 0)
        .await
        .unwrap();
    let mut conn = raw(&url).await;
    let value: String = conn.hget(sealed.entry_key(&key()), "e").await.unwrap();
    assert!(
        !value.contains("s3cr3t") && !value.contains("r3fresh"),
        "{value}"
    );
    let version: u64 = conn.hget(sealed.entry_key(&key()), "v").await.unwrap();
    assert_eq!(
        version, 1,
        "the version sits beside the sealed entry for the CAS script"
    );
    assert_eq!(
        secret_of(&sealed.load(&key()).await.unwrap().unwrap()),
        "s3cr3t-sealed"
    );
    let wrong = RedisOptions::default()
        .prefix(&prefix)
        .cipher(Cipher::from_key_bytes(&[12u8; 32]).unwrap());
    let wrong = RedisStore::connect(&url, wrong).await.unwrap();
    let err = wrong.load(&key()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { message, .. } if message.contains("cannot decrypt: wrong key or tampered entry")),
        "{err}"
    );
    assert!(
        sealed.describe().contains("encrypted"),
        "{}",
        sealed.describe()
    );
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn entries_expire_after_their_token_but_refresh_material_never() {
    let Some(url) = redis_url("entries_expire_after_their_token_but_refresh_material_never") else {
        return;
    };
    let prefix = prefix();
    let margin = Duration::from_secs(600);
    let store = RedisStore::connect(
        &url,
        RedisOptions::default().prefix(&prefix).ttl_margin(margin),
    )
    .await
    .unwrap();
    let mut conn = raw(&url).await;
    let clock = auth_core::SystemClock::new();
    let now = auth_core::Clock::now(&clock);

    // A token valid for 2 minutes, no refresh material: TTL = 2 min + margin.
    let token = auth_core::Token::bearer(
        "abc".to_owned().into(),
        now,
        Some(now + Duration::from_secs(120)),
    )
    .unwrap();
    store
        .save(
            &key(),
            &auth_core::StoredEntry::with_token(token.clone()),
            0,
        )
        .await
        .unwrap();
    let pttl: i64 = conn.pttl(store.entry_key(&key())).await.unwrap();
    let expected = (120 + 600) * 1000;
    assert!(pttl > expected - 60_000 && pttl <= expected, "pttl {pttl}");

    // The same entry with refresh material: no TTL at all.
    let mut with_refresh = auth_core::StoredEntry::with_token(token);
    with_refresh.refresh = Some("r3fresh".into());
    store.save(&key(), &with_refresh, 1).await.unwrap();
    let pttl: i64 = conn.pttl(store.entry_key(&key())).await.unwrap();
    assert_eq!(pttl, -1, "refresh material never expires");

    // A permanent token: no TTL either.
    let permanent = auth_core::Token::bearer("perm".to_owned().into(), now, None).unwrap();
    store
        .save(&key(), &auth_core::StoredEntry::with_token(permanent), 2)
        .await
        .unwrap();
    let pttl: i64 = conn.pttl(store.entry_key(&key())).await.unwrap();
    assert_eq!(pttl, -1);
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn the_lock_is_a_key_with_the_ttl_asked_for_and_a_manager_outlives_a_dead_holder() {
    let Some(url) =
        redis_url("the_lock_is_a_key_with_the_ttl_asked_for_and_a_manager_outlives_a_dead_holder")
    else {
        return;
    };
    let prefix = prefix();
    let store = store(&url, &prefix).await;
    let mut conn = raw(&url).await;

    let held = store.lock(&key(), Duration::from_secs(30)).await.unwrap();
    let pttl: i64 = conn.pttl(store.lock_key(&key())).await.unwrap();
    assert!(pttl > 20_000 && pttl <= 30_000, "pttl {pttl}");
    held.release().await.unwrap();
    let exists: bool = conn.exists(store.lock_key(&key())).await.unwrap();
    assert!(!exists, "release deletes the lock");

    // A manager whose lock is held by a dead process gets its token once the lock expires.
    let _dead = store
        .lock(&key(), Duration::from_millis(500))
        .await
        .unwrap();
    let (source, calls) =
        counting_source(Duration::ZERO, Duration::ZERO, Duration::from_secs(3600));
    let manager = TokenManager::builder(source)
        .store(store.clone())
        .key(key())
        .build()
        .unwrap();
    assert_eq!(
        manager.token().await.unwrap().secret().expose_secret(),
        "tok-1"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    cleanup(&url, &prefix).await;
}

/// A redis-server of the test's own, on a free port.
struct OwnServer {
    child: Option<Child>,
}

impl OwnServer {
    fn start(port: u16) -> Self {
        Self::start_with(port, &["--port", &port.to_string()])
    }

    /// A server with `args` (which make it listen on `port`).
    fn start_with(port: u16, args: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args(args)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the outage and TLS tests");
        let server = Self { child: Some(child) };
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not listen on {port}");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The store contract's outage check ([`conformance::outage_keeps_the_valid_token_served`])
/// against a Redis of the test's own, which comes back empty: it kept nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_the_valid_token_served_and_ends_with_resumption() {
    if redis_url("an_outage_keeps_the_valid_token_served_and_ends_with_resumption").is_none() {
        return;
    }
    let port = free_port("127.0.0.1");
    let mut server = Some(OwnServer::start(port));
    let url = format!("redis://127.0.0.1:{port}");
    let options = RedisOptions::default().timeout(Duration::from_millis(500));
    let store = RedisStore::connect(&url, options.clone()).await.unwrap();
    let other = RedisStore::connect(&url, options).await.unwrap();
    conformance::outage_keeps_the_valid_token_served(store, other, |running| {
        server = running.then(|| OwnServer::start(port));
    })
    .await;
}

#[tokio::test]
async fn a_password_never_shows_in_describe_or_errors() {
    if redis_url("a_password_never_shows_in_describe_or_errors").is_none() {
        return;
    }
    // Nothing listens on this port: the connection fails, and the error names no password.
    let port = free_port("127.0.0.1");
    let url = format!("redis://kunci:hunter2@127.0.0.1:{port}/0");
    let err = RedisStore::connect(
        &url,
        RedisOptions::default().timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert_unreachable_hides_the_password(&err);
}

/// A certificate authority made for one test and a server certificate it signed for
/// `127.0.0.1`, written as PEM files into a temporary directory.
struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kunci test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &*ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca_is_refused_unless_the_ca_is_supplied() {
    if redis_url("rediss_with_a_private_ca_is_refused_unless_the_ca_is_supplied").is_none() {
        return;
    }
    let pki = TestPki::new();
    let port = free_port("127.0.0.1");
    let _server = OwnServer::start_with(
        port,
        &[
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &pki.path("server.pem"),
            "--tls-key-file",
            &pki.path("server.key"),
            "--tls-ca-cert-file",
            &pki.path("ca.pem"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let url = format!("rediss://:hunter2-unused@127.0.0.1:{port}");
    let options = || RedisOptions::default().prefix(prefix());

    // The platform's roots do not know the test CA: refused, saying how to supply it.
    let err = RedisStore::connect(&url, options()).await.unwrap_err();
    let printed = format!("{err} {err:?}");
    assert!(matches!(err, StoreError::Configuration { .. }), "{printed}");
    assert!(
        printed.contains("TLS certificate") && printed.contains("KUNCI_STORE_CA"),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"), "{printed}");

    // Verification cannot be turned off from the URL.
    let err = RedisStore::connect(&format!("{url}/#insecure"), options())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Configuration { .. }), "{err}");

    // A CA file without a certificate, or for a plain `redis://` URL, is a configuration error.
    let not_pem = pki.dir.path().join("server.key");
    let err = RedisStore::connect(&url, options().tls_ca_file(&not_pem))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Configuration { .. }), "{err}");
    let err = RedisStore::connect(
        &format!("redis://127.0.0.1:{port}"),
        options().tls_ca_file(pki.path("ca.pem")),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Configuration { .. }), "{err}");

    // With the CA supplied, the store works over TLS (the server has no password: `AUTH` is
    // not sent when the URL has none).
    let url = format!("rediss://127.0.0.1:{port}");
    let store = RedisStore::connect(&url, options().tls_ca_file(pki.path("ca.pem")))
        .await
        .unwrap();
    let saved = entry("s3cr3t", Some("r3fresh")); // refresh material: no TTL
    assert_eq!(store.save(&key(), &saved, 0).await.unwrap(), 1);
    assert_eq!(
        secret_of(&store.load(&key()).await.unwrap().unwrap()),
        "s3cr3t"
    );
}

#[tokio::test]
async fn versions_are_compared_and_counted_exactly_past_two_to_the_53() {
    let Some(url) = redis_url("versions_are_compared_and_counted_exactly_past_two_to_the_53")
    else {
        return;
    };
    let prefix = prefix();
    let store = store(&url, &prefix).await;
    let entry_key = store.entry_key(&key());
    let mut conn = raw(&url).await;
    // 2^53 + 1: a Lua number (a double) cannot tell it from 2^53.
    let _: () = conn
        .hset(&entry_key, "v", "9007199254740993")
        .await
        .unwrap();
    // Refresh material: the entry gets no TTL.
    let saved = entry("s3cr3t", Some("r3fresh"));
    let err = store
        .save(&key(), &saved, 9_007_199_254_740_992)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                found: 9_007_199_254_740_993,
                ..
            }
        ),
        "{err:?}"
    );
    let version = store
        .save(&key(), &saved, 9_007_199_254_740_993)
        .await
        .unwrap();
    assert_eq!(version, 9_007_199_254_740_994);
    let stored: String = conn.hget(&entry_key, "v").await.unwrap();
    assert_eq!(stored, "9007199254740994");
    // The largest versions are refused, never wrapped around.
    for expected in [i64::MAX as u64, u64::MAX] {
        let err = store
            .save(&key(), &entry("s3cr3t", None), expected)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_woken_by_pub_sub_when_the_holder_releases_and_saves_publish_too() {
    let Some(url) = redis_url("waiters_are_woken_by_pub_sub") else {
        return;
    };
    let prefix = prefix();
    // The fallback poll is hourly: a waiter that gets the lock in time was woken by pub/sub.
    let options = RedisOptions::default()
        .prefix(&prefix)
        .lock_poll_fallback(Duration::from_secs(3600));
    let holder = RedisStore::connect(&url, options.clone()).await.unwrap();
    let waiting = RedisStore::connect(&url, options).await.unwrap();
    let mut pubsub = redis::Client::open(url.as_str())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    pubsub.subscribe(format!("{prefix}events")).await.unwrap();
    // The payloads of the messages published on the channel.
    let (published, mut notes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            if published.send(message.get_payload().unwrap()).is_err() {
                return;
            }
        }
    });

    let second = waiters_are_woken_by_the_release_note(&holder, &waiting, &key(), &mut notes).await;
    second.release().await.unwrap();
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_acquisition_whose_reply_is_lost_is_checked_and_released() {
    let Some(url) = redis_url("a_lock_acquisition_whose_reply_is_lost_is_checked_and_released")
    else {
        return;
    };
    let prefix = prefix();
    let store = RedisStore::connect(
        &url,
        RedisOptions::default()
            .prefix(&prefix)
            .timeout(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    let mut admin = raw(&url).await;
    // Writes wait 300 ms on the server: the `SET NX` runs after its caller gave up on the reply.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(300)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .unwrap();
    let err = store
        .lock(&key(), Duration::from_secs(600))
        .await
        .expect_err("the reply did not come in time");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held: bool = admin.exists(store.lock_key(&key())).await.unwrap();
    assert!(
        !held,
        "the lock the lost reply took was released, not left for its 600 s TTL"
    );
    cleanup(&url, &prefix).await;
}
