//! systemd's readiness protocol (`sd_notify`): one datagram to the socket named by
//! `$NOTIFY_SOCKET` — a path, or `@name` in the abstract namespace. Without the variable
//! (not started by systemd) nothing is sent.

use std::{io, os::unix::net::UnixDatagram};

/// The variable systemd sets for a `Type=notify` service.
pub(crate) const ENV_NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (such as `READY=1\nSTATUS=serving 3 profiles`). Returns whether a socket was
/// named.
pub(crate) fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os(ENV_NOTIFY_SOCKET).filter(|v| !v.is_empty()) else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract sockets exist on Linux only",
            ));
        }
    } else {
        socket.send_to(state.as_bytes(), &target)?;
    }
    Ok(true)
}
