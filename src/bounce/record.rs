//! Recording a report: match it to its delivery and subscriber, apply the
//! policy, keep the report. Every way in (pipe, import, IMAP, webhooks)
//! ends in [`Recorder::record`].
//!
//! CONTRACT (skeleton): the signatures below are what the other ways in
//! build against. The body is filled in by the records work.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::config::Settings;
use crate::domain::{SubscriberEmail, Verp};
use crate::store::bounce_reports::{self, NewReport, NewReportRecipient};
use crate::store::deliveries::{self, DeliveryReport, ReportedDelivery};
use crate::store::subscribers::{self, SubscriberState};
use crate::store::{secrets, Millis, Store, Tx};

use super::policy::{decide, kind_to_act_on, BounceCause, BouncePolicy, Verdict};
use super::report::{FailureClass, ParsedReport, RecipientReport, ReportKind};

/// Which provider's webhook an event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Ses,
    Mailgun,
    SendGrid,
    Postmark,
    Generic,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Ses,
        Provider::Mailgun,
        Provider::SendGrid,
        Provider::Postmark,
        Provider::Generic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Ses => "ses",
            Provider::Mailgun => "mailgun",
            Provider::SendGrid => "sendgrid",
            Provider::Postmark => "postmark",
            Provider::Generic => "generic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
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

impl Channel {
    /// The `channel` column; a webhook's provider has its own.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Pipe => "pipe",
            Channel::Import => "import",
            Channel::Imap => "imap",
            Channel::Webhook(_) => "webhook",
        }
    }

    pub fn provider(self) -> Option<Provider> {
        match self {
            Channel::Webhook(provider) => Some(provider),
            _ => None,
        }
    }

    /// From the `channel` and `provider` columns.
    pub fn parse(channel: &str, provider: Option<&str>) -> Option<Self> {
        match channel {
            "pipe" => Some(Channel::Pipe),
            "import" => Some(Channel::Import),
            "imap" => Some(Channel::Imap),
            "webhook" => provider.and_then(Provider::parse).map(Channel::Webhook),
            _ => None,
        }
    }
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

impl From<sqlx::Error> for RecordError {
    fn from(error: sqlx::Error) -> Self {
        if crate::store::is_transient(&error) {
            RecordError::Unavailable(error.to_string())
        } else {
            RecordError::Other(anyhow::Error::new(error).context("recording a report"))
        }
    }
}

impl RecordError {
    /// An error from opening the store: Unavailable when a database error
    /// down its chain is worth retrying.
    pub fn from_open(error: anyhow::Error) -> Self {
        let transient = error
            .chain()
            .filter_map(|e| e.downcast_ref::<sqlx::Error>())
            .any(crate::store::is_transient);
        if transient {
            RecordError::Unavailable(format!("{error:#}"))
        } else {
            RecordError::Other(error)
        }
    }
}

/// How a recipient was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The VERP tag of the envelope the report was sent to.
    Verp,
    /// The returned message's Message-ID.
    MessageId,
    /// The recipient's address is a subscriber's.
    Address,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Verp => "verp",
            MatchedBy::MessageId => "message-id",
            MatchedBy::Address => "address",
        }
    }
}

/// What one recipient of a report matched.
#[derive(Debug, Clone, Default)]
struct Matched {
    by: Option<MatchedBy>,
    delivery: Option<ReportedDelivery>,
    subscriber_id: Option<i64>,
}

/// Diagnostics longer than this are cut when they go into the audit trail.
const REASON_DIAGNOSTIC_CHARS: usize = 300;

/// Matches and records reports against one store, under the `[bounces]`
/// policy.
#[derive(Clone)]
pub struct Recorder {
    store: Store,
    settings: Arc<Settings>,
    /// Loaded on first use (it may create the key, a write).
    verp: Arc<OnceCell<Option<Verp>>>,
}

impl Recorder {
    pub fn new(store: Store, settings: Arc<Settings>) -> Self {
        Recorder {
            store,
            settings,
            verp: Arc::new(OnceCell::new()),
        }
    }

    /// Records one report in one write transaction: stores it (or finds it
    /// was recorded before, and changes nothing), matches each recipient
    /// to a delivery and a subscriber, applies the policy, and empties raw
    /// messages past `[bounces] keep_days`.
    pub async fn record(
        &self,
        incoming: Incoming<'_>,
        now: Millis,
    ) -> Result<RecordOutcome, RecordError> {
        let dedupe_key = dedupe_key(&incoming);
        let parsed = serde_json::to_string(&incoming.report)
            .map_err(|e| RecordError::Other(anyhow::Error::new(e).context("the parse result")))?;
        let mut tx = self.store.begin().await?;
        let new = NewReport {
            received_at: now,
            channel: incoming.channel.as_str(),
            provider: incoming.channel.provider().map(Provider::as_str),
            kind: incoming.report.kind.as_str(),
            dedupe_key: &dedupe_key,
            parsed: &parsed,
            raw: incoming.raw,
        };
        let Some(report_id) = bounce_reports::insert_report(&mut tx, &new).await? else {
            let report_id = bounce_reports::find_report_id_by_dedupe_key(&mut tx, &dedupe_key)
                .await?
                .unwrap_or_default();
            tx.rollback().await?;
            return Ok(RecordOutcome {
                report_id,
                duplicate: true,
                ..RecordOutcome::default()
            });
        };
        let verp = self.verp(&mut tx, now).await?;
        let report = &incoming.report;
        let by_verp = match &verp {
            Some(verp) => find_by_verp(&mut tx, verp, &incoming).await?,
            None => None,
        };
        let by_message_id = match &report.original_message_id {
            Some(id) => find_by_message_id(&mut tx, id).await?,
            None => None,
        };
        let policy = BouncePolicy::from_settings(&self.settings.bounces);
        let mut outcome = RecordOutcome {
            report_id,
            ..RecordOutcome::default()
        };
        for recipient in recipients_of(report, by_verp.as_ref().or(by_message_id.as_ref())) {
            let matched =
                match_recipient(&mut tx, report, &recipient, &by_verp, &by_message_id).await?;
            if matched.by.is_some() {
                outcome.matched += 1;
            } else {
                outcome.unmatched += 1;
            }
            apply(
                &mut tx,
                report_id,
                kind_to_act_on(report.kind, report.feedback_type.as_deref()),
                &recipient,
                &matched,
                &policy,
                now,
            )
            .await?;
        }
        bounce_reports::set_report_counts(&mut tx, report_id, outcome.matched, outcome.unmatched)
            .await?;
        let keep = Millis::from(self.settings.bounces.keep_days).saturating_mul(86_400_000);
        bounce_reports::purge_raw_messages(&mut tx, now.saturating_sub(keep)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn verp(&self, tx: &mut Tx<'_>, now: Millis) -> Result<Option<Verp>, RecordError> {
        if let Some(verp) = self.verp.get() {
            return Ok(verp.clone());
        }
        let Some(return_path) = self.settings.return_path()? else {
            return Ok(None);
        };
        let verp = Some(Verp::new(return_path, secrets::verp_key(tx, now).await?));
        // Another task may have set it meanwhile; the key is the same.
        let _ = self.verp.set(verp.clone());
        Ok(verp)
    }
}

/// `sha256:<hex>` of a message, or `<provider>:<event id>`: a webhook
/// retried by its provider carries the same event id.
fn dedupe_key(incoming: &Incoming<'_>) -> String {
    match &incoming.external_id {
        Some(id) => {
            let source = match incoming.channel {
                Channel::Webhook(provider) => provider.as_str(),
                other => other.as_str(),
            };
            format!("{source}:{id}")
        }
        None => format!(
            "sha256:{}",
            hex::encode(Sha256::digest(without_mbox_separator(incoming.raw)))
        ),
    }
}

/// The message without the mbox `From sender date` line an MTA puts before
/// it for a pipe or a mailbox: its time changes when the MTA retries, and
/// the retry is the same message.
fn without_mbox_separator(raw: &[u8]) -> &[u8] {
    if !raw.starts_with(b"From ") {
        return raw;
    }
    match memchr::memchr(b'\n', raw) {
        Some(end) => &raw[end + 1..],
        None => raw,
    }
}

/// The delivery a VERP tag names: the envelope recipient first, then the
/// addresses the report was delivered to.
async fn find_by_verp(
    tx: &mut Tx<'_>,
    verp: &Verp,
    incoming: &Incoming<'_>,
) -> Result<Option<ReportedDelivery>, RecordError> {
    let candidates = incoming
        .verp_address
        .into_iter()
        .chain(incoming.report.addressed_to.iter().map(String::as_str));
    for address in candidates {
        if let Some(id) = verp.delivery_of(address) {
            if let Some(delivery) = deliveries::find_delivery_by_id(tx, id).await? {
                return Ok(Some(delivery));
            }
        }
    }
    Ok(None)
}

/// Campaign mail's Message-ID is `<herald.NONCE.SUBSCRIBER@domain>`
/// (store::campaigns::snapshot_recipients): the nonce and subscriber id.
fn campaign_message_id_parts(message_id: &str) -> Option<(&str, i64)> {
    let (local, _domain) = message_id.strip_prefix("herald.")?.split_once('@')?;
    let (nonce, subscriber) = local.split_once('.')?;
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((nonce, subscriber.parse().ok()?))
}

async fn find_by_message_id(
    tx: &mut Tx<'_>,
    message_id: &str,
) -> Result<Option<ReportedDelivery>, RecordError> {
    let bare = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let bracketed = format!("<{bare}>");
    if let Some((nonce, subscriber_id)) = campaign_message_id_parts(bare) {
        return Ok(deliveries::find_campaign_delivery_by_message_id(
            tx,
            nonce,
            subscriber_id,
            &bracketed,
        )
        .await?);
    }
    if bare.starts_with("herald.") {
        return Ok(deliveries::find_transactional_delivery_by_message_id(tx, &bracketed).await?);
    }
    Ok(None)
}

/// The recipients to record. A failure report that names nobody (a
/// mangled body) still counts for the delivery its VERP tag or Message-ID
/// names; unmatched, it is kept as one recipient with no address. A soft
/// class is the gentler guess when the report does not say.
fn recipients_of(
    report: &ParsedReport,
    delivery: Option<&ReportedDelivery>,
) -> Vec<RecipientReport> {
    if !report.recipients.is_empty() {
        return report.recipients.clone();
    }
    if !matches!(
        report.kind,
        ReportKind::Bounce | ReportKind::Complaint | ReportKind::Delay
    ) {
        return Vec::new();
    }
    vec![RecipientReport {
        address: delivery.map(|d| d.recipient.clone()).unwrap_or_default(),
        status: None,
        class: FailureClass::Soft,
        diagnostic: "the report names no recipient".into(),
    }]
}

/// A report sent to one envelope (VERP) or about one message (Message-ID)
/// is about that delivery's recipient; with several recipients listed,
/// only the one whose address is the delivery's.
fn delivery_fits(
    delivery: &Option<ReportedDelivery>,
    report: &ParsedReport,
    recipient: &RecipientReport,
) -> Option<ReportedDelivery> {
    let delivery = delivery.as_ref()?;
    let fits = report.recipients.len() <= 1
        || recipient
            .address
            .eq_ignore_ascii_case(delivery.recipient.as_str());
    fits.then(|| delivery.clone())
}

async fn match_recipient(
    tx: &mut Tx<'_>,
    report: &ParsedReport,
    recipient: &RecipientReport,
    by_verp: &Option<ReportedDelivery>,
    by_message_id: &Option<ReportedDelivery>,
) -> Result<Matched, RecordError> {
    for (by, delivery) in [
        (MatchedBy::Verp, by_verp),
        (MatchedBy::MessageId, by_message_id),
    ] {
        if let Some(delivery) = delivery_fits(delivery, report, recipient) {
            return Ok(Matched {
                by: Some(by),
                subscriber_id: delivery.subscriber_id,
                delivery: Some(delivery),
            });
        }
    }
    let Ok(email) = SubscriberEmail::parse(&recipient.address) else {
        return Ok(Matched::default());
    };
    Ok(
        match subscribers::find_subscriber_by_email(tx, &email).await? {
            Some(subscriber) => Matched {
                by: Some(MatchedBy::Address),
                delivery: None,
                subscriber_id: Some(subscriber.id),
            },
            None => Matched::default(),
        },
    )
}

/// Records one recipient and what it does to the delivery and subscriber.
async fn apply(
    tx: &mut Tx<'_>,
    report_id: i64,
    kind: ReportKind,
    recipient: &RecipientReport,
    matched: &Matched,
    policy: &BouncePolicy,
    now: Millis,
) -> Result<(), RecordError> {
    let soft_bounce = kind == ReportKind::Bounce && recipient.class == FailureClass::Soft;
    let soft_counted = match (soft_bounce, matched.subscriber_id) {
        (true, Some(id)) => Some((id, policy.window_start(now))),
        _ => None,
    };
    let soft_before = count_soft_bounces(tx, soft_counted).await?;
    bounce_reports::insert_report_recipient(
        tx,
        &NewReportRecipient {
            report_id,
            kind: kind.as_str(),
            address: &recipient.address,
            status: recipient.status.as_deref(),
            class: recipient.class.as_str(),
            diagnostic: &recipient.diagnostic,
            matched_by: matched.by.map(MatchedBy::as_str),
            delivery_id: matched.delivery.as_ref().map(|d| d.id),
            subscriber_id: matched.subscriber_id,
            at: now,
        },
    )
    .await?;
    let soft_after = count_soft_bounces(tx, soft_counted).await?;
    if let (Some(delivery), true) = (&matched.delivery, kind != ReportKind::None) {
        deliveries::record_delivery_report(
            tx,
            delivery.id,
            &DeliveryReport {
                kind: kind.as_str(),
                class: recipient.class.as_str(),
                status: recipient.status.as_deref(),
                diagnostic: &recipient.diagnostic,
                at: now,
            },
        )
        .await?;
    }
    let Some(subscriber_id) = matched.subscriber_id else {
        return Ok(());
    };
    let count = u32::try_from(soft_after).unwrap_or(u32::MAX);
    let verdict = decide(kind, recipient.class, count, policy);
    // The same delivery reported again is counted and noted once.
    let repeated = soft_after == soft_before;
    let detail = describe(recipient, report_id);
    update_subscriber(tx, subscriber_id, verdict, repeated, &detail, now).await
}

/// What a verdict does to the subscriber, and the line it adds to their
/// history. Nothing is written when nothing changed, so a report recorded
/// again leaves the history as it was.
async fn update_subscriber(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    verdict: Verdict,
    repeated_soft_bounce: bool,
    detail: &str,
    now: Millis,
) -> Result<(), RecordError> {
    let (changed, state, reason) = match verdict {
        Verdict::Nothing => return Ok(()),
        Verdict::SoftBounceCounted { .. } if repeated_soft_bounce => return Ok(()),
        Verdict::SoftBounceCounted { count, limit } => {
            let Some(subscriber) = subscribers::find_subscriber_by_id(tx, subscriber_id).await?
            else {
                return Ok(());
            };
            let of = if limit > 0 {
                format!(" ({count} of {limit})")
            } else {
                String::new()
            };
            (true, subscriber.state, format!("soft bounce{of}: {detail}"))
        }
        Verdict::Bounce(cause) => {
            let why = match cause {
                BounceCause::Hard => "hard bounce".to_string(),
                BounceCause::SoftLimit { count, days } => {
                    format!("{count} soft bounces within {days} days")
                }
            };
            (
                subscribers::mark_bounced(tx, subscriber_id, now).await?,
                SubscriberState::Bounced,
                format!("bounced: {why}: {detail}"),
            )
        }
        Verdict::Complain => (
            subscribers::mark_complained(tx, subscriber_id, now).await?,
            SubscriberState::Complained,
            format!("complained: {detail}"),
        ),
    };
    if changed {
        subscribers::record_event(tx, subscriber_id, state, &reason, now).await?;
    }
    Ok(())
}

async fn count_soft_bounces(
    tx: &mut Tx<'_>,
    subscriber_since: Option<(i64, Millis)>,
) -> sqlx::Result<i64> {
    match subscriber_since {
        Some((id, since)) => bounce_reports::count_soft_bounced_deliveries(tx, id, since).await,
        None => Ok(0),
    }
}

/// `5.1.1 <diagnostic> (report 12)`, the diagnostic cut to a readable size.
fn describe(recipient: &RecipientReport, report_id: i64) -> String {
    let mut diagnostic: String = recipient
        .diagnostic
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(REASON_DIAGNOSTIC_CHARS)
        .collect();
    if recipient.diagnostic.chars().count() > REASON_DIAGNOSTIC_CHARS {
        diagnostic.push('…');
    }
    let status = recipient.status.as_deref().unwrap_or("no status");
    format!("{status} {} (report {report_id})", diagnostic.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_message_ids_give_their_nonce_and_subscriber() {
        let nonce = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            campaign_message_id_parts(&format!("herald.{nonce}.42@example.com")),
            Some((nonce, 42))
        );
        for other in [
            "herald.confirm.0123456789abcdef0123456789abcdef@example.com",
            "herald.0123.42@example.com",
            "herald.0123456789abcdef0123456789abcdeg.42@example.com",
            "herald.0123456789abcdef0123456789abcdef.x@example.com",
            "herald.0123456789abcdef0123456789abcdef.42",
            "someone.else@example.com",
            "",
        ] {
            assert_eq!(campaign_message_id_parts(other), None, "{other}");
        }
    }

    #[test]
    fn dedupe_keys_hash_mail_and_name_webhook_events() {
        let report = ParsedReport::not_a_report();
        let mail = Incoming {
            channel: Channel::Pipe,
            raw: b"hello",
            verp_address: None,
            external_id: None,
            report: report.clone(),
        };
        assert_eq!(
            dedupe_key(&mail),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let event = Incoming {
            channel: Channel::Webhook(Provider::Mailgun),
            external_id: Some("ev-1".into()),
            ..mail
        };
        assert_eq!(dedupe_key(&event), "mailgun:ev-1");
    }

    #[test]
    fn a_retried_pipe_delivery_is_the_same_message() {
        let incoming = |raw: &'static [u8]| Incoming {
            channel: Channel::Pipe,
            raw,
            verp_address: None,
            external_id: None,
            report: ParsedReport::not_a_report(),
        };
        let first = incoming(b"From MAILER-DAEMON  Sun Nov 29 01:00:00 2026\nSubject: x\n\nbody");
        let retry = incoming(b"From MAILER-DAEMON  Sun Nov 29 01:05:00 2026\nSubject: x\n\nbody");
        let bare = incoming(b"Subject: x\n\nbody");
        assert_eq!(dedupe_key(&first), dedupe_key(&retry));
        assert_eq!(dedupe_key(&first), dedupe_key(&bare));
    }

    #[test]
    fn channels_round_trip_through_their_columns() {
        for channel in [Channel::Pipe, Channel::Import, Channel::Imap]
            .into_iter()
            .chain(Provider::ALL.into_iter().map(Channel::Webhook))
        {
            assert_eq!(
                Channel::parse(channel.as_str(), channel.provider().map(Provider::as_str)),
                Some(channel)
            );
        }
        assert_eq!(Channel::parse("webhook", None), None);
    }

    #[test]
    fn reasons_are_one_line_and_capped() {
        let recipient = RecipientReport {
            address: "a@example.com".into(),
            status: Some("5.1.1".into()),
            class: FailureClass::Hard,
            diagnostic: format!("line\nbreak\x1b[31m{}", "x".repeat(1000)),
        };
        let reason = describe(&recipient, 7);
        assert!(reason.starts_with("5.1.1 line break"), "{reason}");
        assert!(!reason.chars().any(char::is_control));
        assert!(reason.ends_with("… (report 7)"));
        assert!(reason.chars().count() < REASON_DIAGNOSTIC_CHARS + 40);
    }
}
