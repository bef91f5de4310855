//! How `kunci token` and `kunci header` use a running agent: when `KUNCI_AGENT` names a socket
//! (or the default socket exists) and an agent answers there, its token is printed; when
//! nothing answers, or the agent does not serve the profile, the command works alone.
//!
//! The agent must run as the caller's user or as root (checked with the socket's peer
//! credentials), so another user cannot stand in for it with a socket of their own.

use std::{path::Path, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use tokio::net::UnixStream;

use crate::failure::{Failure, code};

/// How long a connection to the agent may take (it is local: anything slower is not an agent).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest answer read from the agent.
const MAX_ANSWER: usize = 64 * 1024;

/// A token the agent handed out.
pub(crate) struct Reply {
    pub(crate) token: SecretString,
    pub(crate) scheme: String,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("token", &"[redacted]")
            .field("scheme", &self.scheme)
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct TokenBody {
    token: String,
    scheme: String,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: String,
    exit_code: u8,
    message: String,
}

/// Asks the agent at the usual place (see [`super::settings::client_socket`]) for the token of
/// `profile`. `Ok(None)`: work alone.
pub(crate) async fn ask(profile: &str, timeout: Duration) -> Result<Option<Reply>, Failure> {
    let Some(socket) = super::settings::client_socket() else {
        return Ok(None);
    };
    ask_at(&socket, profile, timeout).await
}

/// Asks the agent at `socket`.
pub(crate) async fn ask_at(
    socket: &Path,
    profile: &str,
    timeout: Duration,
) -> Result<Option<Reply>, Failure> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(socket = %socket.display(), error = %e, "no agent answers; working alone");
            return Ok(None);
        }
        Err(_) => {
            tracing::debug!(socket = %socket.display(), "the agent did not accept in time; working alone");
            return Ok(None);
        }
    };
    let own = rustix::process::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == own || cred.uid() == 0 => {}
        Ok(cred) => {
            tracing::warn!(socket = %socket.display(), uid = cred.uid(), "the process on the agent socket runs as another user; not using it");
            return Ok(None);
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot check who serves the agent socket; not using it");
            return Ok(None);
        }
    }
    // The agent waits for at most one provider request; allow that and a little more.
    let bound = timeout + Duration::from_secs(5);
    match tokio::time::timeout(bound, exchange(stream, profile)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::new(
            code::UNAVAILABLE,
            format!(
                "the agent at {} did not answer within {bound:?}",
                socket.display()
            ),
        )),
    }
}

async fn exchange(stream: UnixStream, profile: &str) -> Result<Option<Reply>, Failure> {
    let unavailable =
        |what: &str| Failure::new(code::UNAVAILABLE, format!("the agent failed: {what}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unavailable(&e.to_string()))?;
    let conn = tokio::spawn(conn);
    let request = Request::get(format!("/v1/token/{profile}"))
        .header(header::HOST, "kunci-agent")
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|_| Failure::configuration("the profile name cannot be sent to the agent"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(&e.to_string()))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|_| unavailable("its answer was cut off or too large"))?
        .to_bytes();
    conn.abort();
    if status == StatusCode::OK {
        let parsed: TokenBody = serde_json::from_slice(&body)
            .map_err(|_| Failure::new(code::PROTOCOL, "the agent answered malformed JSON"))?;
        return Ok(Some(Reply {
            token: SecretString::from(parsed.token),
            scheme: parsed.scheme,
        }));
    }
    let error: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    match (status, error) {
        // the agent does not serve this profile, or refuses this user: work alone
        (StatusCode::NOT_FOUND | StatusCode::FORBIDDEN, _) => {
            tracing::info!(%status, "the agent does not serve this profile to us; working alone");
            Ok(None)
        }
        (_, Some(e)) => Err(Failure::new(
            if (2..=6).contains(&e.exit_code) {
                e.exit_code
            } else {
                code::OTHER
            },
            format!("{} (from the agent: {})", e.message, e.error),
        )),
        (status, None) => Err(Failure::new(
            code::PROTOCOL,
            format!("the agent answered {status} without an error body"),
        )),
    }
}
