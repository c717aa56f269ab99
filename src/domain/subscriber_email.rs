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
        let invalid =
            |why: &str| DomainError(format!("{trimmed:?} is not a valid email address: {why}"));
        if trimmed.is_empty() {
            return Err(DomainError("the email address is empty".into()));
        }
        if trimmed.len() > 254 {
            return Err(invalid("longer than 254 characters"));
        }
        if trimmed.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')')
        }) {
            return Err(invalid("it contains a character not allowed in an address"));
        }
        let lowered = trimmed.to_lowercase();
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
}
