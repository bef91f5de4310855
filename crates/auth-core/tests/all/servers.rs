//! Minimal loopback servers: each answers every request with one canned HTTP response,
//! counts the connections it accepted and keeps the requests it read.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpListener,
};

/// A running server; dropped, it stops accepting.
pub(crate) struct Responder {
    pub(crate) addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Responder {
    /// How many connections it accepted.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every request it read (heads and bodies), as text.
    pub(crate) fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    /// Plain HTTP: every request gets `status`, `content_type` and `body`.
    pub(crate) async fn plain(status: u16, content_type: &str, body: &str) -> Self {
        Self::start(
            None,
            response(status, content_type, &[], body, false),
            false,
        )
        .await
    }

    /// Plain HTTP keeping connections open: every request gets a 200 with `body`, and the
    /// client may send the next request on the same connection.
    pub(crate) async fn keep_alive(body: &str) -> Self {
        Self::start(
            None,
            response(200, "application/json", &[], body, true),
            true,
        )
        .await
    }

    /// Plain HTTP: every request is redirected with `status` to `location`.
    pub(crate) async fn redirect(status: u16, location: &str) -> Self {
        let answer = response(status, "text/plain", &[("location", location)], "", false);
        Self::start(None, answer, false).await
    }

    /// HTTPS with `config`: every request gets a 200 with `body`.
    pub(crate) async fn tls(config: Arc<rustls::ServerConfig>, body: &str) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let answer = response(200, "application/json", &[], body, false);
        Self::start(Some(acceptor), answer, false).await
    }

    async fn start(
        tls: Option<tokio_rustls::TlsAcceptor>,
        answer: Vec<u8>,
        keep_alive: bool,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let counter = connections.clone();
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                let tls = tls.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            // A client that refuses the certificate ends the handshake.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, &answer, keep_alive, &log).await;
                            }
                        }
                        None => serve(stream, &answer, keep_alive, &log).await,
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            received,
            task,
        }
    }
}

fn response(
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &str,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !keep_alive {
        head.push_str("connection: close\r\n");
    }
    format!("{head}\r\n{body}").into_bytes()
}

/// Reads requests (head and `content-length` body) and answers each with `answer`: one, or
/// as many as the client sends on the connection when `keep_alive`.
async fn serve(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    answer: &[u8],
    keep_alive: bool,
    log: &Mutex<Vec<u8>>,
) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let request_len = loop {
            if let Some(end) = find(&pending, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if pending.len() >= end + 4 + length {
                    break end + 4 + length;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        log.lock().unwrap().extend(pending.drain(..request_len));
        if stream.write_all(answer).await.is_err() || !keep_alive {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A certificate authority made for one test, a server certificate it signed for
/// `127.0.0.1` and `localhost`, and a client certificate it signed (mutual TLS).
pub(crate) struct TestPki {
    /// The CA certificate, PEM.
    pub(crate) ca_pem: String,
    /// The server's TLS configuration (certificate chain and key).
    pub(crate) server: Arc<rustls::ServerConfig>,
    /// The same server requiring a client certificate signed by the CA.
    pub(crate) mtls_server: Arc<rustls::ServerConfig>,
    /// The client's certificate and key, PEM (what `reqwest::Identity::from_pem` reads).
    pub(crate) client_identity_pem: String,
}

impl TestPki {
    pub(crate) fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kunci test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap()
                .signed_by(&leaf_key, &*ca)
                .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let chain = vec![leaf.der().clone(), ca.der().clone()];
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = || {
            rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
        };
        let server = builder()
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let mtls_server = builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["kunci-client".to_owned()])
            .unwrap()
            .signed_by(&client_key, &*ca)
            .unwrap();
        Self {
            ca_pem: ca.pem(),
            server: Arc::new(server),
            mtls_server: Arc::new(mtls_server),
            client_identity_pem: format!("{}{}", client.pem(), client_key.serialize_pem()),
        }
    }
}

/// A forward proxy on loopback that counts the connections it gets and answers each with a
/// 502 (it forwards nothing).
pub(crate) async fn recording_proxy() -> Responder {
    Responder::plain(502, "text/plain", "proxy").await
}
