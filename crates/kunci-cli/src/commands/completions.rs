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
    write_stdout(&script)
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

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::new(
            code::OTHER,
            format!("cannot write to stdout: {e}"),
        )),
        _ => Ok(()),
    }
}
