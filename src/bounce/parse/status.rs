//! Status codes and the hard/soft call.
//!
//! A report gives an enhanced status code (RFC 3463, `5.1.1`), a plain SMTP
//! reply code (`550`), words (`user unknown`), or a mix. This module finds
//! the codes in text, reads a [`Reason`] from the code and the words, and
//! makes the one decision that matters to Herald: is this address dead
//! (hard), or may the next mail get through (soft)?
//!
//! The rule, in one place ([`classify`]):
//! - A temporary status (4.x.x) is soft, whatever the words.
//! - Hard means the *address* is bad: the mailbox does not exist (X.1.1,
//!   "user unknown"), the domain does not exist (X.1.2), the address is
//!   malformed (X.1.3), it has moved (X.1.6), or the mailbox is disabled
//!   (X.2.1, "account disabled/suspended").
//! - Everything else is soft, even with a 5.x.x code:
//!   - a full mailbox (X.2.2) is permanent in the code's class only because
//!     old servers say 552; people empty their mailboxes, and RFC 3463 lists
//!     it as "a per-mailbox condition which may be transient";
//!   - a policy, spam or reputation block (X.7.x, "blocked", "spam") is
//!     about the *sender* (our IP, our domain, our content), not about the
//!     subscriber: marking every Gmail subscriber bounced because Gmail
//!     throttled us once would empty the list;
//!   - a message too large, an expired queue, a network error, and a
//!     5.x.x that says nothing specific are counted as soft so that
//!     repeated failures still remove the address (the soft-bounce policy)
//!     without one ambiguous reply removing it at once.

use crate::bounce::report::FailureClass;

/// Why a delivery failed, as far as the policy needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UserUnknown,
    HostUnknown,
    BadSyntax,
    HasMoved,
    MailboxDisabled,
    MailboxFull,
    MessageTooBig,
    /// Refused for who sent it or what it says: spam filters, block lists,
    /// DMARC/SPF, relaying denied, content policy.
    Blocked,
    /// Rate limits, greylisting, "try again later".
    Throttled,
    /// The sending server gave up after retrying (queue lifetime).
    Expired,
    Network,
    Other,
}

/// An enhanced status code (`class.subject.detail`) at `pos` in `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<T> {
    pub pos: usize,
    pub value: T,
}

fn digits_at(bytes: &[u8], from: usize, max: usize) -> usize {
    bytes[from.min(bytes.len())..]
        .iter()
        .take(max + 1)
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// The first enhanced status code (2/4/5 . 1-3 digits . 1-3 digits) in
/// `text` that is not part of an IP address or a version number.
pub fn find_enhanced(text: &str) -> Option<Found<String>> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 5 <= bytes.len() {
        let b = bytes[i];
        if matches!(b, b'2' | b'4' | b'5')
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.'))
            && bytes.get(i + 1) == Some(&b'.')
        {
            let subject = digits_at(bytes, i + 2, 3);
            if (1..=3).contains(&subject) && bytes.get(i + 2 + subject) == Some(&b'.') {
                let detail_at = i + 3 + subject;
                let detail = digits_at(bytes, detail_at, 3);
                let end = detail_at + detail;
                let followed_by_more = bytes.get(end) == Some(&b'.')
                    && bytes.get(end + 1).is_some_and(|b| b.is_ascii_digit());
                if (1..=3).contains(&detail)
                    && !followed_by_more
                    && !bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric())
                {
                    return Some(Found {
                        pos: i,
                        value: text[i..end].to_string(),
                    });
                }
            }
        }
        i += 1;
    }
    None
}

/// The first SMTP reply code for a failure (4xx or 5xx) in `text`. Only
/// codes servers really use count (421-455, 500-557, 571), so that a port
/// number or a count in prose is not taken for one.
pub fn find_smtp_code(text: &str) -> Option<Found<u16>> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 3 <= bytes.len() {
        let window = &bytes[i..i + 3];
        if matches!(window[0], b'4' | b'5')
            && window[1].is_ascii_digit()
            && window[2].is_ascii_digit()
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric() || b".:/=-_".contains(&bytes[i - 1])))
            && bytes.get(i + 3).is_none_or(|b| {
                matches!(
                    b,
                    b' ' | b'-' | b')' | b'\'' | b'"' | b',' | b'\n' | b'\r' | b'\t'
                )
            })
        {
            let code = u16::from(window[0] - b'0') * 100
                + u16::from(window[1] - b'0') * 10
                + u16::from(window[2] - b'0');
            if matches!(code, 421..=455 | 500..=557 | 571) {
                return Some(Found {
                    pos: i,
                    value: code,
                });
            }
        }
        i += 1;
    }
    None
}

/// What a specific enhanced status code says on its own. Generic codes
/// (X.0.0, X.5.0 ...) say nothing and leave the call to the words.
pub fn reason_from_status(status: &str) -> Option<Reason> {
    let mut parts = status.split('.');
    let _class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    Some(match (subject, detail) {
        ("1", "1") | ("1", "10") => Reason::UserUnknown,
        ("1", "2") => Reason::HostUnknown,
        ("1", "3") => Reason::BadSyntax,
        ("1", "6") => Reason::HasMoved,
        // The *sender's* address is refused (X.1.7 bad syntax, X.1.8 bad
        // domain): nothing wrong with the subscriber.
        ("1", "7") | ("1", "8") => Reason::Blocked,
        ("2", "1") => Reason::MailboxDisabled,
        ("2", "2") => Reason::MailboxFull,
        ("2", "3") | ("3", "4") => Reason::MessageTooBig,
        ("4", "7") => Reason::Expired,
        ("4", "1") | ("4", "2") | ("4", "6") => Reason::Network,
        ("4", "4") => Reason::HostUnknown,
        ("7", _) => Reason::Blocked,
        _ => return None,
    })
}

/// Phrases real servers use, in the order they are tried: the first family
/// with a match wins. The order settles mixed replies: a full or disabled
/// mailbox is named as such even when the reply also says "unknown"; a
/// plain "user unknown" wins over incidental words like "denied"; words
/// that could mean either a dead address or a block ("not found",
/// "unknown", "rejected") are tried only after the blocks.
const PHRASES: &[(Reason, &[&str])] = &[
    (
        Reason::MailboxFull,
        &[
            "mailbox full",
            "mailbox is full",
            "mail box full",
            "over quota",
            "overquota",
            "quota exceeded",
            "exceeded storage",
            "exceeds quota",
            "exceed the quota",
            "quota",
            "mailbox size limit",
            "insufficient system storage",
            "mailfolder is full",
            "not enough storage",
            "user is over",
            "full mailbox",
            "mailbox exceeds",
            "too much mail",
            "メールボックスが一杯",
            "容量",
        ],
    ),
    (
        Reason::MailboxDisabled,
        &[
            "account disabled",
            "account is disabled",
            "account has been disabled",
            "mailbox disabled",
            "mailbox is disabled",
            "is disabled",
            "been disabled",
            "suspended",
            "deactivated",
            "inactive",
            "account is locked",
            "account has been locked",
            "no longer active",
            "not active",
            "account closed",
            "account has been closed",
            "mailbox is frozen",
            "expired account",
        ],
    ),
    (
        Reason::MessageTooBig,
        &[
            "message too big",
            "message is too big",
            "too large",
            "message size exceeds",
            "exceeds size limit",
            "size limit",
            "message length exceeds",
            "exceeded the maximum message size",
        ],
    ),
    // A resolver failure that asks to try again is temporary, though it
    // says "host not found".
    (
        Reason::Network,
        &[
            "host not found, try again",
            "try again later",
            "temporary failure",
        ],
    ),
    (
        Reason::HostUnknown,
        &[
            "host unknown",
            "unknown host",
            "domain not found",
            "no such domain",
            "domain does not exist",
            "domain doesn't exist",
            "host not found",
            "name service error",
            "unrouteable mail domain",
            "unroutable mail domain",
            "host or domain name not found",
            "domain name not found",
            "no mx",
            "mx record",
            "dns error",
            "illegal host/domain",
            "unknown domain",
            "not a valid domain",
            "nxdomain",
            "no smtp service",
            "null mx",
            "domain is not reachable",
        ],
    ),
    (
        Reason::UserUnknown,
        &[
            "user unknown",
            "unknown user",
            "no such user",
            "no such mailbox",
            "no such recipient",
            "no such address",
            "no such account",
            "no such local user",
            "unknown recipient",
            "recipient unknown",
            "invalid recipient",
            "recipient not found",
            "user not found",
            "not recognized",
            "not recognised",
            "user doesn't exist",
            "user does not exist",
            "mailbox not found",
            "mailbox does not exist",
            "mailbox doesn't exist",
            "account does not exist",
            "address does not exist",
            "does not exist",
            "doesn't have a",
            "unrouteable address",
            "unroutable address",
            "invalid mailbox",
            "not a valid mailbox",
            "bad recipient",
            "address unknown",
            "unknown address",
            "invalid address",
            "invalid user",
            "invalid final delivery",
            "not our customer",
            "unknown local part",
            "undeliverable address",
            "recipnotfound",
            "not listed in",
            "is not a known user",
            "no valid recipients",
            "bad destination mailbox",
            "unknown or illegal alias",
            // Exchange Online's directory-based edge blocking: the
            // recipient is not in the tenant's directory.
            "recipient address rejected: access denied",
        ],
    ),
    (
        Reason::Blocked,
        &[
            "spam",
            "blocked",
            "block list",
            "blocklist",
            "blacklist",
            "black list",
            "is listed",
            "listed on",
            "listed at",
            "rbl",
            "dnsbl",
            "spamhaus",
            "spamcop",
            "reputation",
            "policy",
            "not authorized",
            "unauthorized",
            "access denied",
            "denied",
            "relay",
            "dmarc",
            "spf",
            "dkim",
            "virus",
            "malware",
            "content rejected",
            "rejected for",
            "rejected due",
            "message refused",
            "mail refused",
            "refused by",
            "refused due",
            "not accepted",
            "bulk mail",
            "junk",
            "blocking",
            "your ip",
            "client host",
            "reverse dns",
            "ptr record",
            "helo",
            "sender address rejected",
            "sender rejected",
            "prohibited",
            "security",
            "header error",
        ],
    ),
    (
        Reason::Throttled,
        &[
            "greylist",
            "graylist",
            "rate limit",
            "ratelimit",
            "rate-limit",
            "too many",
            "try later",
            "temporarily",
            "temporary",
            "throttl",
            "deferred",
            "resources",
            "unusual rate",
        ],
    ),
    (
        Reason::HasMoved,
        &["has moved", "no longer with", "address has changed"],
    ),
    (
        Reason::UserUnknown,
        &[
            "mailbox unavailable",
            "mailbox is unavailable",
            "no mailbox",
            "not exist",
            "no account",
            "address rejected",
            "recipient rejected",
            "recipient is not",
            "not found",
            "unknown",
        ],
    ),
    (
        Reason::Expired,
        &[
            "retry time",
            "retry timeout",
            "expired",
            "timed out",
            "timeout",
            "gave up",
            "giving up",
            "delivery time",
            "too long",
            "could not be delivered within",
            "not delivered for",
            "has not been delivered",
            "hop count exceeded",
        ],
    ),
    (
        Reason::Network,
        &[
            "connection refused",
            "connection reset",
            "lost connection",
            "network",
            "unreachable",
            "could not connect",
            "connect to",
            "no answer",
        ],
    ),
];

/// The reason the words give. `lower` is the diagnostic in lowercase.
pub fn reason_from_words(lower: &str) -> Option<Reason> {
    PHRASES
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|p| lower.contains(p)))
        .map(|(reason, _)| *reason)
}

/// The reason for a failure: a specific status code wins over the words,
/// except that the words may reveal a full or disabled mailbox behind an
/// address code, or an unknown user behind a policy code.
pub fn reason(status: Option<&str>, diagnostic: &str) -> Reason {
    let lower = diagnostic.to_lowercase();
    let from_words = reason_from_words(&lower);
    match (status.and_then(reason_from_status), from_words) {
        (
            Some(Reason::UserUnknown),
            Some(words @ (Reason::MailboxFull | Reason::MailboxDisabled)),
        ) => words,
        // Many servers answer an unknown user with a policy code (5.7.1)
        // or a routing one (Exchange Online's 5.4.1); the words say which
        // it is. Not for the sender's own address codes (X.1.7, X.1.8).
        (
            Some(Reason::Blocked | Reason::Network),
            Some(words @ (Reason::UserUnknown | Reason::HostUnknown)),
        ) if status.is_some_and(|s| s.get(1..4) == Some(".7.") || s.get(1..4) == Some(".4.")) => {
            words
        }
        // An address code explained as a refusal ("5.1.1 ... Refused due
        // to recipient preferences", "5.1.3 ... spamhaus.org"): the words
        // are the server's reason, the code its nearest fit.
        (Some(Reason::UserUnknown | Reason::BadSyntax), Some(Reason::Blocked)) => Reason::Blocked,
        (Some(from_status), _) => from_status,
        (None, Some(words)) => words,
        (None, None) => Reason::Other,
    }
}

/// Hard or soft, from the status class and the reason. See the module
/// comment for why.
pub fn classify(status: Option<&str>, reason: Reason) -> FailureClass {
    if status.is_some_and(|s| s.starts_with('4')) {
        return FailureClass::Soft;
    }
    match reason {
        Reason::UserUnknown
        | Reason::HostUnknown
        | Reason::BadSyntax
        | Reason::HasMoved
        | Reason::MailboxDisabled => FailureClass::Hard,
        Reason::MailboxFull
        | Reason::MessageTooBig
        | Reason::Blocked
        | Reason::Throttled
        | Reason::Expired
        | Reason::Network
        | Reason::Other => FailureClass::Soft,
    }
}

/// An enhanced status code for a failure that gave only an SMTP reply code
/// (or nothing): the class from the reply code (5 when the report says the
/// failure is final), the rest from the reason.
pub fn derive_status(smtp_code: Option<u16>, reason: Reason, temporary: bool) -> String {
    let class = match smtp_code {
        Some(code) if code < 500 => 4,
        Some(_) => 5,
        None if temporary => 4,
        None => 5,
    };
    let rest = match reason {
        Reason::UserUnknown => "1.1",
        Reason::HostUnknown => "1.2",
        Reason::BadSyntax => "1.3",
        Reason::HasMoved => "1.6",
        Reason::MailboxDisabled => "2.1",
        Reason::MailboxFull => "2.2",
        Reason::MessageTooBig => "3.4",
        Reason::Blocked => "7.1",
        Reason::Throttled => "7.0",
        Reason::Expired => "4.7",
        Reason::Network => "4.1",
        Reason::Other => "0.0",
    };
    format!("{class}.{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes_are_found_and_lookalikes_are_not() {
        let cases: &[(&str, Option<&str>)] = &[
            ("#550 5.1.1 RESOLVER.ADR.RecipNotFound", Some("5.1.1")),
            ("said: 550-5.1.1 The email account", Some("5.1.1")),
            ("Status: 4.4.7 (delivery time expired)", Some("4.4.7")),
            ("(#5.5.0)", Some("5.5.0")),
            ("Status: 5.0.944", Some("5.0.944")),
            ("host mx [192.0.2.20]: 550 no", None),
            ("Sendmail 8.14.4/8.14.4", None),
            ("version 2.5.1.1 here", None),
            ("10.5.1.1", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                find_enhanced(text).map(|f| f.value).as_deref(),
                *want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn smtp_codes_skip_ports_and_numbers() {
        let cases: &[(&str, Option<u16>)] = &[
            ("remote host said: 550 Unknown user", Some(550)),
            ("550-5.1.1 The email", Some(550)),
            ("#550 5.1.1", Some(550)),
            ("port 587 refused", None),
            ("SIZE=1543: 550 5.7.0", Some(550)),
            ("id 12345 at 10:45", None),
            ("452 4.2.2 Over quota", Some(452)),
        ];
        for (text, want) in cases {
            assert_eq!(find_smtp_code(text).map(|f| f.value), *want, "{text:?}");
        }
    }

    #[test]
    fn hard_and_soft() {
        use FailureClass::{Hard, Soft};
        let cases: &[(Option<&str>, &str, FailureClass)] = &[
            (Some("5.1.1"), "550 5.1.1 user unknown", Hard),
            (Some("5.0.0"), "550 Unknown user kijitora", Hard),
            (None, "no such domain", Hard),
            (Some("5.2.1"), "account disabled", Hard),
            (Some("5.2.2"), "552 mailbox full", Soft),
            (
                Some("5.0.0"),
                "552 Requested mail action aborted: exceeded storage allocation",
                Soft,
            ),
            (Some("5.7.1"), "554 rejected: listed in spamhaus", Soft),
            (Some("4.1.1"), "450 user unknown", Soft),
            (Some("4.7.0"), "greylisted, try again later", Soft),
            (Some("5.0.0"), "550 something odd happened", Soft),
            (Some("5.1.1"), "550 5.1.1 mailbox disabled", Hard),
            (Some("5.1.1"), "552 5.1.1 mailbox is full", Soft),
        ];
        for (status, diagnostic, want) in cases {
            let why = reason(*status, diagnostic);
            assert_eq!(
                classify(*status, why),
                *want,
                "{status:?} {diagnostic:?} ({why:?})"
            );
        }
    }

    #[test]
    fn derived_statuses() {
        assert_eq!(
            derive_status(Some(550), Reason::UserUnknown, false),
            "5.1.1"
        );
        assert_eq!(
            derive_status(Some(452), Reason::MailboxFull, false),
            "4.2.2"
        );
        assert_eq!(derive_status(None, Reason::Expired, true), "4.4.7");
        assert_eq!(derive_status(None, Reason::Other, false), "5.0.0");
    }
}
