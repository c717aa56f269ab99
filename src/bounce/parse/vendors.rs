//! Non-standard bounces: the human-readable notices of Postfix, Sendmail,
//! Exim, qmail, Exchange, Gmail, Yahoo and the rest, which carry no
//! machine-readable part (or a useless one).
//!
//! Rather than one template per mail system (Sisimai has ~70 and still
//! misses new wordings), this reads the shape they all share: a notice
//! that names each failed address, followed by what the remote server said,
//! then a copy of the returned message. So: cut the notice at the returned
//! message, find the addresses in it that are not the sender's or a mail
//! system's, and take each one's diagnostic from the lines that follow it.

use super::status::{find_enhanced, find_smtp_code, reason_from_words};
use super::text::find_addresses;

/// Lines of a notice looked at. Real notices are a few dozen lines; the
/// cap keeps a hostile "notice" of a million lines from costing more than
/// a few milliseconds.
const MAX_NOTICE_LINES: usize = 400;

/// Lines after an address searched for its diagnostic.
const MAX_CONTEXT_LINES: usize = 12;

/// Where the notice ends and the copy of the returned message starts, if
/// it is inline (qmail, Exim, Exchange's "Original message headers:").
pub fn split_returned(text: &str) -> (&str, Option<&str>) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if is_returned_marker(line) {
            let rest = &text[offset + line.len()..];
            return (&text[..offset], Some(rest));
        }
        if starts_returned_headers(line) && offset > 0 {
            return (&text[..offset], Some(&text[offset..]));
        }
        offset += line.len();
    }
    (text, None)
}

fn is_returned_marker(line: &str) -> bool {
    let trimmed = line.trim();
    if trimmed.len() > 120 || trimmed.len() < 8 {
        return false;
    }
    let lower = trimmed.to_ascii_lowercase();
    let ruled = trimmed.starts_with(['-', '=', '_', '*', '+']) || trimmed.starts_with("> ");
    let said = [
        "copy of the message",
        "copy of your message",
        "original message",
        "message follows",
        "original headers",
        "header of the original",
        "headers of the original",
        "headers of your message",
        "unsent message",
        "returned message",
        "message header follows",
        "message text follows",
        "headers follow",
    ]
    .iter()
    .any(|k| lower.contains(k));
    // A ruled line naming the copy, or a short line that is only that
    // ("Original message follows.").
    (said && (ruled || trimmed.len() <= 40))
        || lower.starts_with("original message headers")
        || lower.starts_with("below this line is a copy")
        || lower.starts_with("--- below this line")
        || lower == "content-type: message/rfc822"
        || lower.starts_with("content-type: message/rfc822;")
        || lower.starts_with("content-type: text/rfc822-headers")
}

/// A returned message pasted without a marker starts with its transport
/// headers; nothing in a notice starts a line this way.
fn starts_returned_headers(line: &str) -> bool {
    let lower_prefix: String = line
        .chars()
        .take(14)
        .collect::<String>()
        .to_ascii_lowercase();
    lower_prefix.starts_with("return-path: ") || lower_prefix.starts_with("received: from")
}

/// Header names on a notice's lines that carry the sender's or a mail
/// system's address, never a failed recipient.
fn is_sender_line(lower: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "from:",
        "sender:",
        "reply-to:",
        "return-path:",
        "message-id:",
        "references:",
        "in-reply-to:",
        "received:",
        "reporting-mta:",
        "x-",
        "mail from",
        "envelope-from",
        "envelope from",
        "original-mail-from",
        "originalsender",
        "sent by",
    ];
    PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// One address a notice says failed, with the text that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub address: String,
    pub diagnostic: String,
    /// Whether `diagnostic` contains a status or reply code.
    pub has_code: bool,
    /// 3 with a server's reply code, 2 with only a status code (help
    /// texts cite those too: "see DSN 5.1.10"), 1 with words that give a
    /// reason, 0 with none of these.
    pub score: u8,
    /// The lines around the address say the server refused the message
    /// after DATA, not the address at RCPT.
    pub after_data: bool,
}

/// Whether a notice (or the part of it about one address) says the
/// refusal came after the DATA command: the server had accepted the
/// address, so its "user unknown" is a content or per-user filter (Japanese
/// mobile carriers answer a domain filter this way), not a dead mailbox.
pub fn says_after_data(text: &str) -> bool {
    // A Sendmail transcript: the command just before the first refusal.
    // With pipelining, the RCPT's refusal arrives after ">>> DATA" and the
    // DATA itself then gets a 503 ("need RCPT") or a 554 ("no valid
    // recipients"): the refusal was the RCPT's.
    let lines: Vec<&str> = text
        .lines()
        .take(MAX_NOTICE_LINES)
        .map(str::trim_start)
        .collect();
    let mut last_command: Option<&str> = None;
    for (index, line) in lines.iter().enumerate() {
        if let Some(command) = line.strip_prefix(">>> ") {
            last_command = Some(command);
        } else if let Some(reply) = line.strip_prefix("<<< ") {
            if reply.starts_with(['4', '5']) {
                let after_data =
                    last_command.is_some_and(|c| c.trim().eq_ignore_ascii_case("data"));
                let pipelined = lines[index + 1..].iter().any(|l| {
                    let lower = l.to_ascii_lowercase();
                    lower.starts_with("<<< 503")
                        || (lower.starts_with("<<< ")
                            && (lower.contains("no valid recipients") || lower.contains("rcpt")))
                });
                return after_data && !pipelined;
            }
        }
    }
    let lower = text.to_ascii_lowercase();
    [
        "end of data",
        "after data",
        "data command",
        "smtp command\ndata",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

pub fn has_code(text: &str) -> bool {
    find_enhanced(text).is_some() || find_smtp_code(text).is_some()
}

fn score(text: &str) -> u8 {
    if find_smtp_code(text).is_some() {
        3
    } else if find_enhanced(text).is_some() {
        2
    } else if reason_from_words(&text.to_lowercase()).is_some() {
        1
    } else {
        0
    }
}

/// The addresses a notice names, in order, and what it says about each.
/// `skip` says which addresses are the sender's or a system's. When some
/// addresses come with a reason, those without one (a "To:" line quoting
/// the original message, a help address) are dropped.
pub fn candidates(notice: &str, skip: &dyn Fn(&str) -> bool) -> Vec<Candidate> {
    let lines: Vec<&str> = notice.lines().take(MAX_NOTICE_LINES).collect();
    // (line index, address)
    let mut mentions: Vec<(usize, String)> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let lower = line.trim_start().to_ascii_lowercase();
        // "please contact <support@...>" names a helpdesk, not a recipient.
        if is_sender_line(&lower) || lower.contains("contact") {
            continue;
        }
        for found in find_addresses(line) {
            if !skip(&found.address) {
                mentions.push((index, found.address));
            }
        }
    }
    let mut out: Vec<Candidate> = Vec::new();
    for (k, (index, address)) in mentions.iter().enumerate() {
        // The context runs to the next line naming another address.
        let next = mentions[k + 1..]
            .iter()
            .find(|(i, a)| a != address && *i > *index)
            .map_or(lines.len(), |(i, _)| *i);
        let stop = next.min(index + MAX_CONTEXT_LINES).max(index + 1);
        let context = &lines[*index..stop.min(lines.len())];
        let diagnostic = diagnostic_from(context);
        let candidate = Candidate {
            after_data: says_after_data(&context.join("\n")),
            has_code: has_code(&diagnostic),
            score: score(&diagnostic),
            address: address.clone(),
            diagnostic,
        };
        match out.iter_mut().find(|c| c.address == *address) {
            Some(existing) if candidate.score > existing.score => *existing = candidate,
            Some(_) => {}
            None => out.push(candidate),
        }
    }
    let best = out.iter().map(|c| c.score).max().unwrap_or(0);
    if best > 0 {
        out.retain(|c| c.score > 0);
    }
    out
}

/// The diagnostic in the lines from an address's mention to the next
/// address: from the first line with a reply or status code, that line's
/// paragraph; else the non-blank lines themselves.
fn diagnostic_from(context: &[&str]) -> String {
    let replied = context.iter().position(|l| find_smtp_code(l).is_some());
    if let Some(at) = replied.or_else(|| context.iter().position(|l| has_code(l))) {
        return paragraph_from(context[at..].iter().copied());
    }
    let mut out = String::new();
    for line in context.iter().filter(|l| !l.trim().is_empty()).take(6) {
        out.push_str(line.trim());
        out.push(' ');
    }
    out
}

/// The lines from the start of `lines` to the first blank one, at most six.
fn paragraph_from<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for line in lines.skip_while(|l| l.trim().is_empty()).take(6) {
        if line.trim().is_empty() {
            break;
        }
        out.push_str(line.trim());
        out.push(' ');
    }
    out
}

/// The most telling line of a notice that named no address: the first line
/// with a reply or status code and its paragraph, or the whole notice.
pub fn notice_diagnostic(notice: &str) -> String {
    let lines: Vec<&str> = notice.lines().take(MAX_NOTICE_LINES).collect();
    match lines.iter().position(|l| has_code(l)) {
        Some(at) => paragraph_from(lines[at..].iter().copied()),
        None => notice.to_string(),
    }
}

/// Subjects of bounces, lowercased.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered",
    "delivery status notification",
    "delivery failure",
    "delivery failed",
    "delivery has failed",
    "failure notice",
    "failed delivery",
    "returned mail",
    "returned to sender",
    "mail delivery",
    "mail system error",
    "non remis",
    "non-remis",
    "nondeliverable",
    "non-deliverable",
    "not delivered",
    "could not be delivered",
    "delivery notification",
    "delivery problem",
    "unzustellbar",
    "rejected:",
    "mail failure",
    "message failure",
    "warning: could not send",
    "permanent error",
    "delivery report",
    "bounce",
    "error sending message",
    "unable to deliver",
    "notice of delivery",
    "message you sent",
    "message not delivered",
    "delayed mail",
    "delivery delay",
    "still undelivered",
];

/// Phrases of bounce notices, lowercased.
const BOUNCE_PHRASES: &[&str] = &[
    "qmail-send program",
    "could not be delivered",
    "couldn't be delivered",
    "could not deliver",
    "was not delivered",
    "wasn't delivered",
    "not be delivered",
    "delivery has failed",
    "delivery to the following recipient",
    "failed permanently",
    "permanent error",
    "permanent fatal error",
    "fatal error",
    "undeliverable",
    "unable to deliver",
    "delivery failed",
    "mail delivery failed",
    "did not reach",
    "has been rejected",
    "was rejected",
    "returned to sender",
    "this is the mail system at host",
    "the following address",
    "the following recipient",
    "message could not be",
    "delivery status notification",
    "non-delivery",
    "nondelivery",
];

/// Phrases of delay warnings, lowercased: the message is still queued.
const DELAY_PHRASES: &[&str] = &[
    "this is a warning message only",
    "you do not need to resend",
    "will continue trying",
    "will keep trying",
    "will retry",
    "still trying",
    "has not yet been delivered",
    "have not yet received",
    "not yet been delivered",
    "delivery delayed",
    "delivery has been delayed",
    "message delayed",
    "is delayed",
];

/// Whether the sender looks like a mail system (not a person).
pub fn is_system_sender(address: Option<&str>, display_name: &str) -> bool {
    let name = display_name.to_ascii_lowercase();
    address.is_some_and(super::text::is_system_mailbox)
        || name.contains("mail delivery")
        || name.contains("mailer-daemon")
        || name.contains("mailer daemon")
        || name.contains("postmaster")
        || name.contains("mail administrator")
}

pub fn subject_says_bounce(subject_lower: &str) -> bool {
    BOUNCE_SUBJECTS.iter().any(|s| subject_lower.contains(s))
}

pub fn notice_says_bounce(notice_lower: &str) -> bool {
    BOUNCE_PHRASES.iter().any(|s| notice_lower.contains(s))
}

/// A warning that delivery is late, not a failure. Only the notice's
/// opening is read: a final failure may quote old warnings further down.
pub fn notice_says_delay(subject_lower: &str, notice_lower: &str) -> bool {
    let opening = super::text::prefix(notice_lower, 2000);
    let subject_delay = [
        "delayed",
        "delay)",
        "delay:",
        "warning: could not send",
        "still undelivered",
    ]
    .iter()
    .any(|s| subject_lower.contains(s));
    let final_failure = [
        "permanent",
        "failed permanently",
        "fatal error",
        "given up",
        "gave up",
    ]
    .iter()
    .any(|s| opening.contains(s));
    !final_failure && (subject_delay || DELAY_PHRASES.iter().any(|s| opening.contains(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn qmail_notice() {
        let text = "Hi. This is the qmail-send program at mx4.example.jp.\n\
                    I'm afraid I wasn't able to deliver your message to the following addresses.\n\n\
                    <kijitora@example.ne.jp>:\n\
                    Sorry, remote host 192.0.2.32 said: 550 Unknown user kijitora@example.ne.jp\n\
                    . (#5.5.0)\n\n\
                    --- Below this line is a copy of the message.\n\n\
                    Return-Path: <nekochan@example.jp>\nTo: kuroneko@example.com\n";
        let (notice, returned) = split_returned(text);
        assert!(returned.is_some_and(|r| r.contains("kuroneko@example.com")));
        let got = candidates(notice, &none);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].address, "kijitora@example.ne.jp");
        assert!(got[0].diagnostic.contains("550 Unknown user"), "{got:?}");
    }

    #[test]
    fn gmail_notice_takes_the_next_paragraph() {
        let text = "Delivery to the following recipient failed permanently:\n\n     \
                    kijitora@example.jp\n\nTechnical details of permanent failure:\n\
                    Google tried to deliver your message, but it was rejected by the server.\n\
                    The error that the other server returned was:\n\
                    550 5.1.1 <kijitora@example.jp>: Recipient address rejected\n";
        let got = candidates(text, &none);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].diagnostic.starts_with("550 5.1.1"), "{got:?}");
    }

    #[test]
    fn sender_lines_and_skipped_addresses_are_not_recipients() {
        let text = "From: me@example.org\nMAIL FROM:<me@example.org>\n\
                    Contact postmaster@example.net\n  a@example.com\n    550 no\n";
        let skip = |a: &str| a == "postmaster@example.net";
        let got = candidates(text, &skip);
        assert_eq!(
            got.iter().map(|c| c.address.as_str()).collect::<Vec<_>>(),
            ["a@example.com"]
        );
    }

    #[test]
    fn refusals_after_data() {
        for (text, want) in [
            ("... while talking to mx.:\n>>> DATA\n<<< 550 Unknown user x@example.jp\n", true),
            (">>> RCPT To:<x@example.jp>\n<<< 550 5.1.1 User unknown\n>>> DATA\n<<< 503 Need RCPT\n", false),
            (">>> DATA\n<<< 550 5.1.1 User unknown\n<<< 503 5.0.0 Need RCPT (recipient)\n", false),
            ("said: 550 User unknown (in reply to end of DATA command)", true),
            ("said: 550 User unknown (in reply to RCPT TO command)", false),
            ("SMTP error from remote mail server after end of data: 550", true),
        ] {
            assert_eq!(says_after_data(text), want, "{text:?}");
        }
    }

    #[test]
    fn delays() {
        assert!(notice_says_delay(
            "warning: could not send message for past 4 hours",
            ""
        ));
        assert!(notice_says_delay(
            "",
            "this is a warning message only. you do not need to resend"
        ));
        assert!(!notice_says_delay(
            "delivery status notification (delay)",
            "permanent error; gave up"
        ));
        assert!(!notice_says_delay(
            "undeliverable",
            "the mailbox does not exist"
        ));
    }
}
