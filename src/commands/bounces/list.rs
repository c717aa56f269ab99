use std::process::ExitCode;

use crate::config::Settings;

pub fn run(_settings: &Settings, _limit: u32, _json: bool) -> anyhow::Result<ExitCode> {
    Err(super::super::user_error("`herald bounces list` is not built yet"))
}
