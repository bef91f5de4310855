//! The agent's settings: the `[agent]` table of the config file, under the command line.
//!
//! ```toml
//! [agent]
//! socket = "/run/kunci/agent.sock"   # --socket and KUNCI_AGENT win
//! socket_mode = "0660"               # default 0600: only the agent's user can connect at all
//! allow_uids = [33]                  # peers besides the agent's own user (SO_PEERCRED)
//! allow_gids = [33]                  # peers whose primary group is one of these
//! max_connections = 256
//! metrics_listen = "127.0.0.1:9464"  # also serve /metrics on a loopback TCP port
//! profiles = ["klinik", "toko"]      # default: every configured profile and provider
//!
//! [[agent.sinks]]                    # write the token or the header to a file at every refresh
//! profile = "toko"
//! path = "/run/kunci/toko.header"
//! format = "header"                  # or "token"
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::failure::Failure;

/// The variable naming the agent's socket, for the agent and for its clients.
pub(crate) const ENV_AGENT: &str = "KUNCI_AGENT";

/// What a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SinkFormat {
    /// The token alone, with a final line break.
    Token,
    /// The `Authorization` value (`Bearer <token>`), with a final line break.
    Header,
}

/// One sink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sink {
    pub(crate) profile: String,
    pub(crate) path: PathBuf,
    #[serde(default = "default_format")]
    pub(crate) format: SinkFormat,
}

fn default_format() -> SinkFormat {
    SinkFormat::Token
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    socket: Option<PathBuf>,
    socket_mode: Option<String>,
    #[serde(default)]
    allow_uids: Vec<u32>,
    #[serde(default)]
    allow_gids: Vec<u32>,
    max_connections: Option<usize>,
    metrics_listen: Option<String>,
    profiles: Option<Vec<String>>,
    #[serde(default)]
    sinks: Vec<Sink>,
}

/// The agent's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) socket: PathBuf,
    pub(crate) socket_mode: u32,
    pub(crate) allow_uids: Vec<u32>,
    pub(crate) allow_gids: Vec<u32>,
    pub(crate) max_connections: usize,
    pub(crate) metrics_listen: Option<SocketAddr>,
    pub(crate) profiles: Option<Vec<String>>,
    pub(crate) sinks: Vec<Sink>,
}

/// The command line's say.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    pub(crate) socket: Option<PathBuf>,
    pub(crate) metrics_listen: Option<String>,
    pub(crate) profiles: Vec<String>,
}

/// The default socket: `$XDG_RUNTIME_DIR/kunci/agent.sock`, else `/run/kunci/agent.sock` for
/// root (a system service); `None` for another user without `XDG_RUNTIME_DIR`.
pub(crate) fn default_socket() -> Option<PathBuf> {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Some(Path::new(&dir).join("kunci").join("agent.sock")),
        None if rustix::process::geteuid().is_root() => {
            Some(PathBuf::from("/run/kunci/agent.sock"))
        }
        None => None,
    }
}

/// The socket a client should try: `KUNCI_AGENT` (empty or `off`: none), else the default
/// socket when it exists.
pub(crate) fn client_socket() -> Option<PathBuf> {
    match std::env::var_os(ENV_AGENT) {
        Some(v) if v.is_empty() || v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => default_socket().filter(|p| p.exists()),
    }
}

const MAX_CONNECTIONS_LIMIT: usize = 65_536;

impl Settings {
    /// Reads the `[agent]` table (if any) and lays the command line over it.
    pub(crate) fn new(table: Option<&toml::Table>, overrides: &Overrides) -> Result<Self, Failure> {
        let at = |msg: String| Failure::configuration(format!("the [agent] table: {msg}"));
        let table: Table = match table {
            Some(t) => toml::Value::Table(t.clone())
                .try_into()
                .map_err(|e: toml::de::Error| at(e.message().to_owned()))?,
            None => Table::default(),
        };
        let socket = overrides
            .socket
            .clone()
            // `KUNCI_AGENT=off` tells clients not to ask; it names no socket for the agent
            .filter(|s| !s.as_os_str().is_empty() && s.as_os_str() != "off")
            .or(table.socket)
            .or_else(default_socket)
            .ok_or_else(|| {
                Failure::configuration(
                    "no socket path: XDG_RUNTIME_DIR is not set; pass --socket PATH or set KUNCI_AGENT",
                )
            })?;
        let socket_mode = match table.socket_mode.as_deref() {
            None => 0o600,
            Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m & !0o777 == 0 && *m & 0o600 == 0o600)
                .ok_or_else(|| {
                    at(format!(
                        "socket_mode `{}` is not an octal mode between 0600 and 0777 (such as \"0660\")",
                        text.escape_debug()
                    ))
                })?,
        };
        let max_connections = table.max_connections.unwrap_or(256);
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&max_connections) {
            return Err(at(format!(
                "max_connections must be between 1 and {MAX_CONNECTIONS_LIMIT}"
            )));
        }
        let metrics_listen = match overrides.metrics_listen.clone().or(table.metrics_listen) {
            None => None,
            Some(text) => {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    Failure::configuration(format!(
                        "metrics listen address `{}` is not an IP address and port (such as 127.0.0.1:9464)",
                        text.escape_debug()
                    ))
                })?;
                if !addr.ip().is_loopback() {
                    return Err(Failure::configuration(format!(
                        "metrics listen address {addr} is not a loopback address: the metrics are served on 127.0.0.1 or [::1] only"
                    )));
                }
                Some(addr)
            }
        };
        let profiles = if overrides.profiles.is_empty() {
            table.profiles
        } else {
            Some(overrides.profiles.clone())
        };
        for sink in &table.sinks {
            if sink.path.as_os_str().is_empty() || sink.path.file_name().is_none() {
                return Err(at(format!(
                    "the sink of profile `{}` has no file name",
                    sink.profile
                )));
            }
            if let Some(profiles) = &profiles
                && !profiles.contains(&sink.profile)
            {
                return Err(at(format!(
                    "a sink names profile `{}`, which the agent does not serve",
                    sink.profile
                )));
            }
        }
        Ok(Self {
            socket,
            socket_mode,
            allow_uids: table.allow_uids,
            allow_gids: table.allow_gids,
            max_connections,
            metrics_listen,
            profiles,
            sinks: table.sinks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, Failure> {
        let table: toml::Table = text.parse().unwrap();
        let overrides = Overrides {
            socket: Some(PathBuf::from("/tmp/a.sock")),
            ..Overrides::default()
        };
        Settings::new(table.get("agent").and_then(|a| a.as_table()), &overrides)
    }

    #[test]
    fn defaults_are_private() {
        let s = parse("").unwrap();
        assert_eq!(s.socket_mode, 0o600);
        assert!(s.allow_uids.is_empty() && s.allow_gids.is_empty());
        assert_eq!(s.max_connections, 256);
        assert_eq!(s.metrics_listen, None);
    }

    #[test]
    fn a_full_table_parses() {
        let s = parse(
            r#"
[agent]
socket_mode = "0660"
allow_uids = [33, 1001]
allow_gids = [33]
max_connections = 10
metrics_listen = "127.0.0.1:9464"
profiles = ["toko"]
[[agent.sinks]]
profile = "toko"
path = "/run/kunci/toko.header"
format = "header"
"#,
        )
        .unwrap();
        assert_eq!(s.socket_mode, 0o660);
        assert_eq!(s.allow_uids, [33, 1001]);
        assert_eq!(s.sinks[0].format, SinkFormat::Header);
        assert_eq!(s.socket, PathBuf::from("/tmp/a.sock"), "the flag wins");
    }

    #[test]
    fn bad_values_are_configuration_errors() {
        for bad in [
            "[agent]\nsocket_mode = \"0400\"",
            "[agent]\nsocket_mode = \"rw\"",
            "[agent]\nmax_connections = 0",
            "[agent]\nmax_connections = 99999999999",
            "[agent]\nmetrics_listen = \"0.0.0.0:9464\"",
            "[agent]\nmetrics_listen = \"localhost\"",
            "[agent]\ncolour = 1",
            "[agent]\nprofiles = [\"a\"]\n[[agent.sinks]]\nprofile = \"b\"\npath = \"/x\"",
            "[agent]\nallow_uids = [-1]",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.code, 2, "{bad}");
        }
    }
}
