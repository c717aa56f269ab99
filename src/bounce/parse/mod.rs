//! Parsing a raw message into a [`ParsedReport`]. Pure: no I/O, no clock.
//!
//! mail-parser does the MIME (parts, transfer encodings, charsets); the
//! submodules read what the parts say:
//! - `arf`: RFC 5965 complaints (and Microsoft's and Apple's look-alikes);
//! - `dsn`: RFC 3464 `message/delivery-status`;
//! - `vendors`: the human-readable notices of non-standard bounces;
//! - `autoreply`: RFC 3834 and vacation replies;
//! - `status`: status codes and the hard/soft call.
//!
//! The order of the questions matters, and is in [`decide`]: a complaint,
//! then a machine-readable DSN, then a bounce notice (which may carry
//! `Auto-Submitted` itself, as Exim's do), then an auto-reply.

mod arf;
mod autoreply;
mod dsn;
mod ses;
mod status;
mod text;
mod vendors;

use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};

use super::report::{FailureClass, ParsedReport, RecipientReport, ReportKind};
use dsn::DsnRecipient;

/// Bytes of a message looked at. Everything a report says sits in its
/// first parts (the notice, the delivery-status, the returned headers); what
/// follows is the returned message's body, which can be tens of megabytes of
/// attachments. 1 MiB is over ten times the largest report in the shared
/// corpus, and bounds time and memory whatever arrives.
const MAX_BYTES: usize = 1 << 20;

/// How much of a file a caller needs to read for [`parse`]: anything past
/// it is ignored, so reading more only costs memory.
pub const READ_LIMIT: usize = MAX_BYTES;

/// MIME parts looked at: a report has three or four; a message with
/// thousands of tiny parts is not one.
const MAX_PARTS: usize = 64;

/// Bytes of one text part read, and of the notice as a whole.
const MAX_TEXT: usize = 64 * 1024;

/// Field lines read from one delivery-status or feedback-report part.
const MAX_FIELD_LINES: usize = 5_000;

/// Recipients kept from one report: a DSN may list many, a hostile one
/// millions.
const MAX_RECIPIENTS: usize = 1_000;

/// Reads one raw message (RFC 5322 bytes, any line endings, possibly
/// truncated or not UTF-8) and says what it reports. Never panics.
pub fn parse(raw: &[u8]) -> ParsedReport {
    parse_at_depth(raw, 0)
}

/// How deep a bounce inside a bounce is looked for: one level covers a
/// relay forwarding the bounce it got (with its own notice around it), and
/// stops a message nested a thousand times from costing a thousand parses.
const MAX_DEPTH: usize = 1;

/// mail-parser's parse, with its panics caught. mail-parser 0.11 panics on
/// some malformed multipart nestings ("Invalid part ID, could not find
/// multipart", found by the bounce fuzz target); a message from the
/// network must not take the process down, so such a message reads as no
/// message at all. The parser holds no state across calls, so nothing is
/// left half-updated by the unwind.
fn parse_message(raw: &[u8]) -> Option<mail_parser::Message<'_>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        MessageParser::new().parse(raw)
    }))
    .unwrap_or_else(|_| {
        tracing::warn!("the mail parser failed on a malformed message; treated as not a report");
        None
    })
}

fn parse_at_depth(raw: &[u8], depth: usize) -> ParsedReport {
    let raw = &raw[..raw.len().min(MAX_BYTES)];
    let Some(message) = parse_message(raw) else {
        return ParsedReport::not_a_report();
    };
    let envelope = Envelope::read(&message);
    let body = Body::read(&message);
    let mut report = decide(&envelope, &body);
    if depth < MAX_DEPTH && says_little(&report) {
        if let Some(inner) = body
            .returned_raw
            .as_deref()
            .map(|r| parse_at_depth(r, depth + 1))
        {
            if matches!(inner.kind, ReportKind::Bounce | ReportKind::Delay)
                && inner.recipients.iter().any(|r| !r.address.is_empty())
            {
                report = inner;
            }
        }
    }
    report.recipients.truncate(MAX_RECIPIENTS);
    if report.kind != ReportKind::None {
        report.original_message_id = body
            .returned
            .message_id
            .clone()
            .or_else(|| envelope.in_reply_to.clone());
    }
    report.addressed_to = envelope.addressed_to;
    report
}

/// Nothing, or a bounce without a single status: the returned message may
/// be the real bounce, forwarded.
fn says_little(report: &ParsedReport) -> bool {
    let no_code = |r: &RecipientReport| {
        status::find_enhanced(&r.diagnostic).is_none()
            && status::find_smtp_code(&r.diagnostic).is_none()
    };
    report.kind == ReportKind::None
        || (report.kind == ReportKind::Bounce && report.recipients.iter().all(no_code))
}

/// What the report's own headers say.
#[derive(Debug, Default)]
struct Envelope {
    from: Option<String>,
    from_name: String,
    subject: String,
    /// Delivered-To, X-Original-To, Envelope-To, To: us.
    addressed_to: Vec<String>,
    /// Exim's (and others') list of the addresses that failed.
    failed_recipients: Vec<String>,
    auto_submitted: Option<String>,
    precedence: Option<String>,
    has_responder_header: bool,
    apple_unsubscribe: bool,
    in_reply_to: Option<String>,
    report_type: String,
}

fn header_text(value: &HeaderValue<'_>) -> String {
    match value {
        HeaderValue::Text(text) => text.to_string(),
        HeaderValue::TextList(list) => list.join(", "),
        HeaderValue::Address(address) => addresses(address).join(", "),
        _ => String::new(),
    }
}

fn addresses(address: &Address<'_>) -> Vec<String> {
    address
        .iter()
        .filter_map(|a| a.address())
        .filter_map(text::first_address)
        .collect()
}

fn first_id(value: &HeaderValue<'_>) -> Option<String> {
    let id = match value {
        HeaderValue::Text(id) => id.as_ref(),
        HeaderValue::TextList(ids) => ids.first()?.as_ref(),
        _ => return None,
    };
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    (!id.is_empty() && id.len() <= 998).then(|| id.to_string())
}

fn last_id(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::TextList(ids) => first_id(&HeaderValue::Text(ids.last()?.clone())),
        other => first_id(other),
    }
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

impl Envelope {
    fn read(message: &Message<'_>) -> Self {
        let mut envelope = Envelope {
            subject: message.subject().unwrap_or_default().to_string(),
            // The message replied to: In-Reply-To, or the last of the
            // References (its parent) when a responder sets only those.
            in_reply_to: first_id(message.in_reply_to()).or_else(|| last_id(message.references())),
            report_type: message
                .content_type()
                .and_then(|ct| ct.attribute("report-type"))
                .unwrap_or_default()
                .to_ascii_lowercase(),
            ..Envelope::default()
        };
        if let Some(from) = message.from().and_then(|f| f.first()) {
            envelope.from = from.address().and_then(text::first_address);
            envelope.from_name = from.name().unwrap_or_default().to_string();
        }
        for header in message.headers() {
            let name = header.name().to_ascii_lowercase();
            let value = header.value();
            match name.as_str() {
                "delivered-to" | "x-original-to" | "envelope-to" | "x-envelope-to" | "to" => {
                    let found = text::find_addresses(&header_text(value));
                    push_unique(
                        &mut envelope.addressed_to,
                        found.into_iter().map(|a| a.address),
                    );
                }
                "x-failed-recipients" => {
                    let found = text::find_addresses(&header_text(value));
                    push_unique(
                        &mut envelope.failed_recipients,
                        found.into_iter().map(|a| a.address),
                    );
                }
                "auto-submitted" => envelope.auto_submitted = Some(header_text(value)),
                "precedence" => envelope.precedence = Some(header_text(value)),
                "x-apple-unsubscribe" => {
                    envelope.apple_unsubscribe =
                        header_text(value).trim().eq_ignore_ascii_case("true")
                }
                _ if autoreply::is_responder_header(&name) => envelope.has_responder_header = true,
                _ => {}
            }
        }
        envelope
    }

    /// Addresses that are the report's own or the sender's, or a mail
    /// system's: never a failed recipient.
    fn is_own(&self, address: &str, body: &Body) -> bool {
        self.addressed_to.iter().any(|a| a == address)
            || self.from.as_deref() == Some(address)
            || body.returned.senders.iter().any(|a| a == address)
            || text::is_system_mailbox(address)
    }

    fn auto_reply_headers(&self) -> autoreply::AutoReplyHeaders<'_> {
        autoreply::AutoReplyHeaders {
            auto_submitted: self.auto_submitted.as_deref(),
            precedence: self.precedence.as_deref(),
            has_responder_header: self.has_responder_header,
            subject: &self.subject,
        }
    }
}

/// What the returned message (or its headers) says.
#[derive(Debug, Default)]
struct Returned {
    found: bool,
    message_id: Option<String>,
    /// To and Cc: who the message was for.
    to: Vec<String>,
    /// From, Sender, Return-Path: who sent it (us).
    senders: Vec<String>,
}

impl Returned {
    fn read_message(&mut self, message: &Message<'_>) {
        if self.found {
            return;
        }
        self.found = true;
        self.message_id = message
            .message_id()
            .and_then(|id| first_id(&HeaderValue::Text(id.into())));
        for address in [message.to(), message.cc()].into_iter().flatten() {
            push_unique(&mut self.to, addresses(address));
        }
        for address in [message.from(), message.sender()].into_iter().flatten() {
            push_unique(&mut self.senders, addresses(address));
        }
        if let Some(path) = message.return_address().and_then(text::first_address) {
            push_unique(&mut self.senders, [path]);
        }
    }

    fn read_headers(&mut self, bytes: &[u8]) {
        if self.found {
            return;
        }
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(bytes.len());
        let bytes = &bytes[start..bytes.len().min(start + MAX_TEXT)];
        if let Some(headers) = MessageParser::new().parse_headers(bytes) {
            self.read_message(&headers);
        }
    }
}

/// What the report's parts say.
#[derive(Debug, Default)]
struct Body {
    dsn: Vec<DsnRecipient>,
    /// DSN fields pasted into a text part: used when there is no real
    /// delivery-status part.
    inline_dsn: Vec<DsnRecipient>,
    feedback: Option<arf::Feedback>,
    /// The human-readable text, without the returned message.
    notice: String,
    returned: Returned,
    /// The returned message itself, which may be a bounce in turn.
    returned_raw: Option<Vec<u8>>,
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_TEXT)]).into_owned()
}

impl Body {
    fn read(message: &Message<'_>) -> Self {
        let mut body = Body::default();
        let mut html: Option<String> = None;
        for part in message.parts.iter().take(MAX_PARTS) {
            let (ctype, subtype) = part
                .content_type()
                .map(|ct| {
                    (
                        ct.ctype().to_ascii_lowercase(),
                        ct.subtype().unwrap_or_default().to_ascii_lowercase(),
                    )
                })
                .unwrap_or_default();
            match (ctype.as_str(), subtype.as_str(), &part.body) {
                ("message", "delivery-status" | "global-delivery-status", _) => {
                    body.dsn
                        .extend(dsn::recipients(&lossy(part.contents()), MAX_FIELD_LINES));
                }
                ("message", "feedback-report", _) => {
                    body.feedback = Some(arf::feedback(&lossy(part.contents()), MAX_FIELD_LINES));
                }
                ("text", "rfc822-headers" | "rfc822-header", _)
                | ("message", "rfc822-headers" | "global-headers", _) => {
                    body.returned.read_headers(part.contents());
                }
                (_, _, PartType::Message(returned)) => {
                    if body.returned_raw.is_none() {
                        let raw = returned.raw_message();
                        body.returned_raw = Some(raw[..raw.len().min(MAX_BYTES)].to_vec());
                    }
                    body.returned.read_message(returned)
                }
                ("message", "rfc822" | "global", _) => body.returned.read_headers(part.contents()),
                (_, _, PartType::Text(text)) => body.add_text(
                    text,
                    part.content_disposition()
                        .is_some_and(|d| d.is_attachment()),
                ),
                (_, _, PartType::Html(text)) if html.is_none() => {
                    html = Some(text::prefix(text, MAX_TEXT).to_string());
                }
                _ => {}
            }
        }
        if body.notice.trim().is_empty() {
            if let Some(html) = html {
                body.add_text(&mail_parser::decoders::html::html_to_text(&html), false);
            }
        }
        if body.notice.trim().is_empty() {
            // Broken MIME (a boundary parameter on an unfolded line, a
            // missing closing boundary) leaves no text part: read the raw
            // body as text, MIME lines and all.
            if let Some(root) = message.parts.first() {
                let raw = message
                    .raw_message
                    .get(root.offset_body as usize..root.offset_end as usize)
                    .unwrap_or_default();
                body.add_text(&lossy(raw), false);
            }
        }
        body
    }

    fn add_text(&mut self, text: &str, is_attachment: bool) {
        if self.notice.len() >= MAX_TEXT {
            return;
        }
        let text = text::prefix(text, MAX_TEXT);
        let (notice, returned) = vendors::split_returned(text);
        // An attached text part that is a message's headers is the
        // returned message, not more notice.
        if !self.notice.is_empty() && (is_attachment || notice.trim().is_empty()) {
            if let Some(first) = text.lines().find(|l| !l.trim().is_empty()) {
                if first.contains(':') && !first.contains(' ') || first.starts_with("Received:") {
                    self.returned.read_headers(text.as_bytes());
                    return;
                }
            }
        }
        if text::prefix(notice, 16 * 1024)
            .to_ascii_lowercase()
            .contains("final-recipient:")
        {
            self.inline_dsn
                .extend(dsn::recipients(notice, MAX_FIELD_LINES));
        }
        self.notice.push_str(notice);
        self.notice.push('\n');
        if let Some(returned) = returned {
            self.returned.read_headers(returned.as_bytes());
            if self.returned_raw.is_none() {
                let start = returned.len() - returned.trim_start().len();
                self.returned_raw = Some(returned.as_bytes()[start..].to_vec());
            }
        }
    }
}

/// The questions, in order: complaint, DSN, bounce notice, auto-reply.
fn decide(envelope: &Envelope, body: &Body) -> ParsedReport {
    if let Some(report) = complaint(envelope, body) {
        return report;
    }
    if let Some(event) = ses::read(&body.notice) {
        return from_ses(event);
    }
    let dsn = if body.dsn.is_empty() {
        &body.inline_dsn
    } else {
        &body.dsn
    };
    if let Some(report) = from_dsn(dsn, body) {
        return report;
    }
    if !dsn.is_empty() {
        // Only success notices (delivered, relayed): nothing failed.
        return ParsedReport::not_a_report();
    }
    let subject = envelope.subject.to_lowercase();
    let notice = text::prefix(&body.notice, 16 * 1024).to_lowercase();
    let from_system = vendors::is_system_sender(envelope.from.as_deref(), &envelope.from_name);
    let header_says_bounce = !envelope.failed_recipients.is_empty()
        || from_system
        || vendors::subject_says_bounce(&subject)
        || envelope.report_type == "delivery-status";
    let auto_reply = autoreply::is_auto_reply(&envelope.auto_reply_headers());
    let notice_says_bounce = vendors::notice_says_bounce(&notice);
    let coded_address = || {
        vendors::candidates(&body.notice, &|a| envelope.is_own(a, body))
            .iter()
            .any(|c| c.has_code)
    };
    if (header_says_bounce
        && (notice_says_bounce || body.returned.found || from_system || coded_address()))
        || (!auto_reply && notice_says_bounce && body.returned.found)
    {
        let kind = if vendors::notice_says_delay(&subject, &notice) {
            ReportKind::Delay
        } else {
            ReportKind::Bounce
        };
        return from_notice(envelope, body, kind);
    }
    if auto_reply {
        return ParsedReport {
            kind: ReportKind::AutoReply,
            recipients: vec![RecipientReport {
                address: envelope.from.clone().unwrap_or_default(),
                status: None,
                class: FailureClass::Soft,
                diagnostic: text::tidy(&envelope.subject),
            }],
            ..ParsedReport::not_a_report()
        };
    }
    ParsedReport::not_a_report()
}

fn complaint(envelope: &Envelope, body: &Body) -> Option<ParsedReport> {
    let (feedback_type, mut recipients) = if let Some(feedback) = &body.feedback {
        let recipients = if feedback.recipients.is_empty() {
            body.returned.to.clone()
        } else {
            feedback.recipients.clone()
        };
        (feedback.feedback_type.clone(), recipients)
    } else if arf::is_jmrp(envelope.from.as_deref(), &envelope.subject) {
        (Some("abuse".to_string()), body.returned.to.clone())
    } else if envelope.apple_unsubscribe {
        // Apple Mail's "Unsubscribe" button mails the List-Unsubscribe
        // address from the subscriber's own address: the subscriber asks
        // never to be mailed again, which is what a complaint does.
        (
            Some("unsubscribe".to_string()),
            envelope.from.iter().cloned().collect(),
        )
    } else {
        return None;
    };
    Some(complaint_report(
        feedback_type,
        std::mem::take(&mut recipients),
    ))
}

fn complaint_report(feedback_type: Option<String>, mut recipients: Vec<String>) -> ParsedReport {
    if recipients.is_empty() {
        // Redacted: the returned Message-ID or the VERP tag still matches.
        recipients.push(String::new());
    }
    let diagnostic = text::tidy(&format!(
        "complaint: {}",
        feedback_type.as_deref().unwrap_or("unspecified")
    ));
    ParsedReport {
        kind: ReportKind::Complaint,
        recipients: recipients
            .into_iter()
            .map(|address| RecipientReport {
                address,
                status: None,
                class: FailureClass::Hard,
                diagnostic: diagnostic.clone(),
            })
            .collect(),
        feedback_type,
        ..ParsedReport::not_a_report()
    }
}

fn from_dsn(dsn: &[DsnRecipient], body: &Body) -> Option<ParsedReport> {
    let failed: Vec<&DsnRecipient> = dsn
        .iter()
        .filter(|r| !r.is_success() && !r.is_delay())
        .collect();
    let (kind, listed) = if !failed.is_empty() {
        (ReportKind::Bounce, failed)
    } else {
        let delayed: Vec<&DsnRecipient> = dsn.iter().filter(|r| r.is_delay()).collect();
        if delayed.is_empty() {
            return None;
        }
        (ReportKind::Delay, delayed)
    };
    let temporary = kind == ReportKind::Delay;
    let notice_candidates = vendors::candidates(&body.notice, &|_| false);
    let single = listed.len() == 1;
    let recipients = listed
        .into_iter()
        .map(|r| {
            let address = r.address.clone().unwrap_or_default();
            let from_notice = notice_candidates
                .iter()
                .find(|c| c.address == address && c.has_code)
                .map(|c| c.diagnostic.clone());
            let diagnostic = match (&r.diagnostic, from_notice) {
                (Some(d), _) if !d.trim().is_empty() => d.clone(),
                (_, Some(d)) => d,
                _ if single => vendors::notice_diagnostic(&body.notice),
                _ => String::new(),
            };
            let after_data = vendors::says_after_data(&diagnostic)
                || notice_candidates
                    .iter()
                    .any(|c| c.address == address && c.after_data)
                || (single && vendors::says_after_data(&body.notice));
            recipient(
                address,
                r.status.clone(),
                &diagnostic,
                temporary,
                after_data,
            )
        })
        .collect();
    Some(ParsedReport {
        kind,
        recipients,
        ..ParsedReport::not_a_report()
    })
}

fn from_notice(envelope: &Envelope, body: &Body, kind: ReportKind) -> ParsedReport {
    let candidates = vendors::candidates(&body.notice, &|a| envelope.is_own(a, body));
    let temporary = kind == ReportKind::Delay;
    let notice_diagnostic = || vendors::notice_diagnostic(&body.notice);
    // A lone address without a code: the code, if any, is elsewhere in the
    // notice (Apache James, m-FILTER put it in a block of its own).
    let lone = candidates.len() == 1;
    let diagnostic_of = |c: &vendors::Candidate| {
        if c.diagnostic.trim().is_empty() {
            return notice_diagnostic();
        }
        if lone && !c.has_code {
            let whole = notice_diagnostic();
            if c.score == 0 || vendors::has_code(&whole) {
                return format!("{} {whole}", c.diagnostic);
            }
        }
        c.diagnostic.clone()
    };
    let failed_and_named: Vec<&vendors::Candidate> = candidates
        .iter()
        .filter(|c| envelope.failed_recipients.contains(&c.address))
        .collect();
    // X-Failed-Recipients is the MTA's own list; when the notice names
    // other addresses and none of those, the notice (what the reader sees,
    // and what the returned message was addressed to) wins.
    let whole_after_data = vendors::says_after_data(&body.notice);
    let from_candidate = |c: &vendors::Candidate| {
        (
            c.address.clone(),
            diagnostic_of(c),
            c.after_data || (lone && whole_after_data),
        )
    };
    let mut listed: Vec<(String, String, bool)> = if !failed_and_named.is_empty() {
        failed_and_named.into_iter().map(from_candidate).collect()
    } else if !candidates.is_empty() {
        candidates.iter().map(from_candidate).collect()
    } else if !envelope.failed_recipients.is_empty() {
        envelope
            .failed_recipients
            .iter()
            .map(|a| (a.clone(), notice_diagnostic(), whole_after_data))
            .collect()
    } else {
        // The returned message's one recipient, or no address at all (the
        // VERP tag or the returned Message-ID then matches).
        let address = match body.returned.to.as_slice() {
            [only] => only.clone(),
            _ => String::new(),
        };
        vec![(address, notice_diagnostic(), whole_after_data)]
    };
    listed.truncate(MAX_RECIPIENTS);
    ParsedReport {
        kind,
        recipients: listed
            .into_iter()
            .map(|(address, diagnostic, after_data)| {
                recipient(address, None, &diagnostic, temporary, after_data)
            })
            .collect(),
        ..ParsedReport::not_a_report()
    }
}

fn from_ses(event: ses::SesEvent) -> ParsedReport {
    match event {
        ses::SesEvent::Bounce {
            transient,
            recipients,
        } => ParsedReport {
            kind: ReportKind::Bounce,
            recipients: recipients
                .into_iter()
                .map(|(address, status, diagnostic)| {
                    let mut report = recipient(address, status, &diagnostic, false, false);
                    if transient {
                        report.class = FailureClass::Soft;
                    }
                    report
                })
                .collect(),
            ..ParsedReport::not_a_report()
        },
        ses::SesEvent::Complaint {
            feedback_type,
            recipients,
        } => complaint_report(feedback_type, recipients),
    }
}

/// A generic code (X.0.0, X.5.0 ...) says only "failed"; the server's own
/// words often carry a specific one.
fn is_generic(code: &str) -> bool {
    status::reason_from_status(code).is_none()
}

/// One recipient's line: the status (given, found in the words, or
/// derived), hard or soft, and the tidied diagnostic. `after_data`: the
/// server refused the message after accepting the address.
fn recipient(
    address: String,
    given_status: Option<String>,
    raw_diagnostic: &str,
    temporary: bool,
    after_data: bool,
) -> RecipientReport {
    let diagnostic = text::tidy(raw_diagnostic);
    let in_words = status::find_enhanced(&diagnostic).map(|f| f.value);
    // The remote server's own code is more precise than the reporting
    // MTA's summary (a DSN's 5.0.0, or 5.1.1 for a reply that said 5.7.1
    // blacklisted), as long as both agree on temporary or permanent and
    // the server's is not vaguer than the summary.
    let status = match (given_status, in_words) {
        (Some(given), Some(words))
            if given.get(..1) == words.get(..1) && (is_generic(&given) || !is_generic(&words)) =>
        {
            Some(words)
        }
        (Some(given), _) => Some(given),
        (None, words) => words,
    };
    let mut reason = status::reason(status.as_deref(), &diagnostic);
    if after_data && reason == status::Reason::UserUnknown {
        // Accepted at RCPT, refused after DATA: a filter, not a dead
        // mailbox (see vendors::says_after_data).
        reason = status::Reason::Blocked;
    }
    let status = status.or_else(|| {
        let smtp_code = status::find_smtp_code(&diagnostic).map(|f| f.value);
        (smtp_code.is_some() || reason != status::Reason::Other)
            .then(|| status::derive_status(smtp_code, reason, temporary))
    });
    let class = if temporary {
        FailureClass::Soft
    } else {
        status::classify(status.as_deref(), reason)
    };
    RecipientReport {
        address,
        status,
        class,
        diagnostic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureClass::{Hard, Soft};

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bounces")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    struct Case {
        file: &'static str,
        kind: ReportKind,
        recipients: &'static [(&'static str, Option<&'static str>, FailureClass)],
        original_message_id: Option<&'static str>,
        diagnostic_contains: &'static str,
    }

    const CASES: &[Case] = &[
        Case {
            file: "postfix-dsn.eml",
            kind: ReportKind::Bounce,
            recipients: &[("ghost@example.org", Some("5.1.1"), Hard)],
            original_message_id: Some("issue-12.d42@herald.example"),
            diagnostic_contains:
                "Recipient address rejected: User unknown in virtual mailbox table",
        },
        Case {
            file: "exim.eml",
            kind: ReportKind::Bounce,
            recipients: &[("full@example.net", Some("5.2.2"), Soft)],
            original_message_id: Some("issue-12.e7@herald.example"),
            diagnostic_contains: "552 5.2.2 full@example.net: mailbox is full",
        },
        Case {
            file: "qmail.eml",
            kind: ReportKind::Bounce,
            recipients: &[("nobody@example.com", Some("5.1.1"), Hard)],
            original_message_id: Some("issue-12.q1@herald.example"),
            diagnostic_contains: "no mailbox here by that name",
        },
        Case {
            file: "arf.eml",
            kind: ReportKind::Complaint,
            recipients: &[("angry@example.com", None, Hard)],
            original_message_id: Some("issue-12.a9@herald.example"),
            diagnostic_contains: "abuse",
        },
        Case {
            file: "vacation.eml",
            kind: ReportKind::AutoReply,
            recipients: &[("liwei@example.cn", None, Soft)],
            original_message_id: Some("issue-12.v3@herald.example"),
            diagnostic_contains: "自动回复",
        },
        Case {
            file: "delay.eml",
            kind: ReportKind::Delay,
            recipients: &[("slow@example.net", Some("4.4.1"), Soft)],
            original_message_id: Some("issue-12.s5@herald.example"),
            diagnostic_contains: "Connection timed out",
        },
        Case {
            file: "not-a-report.eml",
            kind: ReportKind::None,
            recipients: &[],
            original_message_id: None,
            diagnostic_contains: "",
        },
        Case {
            // Cut in the middle of the notice: the DSN part and the returned
            // headers never arrived, the notice still names the address.
            file: "truncated.eml",
            kind: ReportKind::Bounce,
            recipients: &[("ghost@example.org", Some("5.1.1"), Hard)],
            original_message_id: None,
            diagnostic_contains: "550 5.1.1",
        },
        Case {
            // Latin-1 bytes under a us-ascii label: the address with a
            // non-ASCII local part is not taken (half an address would
            // match the wrong subscriber), the other one is.
            file: "non-utf8.eml",
            kind: ReportKind::Bounce,
            recipients: &[("inconnu@example.fr", Some("5.1.1"), Hard)],
            original_message_id: None,
            diagnostic_contains: "Utilisateur inconnu",
        },
    ];

    #[test]
    fn fixtures_parse_as_expected() {
        for case in CASES {
            let report = parse(&fixture(case.file));
            let got: Vec<(&str, Option<&str>, FailureClass)> = report
                .recipients
                .iter()
                .map(|r| (r.address.as_str(), r.status.as_deref(), r.class))
                .collect();
            assert_eq!(report.kind, case.kind, "{}: {report:#?}", case.file);
            assert_eq!(got, case.recipients, "{}: {report:#?}", case.file);
            assert_eq!(
                report.original_message_id.as_deref(),
                case.original_message_id,
                "{}",
                case.file
            );
            assert!(
                report
                    .recipients
                    .iter()
                    .all(|r| r.diagnostic.contains(case.diagnostic_contains)),
                "{}: diagnostic lacks {:?}: {report:#?}",
                case.file,
                case.diagnostic_contains
            );
        }
    }

    #[test]
    fn the_report_says_where_it_was_delivered() {
        let report = parse(&fixture("postfix-dsn.eml"));
        assert_eq!(report.addressed_to, ["bounces+d42.k3x9@herald.example"]);
        let report = parse(&fixture("arf.eml"));
        assert_eq!(report.feedback_type.as_deref(), Some("abuse"));
    }

    #[test]
    fn an_auto_reply_names_the_message_it_answers() {
        let raw = b"From: Ana <ana@example.com>\nTo: news@herald.example\n\
            Subject: Automatic reply: Herald #12\n\
            References: <older@herald.example> <issue-12.x@herald.example>\n\n\
            I am out until Monday.\n";
        let report = parse(raw);
        assert_eq!(report.kind, ReportKind::AutoReply);
        assert_eq!(
            report.original_message_id.as_deref(),
            Some("issue-12.x@herald.example")
        );
        assert_eq!(report.recipients[0].address, "ana@example.com");
    }

    #[test]
    fn every_truncation_and_corruption_of_the_fixtures_parses() {
        // A report cut anywhere (a full disk, a dropped connection) or with
        // bytes mangled in transit must still give an answer, never a panic.
        for case in CASES {
            let raw = fixture(case.file);
            for cut in (0..raw.len()).step_by(7) {
                let report = parse(&raw[..cut]);
                assert!(report.recipients.len() <= MAX_RECIPIENTS);
            }
            for (i, position) in (0..raw.len()).step_by(11).enumerate() {
                let mut mangled = raw.clone();
                mangled[position] = [0x00, 0xff, b'\n', b'<', b'@', b'"', b';', b'5'][i % 8];
                parse(&mangled);
            }
        }
    }

    #[test]
    fn garbage_is_not_a_report() {
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\n\n\n".to_vec(),
            (0..=255u8).cycle().take(100_000).collect(),
            b"Subject: x\n\n".repeat(10_000),
            b"Content-Type: multipart/report; boundary=b\n\n".to_vec(),
        ];
        for raw in cases {
            let report = parse(&raw);
            assert_eq!(report.kind, ReportKind::None, "{report:?}");
        }
    }

    #[test]
    fn hostile_shapes_stay_bounded() {
        // Thousands of parts, deep nesting, one endless line: each is cut
        // by a cap and parses in well under a second even unoptimised.
        let mut many_parts = b"From: MAILER-DAEMON@x.example\nSubject: Undeliverable\n\
            Content-Type: multipart/mixed; boundary=b\n\n"
            .to_vec();
        for i in 0..20_000 {
            many_parts.extend_from_slice(
                format!("--b\n\nuser{i}@example.com: 550 5.1.1 unknown\n").as_bytes(),
            );
        }
        let mut nested = b"Content-Type: multipart/mixed; boundary=a0\n\n".to_vec();
        for depth in 1..5_000 {
            nested.extend_from_slice(
                format!(
                    "--a{}\nContent-Type: multipart/mixed; boundary=a{depth}\n\n",
                    depth - 1
                )
                .as_bytes(),
            );
        }
        let mut endless = b"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n".to_vec();
        endless.extend(std::iter::repeat_n(b'x', 5_000_000));
        endless.extend_from_slice(b" a@example.com 550 5.1.1");
        for raw in [many_parts, nested, endless] {
            let started = std::time::Instant::now();
            let report = parse(&raw);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
            assert!(report.recipients.len() <= MAX_RECIPIENTS);
            assert!(report
                .recipients
                .iter()
                .all(|r| r.diagnostic.chars().count() <= text::DIAGNOSTIC_CAP));
        }
    }
}
