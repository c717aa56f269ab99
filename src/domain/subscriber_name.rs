use std::fmt;

use super::DomainError;

/// The longest name accepted, in characters.
const MAX_CHARS: usize = 100;

/// The optional name given on the form or in an import. Only ever shown
/// HTML-escaped and never put into a header, but still refused when it
/// carries control characters (a CR/LF is how header injection starts, and
/// a name has no use for them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberName(String);

impl SubscriberName {
    /// `Ok(None)` for an empty or all-blank name.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<SubscriberName>, DomainError> {
        let trimmed = raw.unwrap_or("").trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > MAX_CHARS {
            return Err(DomainError(format!(
                "the name is longer than {MAX_CHARS} characters"
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(DomainError("the name contains a control character".into()));
        }
        if trimmed.chars().any(super::is_text_direction_or_break) {
            return Err(DomainError(
                "the name contains a text-direction control or a line separator".into(),
            ));
        }
        Ok(Some(SubscriberName(trimmed.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_none_and_text_is_trimmed() {
        assert_eq!(SubscriberName::parse_optional(None).unwrap(), None);
        assert_eq!(SubscriberName::parse_optional(Some("  ")).unwrap(), None);
        let name = SubscriberName::parse_optional(Some(" 张三 <b> ")).unwrap();
        assert_eq!(name.unwrap().as_str(), "张三 <b>");
    }

    #[test]
    fn long_or_control_characters_are_refused() {
        let long = "名".repeat(MAX_CHARS + 1);
        for bad in [
            long.as_str(),
            "Eve\r\nBcc: x@example.com",
            "tab\there",
            "nul\0",
        ] {
            assert!(
                SubscriberName::parse_optional(Some(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(SubscriberName::parse_optional(Some(&"名".repeat(MAX_CHARS))).is_ok());
    }
}
