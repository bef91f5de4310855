//! The socket and the connections: HTTP/1.1 (hyper) on a Unix domain socket, the peer's
//! credentials checked on every connection, bounded headers, bodies and connection count,
//! idle connections closed, and a graceful stop.

use std::{
    io,
    os::unix::fs::{DirBuilderExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{
    net::{TcpListener, UnixListener, UnixStream},
    sync::{Semaphore, watch},
};

use super::{State, api};
use crate::failure::Failure;

/// How long a client may take to send a request's headers — and how long a kept-alive
/// connection may sit idle before the next one (hyper starts the same timer for both).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head accepted: hyper's read buffer, which bounds the request line and
/// the headers together.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// How long a stop waits for requests in progress.
const DRAIN: Duration = Duration::from_secs(5);

/// Who may connect: the agent's own user, and the allow-listed users and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allowed {
    pub(crate) own_uid: u32,
    pub(crate) uids: Vec<u32>,
    pub(crate) gids: Vec<u32>,
}

impl Allowed {
    /// Whether a peer with these credentials may connect. The group is the peer's primary
    /// group (SO_PEERCRED carries no supplementary groups).
    pub(crate) fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == self.own_uid || self.uids.contains(&uid) || self.gids.contains(&gid)
    }
}

/// The socket file: the default directory is created 0700, a stale socket (nothing answers it)
/// is replaced, a live one is an error, and the socket gets `mode`.
pub(crate) async fn bind(path: &Path, mode: u32) -> Result<UnixListener, Failure> {
    let io_failure = |what: &str, e: io::Error| {
        Failure::configuration(format!("cannot {what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_failure("create the directory of", e))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(Failure::configuration(format!(
                "another agent is serving {} already",
                path.display()
            ))
            .hint("stop it, or choose another socket with --socket"));
        }
        std::fs::remove_file(path).map_err(|e| io_failure("remove the stale socket", e))?;
    }
    // The socket is created with the umask's mode and set to `mode` right after; in the
    // moment between, the directory (0700 when the agent made it) and the peer check on every
    // connection keep others out.
    let listener = UnixListener::bind(path).map_err(|e| io_failure("listen on", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_failure("set the mode of", e))?;
    Ok(listener)
}

/// Removes the socket file when the agent stops.
#[derive(Debug)]
pub(crate) struct SocketFile(pub(crate) PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn http() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    builder
}

/// Accepts connections on the socket until `stop` changes, then lets requests in progress
/// finish (for at most a few seconds).
pub(crate) async fn serve_unix(
    listener: UnixListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(state.max_connections));
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let cred = match stream.peer_cred() {
            Ok(cred) => cred,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the peer's credentials; closing");
                continue;
            }
        };
        let (uid, gid, pid) = (cred.uid(), cred.gid(), cred.pid());
        let allowed = state.allowed.load().allows(uid, gid);
        let io = TokioIo::new(stream);
        if allowed {
            let state = Arc::clone(&state);
            let conn = http().serve_connection(
                io,
                service_fn(move |req| api::handle(Arc::clone(&state), req)),
            );
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        } else {
            tracing::warn!(
                uid,
                gid,
                pid = pid.unwrap_or(0),
                "refused a connection: the peer's user is not allowed (403, nothing served)"
            );
            state.requests.refused_peer();
            let mut builder = http();
            builder.keep_alive(false);
            let conn = builder.serve_connection(
                io,
                service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(api::forbidden(uid))
                }),
            );
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
                drop(permit);
            });
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after {DRAIN:?}; stopping anyway");
    }
}

/// Serves `/metrics` and `/healthz` (only) on a loopback TCP port.
pub(crate) async fn serve_metrics(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(16));
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => return,
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let state = Arc::clone(&state);
        let conn = http().serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(api::metrics_only(&state, &req)) }
            }),
        );
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_own_user_and_the_allow_list_may_connect() {
        let allowed = Allowed {
            own_uid: 1000,
            uids: vec![33],
            gids: vec![44],
        };
        assert!(allowed.allows(1000, 1000));
        assert!(allowed.allows(33, 33));
        assert!(allowed.allows(2000, 44));
        assert!(!allowed.allows(2000, 2000));
        assert!(!allowed.allows(0, 0), "not even root, unless listed");
    }
}
