//! `kunci completions SHELL` and the hidden `kunci generate-man DIR` that `cargo xtask man`
//! runs: both generated from the clap definition of the command line ([`crate::cli`]), so
//! they cannot drift from it.

use std::path::Path;

use clap::CommandFactory as _;

use crate::{
    cli::Args,
    failure::{Failure, code},
};

/// Writes the completion script for `shell` to stdout.
pub(crate) fn print(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut command = Args::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "kunci", &mut script);
    crate::output::out_bytes(&script)
}

/// Writes `kunci.1` and a page per subcommand (`kunci-token.1`, …) into `dir`.
pub(crate) fn man_pages(dir: &Path) -> Result<(), Failure> {
    let failed = |e: std::io::Error| {
        Failure::new(
            code::OTHER,
            format!("cannot write the man pages into {}: {e}", dir.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    clap_mangen::generate_to(Args::command(), dir).map_err(failed)
}
