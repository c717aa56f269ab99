//! DMARC alignment: the From domain must share its organisational domain
//! (the registrable domain under the Public Suffix List) with the DKIM
//! signature's `d=` or with the return path. Gmail and Yahoo require it of
//! bulk senders since 2024.

use super::Finding;
use crate::config::Settings;

/// `news.example.co.uk` → `example.co.uk`. A name the list knows nothing
/// about is its own organisational domain.
pub fn organisational_domain(domain: &str) -> String {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&domain)
        .map(str::to_string)
        .unwrap_or(domain)
}

/// Relaxed alignment (RFC 7489 §3.1): the same organisational domain.
pub fn aligned(from_domain: &str, other: &str) -> bool {
    organisational_domain(from_domain) == organisational_domain(other)
}

/// The domain of `[mail] from`.
pub fn from_domain(settings: &Settings) -> Option<String> {
    settings
        .from_mailbox()
        .ok()
        .map(|m| m.email.domain().to_ascii_lowercase())
}

/// The envelope sender's domain: `[bounces] return_path`, else From's.
pub fn return_path_domain(settings: &Settings) -> Option<String> {
    match settings.return_path() {
        Ok(Some(path)) => path
            .address()
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_string()),
        _ => from_domain(settings),
    }
}

pub fn checks(settings: &Settings) -> Vec<Finding> {
    let Some(from) = from_domain(settings) else {
        return vec![Finding::error(
            "alignment-dkim",
            "[mail] from is not an address",
            "set [mail] from to the address you send as",
        )];
    };
    vec![
        dkim_alignment(&from, settings.send.dkim_domain.as_deref()),
        spf_alignment(&from, return_path_domain(settings).as_deref()),
    ]
}

pub fn dkim_alignment(from: &str, dkim_domain: Option<&str>) -> Finding {
    let Some(d) = dkim_domain else {
        return Finding::error(
            "alignment-dkim",
            format!("no DKIM signature, so nothing aligns DKIM with From domain {from}"),
            format!("sign with a key of {from} ([send] dkim_selector, dkim_domain, dkim_key_file)"),
        );
    };
    if aligned(from, d) {
        Finding::ok(
            "alignment-dkim",
            format!(
                "DKIM d={d} aligns with From domain {from} (organisational domain {})",
                organisational_domain(from)
            ),
        )
    } else {
        Finding::error(
            "alignment-dkim",
            format!("DKIM d={d} does not align with From domain {from}: DMARC fails on DKIM"),
            format!(
                "sign with a key published under {} ([send] dkim_domain)",
                organisational_domain(from)
            ),
        )
    }
}

pub fn spf_alignment(from: &str, return_path: Option<&str>) -> Finding {
    let return_path = return_path.unwrap_or(from);
    if aligned(from, return_path) {
        Finding::ok(
            "alignment-spf",
            format!("return-path domain {return_path} aligns with From domain {from}"),
        )
    } else {
        Finding::error(
            "alignment-spf",
            format!(
                "return-path domain {return_path} does not align with From domain {from}: \
                 DMARC fails on SPF"
            ),
            format!(
                "use a [bounces] return_path under {}",
                organisational_domain(from)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn organisational_domains_follow_the_public_suffix_list() {
        let cases = [
            ("example.com", "example.com"),
            ("news.example.com", "example.com"),
            ("a.b.example.co.uk", "example.co.uk"),
            ("News.Example.COM.", "example.com"),
            ("mail.good.test", "good.test"),
        ];
        for (domain, expected) in cases {
            assert_eq!(organisational_domain(domain), expected, "{domain}");
        }
    }

    #[test]
    fn relaxed_alignment_compares_organisational_domains() {
        assert!(aligned("example.com", "mail.example.com"));
        assert!(aligned("news.example.co.uk", "bounces.example.co.uk"));
        assert!(!aligned("example.com", "example.net"));
        // Two registrable domains under one public suffix are strangers.
        assert!(!aligned("alice.co.uk", "bob.co.uk"));
    }

    #[test]
    fn findings_name_the_domains_and_the_fix() {
        assert_eq!(dkim_alignment("example.com", None).level, Level::Error);
        assert_eq!(
            dkim_alignment("example.com", Some("mail.example.com")).level,
            Level::Ok
        );
        let bad = spf_alignment("example.com", Some("esp.example.net"));
        assert_eq!(bad.level, Level::Error);
        assert!(bad.fix.unwrap().contains("example.com"));
        assert_eq!(spf_alignment("example.com", None).level, Level::Ok);
    }
}
