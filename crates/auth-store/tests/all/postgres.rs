//! The PostgreSQL store against a real server. `KUNCI_TEST_POSTGRES_URL` names it; when it is
//! unset the tests print why and return, when it is set and the server cannot be reached they
//! fail. Every test works in a schema of its own (`kunci_test_<random>`), dropped at the end.
//! The outage and TLS tests start PostgreSQL servers of their own (`initdb` + `pg_ctl`, as
//! the `postgres` user when run as root).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use auth_core::{
    ErrorKind, StoreError, StoreKey, StoreLock as _, TokenStore as _,
    store::conformance::{self, Expectations},
};
use auth_store::{Cipher, PostgresOptions, PostgresStore};
use futures_util::StreamExt as _;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::{
    servers::{PgCluster, free_port, is_root},
    support::{assert_unreachable_hides_the_password, entry, secret_of},
    waiters::{
        a_release_wakes_a_waiter, next_note, spawn_waiter, waiters_are_woken_by_the_release_note,
        woken,
    },
};

fn pg_url(test: &str) -> Option<String> {
    match std::env::var("KUNCI_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!(
                "{test}: skipped, KUNCI_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A plain client for looking at what the store wrote.
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("KUNCI_TEST_POSTGRES_URL is set but cannot be used: {e}"));
    tokio::spawn(connection);
    client
}

/// A schema no other test or run shares; the store's tables go in it.
struct Scratch {
    url: String,
    schema: String,
}

impl Scratch {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            schema: format!("kunci_test_{:016x}", fastrand::u64(..)),
        }
    }

    /// The table name to configure (`<schema>.tokens`).
    fn table(&self) -> String {
        format!("{}.tokens", self.schema)
    }

    fn options(&self) -> PostgresOptions {
        PostgresOptions::default().table(self.table())
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, self.options())
            .await
            .unwrap_or_else(|e| panic!("KUNCI_TEST_POSTGRES_URL is set but cannot be used: {e}"))
    }

    async fn drop_schema(self) {
        raw(&self.url)
            .await
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}

/// `url` with `name=value` added to its query.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}{name}={value}")
}

fn key() -> StoreKey {
    StoreKey::new("sehatmu:client-1").unwrap()
}

/// Receives the payloads of notifications on `channel` (while the client is kept).
async fn listen_raw(
    url: &str,
    channel: &str,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(|cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message
                && tx.send(n.payload().to_owned()).is_err()
            {
                return;
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .unwrap();
    (client, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_meets_the_store_contract() {
    let Some(url) = pg_url("the_postgres_store_meets_the_store_contract") else {
        return;
    };
    // Each handle is its own pool, as another process would have; once plain, once encrypted.
    let cipher = Cipher::from_key_bytes(&[13u8; 32]).unwrap();
    for cipher in [None, Some(cipher)] {
        let scratch = Scratch::new(&url);
        conformance::run(
            || {
                let mut options = scratch.options();
                if let Some(c) = &cipher {
                    options = options.cipher(c.clone());
                }
                let url = url.clone();
                async move { PostgresStore::connect(&url, options).await.unwrap() }
            },
            &Expectations::lock_expires_after_ttl(),
        )
        .await;
        scratch.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_together_create_the_schema_once_and_a_newer_schema_is_refused() {
    let Some(url) =
        pg_url("processes_starting_together_create_the_schema_once_and_a_newer_schema_is_refused")
    else {
        return;
    };
    let scratch = Scratch::new(&url);
    // Eight stores on a database without the tables, all at once: the advisory lock lets one
    // create them and the others find them made.
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let (url, options) = (url.clone(), scratch.options());
            tokio::spawn(async move { PostgresStore::connect(&url, options).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(
            start
                .await
                .unwrap()
                .expect("every concurrent start succeeds"),
        );
    }
    let client = raw(&url).await;
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM {}", stores[0].schema_table()),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=PostgresStore::SCHEMA_VERSION).collect::<Vec<_>>(),
        "every migration recorded once"
    );
    assert_eq!(
        stores[0].entries_table(),
        format!("\"{}\".\"tokens\"", scratch.schema)
    );
    // The tables work, and starting again changes nothing.
    stores[3].save(&key(), &entry("x", None), 0).await.unwrap();
    let again = scratch.store().await;
    assert_eq!(secret_of(&again.load(&key()).await.unwrap().unwrap()), "x");

    // A schema written by a newer kunci is refused with a clear error, not used.
    client
        .execute(
            &format!(
                "INSERT INTO {} (version) VALUES ($1)",
                stores[0].schema_table()
            ),
            &[&(PostgresStore::SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let err = PostgresStore::connect(&url, scratch.options())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Configuration { message } if message.contains("newer than this kunci") && message.contains("upgrade kunci")),
        "{err}"
    );
    scratch.drop_schema().await;
}

#[tokio::test]
async fn encrypted_rows_hold_no_secret_and_a_wrong_key_is_a_clear_error() {
    let Some(url) = pg_url("encrypted_rows_hold_no_secret_and_a_wrong_key_is_a_clear_error") else {
        return;
    };
    let scratch = Scratch::new(&url);
    let cipher = Cipher::from_key_bytes(&[13u8; 32]).unwrap();
    let sealed = PostgresStore::connect(&url, scratch.options().cipher(cipher))
        .await
        .unwrap();
    sealed
        .save(&key(), &entry("s3cr3t-sealed", Some("r3fresh")), 0)
        .await
        .unwrap();
    let row = raw(&url)
        .await
        .query_one(
            &format!(
                "SELECT version, entry FROM {} WHERE key = $1",
                sealed.entries_table()
            ),
            &[&key().as_str()],
        )
        .await
        .unwrap();
    let (version, bytes): (i64, Vec<u8>) = (row.get(0), row.get(1));
    assert_eq!(version, 1);
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        !text.contains("s3cr3t") && !text.contains("r3fresh"),
        "{text}"
    );
    assert!(text.contains(r#""cipher":"xchacha20poly1305""#), "{text}");
    assert_eq!(
        secret_of(&sealed.load(&key()).await.unwrap().unwrap()),
        "s3cr3t-sealed"
    );
    let wrong = PostgresStore::connect(
        &url,
        scratch
            .options()
            .cipher(Cipher::from_key_bytes(&[14u8; 32]).unwrap()),
    )
    .await
    .unwrap();
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
    scratch.drop_schema().await;
}

#[tokio::test]
async fn the_lease_is_timed_by_the_servers_clock_and_carries_holder_and_fence() {
    let Some(url) = pg_url("the_lease_is_timed_by_the_servers_clock_and_carries_holder_and_fence")
    else {
        return;
    };
    let scratch = Scratch::new(&url);
    let store = scratch.store().await;
    let client = raw(&url).await;
    let lease_row = |store: &PostgresStore| {
        format!(
            "SELECT holder, fence, extract(epoch FROM expires_at - now())::float8 FROM {} WHERE key = $1",
            store.lease_table()
        )
    };
    let read =
        |row: tokio_postgres::Row| -> (String, i64, f64) { (row.get(0), row.get(1), row.get(2)) };

    let first = store.lease(&key(), Duration::from_secs(30)).await.unwrap();
    let (holder, fence, remaining) = read(
        client
            .query_one(&lease_row(&store), &[&key().as_str()])
            .await
            .unwrap(),
    );
    assert_eq!(holder, first.holder());
    assert_eq!(
        fence,
        i64::try_from(first.fence()).unwrap(),
        "the row carries the fence"
    );
    assert!(
        holder.starts_with(&format!("{}-", std::process::id())),
        "{holder}"
    );
    // The expiry is the server's now() + TTL: the client's clock takes no part.
    assert!(
        remaining > 20.0 && remaining <= 30.0,
        "remaining {remaining}"
    );

    assert!(first.renew(Duration::from_secs(90)).await.unwrap());
    let (_, _, remaining) = read(
        client
            .query_one(&lease_row(&store), &[&key().as_str()])
            .await
            .unwrap(),
    );
    assert!(
        remaining > 80.0 && remaining <= 90.0,
        "remaining {remaining}"
    );

    let fence_before = first.fence();
    Box::new(first).release().await.unwrap();
    let second = store.lease(&key(), Duration::from_secs(30)).await.unwrap();
    assert!(
        second.fence() > fence_before,
        "every taking gets a larger fence"
    );
    Box::new(second).release().await.unwrap();

    // A holder whose lease ran out cannot renew it: someone else may hold it now.
    let short = store
        .lease(&key(), Duration::from_millis(200))
        .await
        .unwrap();
    let next = tokio::time::timeout(
        Duration::from_secs(30),
        store.lease(&key(), Duration::from_secs(30)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!short.renew(Duration::from_secs(30)).await.unwrap());
    assert!(next.fence() > short.fence());
    Box::new(next).release().await.unwrap();
    drop(short);
    scratch.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_woken_by_notify_when_the_holder_releases_and_saves_notify_too() {
    let Some(url) =
        pg_url("waiters_are_woken_by_notify_when_the_holder_releases_and_saves_notify_too")
    else {
        return;
    };
    let scratch = Scratch::new(&url);
    // Polling every hour: a waiter that gets the lock in time was woken by the notification.
    let options = scratch.options().lock_poll_max(Duration::from_secs(3600));
    let holder = PostgresStore::connect(&url, options.clone()).await.unwrap();
    let waiting = PostgresStore::connect(&url, options).await.unwrap();
    let (_listening, mut notes) = listen_raw(&url, &scratch.table()).await;

    let second = waiters_are_woken_by_the_release_note(&holder, &waiting, &key(), &mut notes).await;
    second.release().await.unwrap();
    assert_eq!(next_note(&mut notes).await, format!("r:{}", key()));

    // A refused save notifies nobody.
    let _ = holder.save(&key(), &entry("y", None), 0).await.unwrap_err();
    let _ = holder.delete(&key()).await;
    holder.save(&key(), &entry("z", None), 0).await.unwrap();
    assert_eq!(next_note(&mut notes).await, format!("s:{}", key()));
    assert!(
        notes.try_recv().is_err(),
        "one notification per save that landed"
    );
    scratch.drop_schema().await;
}

#[tokio::test]
async fn a_lock_dropped_without_release_is_freed_in_the_background() {
    let Some(url) = pg_url("a_lock_dropped_without_release_is_freed_in_the_background") else {
        return;
    };
    let scratch = Scratch::new(&url);
    let options = scratch.options().lock_poll_max(Duration::from_secs(3600));
    let store = PostgresStore::connect(&url, options).await.unwrap();
    // A refresh cancelled while it held an hour's lease must not block the fleet for an hour.
    let lock = store.lock(&key(), Duration::from_secs(3600)).await.unwrap();
    drop(lock);
    let next = tokio::time::timeout(
        Duration::from_secs(30),
        store.lock(&key(), Duration::from_secs(60)),
    )
    .await
    .expect("the dropped lease was released")
    .unwrap();
    next.release().await.unwrap();
    scratch.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_are_replaced_and_the_listener_reconnects() {
    let Some(url) = pg_url("terminated_backends_are_replaced_and_the_listener_reconnects") else {
        return;
    };
    let scratch = Scratch::new(&url);
    // A name of its own, so only this test's connections are terminated.
    let name = format!("kunci_test_{:08x}", fastrand::u32(..));
    let other_name = format!("{name}_other");
    let options = scratch.options().lock_poll_max(Duration::from_secs(3600));
    let store = PostgresStore::connect(
        &with_param(&url, "application_name", &name),
        options.clone(),
    )
    .await
    .unwrap();
    let other = PostgresStore::connect(&with_param(&url, "application_name", &other_name), options)
        .await
        .unwrap();
    store.save(&key(), &entry("kept", None), 0).await.unwrap();
    // Start the listener (a lock that has to wait starts it) and see it work once.
    a_release_wakes_a_waiter(&store, &other, &key(), Duration::from_secs(3600)).await;

    let client = raw(&url).await;
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN ($1, $2)",
            &[&name, &other_name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        killed >= 3,
        "pools and the listener were terminated ({killed})"
    );

    // The pool replaces its dead connections: at worst the first call after the kill fails.
    let mut rounds = 0;
    let loaded = loop {
        match store.load(&key()).await {
            Ok(entry) => break entry,
            Err(e) => assert!(matches!(e, StoreError::Unavailable { .. }), "{e}"),
        }
        rounds += 1;
        assert!(rounds < 100, "the pool reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(secret_of(&loaded.unwrap()), "kept");

    // The listener reconnects by itself: a waiter polling hourly is woken by the release.
    let mut rounds = 0;
    let held = loop {
        match store.lock(&key(), Duration::from_secs(3600)).await {
            Ok(lock) => break lock,
            Err(e) => assert!(matches!(e, StoreError::Unavailable { .. }), "{e}"),
        }
        rounds += 1;
        assert!(rounds < 100, "the pool reconnected");
    };
    let waiter = {
        let other = other.clone();
        tokio::spawn(async move {
            loop {
                match other.lock(&key(), Duration::from_secs(60)).await {
                    Ok(lock) => return lock,
                    Err(StoreError::Unavailable { .. }) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    // Wait until the waiter's listener listens again, then release: only its notification
    // can wake a waiter that polls hourly.
    wait_for_listener(&client, &other_name).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    held.release().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the reconnected listener delivered the release")
        .unwrap()
        .release()
        .await
        .unwrap();
    scratch.drop_schema().await;
}

/// Waits until the store connecting as `application_name` listens (its last statement was
/// `LISTEN`: the check must come within the listener's ping interval).
async fn wait_for_listener(client: &tokio_postgres::Client, application_name: &str) {
    let mut rounds = 0;
    loop {
        let listening: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'LISTEN%'",
                &[&application_name],
            )
            .await
            .unwrap()
            .get(0);
        if listening >= 1 {
            return;
        }
        rounds += 1;
        assert!(
            rounds < 400,
            "the listener of `{application_name}` reconnected"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_password_never_shows_in_describe_or_errors() {
    let Some(url) = pg_url("a_password_never_shows_in_describe_or_errors") else {
        return;
    };
    // Nothing listens on this port: the connection fails, and the error names no password.
    let port = free_port("127.0.0.1");
    let bad = format!("postgres://kunci:hunter2@127.0.0.1:{port}/db?password=hunter2");
    let err = PostgresStore::connect(
        &bad,
        PostgresOptions::default().timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert_unreachable_hides_the_password(&err);

    // The test server trusts every password: a store with one describes itself without it.
    let scratch = Scratch::new(&url);
    let with_password = url.replacen("://", "://postgres:hunter2@", 1);
    let with_password = if url.contains('@') {
        // The URL names a user already: put the password beside it.
        let (scheme, rest) = url.split_once("://").unwrap();
        let (user, host) = rest.split_once('@').unwrap();
        format!(
            "{scheme}://{}:hunter2@{host}",
            user.split(':').next().unwrap()
        )
    } else {
        with_password
    };
    let store = PostgresStore::connect(&with_password, scratch.options())
        .await
        .unwrap();
    let shown = format!("{} {store:?}", store.describe());
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("[redacted]@"), "{shown}");
    scratch.drop_schema().await;
}

#[tokio::test]
async fn a_missing_database_or_a_refused_privilege_is_a_configuration_error() {
    let Some(url) = pg_url("a_missing_database_or_a_refused_privilege_is_a_configuration_error")
    else {
        return;
    };
    let client = raw(&url).await;
    // A database that does not exist: fixing the URL is the only cure.
    let missing = {
        let (base, query) = url
            .split_once('?')
            .map_or((url.as_str(), ""), |(b, q)| (b, q));
        let (server, _db) = base.rsplit_once('/').unwrap();
        let db = format!("kunci_missing_{:08x}", fastrand::u32(..));
        if query.is_empty() {
            format!("{server}/{db}")
        } else {
            format!("{server}/{db}?{query}")
        }
    };
    let err = PostgresStore::connect(&missing, PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Configuration { message } if message.contains("3D000")),
        "{err}"
    );
    let core: auth_core::Error = err.into();
    assert_eq!(core.kind(), ErrorKind::Configuration);

    // A role that may not create the store's tables.
    let role = format!("kunci_weak_{:08x}", fastrand::u32(..));
    let scratch = Scratch::new(&url);
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; CREATE SCHEMA {schema}; REVOKE ALL ON SCHEMA {schema} FROM PUBLIC",
            schema = scratch.schema
        ))
        .await
        .unwrap();
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let weak = format!("{scheme}://{role}@{host}");
    let err = PostgresStore::connect(&weak, scratch.options())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Configuration { message } if message.contains("42501")),
        "{err}"
    );
    scratch.drop_schema().await;
    client
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
}

fn output(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_the_valid_token_served_and_ends_with_resumption() {
    if pg_url("an_outage_keeps_the_valid_token_served_and_ends_with_resumption").is_none() {
        return;
    }
    // PostgreSQL is configured for these tests: its server programs must be there too.
    let mut server = PgCluster::start("127.0.0.1", None)
        .expect("the outage and TLS tests need PostgreSQL's initdb and pg_ctl installed");
    let url = server.url();
    let options = PostgresOptions::default()
        .timeout(Duration::from_millis(500))
        .lock_poll_max(Duration::from_secs(3600));
    let store = PostgresStore::connect(&url, options.clone()).await.unwrap();

    // The listener is started (a lock that waits starts it) before the outage.
    let other = PostgresStore::connect(
        &with_param(&url, "application_name", "kunci_other"),
        options.clone(),
    )
    .await
    .unwrap();
    a_release_wakes_a_waiter(&store, &other, &key(), Duration::from_secs(60)).await;

    // The store contract's outage check; the server comes back with its data.
    conformance::outage_keeps_the_valid_token_served(store.clone(), other.clone(), |running| {
        if running {
            server.up();
        } else {
            server.crash();
        }
    })
    .await;

    // The listeners reconnected by themselves: a waiter polling hourly is woken by a release.
    let mut rounds = 0;
    let held = loop {
        match store.lock(&key(), Duration::from_secs(60)).await {
            Ok(lock) => break lock,
            Err(_) => {
                rounds += 1;
                assert!(rounds < 100, "the lock is reachable again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let waiter = spawn_waiter(&other, &key());
    wait_for_listener(&raw(&url).await, "kunci_other").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    held.release().await.unwrap();
    woken(waiter, "the reconnected listener delivered the release")
        .await
        .release()
        .await
        .unwrap();
}

/// Writes a CA and a server certificate for 127.0.0.1 signed by it, with openssl.
fn certificates(server: &PgCluster) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = server.path("ca.key");
    let ca = server.path("ca.pem");
    let key = server.path("server.key");
    let csr = server.path("server.csr");
    let cert = server.path("server.pem");
    let ext = server.path("server.ext");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    output(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args(["-days", "2", "-subj", "/CN=kunci test CA"])
            .args(["-keyout", &s(&ca_key), "-out", &s(&ca)]),
    );
    output(Command::new("openssl").arg("req").args(ec).args([
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
    ]));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    output(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&cert),
    ]));
    if is_root() {
        let uid: u32 = output(Command::new("id").args(["-u", "postgres"]))
            .parse()
            .unwrap();
        for path in [&key, &cert] {
            std::os::unix::fs::chown(path, Some(uid), None).unwrap();
        }
    }
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (ca, cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_against_sslrootcert_and_never_downgraded() {
    if pg_url("tls_is_verified_against_sslrootcert_and_never_downgraded").is_none() {
        return;
    }
    let mut server = PgCluster::init("127.0.0.1", None)
        .expect("the outage and TLS tests need PostgreSQL's initdb and pg_ctl installed");
    let (ca, cert, key_file) = certificates(&server);
    server.configure(&format!(
        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'",
        cert.display(),
        key_file.display()
    ));
    server.up();
    let url = format!(
        "{}?sslmode=require&sslrootcert={}&application_name=kunci_tls_test",
        server.url(),
        ca.display()
    );
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    store
        .save(&key(), &entry("over-tls", None), 0)
        .await
        .unwrap();
    assert_eq!(
        secret_of(&store.load(&key()).await.unwrap().unwrap()),
        "over-tls"
    );
    let encrypted: i64 = raw(&server.url())
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name = 'kunci_tls_test' AND ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "the store's connection uses TLS");

    // The same server without naming its CA: the platform's roots do not know it, and the
    // connection is refused rather than made in plain text.
    let unverified = format!("{}?sslmode=require", server.url());
    let err = PostgresStore::connect(&unverified, PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Configuration { message } if message.contains("TLS certificate was refused")),
        "{err}"
    );
    // `prefer` means TLS when offered — and then verified, with no fallback either.
    let prefer = format!("{}?sslmode=prefer", server.url());
    let err = PostgresStore::connect(&prefer, PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Configuration { .. }), "{err}");
}
