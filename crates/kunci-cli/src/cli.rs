//! The command line: global options and subcommands (clap derive).

use std::{path::PathBuf, time::Duration};

use clap::{ArgAction, Parser, Subcommand};

const AFTER_HELP: &str = "\
Environment (besides the variables of the options above and the providers' own):
  KUNCI_PROFILE    the profile a command uses when none is named (before the config file's
                   `default_profile`)
  KUNCI_STORE_KEY  32 bytes in base64 or hex: stored entries (tokens, saved logins) are
                   encrypted at rest; set but unusable is exit 2, never plaintext
  KUNCI_AGENT      the socket of a `kunci agent` that `token` and `header` ask first (`off`:
                   never)

Exit codes: 0 ok, 2 usage or configuration, 3 credentials rejected or re-authentication
required, 4 rate limited (local cool-down or the server), 5 provider or token store unavailable
(connection error, timeout, 5xx), 6 protocol error (malformed, unexpected or oversized answer).";

/// The text after the options: the providers compiled in, the environment, the exit codes;
/// the demo is offered where it is built in (feature `demo`).
fn after_help() -> String {
    let kinds = kunci::ProviderKind::ALL;
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    let prefixes: Vec<String> = names
        .iter()
        .map(|n| format!("{}_*", n.to_ascii_uppercase()))
        .collect();
    let demo = if cfg!(feature = "demo") {
        "Try `kunci demo`. "
    } else {
        ""
    };
    format!(
        "PROFILE is a profile of the config file, or a provider name ({}) configured from its\n\
         environment variables ({}) or from secrets saved by `kunci login`.\n\n\
         {AFTER_HELP}\n\n{demo}Reference: docs/cli.md.",
        names.join(", "),
        prefixes.join(", ")
    )
}

/// API tokens for Indonesian REST APIs: got, cached, refreshed, stored and shared.
#[derive(Debug, Parser)]
#[command(name = "kunci", version, after_help = after_help())]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options accepted before or after the subcommand.
#[derive(Debug, clap::Args)]
pub(crate) struct Global {
    /// Where tokens are kept: a directory, file://DIR, redis://HOST, rediss://HOST,
    /// postgres://HOST/DB or memory:
    /// [default: the config file's `store`, else the platform data directory]
    #[arg(
        long,
        env = "KUNCI_STORE",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub(crate) store: Option<String>,

    /// A PEM file of the certificate authorities that sign a `rediss://` store's certificate
    /// (a private CA); without it the platform's roots are used
    #[arg(
        long,
        env = "KUNCI_STORE_CA",
        hide_env_values = true,
        global = true,
        value_name = "PEM"
    )]
    pub(crate) store_ca: Option<PathBuf>,

    /// A PEM file of certificate authorities trusted for token endpoints besides the
    /// platform's (a gateway with a private CA); TLS is always verified
    #[arg(
        long,
        env = "KUNCI_CA_FILE",
        hide_env_values = true,
        global = true,
        value_name = "PEM"
    )]
    pub(crate) ca_file: Option<PathBuf>,

    /// The TOML file of profiles [default: kunci/config.toml in the platform config directory,
    /// when it exists]
    #[arg(
        long,
        env = "KUNCI_CONFIG",
        hide_env_values = true,
        global = true,
        value_name = "PATH"
    )]
    pub(crate) config: Option<PathBuf>,

    /// The bound on one provider request, in seconds
    #[arg(
        long,
        env = "KUNCI_TIMEOUT",
        global = true,
        hide_env_values = true,
        value_name = "SECONDS",
        default_value = "30",
        value_parser = parse_timeout
    )]
    pub(crate) timeout: Duration,

    /// Logs on stderr: -v info, -vv debug, -vvv trace (RUST_LOG, when set, decides instead)
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the token alone on one line (from the store while valid; refreshed when needed)
    Token {
        /// A config profile or a provider name [default: KUNCI_PROFILE, else the config
        /// file's `default_profile`]
        profile: Option<String>,
        /// Print one JSON object: profile, provider, token, scheme, expires_at (RFC 3339),
        /// state
        #[arg(long)]
        json: bool,
    },
    /// Print `Authorization: Bearer <token>` (`Token <token>` for a Stamps static token)
    Header {
        /// A config profile or a provider name [default: KUNCI_PROFILE, else the config
        /// file's `default_profile`]
        profile: Option<String>,
    },
    /// Show what the store holds: state, expiry, store; never a secret
    Status {
        /// One profile; without it, every configured profile and provider
        profile: Option<String>,
        /// Print one JSON object: the store and, per profile, its key, state and expiry
        /// (RFC 3339); never a secret
        #[arg(long)]
        json: bool,
    },
    /// Read secrets (without echo on a terminal, else one line each from stdin) and keep them
    /// in the store, so later commands need no environment variables
    Login {
        /// A config profile or a provider name [default: KUNCI_PROFILE, else the config
        /// file's `default_profile`]
        profile: Option<String>,
        /// Kalsel.dev: log in with this account's email and its password (read without echo,
        /// or as the first line of stdin), sent once to get the refresh token; the password is
        /// never stored
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
    },
    /// Remove the stored token and the saved login of a profile
    Logout {
        /// A config profile or a provider name [default: KUNCI_PROFILE, else the config
        /// file's `default_profile`]
        profile: Option<String>,
    },
    /// Stamps: ask verify-token about the current token and print its claims as JSON
    Verify {
        /// A config profile or a provider name (Stamps) [default: KUNCI_PROFILE, else the
        /// config file's `default_profile`]
        profile: Option<String>,
    },
    /// Run every provider's simulator in-process and walk through a token's life
    #[cfg(feature = "demo")]
    Demo,
    /// Serve every configured profile's token over HTTP on a Unix socket, refreshed ahead in
    /// the background, for programs in any language (docs/agent.md)
    Agent(AgentArgs),
    /// Run a command with tokens in its environment, restarting it (or signalling it) when a
    /// token it holds is refreshed
    Exec(ExecArgs),
    /// Print a completion script for SHELL on stdout (`kunci completions bash >
    /// ~/.local/share/bash-completion/completions/kunci`)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Write the man pages (kunci.1, kunci-token.1, …) into DIR (`cargo xtask man`)
    #[command(hide = true)]
    GenerateMan {
        /// The directory to write them into (created when missing)
        dir: PathBuf,
    },
}

/// `kunci agent`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    /// The socket to listen on [default: the [agent] table's `socket`, else
    /// $XDG_RUNTIME_DIR/kunci/agent.sock]
    #[arg(long, env = "KUNCI_AGENT", value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// Also serve /metrics on this loopback address and port (127.0.0.1:9464)
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_listen: Option<String>,
    /// Serve only this profile (repeatable) [default: every config profile and every
    /// configured provider]
    #[arg(long = "profile", value_name = "PROFILE")]
    pub(crate) profiles: Vec<String>,
}

/// `kunci exec`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// NAME=PROFILE puts the token of PROFILE in the variable NAME; NAME=PROFILE:header puts
    /// the `Authorization` value (`Bearer <token>`) there (repeatable)
    #[arg(long = "env", value_name = "NAME=PROFILE[:header]", required = true)]
    pub(crate) env: Vec<String>,
    /// On a refresh, send this signal (HUP, USR1, …) instead of restarting the command
    #[arg(long, value_name = "SIGNAL")]
    pub(crate) signal: Option<String>,
    /// How long a restart waits after SIGTERM before SIGKILL, in seconds
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout)]
    pub(crate) grace: Duration,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

fn parse_timeout(raw: &str) -> Result<Duration, String> {
    let seconds: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("`{raw}` is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 3600.0) {
        return Err("the timeout must be more than 0 and at most 3600 seconds".to_owned());
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn global_options_after_the_subcommand() {
        let args = Args::try_parse_from(["kunci", "token", "stamps", "--store", "memory:", "-vv"])
            .unwrap();
        assert_eq!(args.global.store.as_deref(), Some("memory:"));
        assert_eq!(args.global.verbose, 2);
        assert!(
            matches!(args.command, Command::Token { ref profile, json: false } if profile.as_deref() == Some("stamps"))
        );
    }

    #[test]
    fn help_names_kunci_store_key_and_shows_no_empty_environment_value() {
        let help = Args::command().render_long_help().to_string();
        assert!(help.contains("KUNCI_STORE_KEY"), "{help}");
        assert!(help.contains("KUNCI_PROFILE"), "{help}");
        // every provider compiled in is named, with no edit here
        for kind in kunci::ProviderKind::ALL {
            assert!(help.contains(kind.name()), "{}: {help}", kind.name());
        }
        assert!(help.contains("[env: KUNCI_TIMEOUT]"), "{help}");
        assert!(!help.contains("=]"), "{help}");
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("NaN").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
