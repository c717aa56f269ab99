//! `herald bounces process`: one message on stdin, from an MTA alias or
//! pipe. Every failure to record it exits 75 (EX_TEMPFAIL): the MTA keeps
//! the message and tries again later, so nothing is lost. Any other exit
//! would make the MTA bounce the bounce, which goes to the null sender and
//! is gone.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::bounce::intake::{process_message, read_capped, MAX_MESSAGE_BYTES};
use crate::bounce::RecordError;
use crate::config::Settings;

/// sysexits.h: "temporary failure; the user is invited to retry".
const EX_TEMPFAIL: u8 = 75;

pub fn run(
    settings: anyhow::Result<Settings>,
    recipient: Option<&str>,
) -> anyhow::Result<ExitCode> {
    // A broken config is fixed by a person; until then the MTA keeps the mail.
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => return Ok(temporary_failure(&error)),
    };
    let recipient = recipient
        .map(str::to_owned)
        .or_else(|| envelope_recipient("ORIGINAL_RECIPIENT"))
        .or_else(|| envelope_recipient("RECIPIENT"));
    let message = match read_capped(std::io::stdin().lock(), MAX_MESSAGE_BYTES) {
        Ok(message) => message,
        Err(error) => {
            return Ok(temporary_failure(
                &anyhow::Error::new(error).context("reading stdin"),
            ))
        }
    };
    if message.truncated() {
        eprintln!(
            "warning: the message is {} bytes; only its first {} MB are kept",
            message.total_len,
            MAX_MESSAGE_BYTES / (1024 * 1024)
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(process_message(
        Arc::new(settings),
        &message.bytes,
        recipient.as_deref(),
    ));
    match outcome {
        Ok(outcome) if outcome.duplicate => {
            println!(
                "report {} was recorded before; nothing changed",
                outcome.report_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(outcome) => {
            println!(
                "report {}: {} recipient(s) matched, {} unmatched",
                outcome.report_id, outcome.matched, outcome.unmatched
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(RecordError::Unavailable(why)) => Ok(temporary_failure(&anyhow::anyhow!(why))),
        Err(RecordError::Other(error)) => Ok(temporary_failure(&error)),
    }
}

fn envelope_recipient(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn temporary_failure(error: &anyhow::Error) -> ExitCode {
    eprintln!("herald bounces process: {error:#}; exiting {EX_TEMPFAIL} so the MTA keeps the message and retries");
    ExitCode::from(EX_TEMPFAIL)
}
