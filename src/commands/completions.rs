//! `herald completions SHELL`: the shell's completion script on stdout.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

use super::success;

pub fn run(shell: Shell) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "herald", &mut std::io::stdout().lock());
    success()
}
