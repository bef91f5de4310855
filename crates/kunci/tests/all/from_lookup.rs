//! Building managers from variables, as `kunci::from_env` does.

use std::collections::HashMap;

use auth_testkit::stamps::StampsSim;
use kunci::{ErrorKind, HttpConfig, ProviderKind};

#[tokio::test]
async fn a_provider_and_its_store_come_from_variables() {
    let sim = StampsSim::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("STAMPS_BASE_URL", sim.base_url()),
        ("STAMPS_TOKEN", sim.auth_token().to_owned()),
        ("STAMPS_MERCHANT_ID", sim.merchant_id().to_string()),
        ("KUNCI_STORE", dir.path().display().to_string()),
    ]);
    let manager = kunci::from_lookup(
        ProviderKind::Stamps,
        &|n| vars.get(n).cloned(),
        HttpConfig::default(),
    )
    .await
    .unwrap();
    let token = manager.token().await.unwrap();
    assert_eq!(token.scheme(), &kunci::AuthScheme::Bearer);
    assert_eq!(sim.request_count(), 1);
    assert!(
        manager
            .store()
            .describe()
            .contains(&dir.path().display().to_string())
    );

    // a second manager over the same file store starts from the stored token: no request
    let again = kunci::from_lookup(
        ProviderKind::Stamps,
        &|n| vars.get(n).cloned(),
        HttpConfig::default(),
    )
    .await
    .unwrap();
    again.token().await.unwrap();
    assert_eq!(sim.request_count(), 1);
}

/// `KUNCI_STORE=postgres://…` gives managers that share one PostgreSQL store (in a schema of
/// the test's own, named by `kunci_table`). Skipped with a reason when
/// `KUNCI_TEST_POSTGRES_URL` is unset.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn kunci_store_may_name_a_postgres_database() {
    let Ok(url) = std::env::var("KUNCI_TEST_POSTGRES_URL") else {
        #[allow(clippy::print_stderr, reason = "a skipped test says why")]
        {
            eprintln!(
                "kunci_store_may_name_a_postgres_database: skipped, KUNCI_TEST_POSTGRES_URL is not set"
            );
        }
        return;
    };
    let schema = format!("kunci_facade_{:016x}", fastrand::u64(..));
    let joiner = if url.contains('?') { '&' } else { '?' };
    let store = format!("{url}{joiner}kunci_table={schema}.tokens");
    let sim = StampsSim::start().await.unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("STAMPS_BASE_URL", sim.base_url()),
        ("STAMPS_TOKEN", sim.auth_token().to_owned()),
        ("STAMPS_MERCHANT_ID", sim.merchant_id().to_string()),
        ("KUNCI_STORE", store),
    ]);
    let lookup = |n: &str| vars.get(n).cloned();
    let first = kunci::from_lookup(ProviderKind::Stamps, &lookup, HttpConfig::default())
        .await
        .unwrap();
    first.token().await.unwrap();
    let described = first.store().describe();
    assert!(
        described.contains(&format!("table `{schema}.tokens`")),
        "{described}"
    );
    let second = kunci::from_lookup(ProviderKind::Stamps, &lookup, HttpConfig::default())
        .await
        .unwrap();
    second.token().await.unwrap();
    assert_eq!(
        sim.request_count(),
        1,
        "the second manager adopted the stored token"
    );

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn missing_variables_are_configuration_errors_naming_the_variable() {
    for kind in ProviderKind::all() {
        let err = kunci::from_lookup(kind, &|_| None, HttpConfig::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration, "{kind}");
        assert!(
            kind.env_vars().iter().any(|v| err.message().contains(*v)),
            "{kind}: {err}"
        );
    }
}

#[tokio::test]
async fn a_bad_store_spec_is_a_configuration_error() {
    let vars: HashMap<&str, String> = HashMap::from([
        ("SEHATMU_CLIENT_ID", "c".to_owned()),
        ("SEHATMU_CLIENT_SECRET", "s".to_owned()),
        ("KUNCI_STORE", "ftp://nowhere".to_owned()),
    ]);
    let err = kunci::from_lookup(
        ProviderKind::SehatMu,
        &|n| vars.get(n).cloned(),
        HttpConfig::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
}

#[test]
fn provider_kinds_round_trip_by_name() {
    let names: Vec<&str> = ProviderKind::all().iter().map(|k| k.name()).collect();
    // The default build compiles every provider of the workspace in.
    assert_eq!(names, ProviderKind::WORKSPACE);
    for kind in ProviderKind::all() {
        assert_eq!(ProviderKind::from_name(kind.name()), Some(kind));
        assert!(!kind.env_vars().is_empty());
        assert!(
            kind.declaration().problems().is_empty(),
            "{kind}: {:?}",
            kind.declaration().problems()
        );
    }
    assert_eq!(ProviderKind::from_name("nope"), None);
}

/// `from_lookup`'s future can be spawned: a service builds managers inside tasks.
#[tokio::test]
async fn from_lookup_can_run_in_a_spawned_task() {
    let sim = StampsSim::start().await.unwrap();
    let vars: HashMap<&'static str, String> = HashMap::from([
        ("STAMPS_BASE_URL", sim.base_url()),
        ("STAMPS_STATIC_TOKEN", "static-abc".to_owned()),
        ("KUNCI_STORE", "memory:".to_owned()),
    ]);
    let task = tokio::spawn(async move {
        let manager = kunci::from_lookup(
            ProviderKind::Stamps,
            &|n| vars.get(n).cloned(),
            HttpConfig::default(),
        )
        .await?;
        manager
            .token()
            .await
            .map(|t| t.header_value().to_str().map(str::to_owned))
    });
    assert_eq!(task.await.unwrap().unwrap().unwrap(), "Token static-abc");
}

/// Set in the child process of [`an_unreadable_store_key_in_the_environment_is_a_configuration_error`].
const FROM_ENV_CHILD: &str = "KUNCI_TEST_FROM_ENV_CHILD";

/// Runs only as that child: the environment holds a Stamps static token, a memory store and a
/// `KUNCI_STORE_KEY` that is not UTF-8 (a test cannot set its own environment safely).
#[tokio::test]
async fn from_env_child() {
    if std::env::var_os(FROM_ENV_CHILD).is_none() {
        return; // not the child: nothing to do
    }
    let err = kunci::from_env(ProviderKind::Stamps).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(err.message().contains(kunci::ENV_STORE_KEY), "{err}");
}

#[test]
fn an_unreadable_store_key_in_the_environment_is_a_configuration_error() {
    use std::os::unix::ffi::OsStrExt as _;
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "from_lookup::from_env_child", "--nocapture"])
        .env(FROM_ENV_CHILD, "1")
        .env("STAMPS_STATIC_TOKEN", "static-token-0123456789")
        .env(kunci::ENV_STORE, "memory:")
        .env(
            kunci::ENV_STORE_KEY,
            std::ffi::OsStr::from_bytes(b"\xff\xfe not a key"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_present_but_unusable_store_key_never_means_plaintext() {
    for bad in ["", "   ", "not-a-key", "00112233445566778899aabbccddeeff"] {
        let vars: HashMap<&str, String> = HashMap::from([
            ("STAMPS_STATIC_TOKEN", "static-token-0123456789".to_owned()),
            ("KUNCI_STORE", "memory:".to_owned()),
            ("KUNCI_STORE_KEY", bad.to_owned()),
        ]);
        let err = kunci::from_lookup(
            ProviderKind::Stamps,
            &|n| vars.get(n).cloned(),
            HttpConfig::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration, "{bad:?}: {err}");
        assert!(err.message().contains("KUNCI_STORE_KEY"), "{err}");
    }
}

#[tokio::test]
async fn a_store_ca_for_a_store_that_is_not_rediss_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("STAMPS_STATIC_TOKEN", "static-token-0123456789".to_owned()),
        ("KUNCI_STORE", dir.path().display().to_string()),
        ("KUNCI_STORE_CA", "/etc/ssl/private-ca.pem".to_owned()),
    ]);
    let err = kunci::from_lookup(
        ProviderKind::Stamps,
        &|n| vars.get(n).cloned(),
        HttpConfig::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(err.message().contains("rediss://"), "{err}");
}
