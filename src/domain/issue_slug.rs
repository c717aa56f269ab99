use std::fmt;

use super::DomainError;

/// The URL-safe name of an issue: `issues/<slug>/` on the archive and the
/// stem of the preview files. Lowercase ASCII letters, digits, `-` and `_`,
/// so it needs no escaping anywhere it goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssueSlug(String);

impl IssueSlug {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !s.starts_with(['-', '_']);
        if ok {
            Ok(IssueSlug(s.to_string()))
        } else {
            Err(DomainError(format!(
                "slug {s:?} must be 1 to 100 lowercase ASCII letters, digits, '-' or '_'"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IssueSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_url_safe_names_only() {
        for good in ["vol-001", "2019_04", "a"] {
            assert!(IssueSlug::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Vol-1", "第一期", "a/b", "-x", "a b", "../x"] {
            assert!(IssueSlug::parse(bad).is_err(), "{bad}");
        }
    }
}
