//! The promised behaviour: no request while the stored token is valid (also from another
//! process), one request for twenty processes on a cold store, the SehatMu cool-down shared
//! by processes, private store files, no secret in `-vv` logs.

use std::time::Duration;

use auth_testkit::{SimServer, krmpesan::KrmPesanSim, sehatmu::SehatMuSim, stamps::StampsSim};

use crate::support::{Kunci, mode};

fn stamps_env(k: &mut Kunci, sim: &StampsSim) {
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_TOKEN", sim.auth_token())
        .env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_token_from_another_process_sends_no_request() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let first = k.run(&["token", "stamps"]).await;
    first.expect(0);
    let token = first.line().to_owned();
    assert_eq!(sim.request_count(), 1);
    assert_eq!(sim.issued_tokens(), vec![token.clone()]);

    for _ in 0..3 {
        let again = k.run(&["token", "stamps"]).await;
        again.expect(0);
        assert_eq!(again.line(), token);
    }
    assert_eq!(sim.request_count(), 1, "the stored token is reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_processes_on_a_cold_store_send_one_request() {
    let sim = KrmPesanSim::start_with(SimServer::builder().latency(Duration::from_millis(300)))
        .await
        .unwrap();
    let mut k = Kunci::new();
    k.env("KRMPESAN_BASE_URL", sim.base_url())
        .env("KRMPESAN_REFRESH_TOKEN", sim.refresh_token())
        .env("KRMPESAN_DEVICE_KEY", sim.device_key());
    let children: Vec<_> = (0..20)
        .map(|_| {
            k.command(&["token", "krmpesan"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| crate::support::Run::from(c.wait_with_output().unwrap()))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for run in &outputs {
        run.expect(0);
    }
    let first = outputs[0].line();
    assert!(
        outputs.iter().all(|r| r.line() == first),
        "every process prints the same token"
    );
    assert_eq!(sim.request_count(), 1, "one request for twenty processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sehatmu_failure_a_new_attempt_is_refused_without_a_request() {
    let sim = SehatMuSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("SEHATMU_BASE_URL", sim.base_url())
        .env("SEHATMU_CLIENT_ID", sim.client_id())
        .env("SEHATMU_CLIENT_SECRET", "not-the-secret-5f2c");
    let rejected = k.run(&["token", "sehatmu"]).await;
    rejected
        .expect_error(3, "sehatmu rejected the client credentials")
        .expect_no_secret(&["not-the-secret-5f2c"]);
    assert!(
        rejected.stderr.contains("hint: run `kunci login sehatmu`"),
        "{}",
        rejected.stderr
    );
    assert_eq!(sim.request_count(), 1);

    // another process, at once: refused from the cool-down recorded in the store
    let again = k.run(&["token", "sehatmu"]).await;
    again.expect_error(4, "rate limited until");
    assert_eq!(sim.request_count(), 1, "nothing sent during the cool-down");
    // also with the right secret: the cool-down belongs to the client ID
    k.env("SEHATMU_CLIENT_SECRET", sim.client_secret());
    k.run(&["header", "sehatmu"]).await.expect(4);
    assert_eq!(sim.request_count(), 1);

    let status = k.run(&["status", "sehatmu"]).await;
    status.expect(0);
    assert!(
        status.stdout.contains("cooling down until"),
        "{}",
        status.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_files_are_private() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    k.run(&["token", "stamps"]).await.expect(0);
    k.run_with_stdin(&["login", "kalsel"], "rt-abc\n")
        .await
        .expect(0);
    let dir = k.store();
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_verbose_logs() {
    let sim = SehatMuSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("SEHATMU_BASE_URL", sim.base_url())
        .env("SEHATMU_CLIENT_ID", sim.client_id())
        .env("SEHATMU_CLIENT_SECRET", sim.client_secret());
    let token = k.run(&["-vv", "token", "sehatmu"]).await;
    token.expect(0);
    let issued = token.line().to_owned();
    assert!(
        token.stderr.contains("DEBUG") || token.stderr.contains("INFO"),
        "{}",
        token.stderr
    );
    assert!(!token.stderr.contains(&issued));
    let secret = sim.client_secret().to_owned();
    token.expect_no_secret(&[&secret]);
    for args in [
        vec!["-vvv", "header", "sehatmu"],
        vec!["status", "-vv"],
        vec!["status", "sehatmu", "-vvv"],
        vec!["logout", "sehatmu", "-vv"],
    ] {
        let run = k.run(&args).await;
        run.expect(0).expect_no_secret(&[&secret]);
        if args[1] != "header" {
            run.expect_no_secret(&[&issued]);
        }
    }
    // RUST_LOG at trace, through a failure
    k.env("RUST_LOG", "trace")
        .env("SEHATMU_CLIENT_SECRET", "wrong-secret-9d1e");
    k.run(&["token", "sehatmu"])
        .await
        .expect(3)
        .expect_no_secret(&[&secret, "wrong-secret-9d1e", &issued]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn krmpesan_query_secrets_stay_out_of_trace_logs() {
    // KrmPesan sends its secrets in the query string: the most exposed of the four.
    let sim = KrmPesanSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("KRMPESAN_BASE_URL", sim.base_url())
        .env("KRMPESAN_REFRESH_TOKEN", sim.refresh_token())
        .env("KRMPESAN_DEVICE_KEY", sim.device_key())
        .env("RUST_LOG", "trace");
    let run = k.run(&["header", "krmpesan"]).await;
    run.expect(0);
    assert!(
        run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
        "{}",
        run.stderr
    );
    let issued = sim.issued_tokens();
    let mut secrets = vec![sim.refresh_token(), sim.device_key()];
    secrets.extend(issued.iter().map(String::as_str));
    assert!(
        !secrets.iter().any(|s| run.stderr.contains(s)),
        "{}",
        run.stderr
    );
    k.run(&["-vvv", "status"])
        .await
        .expect(0)
        .expect_no_secret(&secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_encrypted_with_kunci_store_key() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    // 32 bytes, base64
    k.env(
        "KUNCI_STORE_KEY",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    );
    let token = k.run(&["token", "stamps"]).await;
    token.expect(0);
    k.run_with_stdin(&["login", "sehatmu"], "id.sehatmu.client\nsecret-e2a9\n")
        .await
        .expect(0);
    for entry in std::fs::read_dir(k.store()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(token.line()) && !text.contains("secret-e2a9"));
    }
    // read back with the key: no new request
    k.run(&["token", "stamps"]).await.expect(0);
    assert_eq!(sim.request_count(), 1);
}
