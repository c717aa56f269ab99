use std::process::ExitCode;

use crate::config::Settings;

pub fn run(_settings: &Settings, _recipient: Option<&str>) -> anyhow::Result<ExitCode> {
    Err(super::super::user_error("`herald bounces process` is not built yet"))
}
