use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Settings;

pub fn run(_settings: &Settings, _paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    Err(super::super::user_error("`herald bounces import` is not built yet"))
}
