//! `kunci exec --env STAMPS_TOKEN=stamps -- php artisan queue:work`: runs a command with tokens
//! in its environment and, when a token it holds is refreshed, restarts it (SIGTERM, then
//! SIGKILL after `--grace`) with the new one — or, with `--signal HUP`, sends it that signal
//! instead (for a command that re-reads its token from a sink or the agent). The command's own
//! exit ends `kunci exec` with the same status; SIGTERM and SIGINT are passed on to it.
//!
//! It keeps its profiles fresh itself (the same machinery as the agent, `agent::tokens`),
//! sharing the store with any agent or other process on the host.

use std::{collections::BTreeMap, os::unix::process::ExitStatusExt as _, process::ExitStatus};

use kunci::metrics::Metrics;
use rustix::process::{Pid, Signal};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::{
    process::{Child, Command},
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    agent::{AbortOnDrop, tokens::Tokens},
    cli::ExecArgs,
    context::Context,
    failure::{Failure, code},
};

/// One `--env NAME=PROFILE[:header]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EnvSpec {
    var: String,
    profile: String,
    header: bool,
}

fn parse_env(spec: &str) -> Result<EnvSpec, Failure> {
    let bad = || {
        Failure::configuration(format!(
            "--env `{}` is not NAME=PROFILE or NAME=PROFILE:header",
            spec.escape_debug()
        ))
    };
    let (var, rest) = spec.split_once('=').ok_or_else(bad)?;
    let valid_var = var
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_var {
        return Err(bad());
    }
    let (profile, header) = match rest.rsplit_once(':') {
        Some((profile, "header")) => (profile, true),
        Some((profile, "token")) => (profile, false),
        Some(_) => return Err(bad()),
        None => (rest, false),
    };
    if profile.is_empty() {
        return Err(bad());
    }
    Ok(EnvSpec {
        var: var.to_owned(),
        profile: profile.to_owned(),
        header,
    })
}

fn parse_signal(name: &str) -> Result<Signal, Failure> {
    let upper = name.trim().to_ascii_uppercase();
    let upper = upper.strip_prefix("SIG").unwrap_or(&upper);
    let signal = match upper {
        "HUP" => Some(Signal::HUP),
        "INT" => Some(Signal::INT),
        "QUIT" => Some(Signal::QUIT),
        "TERM" => Some(Signal::TERM),
        "USR1" => Some(Signal::USR1),
        "USR2" => Some(Signal::USR2),
        "WINCH" => Some(Signal::WINCH),
        other => other.parse::<i32>().ok().and_then(Signal::from_named_raw),
    };
    signal.ok_or_else(|| {
        Failure::configuration(format!(
            "--signal `{}` is not a signal (HUP, INT, QUIT, TERM, USR1, USR2, WINCH or a number)",
            name.escape_debug()
        ))
    })
}

fn send(child: &Child, signal: Signal) {
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
        && let Err(e) = rustix::process::kill_process(pid, signal)
    {
        tracing::warn!(error = %e, "cannot signal the command");
    }
}

/// The exit status as a shell reports it: the code, or 128 + the signal.
fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(code::OTHER),
        (None, Some(signal)) => u8::try_from((128 + signal) & 0xff).unwrap_or(code::OTHER),
        (None, None) => code::OTHER,
    }
}

/// The variables for the command, from the current tokens, and each profile's token
/// fingerprint (what the command holds).
async fn environment(
    tokens: &Tokens,
    specs: &[EnvSpec],
) -> Result<(Vec<(String, SecretString)>, BTreeMap<String, String>), Failure> {
    let mut vars = Vec::new();
    let mut held = BTreeMap::new();
    for spec in specs {
        let (_, token) = tokens.token(&spec.profile).await.map_err(|l| match l {
            crate::agent::tokens::Lookup::Failed(e) => Failure::from(e),
            crate::agent::tokens::Lookup::Unconfigured(u) => Failure::new(u.code, u.message),
            crate::agent::tokens::Lookup::Unknown => {
                Failure::configuration(format!("unknown profile `{}`", spec.profile))
            }
        })?;
        let value = if spec.header {
            token.header_value().to_str().unwrap_or_default().to_owned()
        } else {
            token.secret().expose_secret().to_owned()
        };
        vars.push((spec.var.clone(), SecretString::from(value)));
        held.insert(
            spec.profile.clone(),
            crate::agent::tokens::fingerprint(token.secret().expose_secret()),
        );
    }
    Ok((vars, held))
}

fn spawn(args: &ExecArgs, vars: &[(String, SecretString)]) -> Result<Child, Failure> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Failure::configuration("no command to run after `--`"))?;
    let mut command = Command::new(program);
    command.args(rest);
    for (name, value) in vars {
        command.env(name, value.expose_secret());
    }
    command.kill_on_drop(true);
    command.spawn().map_err(|e| {
        Failure::configuration(format!("cannot run `{}`: {e}", program.escape_debug()))
    })
}

/// `kunci exec`.
pub(crate) async fn run(ctx: &Context, args: &ExecArgs) -> Result<(), Failure> {
    let specs = args
        .env
        .iter()
        .map(|s| parse_env(s))
        .collect::<Result<Vec<_>, _>>()?;
    let reload_signal = args.signal.as_deref().map(parse_signal).transpose()?;
    let mut profiles: Vec<String> = specs.iter().map(|s| s.profile.clone()).collect();
    profiles.sort();
    profiles.dedup();
    let store = ctx.open_store().await?;
    let tokens = Tokens::build(ctx, &store, Some(&profiles), None, &Metrics::new()).await?;

    let (tx, mut changed) = mpsc::channel::<()>(16);
    let mut _watchers = Vec::new();
    for profile in &profiles {
        let mut rx = tokens
            .changes(profile)
            .map_err(|_| Failure::configuration(format!("profile `{profile}` cannot be served")))?;
        let tx = tx.clone();
        _watchers.push(AbortOnDrop(tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        })));
    }

    let (vars, mut held) = environment(&tokens, &specs).await?;
    let mut child = spawn(args, &vars)?;
    let signal_failure =
        |e: std::io::Error| Failure::new(code::OTHER, format!("cannot listen for signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(signal_failure)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_failure)?;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| Failure::new(code::OTHER, format!("cannot wait for the command: {e}")))?;
                return match status_code(status) {
                    0 => Ok(()),
                    code => Err(Failure::exit(code)),
                };
            }
            _ = term.recv() => send(&child, Signal::TERM),
            _ = int.recv() => send(&child, Signal::INT),
            Some(()) = changed.recv() => {
                let (vars, now_held) = match environment(&tokens, &specs).await {
                    Ok(now) => now,
                    Err(e) => {
                        tracing::warn!(error = e.message(), "a token changed but cannot be read now; the command keeps its token");
                        continue;
                    }
                };
                if now_held == held {
                    continue;
                }
                held = now_held;
                if let Some(sig) = reload_signal {
                    tracing::info!(signal = sig.as_raw(), "a token was refreshed: signalling the command");
                    send(&child, sig);
                    continue;
                }
                tracing::info!("a token was refreshed: restarting the command");
                send(&child, Signal::TERM);
                if tokio::time::timeout(args.grace, child.wait()).await.is_err() {
                    tracing::warn!(grace = ?args.grace, "the command did not stop after SIGTERM; killing it");
                    let _ = child.kill().await;
                }
                child = spawn(args, &vars)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_specs_parse() {
        assert_eq!(
            parse_env("STAMPS_TOKEN=stamps").unwrap(),
            EnvSpec {
                var: "STAMPS_TOKEN".into(),
                profile: "stamps".into(),
                header: false
            }
        );
        assert!(parse_env("AUTH=toko@2:header").unwrap().header);
        assert!(!parse_env("T=toko:token").unwrap().header);
        for bad in ["", "=x", "1A=x", "A-B=x", "A=", "A=x:body", "A"] {
            assert_eq!(parse_env(bad).unwrap_err().code, 2, "{bad}");
        }
    }

    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("HUP").unwrap(), Signal::HUP);
        assert_eq!(parse_signal("sigusr1").unwrap(), Signal::USR1);
        assert_eq!(parse_signal("15").unwrap(), Signal::TERM);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("99999999999").is_err());
    }

    #[test]
    fn statuses_map_like_a_shell() {
        assert_eq!(status_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(status_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(status_code(ExitStatus::from_raw(15)), 128 + 15);
    }
}
