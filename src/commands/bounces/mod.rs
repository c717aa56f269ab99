//! `herald bounces`: reports in, reports listed, files parsed.

mod import;
mod list;
mod parse;
mod process;

use std::process::ExitCode;

use crate::cli::BouncesCommand;
use crate::config::Settings;

/// `load` reads the config; `parse` never needs one.
pub fn run(
    load: impl FnOnce() -> anyhow::Result<Settings>,
    command: &BouncesCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        BouncesCommand::Process { recipient } => process::run(load(), recipient.as_deref()),
        BouncesCommand::Import { paths } => import::run(&load()?, paths),
        BouncesCommand::List { limit, json } => list::run(&load()?, *limit, *json),
        BouncesCommand::Parse { files, json } => parse::run(files, *json),
    }
}
