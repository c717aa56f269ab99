//! Recording a report: match it to its delivery and subscriber, apply the
//! policy, keep the report. Every way in (pipe, import, IMAP, webhooks)
//! ends in [`Recorder::record`].
//!
//! CONTRACT (skeleton): the signatures below are what the other ways in
//! build against. The body is filled in by the records work.

use crate::config::Settings;
use crate::store::{Millis, Store};

use super::report::ParsedReport;

/// Which provider's webhook an event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Ses,
    Mailgun,
    SendGrid,
    Postmark,
    Generic,
}

/// How a report reached Herald.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `herald bounces process`, from an MTA alias or pipe.
    Pipe,
    /// `herald bounces import`, a backlog.
    Import,
    /// The bounce mailbox `herald serve` polls.
    Imap,
    Webhook(Provider),
}

/// One report on its way in.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub channel: Channel,
    /// The raw message, or the webhook event's JSON: kept for
    /// `[bounces] keep_days`, for audit and to fix a wrong call by hand.
    pub raw: &'a [u8],
    /// An address that may carry our VERP tag: the envelope recipient the
    /// MTA delivered the bounce to (Postfix's `$ORIGINAL_RECIPIENT`), or the
    /// MAIL FROM a provider's event reports (SES `mail.source`).
    pub verp_address: Option<&'a str>,
    /// The provider's id for a webhook event (idempotency); `None` for mail,
    /// where a hash of `raw` serves.
    pub external_id: Option<String>,
    pub report: ParsedReport,
}

/// What recording one report did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordOutcome {
    pub report_id: i64,
    /// The same report was recorded before; nothing changed.
    pub duplicate: bool,
    /// Recipients matched to a delivery or a subscriber.
    pub matched: usize,
    /// Recipients matched to nothing (kept, never dropped).
    pub unmatched: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Worth trying again later (the database is locked or down): a pipe
    /// exits 75 (EX_TEMPFAIL) so the MTA keeps the message.
    #[error("the database is busy or unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Matches and records reports against one store, under the `[bounces]`
/// policy.
#[derive(Clone)]
pub struct Recorder {
    #[allow(dead_code)]
    store: Store,
    #[allow(dead_code)]
    settings: std::sync::Arc<Settings>,
}

impl Recorder {
    pub fn new(store: Store, settings: std::sync::Arc<Settings>) -> Self {
        Recorder { store, settings }
    }

    pub async fn record(
        &self,
        _incoming: Incoming<'_>,
        _now: Millis,
    ) -> Result<RecordOutcome, RecordError> {
        Err(RecordError::Other(anyhow::anyhow!(
            "recording reports is not built yet"
        )))
    }
}
