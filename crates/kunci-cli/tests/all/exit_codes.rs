//! Every exit code, each with one `error:` line: 2 usage or configuration, 3 credentials
//! rejected, 4 rate limited, 5 unavailable (provider or store), 6 protocol.

use std::time::Duration;

use auth_testkit::{Fault, SimServer, kalsel::KalselSim, krmpesan::KrmPesanSim, stamps::StampsSim};

use crate::support::{Kunci, closed_port};

fn krmpesan(sim: &KrmPesanSim) -> Kunci {
    let mut k = Kunci::new();
    k.env("KRMPESAN_BASE_URL", sim.base_url())
        .env("KRMPESAN_REFRESH_TOKEN", sim.refresh_token())
        .env("KRMPESAN_DEVICE_KEY", sim.device_key());
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_configuration_exit_2() {
    let k = Kunci::new();
    // usage errors (clap)
    assert_eq!(k.run(&[]).await.code, 2);
    assert_eq!(k.run(&["token"]).await.code, 2);
    assert_eq!(k.run(&["frobnicate"]).await.code, 2);
    assert_eq!(
        k.run(&["token", "stamps", "--timeout", "soon"]).await.code,
        2
    );
    // unknown profile, missing variable
    k.run(&["token", "nope"])
        .await
        .expect_error(2, "unknown profile `nope`");
    let missing = k.run(&["token", "sehatmu"]).await;
    missing.expect_error(2, "SEHATMU_CLIENT_ID");
    assert!(missing.stderr.contains("hint: "), "{}", missing.stderr);
    // a lifetime out of range, caught before any request
    let sim = KalselSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("KALSEL_BASE_URL", sim.base_url())
        .env("KALSEL_REFRESH_TOKEN", sim.initial_refresh_token())
        .env("KALSEL_TOKEN_LIFETIME_MINUTES", "5");
    k.run(&["token", "kalsel"])
        .await
        .expect_error(2, "KALSEL_TOKEN_LIFETIME_MINUTES")
        .expect_no_secret(&[sim.initial_refresh_token()]);
    assert_eq!(sim.request_count(), 0);
    // a bad URL: plain http off loopback
    let mut k = Kunci::new();
    k.env("SEHATMU_BASE_URL", "http://example.com")
        .env("SEHATMU_CLIENT_ID", "id")
        .env("SEHATMU_CLIENT_SECRET", "s3cr3t-77");
    k.run(&["token", "sehatmu"])
        .await
        .expect_error(2, "SEHATMU_BASE_URL")
        .expect_no_secret(&["s3cr3t-77"]);
    // a store that is not understood
    let mut k = Kunci::new();
    k.env("STAMPS_STATIC_TOKEN", "perm-1");
    k.run(&["token", "stamps", "--store", "ftp://host"])
        .await
        .expect_error(2, "store");
    // stores that are understood but cannot be used as given: configuration, not "retry later"
    std::fs::write(k.path("a-file"), "x").unwrap();
    let a_file = k.path("a-file");
    let under_a_file = a_file.join("store");
    for store in [
        a_file.to_str().unwrap(),
        under_a_file.to_str().unwrap(),
        "file://",
        "postgres://",
        "rediss://",
    ] {
        k.run(&["token", "stamps", "--store", store])
            .await
            .expect_error(2, "store");
    }
    // a config file that does not exist
    k.run(&["token", "stamps", "--config", "/nonexistent/kunci.toml"])
        .await
        .expect_error(2, "config file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_rejected_exit_3() {
    let sim = KrmPesanSim::start().await.unwrap();
    sim.revoke();
    let k = krmpesan(&sim);
    k.run(&["token", "krmpesan"])
        .await
        .expect_error(3, "")
        .expect_no_secret(&[sim.refresh_token(), sim.device_key()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rate_limit_exits_4() {
    let sim = KrmPesanSim::start().await.unwrap();
    sim.fail_next(Fault::status(429, Some("text/plain"), "slow down"));
    let k = krmpesan(&sim);
    k.run(&["token", "krmpesan"])
        .await
        .expect_error(4, "rate limited until");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_exits_5() {
    // connection refused
    let mut k = Kunci::new();
    k.env(
        "KRMPESAN_BASE_URL",
        format!("http://127.0.0.1:{}", closed_port()),
    )
    .env("KRMPESAN_REFRESH_TOKEN", "rt-1")
    .env("KRMPESAN_DEVICE_KEY", "dk-1");
    k.run(&["token", "krmpesan"])
        .await
        .expect_error(5, "connect");

    // 5xx
    let sim = KrmPesanSim::start().await.unwrap();
    sim.fail_next(Fault::status(
        503,
        Some("text/plain"),
        "Service Unavailable",
    ));
    krmpesan(&sim)
        .run(&["token", "krmpesan"])
        .await
        .expect_error(5, "503");

    // a timeout (--timeout bounds one request)
    let slow = KrmPesanSim::start_with(SimServer::builder().latency(Duration::from_secs(3)))
        .await
        .unwrap();
    krmpesan(&slow)
        .run(&["token", "krmpesan", "--timeout", "0.3"])
        .await
        .expect_error(5, "");

    // a store that cannot be reached: Redis on a closed port
    let mut k = Kunci::new();
    k.env("STAMPS_STATIC_TOKEN", "perm-1");
    let redis = format!("redis://127.0.0.1:{}", closed_port());
    k.run(&["token", "stamps", "--store", &redis])
        .await
        .expect_error(5, "store");
    // … and PostgreSQL on a closed port, named through KUNCI_STORE, its password kept out of
    // the message
    let mut k = Kunci::new();
    k.env("STAMPS_STATIC_TOKEN", "perm-1");
    k.env(
        "KUNCI_STORE",
        format!("postgres://kunci:hunter2@127.0.0.1:{}/db", closed_port()),
    );
    let failed = k.run(&["token", "stamps"]).await;
    assert!(!failed.stderr.contains("hunter2"), "{}", failed.stderr);
    failed.expect_error(5, "store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_exit_6() {
    for fault in [
        Fault::MalformedJson,
        Fault::Html,
        Fault::HugeBody(10 * 1024 * 1024),
    ] {
        let sim = StampsSim::start().await.unwrap();
        sim.fail_next(fault);
        let mut k = Kunci::new();
        k.env("STAMPS_BASE_URL", sim.base_url())
            .env("STAMPS_TOKEN", sim.auth_token())
            .env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
        k.run(&["token", "stamps"])
            .await
            .expect_error(6, "")
            .expect_no_secret(&[sim.auth_token()]);
    }
}
