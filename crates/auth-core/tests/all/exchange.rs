//! What the exchange takes from a server, and how it reaches it.

use std::{process::Command, time::Duration};

use auth_core::{
    ErrorKind,
    http::{HttpClient, HttpConfig, Method, Secrets, Url, header},
    secrecy::SecretString,
    time::OffsetDateTime,
};

use crate::servers::{Responder, TestPki, recording_proxy};

/// A secret with characters that URL, form and JSON encodings all change.
const SECRET: &str = "rt/abc+def=ghi&j?k#l%m\"n";
const DEVICE_KEY: &str = "dk-0123456789abcdef";
const ROTATED: &str = "rotated/Refresh+Token";

/// The forms a gateway page or an error detail could echo `secret` in.
fn echoes(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
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
    let json = json.trim_matches('"').to_owned();
    vec![
        secret.to_owned(),
        form,
        percent(false),
        percent(true),
        json.replace('/', "\\/"),
        json,
    ]
}

fn assert_clean(text: &str, secrets: &[&str]) {
    for secret in secrets {
        for form in echoes(secret) {
            assert!(!text.contains(&form), "`{form}` in: {text}");
        }
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

#[tokio::test]
async fn a_gateway_page_that_echoes_the_request_line_shows_no_secret() {
    // A 502 page that quotes the request line (the query string carries the secrets, as
    // KrmPesan's does), the body, and the Authorization header, in every encoding.
    let mut page = String::from("Bad Gateway: upstream refused ");
    for secret in [SECRET, DEVICE_KEY, ROTATED, "bearer-credential-42"] {
        for form in echoes(secret) {
            page.push_str(&format!("[{form}] "));
        }
    }
    let server = Responder::plain(502, "text/plain", &page).await;
    let client = HttpClient::new(HttpConfig::default())
        .with_secrets(&[SecretString::from(SECRET), SecretString::from(DEVICE_KEY)]);
    let mut url = Url::parse(&format!("http://{}/tokens", server.addr)).unwrap();
    url.query_pairs_mut()
        .append_pair("refresh_token", SECRET)
        .append_pair("device_key", DEVICE_KEY);
    let mut auth = header::HeaderValue::from_static("Bearer bearer-credential-42");
    auth.set_sensitive(true);
    let request = client
        .request(Method::GET, url)
        .unwrap()
        .header(header::AUTHORIZATION, auth);
    let rotated = SecretString::from(ROTATED);
    let response = client
        .send_with_secrets("acme", request, [&rotated])
        .await
        .unwrap();
    let all = [SECRET, DEVICE_KEY, ROTATED, "bearer-credential-42"];
    assert_clean(&String::from_utf8_lossy(&response.body), &all);
    let snippet = response.text_snippet(10_000);
    assert!(snippet.starts_with("Bad Gateway"), "{snippet}");
    assert!(snippet.contains("[redacted]"), "{snippet}");
    assert_clean(&snippet, &all);
    let err = response.unexpected_status("acme", now());
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_clean(&format!("{err} {err:?}"), &all);
}

#[tokio::test]
async fn a_secret_cut_by_the_snippet_limit_is_not_shown_in_part() {
    // The secret starts at character 190 of a 200-character snippet.
    let page = format!("{}{SECRET} and more", "x".repeat(190));
    let server = Responder::plain(503, "text/plain", &page).await;
    let client = HttpClient::new(HttpConfig::default()).with_secrets(&[SecretString::from(SECRET)]);
    let request = client
        .request(
            Method::GET,
            Url::parse(&format!("http://{}/", server.addr)).unwrap(),
        )
        .unwrap();
    let response = client.send("acme", request).await.unwrap();
    let err = response.unexpected_status("acme", now());
    assert!(!err.message().contains(&SECRET[..10]), "{err}");
}

#[tokio::test]
async fn error_details_are_cleaned_of_secrets_and_bidi_characters() {
    // A DRF-style refusal that echoes the submitted value, in a key and in values, with a
    // right-to-left override that would make the message read backwards.
    let body = serde_json::json!({
        "detail": format!("Invalid token {SECRET}.\u{202E}gnp.exe"),
        SECRET: ["bad value"],
        "causes": [format!("token {SECRET} expired\u{2066}"), "\u{200B}ok"],
    })
    .to_string();
    let server = Responder::plain(401, "application/json", &body).await;
    let client = HttpClient::new(HttpConfig::default()).with_secrets(&[SecretString::from(SECRET)]);
    let request = client
        .request(
            Method::POST,
            Url::parse(&format!("http://{}/", server.addr)).unwrap(),
        )
        .unwrap();
    let response = client.send("acme", request).await.unwrap();
    let value: serde_json::Value = response.error_json().unwrap();
    let text = value.to_string();
    assert_clean(&text, &[SECRET]);
    assert_eq!(value["detail"], "Invalid token [redacted].gnp.exe");
    assert_eq!(value["causes"][0], "token [redacted] expired");
    assert_eq!(value["causes"][1], "ok");
    assert!(value.get("[redacted]").is_some(), "{text}");
}

#[tokio::test]
async fn a_self_signed_token_endpoint_is_refused_and_accepted_with_its_ca() {
    let pki = TestPki::new();
    let server = Responder::tls(pki.server.clone(), r#"{"ok":true}"#).await;
    let url = Url::parse(&format!("https://127.0.0.1:{}/token", server.addr.port())).unwrap();

    // The platform's roots do not know the test CA: refused, with a clear configuration error.
    let client = HttpClient::new(HttpConfig::default());
    let err = client
        .send("acme", client.request(Method::GET, url.clone()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err:?}");
    assert!(
        err.message()
            .contains("TLS certificate of acme was refused")
            && err.message().contains("with_ca_file"),
        "{err}"
    );

    // With the CA configured explicitly, the same server is accepted.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let config = HttpConfig::default().with_ca_file(&ca_file).unwrap();
    let client = HttpClient::new(config);
    let response = client
        .send("acme", client.request(Method::GET, url).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status.as_u16(), 200);
    assert_eq!(&response.body[..], br#"{"ok":true}"#);
}

#[test]
fn a_ca_file_without_a_certificate_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate").unwrap();
    let err = HttpConfig::default().with_ca_file(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert!(err.message().contains("ca.pem"), "{err}");
    let err = HttpConfig::default()
        .with_ca_file(dir.path().join("missing.pem"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
}

/// Set in the child process of [`loopback_is_never_sent_through_a_proxy`]: the loopback
/// server's port and the proxy's port.
const PROXY_CHILD_ENV: &str = "KUNCI_TEST_PROXY_CHILD";

/// Runs only as that child, with `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` set to the
/// recording proxy (the proxy settings are read from the environment when a client is built,
/// and a test cannot set the environment of its own process safely).
#[test]
fn proxy_child() {
    let Ok(ports) = std::env::var(PROXY_CHILD_ENV) else {
        return; // not the child: nothing to do
    };
    let (server, _proxy) = ports.split_once(',').unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = HttpClient::new(HttpConfig::default().with_timeout(Duration::from_secs(5)));
        // A loopback simulator, by address and by name.
        for host in ["127.0.0.1", "localhost"] {
            let url = Url::parse(&format!("http://{host}:{server}/token")).unwrap();
            let response = client
                .send("acme", client.request(Method::GET, url).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status.as_u16(), 200, "{host}");
        }
        // Control: a host that is not loopback does go to the proxy (which answers 502), so
        // the proxy settings were in force.
        let url = Url::parse("http://token-endpoint.invalid/token").unwrap();
        let response = client
            .send("acme", client.request(Method::GET, url).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status.as_u16(), 502);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_never_sent_through_a_proxy() {
    let server = Responder::plain(200, "application/json", "{}").await;
    let proxy = recording_proxy().await;
    let proxy_url = format!("http://{}", proxy.addr);
    let exe = std::env::current_exe().unwrap();
    let ports = format!("{},{}", server.addr.port(), proxy.addr.port());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(exe)
            .args([
                "--exact",
                "exchange::proxy_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PROXY_CHILD_ENV, ports)
            .env("HTTP_PROXY", &proxy_url)
            .env("http_proxy", &proxy_url)
            .env("HTTPS_PROXY", &proxy_url)
            .env("ALL_PROXY", &proxy_url)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        proxy.connections(),
        1,
        "only the control request went through the proxy"
    );
    assert_eq!(
        server.connections(),
        2,
        "both loopback requests came directly"
    );
}

#[test]
fn secrets_debug_shows_no_secret() {
    let secrets = Secrets::new().with(&[SecretString::from(SECRET)]);
    let printed = format!("{secrets:?}");
    assert!(!printed.contains("abc"), "{printed}");
}
