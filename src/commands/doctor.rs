//! `herald doctor`: run the preflight checks and print the checklist.

use std::process::ExitCode;

use anyhow::Context;

use crate::config::Settings;
use crate::doctor::{self, Finding};

pub fn run(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let findings = runtime.block_on(doctor::run(settings));
    let (ok, warnings, errors) = doctor::tally(&findings);
    if json {
        let report = serde_json::json!({
            "findings": findings,
            "ok": ok,
            "warnings": warnings,
            "errors": errors,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_checklist(&findings);
        println!("{ok} ok, {warnings} warning(s), {errors} error(s)");
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_checklist(findings: &[Finding]) {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    for finding in findings {
        println!(
            "{:<7}  {:<width$}  {}",
            finding.level.label(),
            finding.check,
            finding.message
        );
        if let Some(fix) = &finding.fix {
            println!("{:<7}  {:<width$}  fix: {fix}", "", "");
        }
    }
}
