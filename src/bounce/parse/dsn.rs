//! RFC 3464 delivery status notifications: the `message/delivery-status`
//! part, a block of per-message fields and one block per recipient.
//!
//! Read by hand: mail-parser hands the part over as bytes (it is not a
//! message), and the format is "Name: value" lines with folding, which
//! [`fields`] reads in a dozen lines. Real reports bend the rules (no blank
//! line between recipients, `Action` before `Final-Recipient`, a missing
//! `rfc822;` type), so the grouping is lenient.

use super::status::find_enhanced;
use super::text::first_address;

/// The fields of one `Name: value` block, names lowercased, folded lines
/// joined, in order. Stops at `max_lines`.
pub fn fields(text: &str, max_lines: usize) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines().take(max_lines) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if line.trim().is_empty() {
            // A blank line separates blocks; keep it as a marker.
            out.push((String::new(), String::new()));
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') && name.len() <= 40 {
                out.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
    }
    out
}

/// What a DSN says about one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnRecipient {
    pub address: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed`, `expanded`, lowercased;
    /// `None` when the report left it out.
    pub action: Option<String>,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

impl DsnRecipient {
    fn is_empty(&self) -> bool {
        self.address.is_none() && self.action.is_none() && self.status.is_none()
    }

    pub fn is_delay(&self) -> bool {
        self.action.as_deref() == Some("delayed")
    }

    /// A success notice (delivered, relayed, expanded) reports no failure.
    pub fn is_success(&self) -> bool {
        matches!(
            self.action.as_deref(),
            Some("delivered" | "relayed" | "expanded")
        ) || self.status.as_deref().is_some_and(|s| s.starts_with('2'))
    }
}

/// Strips the address type (`rfc822;`) and reads the address.
fn recipient_address(value: &str) -> Option<String> {
    let value = value.split_once(';').map_or(value, |(_, rest)| rest);
    first_address(value)
}

/// Strips the diagnostic type (`smtp;`, `X-Postfix;`) when there is one.
fn diagnostic_text(value: &str) -> String {
    match value.split_once(';') {
        Some((kind, rest)) if !kind.trim().contains(' ') && kind.len() <= 20 => rest.trim().into(),
        _ => value.trim().into(),
    }
}

fn finish(current: &mut DsnRecipient, out: &mut Vec<DsnRecipient>) {
    let done = std::mem::take(current);
    if done.address.is_some() {
        out.push(done);
    }
}

/// The per-recipient blocks of a delivery-status part.
pub fn recipients(text: &str, max_lines: usize) -> Vec<DsnRecipient> {
    let mut out = Vec::new();
    let mut current = DsnRecipient::default();
    let mut has_final = false;
    let mut has_original = false;
    for (name, value) in fields(text, max_lines) {
        match name.as_str() {
            "" if current.address.is_some() => {
                finish(&mut current, &mut out);
                has_final = false;
                has_original = false;
            }
            "final-recipient" => {
                if has_final {
                    finish(&mut current, &mut out);
                    has_original = false;
                }
                has_final = true;
                // Final-Recipient is the address that failed; it wins over
                // an Original-Recipient read before it, unless it carries
                // no address (`X-Unix; kijitora`).
                if let Some(address) = recipient_address(&value) {
                    current.address = Some(address);
                }
            }
            "original-recipient" => {
                if has_original {
                    finish(&mut current, &mut out);
                    has_final = false;
                }
                has_original = true;
                if current.address.is_none() {
                    current.address = recipient_address(&value);
                }
            }
            "x-actual-recipient" if current.address.is_none() => {
                current.address = recipient_address(&value);
            }
            "action" => {
                let action = value.split_whitespace().next().unwrap_or_default();
                current.action = Some(action.to_ascii_lowercase());
            }
            "status" => current.status = find_enhanced(&value).map(|f| f.value),
            "diagnostic-code" => current.diagnostic = Some(diagnostic_text(&value)),
            _ => {}
        }
    }
    if !current.is_empty() {
        finish(&mut current, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_grouped_leniently() {
        let text = "Reporting-MTA: dns; mx.example.org\n\
                    Arrival-Date: Thu, 01 Oct 15 13:48:54 UTC\n\
                    \n\
                    Action: failed\n\
                    Final-Recipient: rfc822; UserUnknown@neko.example.jp\n\
                    Original-Recipient: rfc822; alias@neko.example.jp\n\
                    Diagnostic-Code: smtp; 550 5.1.1 Mailbox\n  does not exist\n\
                    Status: 5.1.1\n\
                    Final-Recipient: RFC822; <two@example.com>\n\
                    Action: delayed\n\
                    Status: 4.4.7 (delivery time expired)\n";
        let got = recipients(text, 1000);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[0].address.as_deref(),
            Some("userunknown@neko.example.jp")
        );
        assert_eq!(got[0].action.as_deref(), Some("failed"));
        assert_eq!(got[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.1.1 Mailbox does not exist")
        );
        assert_eq!(got[1].address.as_deref(), Some("two@example.com"));
        assert!(got[1].is_delay());
        assert_eq!(got[1].status.as_deref(), Some("4.4.7"));
    }

    #[test]
    fn an_address_free_final_recipient_falls_back_to_the_original() {
        let text = "Original-Recipient: rfc822;kijitora@example.jp\n\
                    Final-Recipient: X-Unix; kijitora\nAction: failed\nStatus: 5.0.0\n";
        let got = recipients(text, 1000);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].address.as_deref(), Some("kijitora@example.jp"));
    }
}
