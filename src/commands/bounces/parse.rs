use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(_files: &[PathBuf], _json: bool) -> anyhow::Result<ExitCode> {
    Err(super::super::user_error(
        "`herald bounces parse` is not built yet",
    ))
}
