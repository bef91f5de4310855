//! Logs on stderr: `-v` info, `-vv` debug, `-vvv` trace for kunci's crates; `RUST_LOG`, when
//! set, decides instead. Without either, only errors are logged (the command reports its own
//! failure on one `error:` line).

use tracing_subscriber::EnvFilter;

/// The crates whose logs `-v` turns on.
const CRATES: &[&str] = &[
    "kunci",
    "auth_core",
    "auth_store",
    "auth_kalsel",
    "auth_krmpesan",
    "auth_sehatmu",
    "auth_stamps",
    "auth_testkit",
];

/// The filter for `verbose` (`-v` count).
pub(crate) fn filter(verbose: u8) -> String {
    let level = match verbose {
        0 => return "error".to_owned(),
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let mut filter = String::from("warn");
    for krate in CRATES {
        filter.push_str(&format!(",{krate}={level}"));
    }
    filter
}

/// Installs the subscriber. Never fails the command: a bad `RUST_LOG` falls back to `-v`.
pub(crate) fn init(verbose: u8) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(filter(verbose)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(filter(0), "error");
        assert!(filter(1).contains("auth_core=info"));
        assert!(filter(2).contains("kunci=debug"));
        assert!(filter(9).contains("auth_store=trace"));
        assert!(filter(2).starts_with("warn,"));
    }
}
