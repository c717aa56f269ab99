//! `herald bounces import PATH...`: a backlog of reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::bounce::intake::{import_paths, ImportSummary};
use crate::bounce::{RecordError, Recorder};
use crate::config::Settings;
use crate::store::Store;

use super::super::user_error;

pub fn run(settings: &Settings, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime.block_on(async {
        let store = Store::connect(&settings.database()?).await?;
        let recorder = Recorder::new(store.clone(), Arc::new(settings.clone()));
        let summary = import_paths(&recorder, paths).await;
        store.close().await;
        summary.map_err(|error| match error {
            RecordError::Unavailable(why) => user_error(format!(
                "{why}; the import stopped. Run it again: messages already recorded are skipped"
            )),
            RecordError::Other(error) => error,
        })
    })?;
    print_summary(&summary);
    for error in &summary.errors {
        eprintln!("error: {error}");
    }
    if summary.errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(user_error(format!(
            "{} path(s) or message(s) could not be read",
            summary.errors.len()
        )))
    }
}

fn print_summary(summary: &ImportSummary) {
    let kinds = summary
        .by_kind
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "{} message(s) read: {}",
        summary.messages,
        if kinds.is_empty() {
            "none new".to_string()
        } else {
            kinds
        }
    );
    println!(
        "recipients: {} matched, {} unmatched (kept)",
        summary.matched, summary.unmatched
    );
    println!(
        "duplicates (recorded before, skipped): {}",
        summary.duplicates
    );
    if summary.truncated > 0 {
        println!(
            "{} message(s) were over {} MB; only their start was kept",
            summary.truncated,
            crate::bounce::intake::MAX_MESSAGE_BYTES / (1024 * 1024)
        );
    }
}
