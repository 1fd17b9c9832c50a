//! `credit-risk completions`: a shell completion script.

use std::io::Write;

use super::CliResult;

/// Options of `credit-risk completions`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Runs `credit-risk completions` for the command line `cmd`.
pub fn run(a: Args, mut cmd: clap::Command) -> CliResult {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "credit-risk", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
