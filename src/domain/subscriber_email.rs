use std::fmt;
use std::str::FromStr;

use super::DomainError;

/// A subscriber's address, validated by lettre's RFC 5321 parser and
/// normalised (trimmed, lowercased) so that uniqueness is case-insensitive.
/// A bare address only: display names, angle brackets and anything that
/// could smuggle a header line are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberEmail(lettre::Address);

impl SubscriberEmail {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        let invalid = |why: &str| {
            DomainError(format!(
                "{} is not a valid email address: {why}",
                super::quote_input(trimmed)
            ))
        };
        if trimmed.is_empty() {
            return Err(DomainError("the email address is empty".into()));
        }
        if trimmed.len() > 254 {
            return Err(invalid("longer than 254 characters"));
        }
        if trimmed.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || super::is_invisible(c)
                || matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')')
        }) {
            return Err(invalid("it contains a character not allowed in an address"));
        }
        let (local, domain) = trimmed
            .rsplit_once('@')
            .ok_or_else(|| invalid("it has no @"))?;
        // One spelling per domain: the A-label (xn--) form, which every
        // relay takes without SMTPUTF8 and which makes `例子.中国` and
        // `xn--fsqu00a.xn--fiqs8s` the same subscriber.
        let domain = match url::Host::parse(domain) {
            Ok(url::Host::Domain(ascii)) => ascii,
            _ => return Err(invalid("the domain is not a valid domain name")),
        };
        let lowered = format!("{}@{domain}", local.to_lowercase());
        let address = lettre::Address::from_str(&lowered).map_err(|e| invalid(&e.to_string()))?;
        if !address.domain().contains('.') {
            return Err(invalid("the domain has no dot"));
        }
        Ok(SubscriberEmail(address))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    pub fn address(&self) -> &lettre::Address {
        &self.0
    }
}

impl fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        let e = SubscriberEmail::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "alice@example.com");
    }

    #[test]
    fn refuses_header_injection_and_junk() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@localhost",
            "alice@example.com\r\nBcc: victim@example.com",
            "Alice <alice@example.com>",
            "a,b@example.com",
            "alice@exa mple.com",
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn accepts_plus_and_unicode_domains() {
        assert!(SubscriberEmail::parse("alice+news@example.com").is_ok());
        assert!(SubscriberEmail::parse("张三@例子.中国").is_ok());
    }

    #[test]
    fn domains_take_their_a_label_form() {
        let unicode = SubscriberEmail::parse("user@例子.中国").unwrap();
        assert_eq!(unicode.as_str(), "user@xn--fsqu00a.xn--fiqs8s");
        let ascii = SubscriberEmail::parse("User@XN--FSQU00A.xn--fiqs8s").unwrap();
        assert_eq!(unicode, ascii);
        assert_eq!(
            SubscriberEmail::parse("张三@例子.中国").unwrap().as_str(),
            "张三@xn--fsqu00a.xn--fiqs8s"
        );
    }

    #[test]
    fn refuses_invisible_and_replacement_characters() {
        for bad in [
            "zw@exa\u{200b}mple.com",
            "rtl\u{202e}@example.com",
            "bom\u{feff}@example.com",
            "lossy\u{fffd}@example.com",
            "joiner@exam\u{200d}ple.com",
            "sep\u{2028}@example.com",
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_huge_input_is_quoted_briefly_in_the_error() {
        let error = SubscriberEmail::parse(&"x".repeat(1_000_000)).unwrap_err();
        assert!(error.to_string().len() < 200, "{}", error.to_string().len());
    }
}
