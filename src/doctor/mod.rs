//! `herald doctor`: a preflight of the whole setup before the first real
//! send. Most newsletters that land in spam do so through a setup mistake
//! (no DMARC, a DKIM key that does not match, a From domain nothing aligns
//! with, a relay without TLS), so each of those is a check here.
//!
//! Every check is a small function that returns [`Finding`]s: ok, warning
//! or error, with the fix in one sentence. They run concurrently, each
//! under `[doctor] timeout_secs`, so a run takes seconds even when a server
//! never answers. The checks only read: DNS queries, an SMTP session that
//! ends after AUTH, a POST for a token nobody has, GETs of the feeds.

pub mod alignment;
pub mod dns;
pub mod key;
pub mod mail;
pub mod records;
pub mod relay;
pub mod web;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use crate::config::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Error,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable name for scripts, e.g. `dkim` or `relay-tls`.
    pub check: &'static str,
    pub level: Level,
    pub message: String,
    /// What to do about it, in one sentence; none for an ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            check,
            level: Level::Ok,
            message: message.into(),
            fix: None,
        }
    }

    pub fn warning(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            level: Level::Warning,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn error(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            level: Level::Error,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Counts by level: (ok, warnings, errors).
pub fn tally(findings: &[Finding]) -> (usize, usize, usize) {
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    (count(Level::Ok), count(Level::Warning), count(Level::Error))
}

type Check<'a> = (
    &'static str,
    Pin<Box<dyn Future<Output = Vec<Finding>> + Send + 'a>>,
);

/// Runs every check concurrently and returns the findings in checklist
/// order. Never fails: a check that cannot run is an error line.
pub async fn run(settings: &Settings) -> Vec<Finding> {
    let timeout = Duration::from_secs(settings.doctor.timeout_secs.max(1));
    let dns = dns::Dns::new(settings, timeout);
    // Rendering is pure and takes milliseconds: done first, so the relay
    // can compare the message's size with SIZE and the DKIM check can
    // verify the very bytes a send would produce.
    let sample = mail::Sample::prepare(settings);
    let relay_size = sample.as_ref().ok().map(|s| s.message.len());
    let dns = &dns;
    let sample = &sample;
    let checks: Vec<Check<'_>> = vec![
        ("spf", Box::pin(records::spf_checks(dns, settings))),
        ("dkim", Box::pin(records::dkim_check(dns, settings))),
        ("dmarc", Box::pin(records::dmarc_check(dns, settings))),
        ("alignment", Box::pin(async { alignment::checks(settings) })),
        (
            "bounces-mx",
            Box::pin(records::bounce_mx_check(dns, settings)),
        ),
        ("relay", Box::pin(relay::checks(settings, relay_size))),
        ("web", Box::pin(web::checks(settings, timeout))),
        ("mail", Box::pin(mail::checks(dns, sample))),
    ];
    let bounded =
        checks.into_iter().map(|(name, check)| async move {
            match tokio::time::timeout(timeout, check).await {
                Ok(findings) => findings,
                Err(_) => vec![Finding::error(
                name,
                format!("the {name} checks did not finish within {} s", timeout.as_secs()),
                "check that the server it talks to is reachable, or raise [doctor] timeout_secs",
            )],
            }
        });
    futures_util::future::join_all(bounded)
        .await
        .into_iter()
        .flatten()
        .collect()
}
