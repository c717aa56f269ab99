//! What every provider's endpoint shares: comparing secrets in constant
//! time, refusing stale requests, the replay key, and turning a provider's
//! fields into the report types. Pure functions; the handlers do the I/O.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::bounce::{FailureClass, RecipientReport};
use crate::store::Millis;

/// Why a request was refused before anything was recorded. Each is a 401;
/// the reason goes to the log (fixed text, never the payload's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unsigned,
    BadSignature,
    Stale,
    Replayed,
    /// The SNS certificate or subscription URL is not on the allow-list.
    UntrustedUrl,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::BadSignature => "bad signature",
            Refusal::Stale => "stale timestamp",
            Refusal::Replayed => "replayed",
            Refusal::UntrustedUrl => "URL not on the allow-list",
        }
    }
}

/// Whether `signature_hex` is the HMAC-SHA256 of `message` under `key`.
/// The comparison is constant-time (`Mac::verify_slice`), so an attacker
/// cannot find the signature byte by byte from response times.
pub fn hmac_sha256_matches(key: &[u8], message: &[&[u8]], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    for part in message {
        mac.update(part);
    }
    mac.verify_slice(&signature).is_ok()
}

/// Compares two secrets in constant time. Both are hashed first, so the
/// time does not even tell the length of the expected one.
pub fn secrets_equal(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    given.ct_eq(&expected).into()
}

/// A signed timestamp (Unix seconds) within `max_age_secs` of now, either
/// side: a little clock skew is normal, a request from far away in time
/// is a replay of something captured.
pub fn check_fresh(timestamp_secs: i64, now: Millis, max_age_secs: u64) -> Result<(), Refusal> {
    let max_age_millis = i64::try_from(max_age_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let signed_at = timestamp_secs.saturating_mul(1000);
    if now.saturating_sub(signed_at).abs() <= max_age_millis {
        Ok(())
    } else {
        Err(Refusal::Stale)
    }
}

/// Parses a provider's Unix-seconds timestamp (`"1529006854"`; Mailgun's
/// event timestamps may carry a fraction).
pub fn parse_unix_secs(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Some(secs);
    }
    let secs = text.parse::<f64>().ok()?;
    (secs.is_finite() && secs.abs() < 1e15).then_some(secs as i64)
}

/// What identifies one accepted request, and how long to remember it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayKey {
    /// `provider:` + SHA-256 hex of what makes the request unique.
    pub key: String,
    pub expires_at: Millis,
}

impl ReplayKey {
    /// Remembered until the signed timestamp is stale anyway: after that,
    /// the freshness check refuses the replay without the row.
    pub fn until_stale(
        provider: &str,
        unique: &[u8],
        timestamp_secs: i64,
        max_age_secs: u64,
    ) -> ReplayKey {
        let max_age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
        let expires_secs = timestamp_secs.saturating_add(max_age).saturating_add(1);
        Self::until(provider, unique, expires_secs.saturating_mul(1000))
    }

    pub fn until(provider: &str, unique: &[u8], expires_at: Millis) -> ReplayKey {
        ReplayKey {
            key: format!("{provider}:{}", hex::encode(Sha256::digest(unique))),
            expires_at,
        }
    }
}

/// The longest diagnostic kept from a provider's event.
const MAX_DIAGNOSTIC_CHARS: usize = 1000;
/// RFC 5321's limit on a path, with room for what providers add.
const MAX_ADDRESS_CHARS: usize = 320;

/// Text from a payload made safe to keep and show: control characters
/// (line breaks included) become spaces, runs of space collapse, and the
/// length is capped.
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let mut cleaned = String::with_capacity(text.len().min(max_chars));
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        if count == max_chars {
            break;
        }
        last_space = c == ' ';
        cleaned.push(c);
        count += 1;
    }
    cleaned.trim_end().to_string()
}

/// An address as a provider reports it: trimmed, angle brackets dropped,
/// lowercased. Not validated further: a report about an odd address is
/// still kept (as unmatched), never dropped.
pub fn clean_address(address: &str) -> String {
    clean_envelope_sender(address).to_lowercase()
}

/// An envelope sender as a provider reports it, case kept: its local part
/// may carry our VERP tag, and a local part is case-sensitive.
pub fn clean_envelope_sender(address: &str) -> String {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    clean_text(address, MAX_ADDRESS_CHARS).replace(' ', "")
}

/// A Message-ID without its angle brackets; `None` when empty.
pub fn clean_message_id(message_id: &str) -> Option<String> {
    let id = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let id = clean_text(id, 998).replace(' ', "");
    (!id.is_empty()).then_some(id)
}

/// A provider's event id, for the recorder's idempotency (it adds the
/// provider's name): cleaned and capped like any payload text; `None`
/// when empty, and the recorder then keys the event by its content.
pub fn event_id(id: &str) -> Option<String> {
    let id = clean_text(id, 200);
    (!id.is_empty()).then_some(id)
}

/// The first RFC 3463 enhanced status code (`5.1.1`) in `text`, if any.
/// By hand: a three-field digit pattern is simpler to scan for than to
/// pull a regex crate in for.
pub fn enhanced_status_in(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|start| {
        let starts_clean = start == 0 || !is_status_char(bytes[start - 1]);
        if !starts_clean || !matches!(bytes[start], b'2' | b'4' | b'5') {
            return None;
        }
        let candidate = text.get(start..)?;
        let end = candidate
            .bytes()
            .position(|b| !is_status_char(b))
            .unwrap_or(candidate.len());
        let token = candidate.get(..end)?.trim_end_matches('.');
        valid_enhanced_status(token).then(|| token.to_string())
    })
}

fn is_status_char(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.'
}

/// `class.subject.detail`: class 2, 4 or 5, subject up to 3 digits,
/// detail up to 3 digits (RFC 3463 section 2).
pub fn valid_enhanced_status(status: &str) -> bool {
    let fields: Vec<&str> = status.split('.').collect();
    match fields.as_slice() {
        [class, subject, detail] => {
            matches!(*class, "2" | "4" | "5")
                && (1..=3).contains(&subject.len())
                && (1..=3).contains(&detail.len())
                && subject
                    .bytes()
                    .chain(detail.bytes())
                    .all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// One recipient of a provider's event, cleaned for the report.
pub fn recipient(
    address: &str,
    status: Option<&str>,
    class: FailureClass,
    diagnostic: Option<&str>,
) -> RecipientReport {
    let diagnostic = clean_text(diagnostic.unwrap_or(""), MAX_DIAGNOSTIC_CHARS);
    let status = status
        .map(str::trim)
        .filter(|s| valid_enhanced_status(s))
        .map(str::to_string)
        .or_else(|| enhanced_status_in(&diagnostic));
    RecipientReport {
        address: clean_address(address),
        status,
        class,
        diagnostic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_only_the_right_key_and_message() {
        // RFC 4231 test case 2.
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert!(hmac_sha256_matches(
            b"Jefe",
            &[b"what do ya want ", b"for nothing?"],
            expected
        ));
        assert!(hmac_sha256_matches(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &expected.to_uppercase()
        ));
        assert!(!hmac_sha256_matches(
            b"Jeff",
            &[b"what do ya want for nothing?"],
            expected
        ));
        assert!(!hmac_sha256_matches(
            b"Jefe",
            &[b"what do ya want for nothing!"],
            expected
        ));
        assert!(!hmac_sha256_matches(b"Jefe", &[b"x"], "not hex"));
        assert!(!hmac_sha256_matches(b"Jefe", &[b"x"], ""));
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secrets_equal(b"hunter2", b"hunter2"));
        assert!(!secrets_equal(b"hunter2", b"hunter3"));
        assert!(!secrets_equal(b"", b"hunter2"));
    }

    #[test]
    fn freshness_allows_skew_both_ways_and_no_more() {
        let now = 1_700_000_000_000;
        assert_eq!(check_fresh(1_700_000_000, now, 300), Ok(()));
        assert_eq!(check_fresh(1_700_000_000 - 300, now, 300), Ok(()));
        assert_eq!(check_fresh(1_700_000_000 + 300, now, 300), Ok(()));
        assert_eq!(
            check_fresh(1_700_000_000 - 301, now, 300),
            Err(Refusal::Stale)
        );
        assert_eq!(
            check_fresh(1_700_000_000 + 301, now, 300),
            Err(Refusal::Stale)
        );
        assert_eq!(check_fresh(i64::MIN, now, 300), Err(Refusal::Stale));
        assert_eq!(check_fresh(i64::MAX, now, u64::MAX), Ok(()));
    }

    #[test]
    fn timestamps_parse_whole_or_fractional() {
        assert_eq!(parse_unix_secs("1529006854"), Some(1_529_006_854));
        assert_eq!(parse_unix_secs(" 1521233123.501324 "), Some(1_521_233_123));
        assert_eq!(parse_unix_secs("soon"), None);
        assert_eq!(parse_unix_secs("NaN"), None);
        assert_eq!(parse_unix_secs("1e300"), None);
    }

    #[test]
    fn replay_keys_hash_the_unique_part_and_expire_when_stale() {
        let key = ReplayKey::until_stale("mailgun", b"token-1", 1_000, 300);
        assert!(key.key.starts_with("mailgun:"));
        assert_eq!(key.key.len(), "mailgun:".len() + 64);
        assert!(!key.key.contains("token-1"));
        assert_eq!(key.expires_at, 1_301_000);
        assert_ne!(
            key.key,
            ReplayKey::until_stale("mailgun", b"token-2", 1_000, 300).key
        );
        assert_ne!(
            key.key,
            ReplayKey::until_stale("generic", b"token-1", 1_000, 300).key
        );
    }

    #[test]
    fn payload_text_loses_line_breaks_and_length() {
        assert_eq!(
            clean_text("550 5.1.1\r\nBcc: x@example.com\t end", 100),
            "550 5.1.1 Bcc: x@example.com end"
        );
        assert_eq!(clean_text("  a  ", 100), "a");
        assert_eq!(clean_text("abcdef", 3), "abc");
        assert_eq!(clean_text("\u{1b}[31mred", 100), "[31mred");
        assert_eq!(
            clean_address(" <Alice@Example.COM>\r\n"),
            "alice@example.com"
        );
        assert_eq!(
            clean_message_id("<abc@example.com>").as_deref(),
            Some("abc@example.com")
        );
        assert_eq!(clean_message_id(" <> "), None);
    }

    #[test]
    fn enhanced_status_is_found_in_free_text() {
        for (text, expected) in [
            ("smtp; 550 5.1.1 user unknown", Some("5.1.1")),
            ("452 4.2.2 Mailbox full.", Some("4.2.2")),
            ("5.7.1", Some("5.7.1")),
            ("version 1.5.1.1 of the server", None),
            ("550 user unknown", None),
            ("IP 10.5.1.12 blocked", None),
            ("", None),
        ] {
            assert_eq!(enhanced_status_in(text).as_deref(), expected, "{text:?}");
        }
        assert!(valid_enhanced_status("5.1.10"));
        assert!(!valid_enhanced_status("3.1.1"));
        assert!(!valid_enhanced_status("5.1"));
        assert!(!valid_enhanced_status("5..1"));
    }

    #[test]
    fn a_recipient_takes_its_status_from_the_text_when_none_is_given() {
        let r = recipient(
            "Bob@Example.com",
            None,
            FailureClass::Hard,
            Some("smtp; 550 5.1.1 <bob@example.com>: Recipient address rejected"),
        );
        assert_eq!(r.address, "bob@example.com");
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        let r = recipient("bob@example.com", Some("junk"), FailureClass::Soft, None);
        assert_eq!(r.status, None);
        assert_eq!(r.diagnostic, "");
    }
}
