//! The one HTTP exchange every provider crate uses (feature `http`).
//!
//! It owns the rules no provider should re-implement:
//!
//! * TLS through rustls with the platform's verifier, never disabled;
//! * a connect timeout and a total timeout on every request;
//! * redirects are not followed (a token endpoint that redirects is answering something
//!   unexpected, and following it could carry credentials elsewhere);
//! * the body is read incrementally and refused past a cap (a 10 MB answer is not buffered);
//! * `http://` is accepted only for loopback addresses (the simulators), and a loopback
//!   address is always reached directly, never through a proxy from `HTTP_PROXY` and friends
//!   (a proxy would see the request, credentials included, in clear text);
//! * errors never carry the request URL (KrmPesan puts its refresh token in the query string
//!   and reqwest's errors print the whole URL) nor the request body;
//! * server text never carries a secret: every secret a provider registers ([`Secrets`],
//!   [`HttpClient::with_secrets`], [`HttpClient::send_with_secrets`]) is replaced by
//!   `[redacted]` — raw, URL-encoded, form-encoded and JSON-escaped — in the body of every
//!   answer that is not a success, and again in every text taken from it
//!   ([`HttpResponse::text_snippet`], [`HttpResponse::error_json`],
//!   [`HttpResponse::server_text`]), which also drop control and bidirectional-override
//!   characters;
//! * a certificate that does not verify is a configuration error that says how to trust a
//!   private certificate authority ([`HttpConfig::with_ca_file`]); verification is never
//!   turned off;
//! * the server's `Date` header is kept, so providers can correct for clock skew.
//!
//! # Your own reqwest client
//!
//! [`HttpClient::from_builder`] builds the exchange on a [`reqwest::ClientBuilder`] you
//! configured — a proxy, a private CA, a client certificate (mTLS), DNS overrides — and kunci
//! finishes it: redirects off ([`redirect::Policy::none`](reqwest::redirect::Policy::none),
//! whatever the builder said), [`HttpConfig`]'s connect and total timeouts (also set on every
//! request), its extra root certificates, and the body cap (the body is read here, not by
//! reqwest). Everything else is yours: the User-Agent, the proxies (which then apply to
//! loopback addresses too — kunci's own clients always reach those directly), and the TLS
//! settings: kunci never turns certificate verification off, but it cannot see whether your
//! builder did.
//!
//! There is deliberately no constructor taking a finished `reqwest::Client`: a client's
//! redirect policy cannot be read or changed once built, reqwest's default follows up to ten
//! redirects, and on a `307`/`308` it re-sends the request body — a `client_secret`, a refresh
//! token — to whatever host the `Location` names (and custom headers such as a device key on
//! any redirect), all before kunci could look at the answer. Checking the final URL afterwards
//! would only tell that the secret had already left. Pass the builder you would have built
//! that client from instead; a builder is cheap to make twice.

use std::{
    fmt,
    net::IpAddr,
    path::Path,
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

/// reqwest 0.13, the version [`HttpClient::from_builder`] takes a builder of.
pub use reqwest;
pub use reqwest::{
    Certificate, ClientBuilder, Identity, Method, RequestBuilder, StatusCode, Url,
    header::{self, HeaderValue},
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::Error;

/// Timeouts and limits of the exchange.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Bound on establishing a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Bound on a whole request, body included (default 30 s).
    pub timeout: Duration,
    /// Largest response body accepted (default 256 KiB; token answers are a few KiB).
    pub max_body_bytes: usize,
    /// Certificate authorities trusted in addition to the platform's (default none): the CA
    /// of a private gateway or a test server. Set with [`with_ca_file`](Self::with_ca_file)
    /// or [`with_ca_pem`](Self::with_ca_pem). Verification itself is never turned off.
    pub extra_root_certificates: Vec<Certificate>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_body_bytes: 256 * 1024,
            extra_root_certificates: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// The default configuration with another total timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.connect_timeout = self.connect_timeout.min(timeout);
        self
    }

    /// Also trusts the certificate authorities in `pem` (one or more PEM `CERTIFICATE`
    /// blocks), besides the platform's.
    ///
    /// # Errors
    /// A configuration error when `pem` holds no certificate or one that cannot be read.
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let certs = Certificate::from_pem_bundle(pem)
            .map_err(|_| Error::configuration("the CA certificates are not valid PEM"))?;
        if certs.is_empty() {
            return Err(Error::configuration(
                "the CA certificates hold no PEM `CERTIFICATE` block",
            ));
        }
        self.extra_root_certificates.extend(certs);
        Ok(self)
    }

    /// Also trusts the certificate authorities in the PEM file at `path`, besides the
    /// platform's: for a token endpoint behind a gateway with a private CA.
    ///
    /// # Errors
    /// A configuration error naming the file when it cannot be read or holds no certificate.
    pub fn with_ca_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            Error::configuration(format!("cannot read the CA file {}: {e}", path.display()))
        })?;
        self.with_ca_pem(&pem).map_err(|e| {
            Error::configuration(format!("the CA file {}: {}", path.display(), e.message()))
        })
    }
}

/// The text put in place of a secret found in server text.
pub const REDACTED: &str = "[redacted]";

/// The secrets a provider sends, which the exchange keeps out of every text it takes from a
/// server (see the [module docs](self)). Each secret is kept in every form a server could echo
/// it in: as sent, URL-encoded (`%2F`, upper and lower case), form-encoded (`+` for a space)
/// and JSON-escaped. Cheap to clone; `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Secrets {
    /// Every form of every secret, longest first, so a form that contains another is replaced
    /// whole.
    forms: Arc<Vec<SecretString>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} forms)", self.forms.len())
    }
}

impl Secrets {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// These secrets and `more`. Empty secrets are ignored.
    #[must_use]
    pub fn with<'a>(&self, more: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let mut forms: Vec<String> = self
            .forms
            .iter()
            .map(|f| f.expose_secret().to_owned())
            .collect();
        for secret in more {
            forms.extend(encodings(secret.expose_secret()));
        }
        forms.retain(|f| !f.is_empty());
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Self {
            forms: Arc::new(forms.into_iter().map(SecretString::from).collect()),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` with every form of every secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for form in self.forms.iter() {
            let form = form.expose_secret();
            if out.contains(form) {
                out = out.replace(form, REDACTED);
            }
        }
        out
    }

    /// `bytes` with every form of every secret replaced by [`REDACTED`] (for bodies that may
    /// not be UTF-8).
    fn scrub_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for form in self.forms.iter() {
            let form = form.expose_secret().as_bytes();
            let current = out.as_deref().unwrap_or(bytes);
            if let Some(replaced) = replace_bytes(current, form, REDACTED.as_bytes()) {
                out = Some(replaced);
            }
        }
        out
    }
}

/// The forms a server could echo `secret` in.
fn encodings(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    forms.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    let mut upper = String::new();
    let mut lower = String::new();
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            upper.push(char::from(b));
            lower.push(char::from(b));
        } else {
            upper.push_str(&format!("%{b:02X}"));
            lower.push_str(&format!("%{b:02x}"));
        }
    }
    forms.push(upper);
    forms.push(lower);
    if let Ok(json) = serde_json::to_string(secret)
        && let Some(inner) = json.strip_prefix('"').and_then(|j| j.strip_suffix('"'))
    {
        // serde_json leaves `/` alone; PHP and others write it `\/`.
        forms.push(inner.replace('/', "\\/"));
        forms.push(inner.to_owned());
    }
    forms
}

/// `haystack` with every `needle` replaced, or `None` when there is none.
fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = haystack.windows(needle.len()).position(|w| w == needle)?;
    let mut out = Vec::with_capacity(haystack.len());
    out.extend_from_slice(&haystack[..first]);
    out.extend_from_slice(with);
    let mut rest = &haystack[first + needle.len()..];
    while let Some(i) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// Whether `c` is dropped from server text: bidirectional controls (U+202A–U+202E,
/// U+2066–U+2069, U+200E, U+200F, U+061C), which can make a message read differently from
/// what it says, and invisible characters (zero-width spaces and joiners, word joiners, the
/// byte-order mark, interlinear annotation marks).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Server text made fit for a message: `secrets` scrubbed, control characters turned into
/// spaces, bidirectional and invisible characters dropped, and at most `max_chars` characters
/// (then `…`). Secrets are scrubbed before anything is cut, so
/// a secret at the cut is not shown in part, and again after, so dropping an invisible
/// character cannot join one back together.
pub fn clean_server_text(secrets: &Secrets, text: &str, max_chars: usize) -> String {
    let scrubbed = secrets.scrub(text);
    let visible: String = scrubbed
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let visible = secrets.scrub(&visible);
    let mut out: String = visible.chars().take(max_chars).collect();
    if visible.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// A reqwest client configured by [`HttpConfig`], with the [`Secrets`] of its requests.
/// Cheap to build and to clone: the reqwest client (which reads the system's root
/// certificates) is built on the first request and shared by every clone — so every source
/// given a clone of one `HttpClient` shares one connection pool and one TLS configuration
/// (what a [`TokenPool`](crate::TokenPool) of many accounts of one provider wants). Each
/// clone keeps its own [`Secrets`].
///
/// Provider sources take `impl Into<HttpClient>`: an [`HttpConfig`] (a client of their own),
/// a clone of a shared client, or one built on your reqwest builder
/// ([`from_builder`](Self::from_builder)).
#[derive(Clone)]
pub struct HttpClient {
    clients: Arc<Clients>,
    config: HttpConfig,
    secrets: Secrets,
}

/// The reqwest clients behind an [`HttpClient`].
enum Clients {
    /// Built by kunci on first use: one honouring the environment's proxies, one going direct
    /// for loopback addresses (the same one when no proxy is configured).
    Own {
        proxied: OnceLock<Result<reqwest::Client, Error>>,
        direct: OnceLock<Result<reqwest::Client, Error>>,
    },
    /// Finished by kunci from the user's builder ([`HttpClient::from_builder`]): every request,
    /// loopback included, goes through it (its proxies are the user's choice).
    Given(reqwest::Client),
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

/// Makes sure rustls has a process-wide crypto provider before reqwest builds a client (it
/// reads the default and would panic without one): a provider the program installed wins;
/// otherwise the one this build compiled in (feature `aws-lc-rs`, else `ring`) is installed.
/// Every client kunci builds calls it; call it before building a reqwest client of your own
/// in a program whose reqwest has no default provider (kunci's is built that way).
///
/// # Errors
/// A configuration error when the build has neither `ring` nor `aws-lc-rs` and the program
/// installed no provider.
pub fn ensure_crypto_provider() -> Result<(), Error> {
    if rustls::crypto::CryptoProvider::get_default().is_some() {
        return Ok(());
    }
    #[cfg(feature = "aws-lc-rs")]
    let provider = Some(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = Some(rustls::crypto::ring::default_provider());
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    let provider: Option<rustls::crypto::CryptoProvider> = None;
    let Some(provider) = provider else {
        return Err(Error::configuration(
            "no TLS crypto provider: enable the `ring` or `aws-lc-rs` feature of kunci (or of \
             the provider crate), or install a rustls CryptoProvider before building a client",
        ));
    };
    // Another thread may have installed one meanwhile; either is fine.
    let _ = provider.install_default();
    Ok(())
}

fn build_client(config: &HttpConfig, proxies: bool) -> Result<reqwest::Client, Error> {
    let mut builder =
        reqwest::Client::builder().user_agent(concat!("kunci/", env!("CARGO_PKG_VERSION")));
    if !proxies {
        builder = builder.no_proxy();
    }
    finish_client(builder, config)
}

/// `builder` with kunci's rules on top — redirects off, `config`'s timeouts and extra root
/// certificates — built. Every reqwest client kunci sends with is made here.
fn finish_client(
    builder: reqwest::ClientBuilder,
    config: &HttpConfig,
) -> Result<reqwest::Client, Error> {
    ensure_crypto_provider()?;
    let mut builder = builder
        .connect_timeout(config.connect_timeout)
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none());
    if !config.extra_root_certificates.is_empty() {
        builder = builder.tls_certs_merge(config.extra_root_certificates.iter().cloned());
    }
    builder.build().map_err(|e| {
        Error::configuration("could not build the HTTP client").with_source(e.without_url())
    })
}

/// Whether the environment names a proxy, as reqwest reads it when it builds a client.
fn proxy_configured() -> bool {
    [
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

impl HttpClient {
    /// A client for `config`. Nothing is built yet: the reqwest client is made on the first
    /// request, so a source that never sends (a warm `kunci token`) pays for none.
    pub fn new(config: HttpConfig) -> Self {
        Self::with_clients(
            Clients::Own {
                proxied: OnceLock::new(),
                direct: OnceLock::new(),
            },
            config,
        )
    }

    /// A client built now on your `builder` (a proxy, a private CA, a client certificate, …),
    /// finished by kunci: redirects off whatever the builder said, `config`'s timeouts and
    /// extra root certificates, and the body cap of [`send`](Self::send). See the
    /// [module docs](self#your-own-reqwest-client) for what stays yours and why a finished
    /// `reqwest::Client` is not accepted.
    ///
    /// ```
    /// use auth_core::http::{HttpClient, HttpConfig, reqwest};
    ///
    /// let builder = reqwest::Client::builder().no_proxy(); // or .proxy(..), .identity(..)
    /// let client = HttpClient::from_builder(builder, HttpConfig::default())?;
    /// assert!(client.is_built());
    /// # Ok::<(), auth_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// A configuration error when the client cannot be built (its TLS setup failed, or the
    /// build has no TLS crypto provider: see [`ensure_crypto_provider`]).
    pub fn from_builder(
        builder: reqwest::ClientBuilder,
        config: HttpConfig,
    ) -> Result<Self, Error> {
        let client = finish_client(builder, &config)?;
        Ok(Self::with_clients(Clients::Given(client), config))
    }

    fn with_clients(clients: Clients, config: HttpConfig) -> Self {
        Self {
            clients: Arc::new(clients),
            config,
            secrets: Secrets::new(),
        }
    }

    /// Whether the reqwest client has been built (the first request builds it; a client from
    /// [`from_builder`](Self::from_builder) is built at once).
    pub fn is_built(&self) -> bool {
        match &*self.clients {
            Clients::Own { proxied, direct } => proxied.get().is_some() || direct.get().is_some(),
            Clients::Given(_) => true,
        }
    }

    /// Whether `self` and `other` send through the same reqwest client (connection pool and
    /// TLS configuration): true for clones of one client, whatever their secrets.
    pub fn shares_connections_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.clients, &other.clients)
    }

    /// This client, also keeping `secrets` out of every server text (see [`Secrets`]). A
    /// provider calls it once, where it builds or receives its client, with every secret its
    /// configuration holds.
    #[must_use]
    pub fn with_secrets<'a>(mut self, secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        self.secrets = self.secrets.with(secrets);
        self
    }

    /// The secrets registered with [`with_secrets`](Self::with_secrets).
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Starts a request; finish it with reqwest's builder methods and [`HttpClient::send`].
    /// Builds the client on the first call.
    ///
    /// # Errors
    /// A configuration error when the client cannot be built (its TLS setup failed).
    pub fn request(&self, method: Method, url: Url) -> Result<RequestBuilder, Error> {
        Ok(self.client_for(&url)?.request(method, url))
    }

    /// Sends a request and reads the answer, capped. Network failures and timeouts are
    /// [`Transient`](crate::ErrorKind::Transient); a certificate that does not verify is
    /// [`Configuration`](crate::ErrorKind::Configuration); an oversized body is
    /// [`Protocol`](crate::ErrorKind::Protocol). The status is not judged here.
    ///
    /// The client's [`Secrets`], and the value of every header marked sensitive, are scrubbed
    /// from the body of an answer that is not a success and from every text taken from it.
    pub async fn send(
        &self,
        provider: &str,
        request: RequestBuilder,
    ) -> Result<HttpResponse, Error> {
        self.send_with_secrets(provider, request, []).await
    }

    /// [`send`](Self::send), also scrubbing `secrets`: what this one request carries besides
    /// the configured secrets (a rotated refresh token handed back by the manager).
    pub async fn send_with_secrets<'a>(
        &self,
        provider: &str,
        request: RequestBuilder,
        secrets: impl IntoIterator<Item = &'a SecretString>,
    ) -> Result<HttpResponse, Error> {
        // The request is sent by this client whichever reqwest client made the builder, so
        // its rules (no redirects, the timeouts) hold for it.
        let (_, request) = request.build_split();
        let mut request = request.map_err(|e| {
            Error::configuration(format!("the request to {provider} could not be built"))
                .with_source(e.without_url())
        })?;
        let sensitive: Vec<SecretString> = request
            .headers()
            .values()
            .filter(|v| v.is_sensitive())
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| {
                let credential = v.split_once(' ').map(|(_, c)| c.trim().to_owned());
                [Some(v.to_owned()), credential]
            })
            .flatten()
            .map(SecretString::from)
            .collect();
        let secrets = self.secrets.with(secrets).with(&sensitive);
        let client = self.client_for(request.url())?;
        let timeout = request.timeout_mut();
        *timeout = Some(timeout.map_or(self.config.timeout, |t| t.min(self.config.timeout)));
        let mut response = client
            .execute(request)
            .await
            .map_err(|e| transport_error(provider, e))?;
        let status = response.status();
        let headers = response.headers();
        let content_type = header_str(headers, header::CONTENT_TYPE);
        let date = header_str(headers, header::DATE)
            .and_then(|d| httpdate::parse_http_date(&d).ok())
            .map(OffsetDateTime::from);
        let retry_after = header_str(headers, header::RETRY_AFTER);
        let max = self.config.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > max as u64)
        {
            return Err(oversized(provider, max));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(provider, e))?
        {
            if body.len() + chunk.len() > max {
                return Err(oversized(provider, max));
            }
            body.extend_from_slice(&chunk);
        }
        let mut body = body.freeze();
        if !status.is_success()
            && let Some(scrubbed) = secrets.scrub_bytes(&body)
        {
            body = Bytes::from(scrubbed);
        }
        Ok(HttpResponse {
            status,
            content_type,
            date,
            retry_after,
            body,
            secrets,
        })
    }

    /// The reqwest client that sends to `url`, built on first use. A loopback address is
    /// reached directly by kunci's own client: a proxy from the environment would see the
    /// request in clear text. Without a proxy in the environment one client serves both.
    fn client_for(&self, url: &Url) -> Result<&reqwest::Client, Error> {
        let (proxied, direct) = match &*self.clients {
            Clients::Given(client) => return Ok(client),
            Clients::Own { proxied, direct } => (proxied, direct),
        };
        let via_proxies = || built(proxied, || build_client(&self.config, true));
        if !is_loopback(url) {
            return via_proxies();
        }
        built(direct, || {
            if proxy_configured() {
                build_client(&self.config, false)
            } else {
                via_proxies().cloned()
            }
        })
    }
}

/// The client in `cell`, built by `build` on first use.
fn built(
    cell: &OnceLock<Result<reqwest::Client, Error>>,
    build: impl FnOnce() -> Result<reqwest::Client, Error>,
) -> Result<&reqwest::Client, Error> {
    cell.get_or_init(build).as_ref().map_err(Clone::clone)
}

impl From<HttpConfig> for HttpClient {
    /// [`HttpClient::new`]: a client of its own, built on its first request.
    fn from(config: HttpConfig) -> Self {
        Self::new(config)
    }
}

fn header_str(headers: &header::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn oversized(provider: &str, max: usize) -> Error {
    Error::protocol(format!(
        "{provider} answered with a body larger than {max} bytes; it was not read"
    ))
}

/// The certificate error in `e`'s chain, if a certificate did not verify.
fn certificate_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(e) = next {
        // An `io::Error` wrapping another error reports that error's source as its own, so
        // the walk goes on with the wrapped error itself.
        let wrapped = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if let Some(tls @ rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        next = wrapped.or_else(|| e.source());
    }
    None
}

fn transport_error(provider: &str, e: reqwest::Error) -> Error {
    let e = e.without_url();
    if let Some(why) = certificate_error(&e) {
        return Error::configuration(format!(
            "the TLS certificate of {provider} was refused ({why}); kunci never turns verification off: if the server uses a private certificate authority, configure its CA certificate (HttpConfig::with_ca_file)"
        ))
        .with_source(e);
    }
    let message = if e.is_timeout() {
        format!("{provider} did not answer in time")
    } else if e.is_connect() {
        format!("could not connect to {provider}")
    } else if e.is_body() || e.is_decode() {
        format!("the answer from {provider} was cut off")
    } else {
        format!("the request to {provider} failed")
    };
    Error::transient(message).with_source(e)
}

/// An answer, fully read.
#[derive(Clone)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The server's `Date` header.
    pub date: Option<OffsetDateTime>,
    retry_after: Option<String>,
    /// The body (at most [`HttpConfig::max_body_bytes`]). For a status other than 2xx, every
    /// form of every secret of the request is already replaced by [`REDACTED`].
    pub body: Bytes,
    secrets: Secrets,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body may hold a token: print its size only.
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("date", &self.date)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl HttpResponse {
    /// Builds a response (for tests and custom transports).
    pub fn new(status: StatusCode, content_type: Option<&str>, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type: content_type.map(str::to_owned),
            date: None,
            retry_after: None,
            body: body.into(),
            secrets: Secrets::new(),
        }
    }

    /// Keeps `secrets` out of the texts taken from this answer (for tests and custom
    /// transports; [`HttpClient::send`] sets the request's secrets and scrubs the body).
    #[must_use]
    pub fn with_secrets(mut self, secrets: Secrets) -> Self {
        if !self.status.is_success()
            && let Some(scrubbed) = secrets.scrub_bytes(&self.body)
        {
            self.body = Bytes::from(scrubbed);
        }
        self.secrets = secrets;
        self
    }

    /// `text` taken from this answer, made fit for an error message or a log line: see
    /// [`clean_server_text`] (the request's secrets scrubbed, control characters replaced,
    /// bidirectional and invisible characters dropped, at most `max_chars` characters).
    /// Every provider passes server text through this (or [`error_json`](Self::error_json))
    /// before putting it in an error.
    pub fn server_text(&self, text: &str, max_chars: usize) -> String {
        clean_server_text(&self.secrets, text, max_chars)
    }

    /// Parses an error body as JSON with every string in it — object keys too — passed
    /// through [`server_text`](Self::server_text) (at most 500 characters each). For the
    /// reason a server gives for a refusal (an `OperationOutcome`, a `detail`, `causes`).
    ///
    /// # Errors
    /// As [`json`](Self::json): where the body does not parse, never what it holds.
    pub fn error_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let value: serde_json::Value = self.json("the server")?;
        let cleaned = self.clean_json(value);
        serde_json::from_value(cleaned).map_err(|_| {
            Error::protocol(format!(
                "the error answer (status {}) does not have the expected shape",
                self.status.as_u16()
            ))
        })
    }

    fn clean_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        const MAX: usize = 500;
        match value {
            Value::String(s) => Value::String(self.server_text(&s, MAX)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.clean_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.server_text(&k, MAX), self.clean_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// Whether the `Content-Type` is JSON (`application/json`, `application/fhir+json`, …).
    pub fn is_json(&self) -> bool {
        self.mime().is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
    }

    /// The media type alone, lower-cased, without parameters.
    pub fn mime(&self) -> Option<String> {
        self.content_type.as_deref().map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// Parses the body as JSON; a body that does not parse is a protocol error that names where,
    /// never what (the body may hold secrets).
    pub fn json<T: DeserializeOwned>(&self, provider: &str) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Eof => "is truncated",
                serde_json::error::Category::Syntax => "is not valid JSON",
                serde_json::error::Category::Data | serde_json::error::Category::Io => {
                    "does not have the documented shape"
                }
            };
            Error::protocol(format!(
                "the answer from {provider} (status {}) {what} (line {}, column {})",
                self.status.as_u16(),
                e.line(),
                e.column()
            ))
        })
    }

    /// The body as text for an error message, through [`server_text`](Self::server_text):
    /// the request's secrets scrubbed, at most `max_chars` characters, control, bidirectional
    /// and invisible characters removed. For error pages.
    pub fn text_snippet(&self, max_chars: usize) -> String {
        self.server_text(String::from_utf8_lossy(&self.body).trim(), max_chars)
    }

    /// The server's `Retry-After`, as a moment (seconds are counted from `now`).
    pub fn retry_after(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let raw = self.retry_after.as_deref()?.trim();
        if let Ok(secs) = raw.parse::<u32>() {
            return Some(now + Duration::from_secs(u64::from(secs)));
        }
        httpdate::parse_http_date(raw)
            .ok()
            .map(OffsetDateTime::from)
    }

    /// Sets the raw `Retry-After` value (for tests and custom transports).
    #[must_use]
    pub fn with_retry_after(mut self, raw: &str) -> Self {
        self.retry_after = Some(raw.to_owned());
        self
    }

    /// How far the server's clock is ahead of ours (`Date` minus `local_now`); zero without a
    /// `Date` header. `Date` has one-second resolution, so offsets under two seconds are
    /// treated as none.
    pub fn clock_offset(&self, local_now: OffsetDateTime) -> time::Duration {
        match self.date {
            Some(date) if (date - local_now).abs() >= time::Duration::seconds(2) => {
                date - local_now
            }
            _ => time::Duration::ZERO,
        }
    }

    /// The error for a status the provider's document does not describe: 429 → rate limited
    /// (until `Retry-After`, or a minute), 408 and 5xx → transient (with the body's text, which
    /// for these statuses is an error page), anything else → protocol.
    pub fn unexpected_status(&self, provider: &str, now: OffsetDateTime) -> Error {
        let code = self.status.as_u16();
        let retry_after = self.retry_after(now);
        let err = if self.status == StatusCode::TOO_MANY_REQUESTS {
            let until = retry_after.unwrap_or(now + Duration::from_secs(60));
            Error::rate_limited(until, format!("{provider} answered 429 Too Many Requests"))
        } else if self.status.is_server_error() || self.status == StatusCode::REQUEST_TIMEOUT {
            let text = if self.mime().as_deref() == Some("text/html") {
                String::new()
            } else {
                self.text_snippet(200)
            };
            let sep = if text.is_empty() { "" } else { ": " };
            Error::transient(format!(
                "{provider} is unavailable (status {code}){sep}{text}"
            ))
        } else {
            Error::protocol(format!(
                "{provider} answered an unexpected status {code} ({})",
                self.mime().unwrap_or_else(|| "no content type".to_owned())
            ))
        };
        match retry_after {
            Some(at) => err.with_retry_after(at),
            None => err,
        }
    }
}

/// Parses a provider base URL. It may carry a path prefix (`https://gw.example/kalsel`); the
/// endpoint path is appended to it by [`endpoint`]. `http://` is accepted only for loopback
/// hosts.
pub fn parse_base_url(raw: &str) -> Result<Url, Error> {
    // Messages show the URL only as scheme, host and path: a base URL may carry credentials.
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::configuration(format!("the base URL is not a valid URL ({e})")))?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(Error::configuration(format!(
            "the base URL `{}` must not carry credentials, a query or a fragment",
            redact_url(&url)
        )));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(Error::configuration(format!(
            "the base URL `{}` uses plain http; kunci sends credentials only over https (http is allowed for loopback addresses)",
            redact_url(&url)
        ))),
        other => Err(Error::configuration(format!(
            "the base URL `{}` has the unsupported scheme `{other}`; use https",
            redact_url(&url)
        ))),
    }
}

fn redact_url(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `base` with `path` appended to its path prefix: `https://h/p` + `api/v1/refresh` →
/// `https://h/p/api/v1/refresh`. A trailing slash in `path` is kept.
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn base_urls() {
        assert!(parse_base_url("https://kalsel.dev").is_ok());
        assert!(parse_base_url("http://127.0.0.1:8080/prefix").is_ok());
        assert!(parse_base_url("http://[::1]:8080").is_ok());
        assert!(parse_base_url("http://localhost:1").is_ok());
        for bad in [
            "http://kalsel.dev",
            "ftp://x",
            "not a url",
            "https://u:p@h",
            "https://h/?q=1",
        ] {
            let err = parse_base_url(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Configuration, "{bad}");
        }
        assert!(
            !parse_base_url("https://u:hunter2@h")
                .unwrap_err()
                .to_string()
                .contains("hunter2")
        );
    }

    #[test]
    fn endpoints_keep_prefix_and_trailing_slash() {
        let base = parse_base_url("https://h.example/gw/").unwrap();
        assert_eq!(
            endpoint(&base, "/api/auth/get-access-token/").as_str(),
            "https://h.example/gw/api/auth/get-access-token/"
        );
        let bare = parse_base_url("https://h.example").unwrap();
        assert_eq!(
            endpoint(&bare, "tokens").as_str(),
            "https://h.example/tokens"
        );
    }

    #[test]
    fn status_mapping() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let r = HttpResponse::new(
            StatusCode::GATEWAY_TIMEOUT,
            Some("text/plain"),
            "Gateway Timeout",
        );
        let e = r.unexpected_status("sehatmu", now);
        assert_eq!(e.kind(), crate::ErrorKind::Transient);
        assert!(e.message().contains("Gateway Timeout"));
        let r = HttpResponse::new(StatusCode::TOO_MANY_REQUESTS, None, "").with_retry_after("120");
        assert_eq!(
            r.unexpected_status("x", now).kind(),
            crate::ErrorKind::RateLimited {
                until: now + Duration::from_secs(120)
            }
        );
        let r = HttpResponse::new(StatusCode::SERVICE_UNAVAILABLE, None, "")
            .with_retry_after("Wed, 21 Oct 2026 07:28:00 GMT");
        assert_eq!(
            r.unexpected_status("x", now).retry_after(),
            Some(datetime!(2026-10-21 07:28:00 UTC))
        );
        let r = HttpResponse::new(StatusCode::IM_A_TEAPOT, Some("text/html"), "<html>");
        assert_eq!(
            r.unexpected_status("x", now).kind(),
            crate::ErrorKind::Protocol
        );
    }

    #[test]
    fn snippets_drop_bidi_and_invisible_characters_and_turn_controls_into_spaces() {
        let r = HttpResponse::new(
            StatusCode::BAD_GATEWAY,
            Some("text/plain"),
            "\u{202E}txt.exe\u{202C} bad\ngate\u{200B}way\u{2067}\u{FEFF}",
        );
        assert_eq!(r.text_snippet(200), "txt.exe bad gateway");
        assert_eq!(r.text_snippet(3), "txt…");
    }

    #[test]
    fn scrubbing_keeps_text_without_secrets_and_joins_no_secret_back() {
        let secrets = Secrets::new().with(&[secrecy::SecretString::from("s3cr3t")]);
        assert_eq!(secrets.scrub("nothing here"), "nothing here");
        // An invisible character inside the echo does not survive as a joined secret.
        assert_eq!(
            clean_server_text(&secrets, "x s3\u{200B}cr3t y", 100),
            "x [redacted] y"
        );
        // Empty secrets are ignored rather than matching everywhere.
        let empty = Secrets::new().with(&[secrecy::SecretString::from("")]);
        assert!(empty.is_empty());
        assert_eq!(empty.scrub("abc"), "abc");
    }

    #[test]
    fn a_success_body_is_never_rewritten() {
        let secrets = Secrets::new().with(&[secrecy::SecretString::from("tok")]);
        let ok = HttpResponse::new(StatusCode::OK, None, "tok").with_secrets(secrets.clone());
        assert_eq!(&ok.body[..], b"tok");
        let bad = HttpResponse::new(StatusCode::BAD_REQUEST, None, "tok").with_secrets(secrets);
        assert_eq!(&bad.body[..], b"[redacted]");
    }

    #[test]
    fn json_errors_do_not_echo_the_body() {
        let r = HttpResponse::new(
            StatusCode::OK,
            Some("application/json"),
            r#"{"access_token": "SECRET" "#,
        );
        let e = r.json::<serde_json::Value>("kalsel").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Protocol);
        assert!(!e.to_string().contains("SECRET"));
    }

    #[test]
    fn content_types() {
        assert!(
            HttpResponse::new(StatusCode::OK, Some("application/json; charset=utf-8"), "")
                .is_json()
        );
        assert!(HttpResponse::new(StatusCode::OK, Some("application/fhir+json"), "").is_json());
        assert!(!HttpResponse::new(StatusCode::OK, Some("text/html"), "").is_json());
        assert!(!HttpResponse::new(StatusCode::OK, None, "").is_json());
    }

    #[test]
    fn clock_offset_ignores_rounding() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let mut r = HttpResponse::new(StatusCode::OK, None, "");
        r.date = Some(now + Duration::from_secs(1));
        assert_eq!(r.clock_offset(now), time::Duration::ZERO);
        r.date = Some(now - Duration::from_secs(300));
        assert_eq!(r.clock_offset(now), time::Duration::seconds(-300));
    }
}
