//! Nothing foreign is trusted: an unreadable store key, a `rediss://` store with a private CA,
//! a shared store directory, store URLs with passwords.

use std::{
    ffi::OsStr,
    os::unix::ffi::OsStrExt as _,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::support::{Kunci, Run};

#[tokio::test]
async fn a_store_key_that_is_not_text_or_not_a_key_exits_2_and_stores_nothing() {
    let mut k = Kunci::new();
    k.env("STAMPS_STATIC_TOKEN", "perm-static-0123456789");
    let mut cmd = k.command(&["token", "stamps"]);
    cmd.env("KUNCI_STORE_KEY", OsStr::from_bytes(b"\xff\xfe-not-text"));
    let run = Run::from(
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap(),
    );
    run.expect_error(2, "KUNCI_STORE_KEY");
    for bad in ["", "not-a-key"] {
        let mut cmd = k.command(&["token", "stamps"]);
        cmd.env("KUNCI_STORE_KEY", bad);
        let run = Run::from(
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap(),
        );
        run.expect_error(2, "KUNCI_STORE_KEY");
    }
    // Nothing was written unencrypted.
    assert!(!k.store().join("stamps+static.json").exists());
}

#[tokio::test]
async fn a_shared_store_directory_exits_2_with_the_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut k = Kunci::new();
    k.env("STAMPS_STATIC_TOKEN", "perm-static-0123456789");
    std::fs::create_dir_all(k.store()).unwrap();
    std::fs::set_permissions(k.store(), std::fs::Permissions::from_mode(0o777)).unwrap();
    k.run(&["token", "stamps"])
        .await
        .expect_error(2, "chmod 700");
}

#[tokio::test]
async fn a_redis_password_is_never_printed_even_unencoded() {
    let k = Kunci::new();
    // A base64 key pasted without percent-encoding: `/`, `=` and `+` in the password.
    let run = k
        .run(&[
            "token",
            "stamps",
            "--store",
            "rediss://:abc/d+ef=@127.0.0.1:1",
        ])
        .await;
    assert_ne!(run.code, 0);
    run.expect_no_secret(&["abc", "d+ef"]);
}

/// A certificate authority made for one test and a server certificate it signed for
/// `127.0.0.1`, as PEM files.
fn test_pki(dir: &std::path::Path) {
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
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

struct TlsRedis(Child);

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rediss_store_with_a_private_ca_needs_that_ca() {
    if std::env::var_os("KUNCI_TEST_REDIS_URL").is_none() {
        eprintln!("skipped: KUNCI_TEST_REDIS_URL is not set (Redis tests need redis-server)");
        return;
    }
    let mut k = Kunci::new();
    k.env("STAMPS_STATIC_TOKEN", "perm-static-0123456789");
    let pki = k.path("pki");
    std::fs::create_dir(&pki).unwrap();
    test_pki(&pki);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = |name: &str| pki.join(name).to_string_lossy().into_owned();
    let _server = TlsRedis(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--tls-port",
                &port.to_string(),
            ])
            .args([
                "--tls-cert-file",
                &path("server.pem"),
                "--tls-key-file",
                &path("server.key"),
            ])
            .args([
                "--tls-ca-cert-file",
                &path("ca.pem"),
                "--tls-auth-clients",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the Redis tests"),
    );
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let store = format!("rediss://127.0.0.1:{port}");
    // The platform's roots do not know the CA: refused (a configuration problem), naming the
    // way to supply it.
    k.run(&["token", "stamps", "--store", &store])
        .await
        .expect_error(2, "KUNCI_STORE_CA");
    // With it, the store works.
    let run = k
        .run(&[
            "token",
            "stamps",
            "--store",
            &store,
            "--store-ca",
            &path("ca.pem"),
        ])
        .await;
    run.expect(0);
    assert_eq!(run.line(), "perm-static-0123456789");
    // `#insecure` never turns verification off.
    k.run(&["token", "stamps", "--store", &format!("{store}/#insecure")])
        .await
        .expect_error(2, "never turns TLS verification off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_page_echoing_the_query_string_shows_no_secret_on_the_command_line() {
    use auth_testkit::{Fault, krmpesan::KrmPesanSim};
    // KrmPesan's secrets travel in the query string; a gateway's 502 page quotes the request
    // line, raw and encoded, and a trace log is on.
    let sim = KrmPesanSim::start().await.unwrap();
    let refresh = "rt/with+chars=&?#%-0123456789";
    let mut k = Kunci::new();
    k.env("KRMPESAN_BASE_URL", sim.base_url())
        .env("KRMPESAN_REFRESH_TOKEN", refresh)
        .env("KRMPESAN_DEVICE_KEY", sim.device_key())
        .env("RUST_LOG", "trace");
    let encoded: String = url_encoded(refresh);
    sim.fail_next(Fault::status(
        502,
        Some("text/plain"),
        format!(
            "Bad Gateway: GET /tokens?refresh_token={encoded}&device_key={} ({refresh})",
            sim.device_key()
        ),
    ));
    let run = k.run(&["token", "krmpesan"]).await;
    run.expect_error(5, "[redacted]")
        .expect_no_secret(&[refresh, &encoded, sim.device_key()]);
}

/// `value` as `application/x-www-form-urlencoded` writes it (what a query string carries).
fn url_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                char::from(b).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
