//! The DNS records receivers look at: SPF of the From and return-path
//! domains, the DKIM key, DMARC, and the bounce domain's MX. Records are
//! parsed by mail-auth, the library a mail server (Stalwart) checks them
//! with; the judgements on top are pure functions, unit-tested below.

use std::collections::{HashSet, VecDeque};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::{Dmarc, Policy};
use mail_auth::spf::{Macro, Mechanism, Qualifier, Spf};

use super::alignment::{from_domain, organisational_domain, return_path_domain};
use super::dns::{Dns, Lookup};
use super::key::{published_key, SigningKey};
use super::Finding;
use crate::config::Settings;

/// RFC 7208 §4.6.4: more DNS-querying terms than this is a permanent error.
pub const SPF_LOOKUP_LIMIT: usize = 10;

/// What one SPF record costs and where it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfTerms {
    /// Terms that make a DNS query: include, a, mx, ptr, exists, redirect.
    pub lookups: usize,
    /// Domains of include: and redirect= to follow (literal ones only).
    pub follow: Vec<String>,
    /// The record ends in `+all` (or a bare `all`): anyone may send.
    pub passes_all: bool,
    /// The record has an `all` or a `redirect`; without one the result
    /// for strangers is neutral.
    pub has_default: bool,
}

fn literal(m: &Macro) -> Option<String> {
    match m {
        Macro::Literal(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

pub fn spf_terms(spf: &Spf) -> SpfTerms {
    let mut terms = SpfTerms {
        lookups: 0,
        follow: Vec::new(),
        passes_all: false,
        has_default: spf.redirect.is_some(),
    };
    for directive in &spf.directives {
        match &directive.mechanism {
            Mechanism::Include { macro_string } => {
                terms.lookups += 1;
                terms.follow.extend(literal(macro_string));
            }
            Mechanism::A { .. }
            | Mechanism::Mx { .. }
            | Mechanism::Ptr { .. }
            | Mechanism::Exists { .. } => terms.lookups += 1,
            Mechanism::All => {
                terms.has_default = true;
                terms.passes_all = directive.qualifier == Qualifier::Pass;
            }
            Mechanism::Ip4 { .. } | Mechanism::Ip6 { .. } => {}
        }
    }
    if let Some(redirect) = &spf.redirect {
        terms.lookups += 1;
        terms.follow.extend(literal(redirect));
    }
    terms
}

/// The one SPF record at `domain` (none, or an error when there are two,
/// which receivers treat as a permanent error).
async fn spf_record(dns: &Dns, domain: &str) -> Result<Option<String>, String> {
    let records = match dns.txt(domain).await {
        Lookup::Found(records) => records,
        Lookup::Missing => return Ok(None),
        Lookup::Failed(e) => return Err(e),
    };
    let spf: Vec<String> = records.into_iter().filter(|r| is_spf(r)).collect();
    match spf.len() {
        0 => Ok(None),
        1 => Ok(spf.into_iter().next()),
        n => Err(format!(
            "{domain} has {n} SPF records; receivers then fail SPF"
        )),
    }
}

pub fn is_spf(record: &str) -> bool {
    let lower = record.trim_start().to_ascii_lowercase();
    lower == "v=spf1" || lower.starts_with("v=spf1 ")
}

/// All DNS lookups an evaluation may make, following includes and
/// redirects; stops counting once past the limit.
async fn total_lookups(dns: &Dns, first: &SpfTerms) -> Result<usize, String> {
    let mut total = first.lookups;
    let mut queue: VecDeque<String> = first.follow.iter().cloned().collect();
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(domain) = queue.pop_front() {
        if total > SPF_LOOKUP_LIMIT || !seen.insert(domain.to_ascii_lowercase()) {
            continue;
        }
        let record = spf_record(dns, &domain)
            .await?
            .ok_or_else(|| format!("include:{domain} has no SPF record"))?;
        let spf = Spf::parse(record.as_bytes())
            .map_err(|e| format!("the SPF record of included {domain} does not parse: {e}"))?;
        let terms = spf_terms(&spf);
        total += terms.lookups;
        queue.extend(terms.follow);
    }
    Ok(total)
}

pub async fn spf_checks(dns: &Dns, settings: &Settings) -> Vec<Finding> {
    let Some(from) = from_domain(settings) else {
        return vec![];
    };
    let mut findings = vec![spf_check(dns, "spf", &from, "From").await];
    if let Some(return_path) = return_path_domain(settings).filter(|d| *d != from) {
        findings.push(spf_check(dns, "spf-return-path", &return_path, "return-path").await);
    }
    findings
}

async fn spf_check(dns: &Dns, check: &'static str, domain: &str, role: &str) -> Finding {
    let record = match spf_record(dns, domain).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return Finding::error(
                check,
                format!("{role} domain {domain} has no SPF record (asked {})", dns.server),
                format!("publish a TXT record at {domain} such as \"v=spf1 include:<your relay's SPF domain> -all\""),
            )
        }
        Err(e) => return dns_failure(check, e),
    };
    let spf = match Spf::parse(record.as_bytes()) {
        Ok(spf) => spf,
        Err(e) => return Finding::error(
            check,
            format!("the SPF record of {domain} does not parse ({e}): {record:?}"),
            "correct the record's syntax (RFC 7208), e.g. \"v=spf1 include:_spf.example.net -all\"",
        ),
    };
    let terms = spf_terms(&spf);
    let lookups = match total_lookups(dns, &terms).await {
        Ok(n) => n,
        Err(e) => {
            return Finding::error(
                check,
                format!("the SPF record of {domain} is broken: {e}"),
                "fix or remove the include that fails",
            )
        }
    };
    judge_spf(check, domain, &record, &terms, lookups)
}

/// The verdict on a record that parsed, given its total lookups.
pub fn judge_spf(
    check: &'static str,
    domain: &str,
    record: &str,
    terms: &SpfTerms,
    lookups: usize,
) -> Finding {
    if terms.passes_all {
        return Finding::error(
            check,
            format!("the SPF record of {domain} ends in +all, so it lets anyone send as {domain}: {record:?}"),
            "end it in -all (or ~all) instead",
        );
    }
    if lookups > SPF_LOOKUP_LIMIT {
        return Finding::error(
            check,
            format!(
                "the SPF record of {domain} needs {lookups} DNS lookups, over the limit of {SPF_LOOKUP_LIMIT}: receivers fail it"
            ),
            "replace includes you do not send through, or list their IP ranges with ip4:/ip6:",
        );
    }
    if !terms.has_default {
        return Finding::warning(
            check,
            format!("the SPF record of {domain} has no all or redirect, so mail from anywhere else is neutral: {record:?}"),
            "end the record in -all (or ~all)",
        );
    }
    Finding::ok(
        check,
        format!("SPF of {domain}: {record:?} ({lookups} of {SPF_LOOKUP_LIMIT} lookups)"),
    )
}

fn dns_failure(check: &'static str, error: String) -> Finding {
    Finding::error(
        check,
        format!("DNS did not answer: {error}"),
        "check the resolver ([doctor] nameserver, or /etc/resolv.conf) and try again",
    )
}

pub async fn dkim_check(dns: &Dns, settings: &Settings) -> Vec<Finding> {
    let send = &settings.send;
    let (selector, domain, key_file) = match (&send.dkim_selector, &send.dkim_domain, &send.dkim_key_file) {
        (Some(s), Some(d), Some(k)) => (s, d, k),
        (None, None, None) => {
            return vec![Finding::error(
                "dkim",
                "DKIM signing is off: Gmail and Yahoo require DKIM of bulk senders",
                "make a key, publish it, and set [send] dkim_selector, dkim_domain and dkim_key_file",
            )]
        }
        _ => {
            return vec![Finding::error(
                "dkim",
                "DKIM is half configured: it needs all of [send] dkim_selector, dkim_domain and dkim_key_file",
                "set the missing [send] dkim_* keys",
            )]
        }
    };
    let path = settings.resolve(key_file);
    let key = std::fs::read_to_string(&path)
        .map_err(|e| format!("reading {}: {e}", path.display()))
        .and_then(|text| {
            SigningKey::from_file_text(&text).map_err(|e| format!("{}: {e}", path.display()))
        });
    let key = match key {
        Ok(key) => key,
        Err(e) => {
            return vec![Finding::error(
                "dkim-key",
                format!("the DKIM key cannot be used: {e}"),
                "point [send] dkim_key_file at an RSA key in PKCS#1 PEM",
            )]
        }
    };
    let (level, message, fix) = key.strength();
    let strength = Finding {
        check: "dkim-key",
        level,
        message,
        fix: fix.map(str::to_string),
    };
    let name = format!("{selector}._domainkey.{domain}");
    vec![published_key_check(dns, &name, &key).await, strength]
}

async fn published_key_check(dns: &Dns, name: &str, key: &SigningKey) -> Finding {
    let publish = format!("publish a TXT record at {name}: \"{}\"", key.record());
    let records = match dns.txt(name).await {
        Lookup::Found(records) => records,
        Lookup::Missing => {
            return Finding::error(
                "dkim",
                format!("no DKIM record at {name} (asked {})", dns.server),
                publish,
            )
        }
        Lookup::Failed(e) => return dns_failure("dkim", e),
    };
    let Some(record) = records.iter().find(|r| r.contains("p=")) else {
        return Finding::error(
            "dkim",
            format!("the TXT record at {name} is no DKIM key"),
            publish,
        );
    };
    match published_key(record) {
        Ok(published) if key.matches(&published) => Finding::ok(
            "dkim",
            format!(
                "{name} publishes the public half of the signing key ({})",
                key.describe()
            ),
        ),
        Ok(_) => Finding::error(
            "dkim",
            format!(
                "{name} publishes a different key than [send] dkim_key_file: every signature fails"
            ),
            format!("replace the record: {publish}"),
        ),
        Err(e) => Finding::error(
            "dkim",
            format!("the DKIM record at {name} is broken: {e}"),
            publish,
        ),
    }
}

/// What a DMARC record's policy means for the sender.
pub fn judge_dmarc(name: &str, dmarc: &Dmarc) -> Finding {
    match dmarc.p {
        Policy::Reject | Policy::Quarantine => Finding::ok(
            "dmarc",
            format!("{name}: p={}", if dmarc.p == Policy::Reject { "reject" } else { "quarantine" }),
        ),
        Policy::None => Finding::warning(
            "dmarc",
            format!(
                "{name}: p=none, so receivers deliver mail that fails DMARC as usual (only reports are asked for); \
                 it meets Gmail's and Yahoo's minimum but protects nobody from spoofing"
            ),
            "once the reports show your mail passing, move to p=quarantine, then p=reject",
        ),
        Policy::Unspecified => Finding::error(
            "dmarc",
            format!("{name} has no valid p= policy"),
            "give the record a policy, e.g. \"v=DMARC1; p=none; rua=mailto:dmarc@<your domain>\"",
        ),
    }
}

pub async fn dmarc_check(dns: &Dns, settings: &Settings) -> Vec<Finding> {
    let Some(from) = from_domain(settings) else {
        return vec![];
    };
    // Receivers look at the From domain first, then at its organisational
    // domain (RFC 7489 §6.6.3).
    let organisational = organisational_domain(&from);
    let mut names = vec![format!("_dmarc.{from}")];
    if organisational != from {
        names.push(format!("_dmarc.{organisational}"));
    }
    for name in &names {
        let records = match dns.txt(name).await {
            Lookup::Found(records) => records,
            Lookup::Missing => continue,
            Lookup::Failed(e) => return vec![dns_failure("dmarc", e)],
        };
        let dmarc: Vec<&String> = records
            .iter()
            .filter(|r| r.trim_start().to_ascii_lowercase().starts_with("v=dmarc1"))
            .collect();
        let finding = match dmarc.as_slice() {
            [] => continue,
            [record] => match Dmarc::parse(record.as_bytes()) {
                Ok(parsed) => judge_dmarc(name, &parsed),
                Err(e) => Finding::error(
                    "dmarc",
                    format!("the DMARC record at {name} does not parse ({e}): {record:?}"),
                    "correct it, e.g. \"v=DMARC1; p=none; rua=mailto:dmarc@<your domain>\"",
                ),
            },
            _ => Finding::error(
                "dmarc",
                format!(
                    "{name} has {} DMARC records; receivers then ignore them all",
                    dmarc.len()
                ),
                "keep one",
            ),
        };
        return vec![finding];
    }
    vec![Finding::error(
        "dmarc",
        format!("no DMARC record at {} (asked {})", names.join(" or "), dns.server),
        format!(
            "publish a TXT record at _dmarc.{organisational}: \"v=DMARC1; p=none; rua=mailto:dmarc@{organisational}\" (Gmail and Yahoo require one)"
        ),
    )]
}

pub async fn bounce_mx_check(dns: &Dns, settings: &Settings) -> Vec<Finding> {
    let Some(domain) = return_path_domain(settings) else {
        return vec![];
    };
    let finding = match dns.mx(&domain).await {
        Lookup::Found(exchanges) => Finding::ok(
            "bounces-mx",
            format!("bounce domain {domain} receives mail at {}", exchanges.join(", ")),
        ),
        Lookup::Missing => Finding::error(
            "bounces-mx",
            format!("bounce domain {domain} has no MX record (asked {}): bounces cannot come back, and some receivers refuse such a sender", dns.server),
            format!("publish an MX record for {domain} pointing at the server that hands bounces to Herald"),
        ),
        Lookup::Failed(e) => dns_failure("bounces-mx", e),
    };
    vec![finding]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    fn terms(record: &str) -> SpfTerms {
        spf_terms(&Spf::parse(record.as_bytes()).expect(record))
    }

    #[test]
    fn spf_lookups_are_counted_by_term() {
        let cases = [
            ("v=spf1 -all", 0),
            ("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all", 0),
            ("v=spf1 a mx -all", 2),
            (
                "v=spf1 include:_spf.example.net include:mail.example.org ~all",
                2,
            ),
            ("v=spf1 ptr exists:%{i}.spf.example.com -all", 2),
            ("v=spf1 a redirect=_spf.example.com", 2),
        ];
        for (record, lookups) in cases {
            assert_eq!(terms(record).lookups, lookups, "{record}");
        }
        assert_eq!(
            terms("v=spf1 include:a.example include:b.example redirect=c.example").follow,
            ["a.example", "b.example", "c.example"]
        );
        // A macro is expanded per message: nothing to follow ahead of time.
        assert!(terms("v=spf1 exists:%{i}.x.example -all").follow.is_empty());
    }

    #[test]
    fn spf_verdicts() {
        let judge = |record: &str, lookups| {
            judge_spf("spf", "example.com", record, &terms(record), lookups).level
        };
        assert_eq!(judge("v=spf1 include:x.example -all", 1), Level::Ok);
        assert_eq!(judge("v=spf1 mx ~all", 1), Level::Ok);
        assert_eq!(judge("v=spf1 mx +all", 1), Level::Error);
        assert_eq!(judge("v=spf1 mx all", 1), Level::Error);
        assert_eq!(judge("v=spf1 mx -all", 11), Level::Error);
        assert_eq!(judge("v=spf1 mx -all", 10), Level::Ok);
        assert_eq!(judge("v=spf1 mx", 1), Level::Warning);
        assert_eq!(judge("v=spf1 redirect=x.example", 1), Level::Ok);
    }

    #[test]
    fn spf_records_are_told_from_other_txt_records() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1 mx -all"));
        assert!(is_spf("v=spf1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("google-site-verification=abc"));
    }

    #[test]
    fn dmarc_policies() {
        let judge = |record: &str| {
            judge_dmarc(
                "_dmarc.example.com",
                &Dmarc::parse(record.as_bytes()).unwrap(),
            )
        };
        assert_eq!(judge("v=DMARC1; p=reject").level, Level::Ok);
        assert_eq!(judge("v=DMARC1; p=quarantine; pct=100").level, Level::Ok);
        let none = judge("v=DMARC1; p=none; rua=mailto:d@example.com");
        assert_eq!(none.level, Level::Warning);
        assert!(none.message.contains("p=none"), "{}", none.message);
        assert!(Dmarc::parse(b"v=DMARC1; p=sometimes")
            .map(|d| judge_dmarc("x", &d).level != Level::Ok)
            .unwrap_or(true));
    }
}
