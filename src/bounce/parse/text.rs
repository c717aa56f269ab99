//! Small text helpers the format readers share: finding addresses in free
//! text, and tidying a diagnostic for storage and display.
//!
//! Addresses are scanned by hand rather than with a regex: the scan runs
//! over every line of every notification, it is a few lines of code, and it
//! keeps the parser free of a regex compile on each process start.

/// The longest diagnostic kept: enough for any real SMTP reply (they are
/// one or two lines), short enough that a hostile report cannot bloat the
/// store or a terminal.
pub const DIAGNOSTIC_CAP: usize = 500;

/// One address found in free text: where it sits and its lowercased form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundAddress {
    pub start: usize,
    pub end: usize,
    pub address: String,
}

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b)
}

fn is_domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// Every plausible mailbox address in `text`, in order. "Plausible" means a
/// local part and a dotted domain whose last label is alphabetic, which
/// rules out message ids like `123.456@mailhub` and IP literals.
pub fn find_addresses(text: &str) -> Vec<FoundAddress> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut search_from = 0;
    while let Some(offset) = memchr::memchr(b'@', &bytes[search_from..]) {
        let at = search_from + offset;
        search_from = at + 1;
        let mut start = at;
        while start > 0 && is_local_char(bytes[start - 1]) {
            start -= 1;
        }
        while start < at && bytes[start] == b'.' {
            start += 1;
        }
        // A quoted local part ("first..last"@example.org) is kept whole,
        // quotes included, as it is the address.
        if start == at && at >= 2 && bytes[at - 1] == b'"' {
            if let Some(open) = bytes[..at - 1].iter().rposition(|b| *b == b'"') {
                let quoted = &bytes[open + 1..at - 1];
                if !quoted.is_empty() && quoted.iter().all(|b| b.is_ascii_graphic() && *b != b'"') {
                    start = open;
                }
            }
        }
        let mut end = at + 1;
        while end < bytes.len() && is_domain_char(bytes[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start == at || end <= at + 1 {
            continue;
        }
        let domain = &text[at + 1..end];
        let Some(tld) = domain.rsplit_once('.').map(|(_, tld)| tld) else {
            continue;
        };
        if tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
            continue;
        }
        found.push(FoundAddress {
            start,
            end,
            address: text[start..end].to_ascii_lowercase(),
        });
        search_from = end.max(search_from);
    }
    found
}

/// The first address in `text`, lowercased.
pub fn first_address(text: &str) -> Option<String> {
    find_addresses(text).into_iter().next().map(|a| a.address)
}

/// Whitespace runs become one space, the ends are trimmed, and the result
/// is cut to [`DIAGNOSTIC_CAP`] characters.
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(DIAGNOSTIC_CAP + 8));
    let mut chars = 0;
    for word in text.split_whitespace() {
        if chars >= DIAGNOSTIC_CAP {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
            chars += 1;
        }
        for c in word.chars() {
            if chars >= DIAGNOSTIC_CAP {
                break;
            }
            // Control characters from a hostile report never reach a
            // terminal or a JSON consumer.
            if !c.is_control() {
                out.push(c);
                chars += 1;
            }
        }
    }
    out.trim_end().to_string()
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Local parts that name a mail system rather than a person: never a
/// failed recipient, and a sign that a message is a bounce.
pub fn is_system_mailbox(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or_default();
    matches!(
        local,
        "mailer-daemon"
            | "mailerdaemon"
            | "mail-daemon"
            | "maildaemon"
            | "postmaster"
            | "post_master"
            | "mdaemon"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_found_in_the_usual_wrappings() {
        let cases: &[(&str, &[&str])] = &[
            ("<Kijitora@Example.JP>:", &["kijitora@example.jp"]),
            (
                "Neko<mailto:mikeneko@example.co.jp>",
                &["mikeneko@example.co.jp"],
            ),
            (
                "Final-Recipient: rfc822;a.b+c@x.example.org.",
                &["a.b+c@x.example.org"],
            ),
            (
                "550 Unknown user kijitora@example.ne.jp",
                &["kijitora@example.ne.jp"],
            ),
            ("Message-ID: <000.999@mailhub>", &[]),
            ("user@[192.0.2.1] and x@192.0.2.1", &[]),
            ("a@b.c d@e.fr", &["d@e.fr"]),
            (
                "<\"neko..nyaan.\"@libsisimai.org>",
                &["\"neko..nyaan.\"@libsisimai.org"],
            ),
            ("@@@ .@x.com", &[]),
        ];
        for (text, want) in cases {
            let got: Vec<String> = find_addresses(text)
                .into_iter()
                .map(|a| a.address)
                .collect();
            assert_eq!(&got, want, "in {text:?}");
        }
    }

    #[test]
    fn tidy_collapses_and_caps() {
        assert_eq!(
            tidy("  550  5.1.1\n\t user\r\n unknown "),
            "550 5.1.1 user unknown"
        );
        assert_eq!(tidy(&"x".repeat(2000)).chars().count(), DIAGNOSTIC_CAP);
        assert_eq!(tidy(&"é ".repeat(2000)).chars().count(), DIAGNOSTIC_CAP - 1);
        assert_eq!(tidy("a\u{7}b"), "ab");
    }

    #[test]
    fn prefix_respects_char_boundaries() {
        assert_eq!(prefix("日本語", 4), "日");
        assert_eq!(prefix("abc", 10), "abc");
    }
}
