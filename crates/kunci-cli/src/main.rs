//! `kunci`: API tokens for shells and scripts, and a demo anyone can run.
//!
//! ```sh
//! kunci demo                                   # every provider's token life, on local simulators
//! export SEHATMU_CLIENT_ID=… SEHATMU_CLIENT_SECRET=…
//! kunci token sehatmu                          # the token alone; cached in the store while valid
//! curl -H "$(kunci header stamps)" https://stamps.co.id/api/…
//! kunci status                                 # what the store holds, never a secret
//! ```
//!
//! The command surface, the config file and the exit codes are documented in `docs/cli.md`.
//! The warm path (`kunci token` with a valid stored token) opens the store, reads two entries
//! and prints: a current-thread runtime, no Redis or PostgreSQL client unless the store is
//! one, no request, and no HTTP client (a source's HTTP client is built on its first request,
//! `auth_core::http::HttpClient`). One exception: a profile whose login is kept in the OS
//! keychain (feature `keychain`, off by default) also reads that item, a D-Bus call on Linux,
//! because the source is built from the login's secrets.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program prints; output goes through output::out_line/err_line"
)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod agent;
mod cli;
mod commands;
mod config;
mod context;
mod failure;
mod logging;
mod logins;
mod output;

use std::process::ExitCode;

use clap::Parser as _;

use crate::{
    cli::{Args, Command},
    context::Context,
    failure::{Failure, code},
};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help and --version, 2 for usage errors.
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(code::CONFIGURATION));
        }
    };
    // A service logs what it does (refreshes, refused peers) unless told otherwise.
    let verbose = match args.command {
        Command::Agent(_) => args.global.verbose.max(1),
        _ => args.global.verbose,
    };
    logging::init(verbose);
    // Read while this is the only thread: the time crate refuses to read the local offset
    // once other threads exist (the file store's blocking pool, for one).
    let offset = match args.command {
        Command::Status { .. } | Command::Login { .. } => {
            time::UtcOffset::current_local_offset().ok()
        }
        _ => None,
    };
    // The agent serves many connections at once: a worker per core.
    let mut builder = match args.command {
        Command::Agent(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            Failure::new(code::OTHER, format!("cannot start the async runtime: {e}")).report();
            return ExitCode::from(code::OTHER);
        }
    };
    let result = runtime.block_on(run(args, offset));
    // Nothing left is worth waiting for (an idle blocking thread, a pooled connection).
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.code)
        }
    }
}

async fn run(args: Args, offset: Option<time::UtcOffset>) -> Result<(), Failure> {
    // Built only by the commands that work on a profile, its config and its store.
    let ctx = || Ok::<_, Failure>(Context::new(&args.global)?.with_local_offset(offset));
    match &args.command {
        Command::Token { profile, json } => {
            commands::token::run(&ctx()?, profile.as_deref(), *json).await
        }
        Command::Header { profile } => commands::header::run(&ctx()?, profile.as_deref()).await,
        Command::Status { profile, json } => {
            commands::status::run(&ctx()?, profile.as_deref(), *json).await
        }
        Command::Login { profile, email } => {
            commands::login::run(&ctx()?, profile.as_deref(), email.as_deref()).await
        }
        Command::Logout { profile } => commands::logout::run(&ctx()?, profile.as_deref()).await,
        Command::Verify { profile } => commands::verify::run(&ctx()?, profile.as_deref()).await,
        Command::Exec(exec) => commands::exec::run(&ctx()?, exec).await,
        Command::Agent(agent) => {
            let overrides = agent::settings::Overrides {
                socket: agent.socket.clone(),
                metrics_listen: agent.metrics_listen.clone(),
                profiles: agent.profiles.clone(),
            };
            agent::run(&args.global, overrides).await
        }
        #[cfg(feature = "demo")]
        Command::Demo => commands::demo::run().await,
        Command::Completions { shell } => commands::completions::print(*shell),
        Command::GenerateMan { dir } => commands::completions::man_pages(dir),
    }
}
