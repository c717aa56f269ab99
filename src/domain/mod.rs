//! Small validated types. Raw input is converted once, at the edge (CLI,
//! HTTP form, CSV import, issue file); everything past that point can trust it.

mod admin_password;
mod click_token;
mod issue_slug;
mod reply;
mod send_time;
mod spreadsheet;
mod subscriber_email;
mod subscriber_name;
mod token;
mod verp;

pub use admin_password::AdminPasswordHash;
pub use click_token::ClickKey;
pub use issue_slug::IssueSlug;
pub use reply::Reply;
pub use send_time::{
    describe_delay, describe_millis, describe_send_time, parse_send_time, zone_name, SendTimeError,
};
pub use spreadsheet::{neutralise_formula, restore_formula};
pub use subscriber_email::SubscriberEmail;
pub use subscriber_name::SubscriberName;
pub use token::Token;
pub use verp::{ReturnPath, Verp, VerpKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DomainError(pub String);

/// Characters that show nothing (zero-width spaces and joiners, bidi
/// controls, the byte-order mark, Unicode's other format characters) or
/// that stand for bytes lost in decoding (U+FFFD): an address holding one
/// looks like another address, or is not what was typed.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffd}'
    )
}

/// Characters that reorder or break the text shown around them: bidi
/// controls and line or paragraph separators. A name may hold joiners (some
/// scripts need them), never these.
pub fn is_text_direction_or_break(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Untrusted input as an error message may quote it: the first characters
/// only, with control and invisible characters escaped.
pub fn quote_input(raw: &str) -> String {
    const SHOWN: usize = 64;
    let mut quoted: String = raw
        .chars()
        .take(SHOWN)
        .collect::<String>()
        .escape_debug()
        .to_string();
    // escape_debug leaves format characters such as U+202E as they are.
    quoted = quoted
        .chars()
        .map(|c| {
            if is_invisible(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if raw.chars().nth(SHOWN).is_some() {
        quoted.push('…');
    }
    format!("\"{quoted}\"")
}

/// A domain in its one ASCII spelling, the A-label (`例子.中国` →
/// `xn--fsqu00a.xn--fiqs8s`), lowercased: what every relay takes without
/// SMTPUTF8. `None` when it is no valid domain name. A domain literal
/// (`[192.0.2.1]`) is kept as it is.
pub fn a_label_domain(domain: &str) -> Option<String> {
    if domain.starts_with('[') && domain.ends_with(']') && domain.is_ascii() {
        return Some(domain.to_string());
    }
    match url::Host::parse(domain) {
        Ok(url::Host::Domain(ascii)) => Some(ascii),
        _ => None,
    }
}

/// An address with its domain as the A-label. The local part is left as
/// it is: a non-ASCII one still needs SMTPUTF8, and only the server that
/// owns the mailbox may change it.
pub fn a_label_address(address: &lettre::Address) -> Result<lettre::Address, DomainError> {
    if address.domain().is_ascii() {
        return Ok(address.clone());
    }
    let domain = a_label_domain(address.domain()).ok_or_else(|| {
        DomainError(format!(
            "the domain of {} is not a valid domain name",
            quote_input(address.as_ref())
        ))
    })?;
    lettre::Address::new(address.user(), domain).map_err(|e| DomainError(e.to_string()))
}

/// Text from a subscriber as a terminal should show it: control, bidi and
/// invisible characters escaped, so a name cannot reorder or hide a line.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().all(|c| !c.is_control() && !is_invisible(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() || is_invisible(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_the_a_label_of_their_domain_and_keep_their_local_part() {
        let a_label = |text: &str| a_label_address(&text.parse().unwrap()).unwrap().to_string();
        assert_eq!(a_label("news@例子.中国"), "news@xn--fsqu00a.xn--fiqs8s");
        assert_eq!(a_label("张三@例子.中国"), "张三@xn--fsqu00a.xn--fiqs8s");
        assert_eq!(a_label("News@Example.COM"), "News@Example.COM");
        assert_eq!(
            a_label_domain("Bücher.Example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            a_label_domain("[192.0.2.1]").as_deref(),
            Some("[192.0.2.1]")
        );
        assert_eq!(a_label_domain("exa mple.com"), None);
    }

    #[test]
    fn names_that_reorder_or_break_lines_are_refused_and_escaped_for_terminals() {
        for bad in [
            "evil\u{202e}txt.exe",
            "line\u{2028}break",
            "para\u{2029}x",
            "iso\u{2066}x",
        ] {
            assert!(
                SubscriberName::parse_optional(Some(bad)).is_err(),
                "{bad:?}"
            );
            assert!(
                !terminal_safe(bad).contains(is_text_direction_or_break),
                "{bad:?}"
            );
        }
        assert_eq!(terminal_safe("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(terminal_safe("张三"), "张三");
    }
}
