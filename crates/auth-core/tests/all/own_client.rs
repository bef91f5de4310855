//! A client built on the user's reqwest builder (`HttpClient::from_builder`): the user's CA
//! and proxy are honoured, and kunci's rules hold on top — no redirect is followed (the
//! secret never reaches a second host), the body cap, the total timeout.

use std::time::Duration;

use auth_core::{
    ErrorKind,
    http::{
        Certificate, HttpClient, HttpConfig, HttpResponse, Method, Url, ensure_crypto_provider,
        reqwest,
    },
};

use crate::servers::{Responder, TestPki, recording_proxy};

const CLIENT_SECRET: &str = "cs-never-at-the-second-host";

/// Sends a `GET` of `url` through `client`.
async fn get(client: &HttpClient, url: Url) -> Result<HttpResponse, auth_core::Error> {
    client
        .send("acme", client.request(Method::GET, url).unwrap())
        .await
}

/// A server answering every request with a redirect (`status`) to a second server on another
/// host name (`localhost`), which answers 200; both returned, the redirecting one first.
async fn redirect_to_a_second_host(status: u16) -> (Responder, Responder) {
    let second = Responder::plain(200, "application/json", "{}").await;
    let location = format!("http://localhost:{}/steal", second.addr.port());
    (Responder::redirect(status, &location).await, second)
}

fn url(server: &Responder, scheme: &str, path: &str) -> Url {
    Url::parse(&format!(
        "{scheme}://127.0.0.1:{}{path}",
        server.addr.port()
    ))
    .unwrap()
}

#[tokio::test]
async fn a_client_on_your_builder_trusts_the_ca_you_gave_it() {
    let pki = TestPki::new();
    let server = Responder::tls(pki.server.clone(), r#"{"ok":true}"#).await;
    let ca = Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder().tls_certs_merge([ca]);
    let client = HttpClient::from_builder(builder, HttpConfig::default()).unwrap();
    let response = get(&client, url(&server, "https", "/token")).await.unwrap();
    assert_eq!(response.status.as_u16(), 200);
    assert_eq!(&response.body[..], br#"{"ok":true}"#);
}

#[tokio::test]
async fn a_client_on_your_builder_presents_your_client_certificate_beside_kuncis_extra_ca() {
    let pki = TestPki::new();
    let server = Responder::tls(pki.mtls_server.clone(), r#"{"ok":true}"#).await;
    let url = url(&server, "https", "/token");
    // The server's CA through kunci's HttpConfig, the client certificate through the builder.
    let config = HttpConfig::default()
        .with_ca_pem(pki.ca_pem.as_bytes())
        .unwrap();
    let identity = reqwest::Identity::from_pem(pki.client_identity_pem.as_bytes()).unwrap();
    let client = HttpClient::from_builder(
        reqwest::Client::builder().identity(identity),
        config.clone(),
    )
    .unwrap();
    let response = get(&client, url.clone()).await.unwrap();
    assert_eq!(response.status.as_u16(), 200);

    // Without the certificate the server ends the handshake: no answer.
    let anonymous = HttpClient::from_builder(reqwest::Client::builder(), config).unwrap();
    assert!(get(&anonymous, url).await.is_err());
}

#[tokio::test]
async fn a_request_made_by_another_reqwest_client_is_still_sent_by_kuncis_rules() {
    // The other client goes through a "proxy" that answers every request with a 307 to a
    // second host (reached directly), and it follows redirects: sent by that client, the
    // secret would reach the second host.
    let (proxy, second) = redirect_to_a_second_host(307).await;
    ensure_crypto_provider().unwrap();
    let proxy = reqwest::Proxy::http(format!("http://{}", proxy.addr))
        .unwrap()
        .no_proxy(reqwest::NoProxy::from_string("localhost"));
    let other = reqwest::Client::builder().proxy(proxy).build().unwrap();
    let request = || {
        other
            .post("http://token-endpoint.invalid/token")
            .body(format!("client_secret={CLIENT_SECRET}"))
    };
    // Handed to kunci's send, it is sent by kunci's client (no proxy, no redirects): the host
    // does not resolve, and nothing reached the second host.
    let client = HttpClient::new(HttpConfig::default().with_timeout(Duration::from_secs(10)));
    assert!(client.send("acme", request()).await.is_err());
    assert_eq!(second.connections(), 0, "sent by the other client");
    // The control: the same request sent by the other client itself leaks the secret.
    let response = request().send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(second.received().contains(CLIENT_SECRET));
}

#[tokio::test]
async fn a_client_on_your_builder_goes_through_the_proxy_you_gave_it() {
    let proxy = recording_proxy().await;
    let builder = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{}", proxy.addr)).unwrap());
    let client = HttpClient::from_builder(builder, HttpConfig::default()).unwrap();
    let url = Url::parse("http://token-endpoint.invalid/token").unwrap();
    let response = get(&client, url).await.unwrap();
    assert_eq!(response.status.as_u16(), 502, "the proxy's answer");
    assert_eq!(proxy.connections(), 1);
}

/// A POST carrying the secret in its form body, as SehatMu's and SATUSEHAT's token requests do.
fn token_request(client: &HttpClient, url: Url) -> auth_core::http::RequestBuilder {
    client
        .request(Method::POST, url)
        .unwrap()
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_secret={CLIENT_SECRET}"
        ))
}

#[tokio::test]
async fn a_redirect_is_never_followed_so_the_secret_never_reaches_a_second_host() {
    for status in [301, 302, 303, 307, 308] {
        let (first, second) = redirect_to_a_second_host(status).await;
        // The user asked for redirects to be followed; kunci finishes the builder without.
        let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(10));
        let client = HttpClient::from_builder(builder, HttpConfig::default()).unwrap();
        let response = client
            .send(
                "acme",
                token_request(&client, url(&first, "http", "/token")),
            )
            .await
            .unwrap();
        assert_eq!(response.status.as_u16(), status, "handed back unfollowed");
        assert!(first.received().contains(CLIENT_SECRET));
        assert_eq!(
            second.connections(),
            0,
            "{status}: the second host was reached"
        );
    }
}

#[tokio::test]
async fn the_same_builder_finished_by_reqwest_alone_re_sends_the_secret_on_a_307() {
    // The hazard the rule above exists for (and the proof that the test above can fail): a
    // finished reqwest client with its default policy re-sends the form body to the new host.
    let (first, second) = redirect_to_a_second_host(307).await;
    ensure_crypto_provider().unwrap();
    let raw = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = raw
        .post(url(&first, "http", "/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("client_secret={CLIENT_SECRET}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "followed to the second host"
    );
    assert!(second.received().contains(CLIENT_SECRET));
}

#[tokio::test]
async fn the_body_cap_holds_on_a_client_built_on_your_builder() {
    let big = "x".repeat(4096);
    let server = Responder::plain(200, "application/json", &big).await;
    let mut config = HttpConfig::default();
    config.max_body_bytes = 1024;
    let client = HttpClient::from_builder(reqwest::Client::builder(), config).unwrap();
    let err = get(&client, url(&server, "http", "/token"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
    assert!(err.message().contains("larger than 1024 bytes"), "{err}");
}

#[tokio::test]
async fn kuncis_timeout_holds_whatever_timeout_your_builder_set() {
    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(3600));
    let config = HttpConfig::default().with_timeout(Duration::from_millis(300));
    let client = HttpClient::from_builder(builder, config).unwrap();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/token")).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(60), get(&client, url))
        .await
        .expect("kunci's timeout ended the request")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    assert!(err.message().contains("did not answer in time"), "{err}");
    silent.abort();
}

#[test]
fn clones_share_one_client_and_new_clients_do_not() {
    let shared = HttpClient::new(HttpConfig::default());
    let with_secrets = shared
        .clone()
        .with_secrets([&auth_core::secrecy::SecretString::from("s")]);
    assert!(with_secrets.shares_connections_with(&shared));
    assert!(!HttpClient::new(HttpConfig::default()).shares_connections_with(&shared));
    let from_config: HttpClient = HttpConfig::default().into();
    assert!(!from_config.is_built(), "built on the first request");
}
