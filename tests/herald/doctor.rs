//! `herald doctor` against real servers: a DNS zone served by dnsmasq
//! (good and broken records, one case per check), mailin-embedded as the
//! relay (with and without STARTTLS, good and bad credentials), and the
//! real `herald serve` for the web side.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;

use base64::Engine;
use herald::config::{Secret, Settings};
use herald::doctor::{self, Finding, Level};
use mailin_embedded::response::{self, Response};
use mailin_embedded::{AuthMechanism, Handler, Server, SslConfig};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;

use super::doctor_dns::{skipped, Dnsmasq, Record};
use super::helpers::{herald, start_serve, Workspace};
use super::smtp_server::{start_proxy, SmtpServer};

fn run(settings: &Settings) -> Vec<Finding> {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(doctor::run(settings))
}

/// The findings of one check: (level, message) for each.
fn levels(findings: &[Finding]) -> HashMap<&'static str, Level> {
    let mut by_check = HashMap::new();
    for finding in findings {
        by_check.insert(finding.check, finding.level);
    }
    by_check
}

fn finding<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no {check} finding in {findings:#?}"))
}

/// An RSA key as `[send] dkim_key_file` takes it, and its DKIM record,
/// made here with the rsa crate and base64, not with the code under test.
fn rsa_key(bits: usize) -> (String, String) {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).unwrap();
    let pem = key
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    let der = key.to_public_key().to_public_key_der().unwrap();
    let record = format!(
        "v=DKIM1; k=rsa; p={}",
        base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
    );
    (pem, record)
}

/// Everything a well set-up domain publishes.
fn good_domain(domain: &str, dkim_record: &str) -> Vec<Record> {
    let txt = |name: String, value: &str| Record::Txt(name, value.to_string());
    vec![
        txt(domain.to_string(), "v=spf1 ip4:192.0.2.0/24 -all"),
        txt(format!("herald._domainkey.{domain}"), dkim_record),
        txt(format!("_dmarc.{domain}"), "v=DMARC1; p=reject"),
        Record::Mx(domain.to_string(), format!("mx.{domain}")),
    ]
}

/// A workspace whose mail comes from `from_domain`, signed for
/// `dkim_domain` with `key_pem`, bounces to `return_path`; DNS from `dns`.
fn settings_for(
    ws: &Workspace,
    dns: &Dnsmasq,
    from_domain: &str,
    dkim_domain: &str,
    return_path: &str,
    key_pem: &str,
) -> Settings {
    std::fs::write(ws.path().join("dkim.pem"), key_pem).unwrap();
    let config = format!(
        "[site]\nbase_url = \"https://127.0.0.1:1/\"\n\
         [mail]\nfrom = \"News <news@{from_domain}>\"\n\
         [send]\ndkim_selector = \"herald\"\ndkim_domain = \"{dkim_domain}\"\ndkim_key_file = \"dkim.pem\"\n\
         [bounces]\nreturn_path = \"{return_path}\"\n\
         [doctor]\nnameserver = \"{}\"\ntimeout_secs = 5\n",
        dns.address()
    );
    std::fs::write(ws.config(), config).unwrap();
    ws.settings()
}

/// From domain, DKIM domain, return-path domain, key, expected levels.
type Case<'a> = (&'a str, &'a str, &'a str, &'a str, Vec<(&'a str, Level)>);

#[test]
fn dns_checks_pass_and_fail_as_the_zone_says() {
    if let Some(reason) = skipped() {
        eprintln!("skipped: {reason}");
        return;
    }
    let (good_pem, good_record) = rsa_key(2048);
    let (weak_pem, weak_record) = rsa_key(1024);
    let (_, other_record) = rsa_key(1024);
    let txt = |name: &str, value: &str| Record::Txt(name.to_string(), value.to_string());
    let mut zone = Vec::new();
    for domain in ["good.test", "other.test", "nomx.test", "nodkim.test"] {
        zone.extend(good_domain(domain, &good_record));
    }
    zone.extend(good_domain("weak.test", &weak_record));
    zone.extend(good_domain("wrongkey.test", &other_record));
    // Each broken domain differs from a good one in one record.
    let broken = [
        ("plusall.test", "v=spf1 +all"),
        ("badspf.test", "v=spf1 ip4:not-an-address -all"),
        ("nodefault.test", "v=spf1 ip4:192.0.2.1"),
    ];
    for (domain, spf) in broken {
        zone.push(txt(domain, spf));
        zone.extend(good_domain(domain, &good_record).into_iter().skip(1));
    }
    let includes: Vec<String> = (1..=11).map(|n| format!("include:i{n}.test")).collect();
    zone.push(txt(
        "manylookups.test",
        &format!("v=spf1 {} -all", includes.join(" ")),
    ));
    zone.extend(
        good_domain("manylookups.test", &good_record)
            .into_iter()
            .skip(1),
    );
    for n in 1..=11 {
        zone.push(txt(&format!("i{n}.test"), "v=spf1 ip4:192.0.2.1 -all"));
    }
    zone.extend(good_domain("nospf.test", &good_record).into_iter().skip(1));
    zone.push(txt("nonedmarc.test", "v=spf1 -all"));
    zone.push(txt("herald._domainkey.nonedmarc.test", &good_record));
    zone.push(txt(
        "_dmarc.nonedmarc.test",
        "v=DMARC1; p=none; rua=mailto:d@nonedmarc.test",
    ));
    zone.push(Record::Mx(
        "nonedmarc.test".into(),
        "mx.nonedmarc.test".into(),
    ));
    zone.push(txt("nodmarc.test", "v=spf1 -all"));
    zone.push(txt("herald._domainkey.nodmarc.test", &good_record));
    zone.push(Record::Mx("nodmarc.test".into(), "mx.nodmarc.test".into()));
    // No MX, and no DKIM key, in two domains otherwise good.
    zone.retain(|r| !matches!(r, Record::Mx(name, _) if name == "nomx.test"));
    zone.retain(|r| !matches!(r, Record::Txt(name, _) if name == "herald._domainkey.nodkim.test"));
    // A subdomain sender: SPF and MX of its own, DMARC of the organisation.
    zone.push(txt("mail.good.test", "v=spf1 -all"));
    zone.push(Record::Mx("mail.good.test".into(), "mx.good.test".into()));
    let dns = Dnsmasq::start(&zone);

    // (from domain, dkim domain, return-path domain, key, expected levels)
    let good = [
        ("spf", Level::Ok),
        ("dkim", Level::Ok),
        ("dkim-key", Level::Ok),
        ("dmarc", Level::Ok),
        ("alignment-dkim", Level::Ok),
        ("alignment-spf", Level::Ok),
        ("bounces-mx", Level::Ok),
        ("mail-dkim", Level::Ok),
    ];
    let cases: Vec<Case> = vec![
        (
            "good.test",
            "good.test",
            "good.test",
            &good_pem,
            good.to_vec(),
        ),
        (
            "mail.good.test",
            "good.test",
            "mail.good.test",
            &good_pem,
            good.to_vec(),
        ),
        (
            "plusall.test",
            "plusall.test",
            "plusall.test",
            &good_pem,
            vec![("spf", Level::Error), ("dkim", Level::Ok)],
        ),
        (
            "badspf.test",
            "badspf.test",
            "badspf.test",
            &good_pem,
            vec![("spf", Level::Error)],
        ),
        (
            "nodefault.test",
            "nodefault.test",
            "nodefault.test",
            &good_pem,
            vec![("spf", Level::Warning)],
        ),
        (
            "manylookups.test",
            "manylookups.test",
            "manylookups.test",
            &good_pem,
            vec![("spf", Level::Error), ("dmarc", Level::Ok)],
        ),
        (
            "nospf.test",
            "nospf.test",
            "nospf.test",
            &good_pem,
            vec![("spf", Level::Error), ("dkim", Level::Ok)],
        ),
        (
            "good.test",
            "good.test",
            "nospf.test",
            &good_pem,
            vec![
                ("spf", Level::Ok),
                ("spf-return-path", Level::Error),
                ("alignment-spf", Level::Error),
            ],
        ),
        (
            "wrongkey.test",
            "wrongkey.test",
            "wrongkey.test",
            &good_pem,
            vec![
                ("dkim", Level::Error),
                ("mail-dkim", Level::Error),
                ("spf", Level::Ok),
            ],
        ),
        (
            "nodkim.test",
            "nodkim.test",
            "nodkim.test",
            &good_pem,
            vec![("dkim", Level::Error), ("mail-dkim", Level::Error)],
        ),
        (
            "weak.test",
            "weak.test",
            "weak.test",
            &weak_pem,
            vec![
                ("dkim", Level::Ok),
                ("dkim-key", Level::Warning),
                ("mail-dkim", Level::Ok),
            ],
        ),
        (
            "nonedmarc.test",
            "nonedmarc.test",
            "nonedmarc.test",
            &good_pem,
            vec![("dmarc", Level::Warning), ("mail-dkim", Level::Ok)],
        ),
        (
            "nodmarc.test",
            "nodmarc.test",
            "nodmarc.test",
            &good_pem,
            vec![("dmarc", Level::Error)],
        ),
        (
            "good.test",
            "other.test",
            "good.test",
            &good_pem,
            vec![
                ("alignment-dkim", Level::Error),
                ("dkim", Level::Ok),
                ("mail-dkim", Level::Ok),
            ],
        ),
        (
            "nomx.test",
            "nomx.test",
            "nomx.test",
            &good_pem,
            vec![("bounces-mx", Level::Error), ("spf", Level::Ok)],
        ),
    ];
    let ws = Workspace::with_examples("");
    for (from, dkim_domain, return_path, key, expected) in cases {
        let settings = settings_for(
            &ws,
            &dns,
            from,
            dkim_domain,
            &format!("bounces@{return_path}"),
            key,
        );
        let findings = run(&settings);
        let got = levels(&findings);
        for (check, level) in expected {
            assert_eq!(
                got.get(check),
                Some(&level),
                "from {from}, d={dkim_domain}, return path {return_path}: {check}\n{findings:#?}"
            );
        }
    }

    // The fix for a wrong key is the record to publish.
    let settings = settings_for(
        &ws,
        &dns,
        "wrongkey.test",
        "wrongkey.test",
        "bounces@wrongkey.test",
        &good_pem,
    );
    let findings = run(&settings);
    let fix = finding(&findings, "dkim").fix.clone().unwrap();
    let published = good_record.split("p=").nth(1).unwrap();
    assert!(fix.contains(published), "{fix}");

    // The command prints the same as JSON and exits 1 on an error.
    let output = herald(
        &[
            "--config",
            ws.config().to_str().unwrap(),
            "doctor",
            "--json",
        ],
        ws.path(),
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let dkim = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "dkim")
        .unwrap();
    assert_eq!(dkim["level"], "error");
    assert!(report["errors"].as_u64().unwrap() >= 1);
}

/// A relay that takes AUTH PLAIN for one user, as a submission server.
#[derive(Clone)]
struct Relay;

const USER: &str = "newsletter";
const PASSWORD: &str = "relay-password";

impl Handler for Relay {
    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        if user == USER && password == PASSWORD {
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}

/// A CA in `dir/ca.pem`, and a mailin relay with STARTTLS under a
/// certificate it signed for `localhost`; returns the relay's port.
fn start_tls_relay(dir: &Path) -> u16 {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    // mailin's rustls server needs a process-wide provider.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("relay.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("relay.key"), leaf_key.serialize_pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = Server::new(Relay);
    server
        .with_name("relay.test")
        .with_auth(AuthMechanism::Plain)
        .with_ssl(SslConfig::SelfSigned {
            cert_path: dir.join("relay.pem").display().to_string(),
            key_path: dir.join("relay.key").display().to_string(),
        })
        .unwrap()
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    port
}

fn relay_settings(ws: &Workspace, url: &str, extra: &str, password: Option<&str>) -> Settings {
    let config = format!(
        "[site]\nbase_url = \"https://127.0.0.1:1/\"\n[smtp]\nurl = \"{url}\"\ntimeout_secs = 5\n{extra}\n\
         [doctor]\nnameserver = \"127.0.0.1:9\"\ntimeout_secs = 2\n"
    );
    std::fs::write(ws.config(), config).unwrap();
    let mut settings = ws.settings();
    settings.smtp_password = password.map(Secret::new);
    settings
}

fn relay_levels(settings: &Settings) -> (Vec<Finding>, HashMap<&'static str, Level>) {
    let findings: Vec<Finding> = run(settings)
        .into_iter()
        .filter(|f| f.check.starts_with("relay"))
        .collect();
    let got = levels(&findings);
    (findings, got)
}

#[test]
fn the_relay_is_checked_for_tls_auth_and_extensions() {
    let ws = Workspace::with_examples("");
    let port = start_tls_relay(ws.path());
    let url = format!("smtp://localhost:{port}");
    let trusted = format!("username = \"{USER}\"\nca_file = \"ca.pem\"");

    let (findings, got) = relay_levels(&relay_settings(&ws, &url, &trusted, Some(PASSWORD)));
    assert_eq!(got["relay"], Level::Ok, "{findings:#?}");
    assert_eq!(got["relay-tls"], Level::Ok, "{findings:#?}");
    assert_eq!(got["relay-auth"], Level::Ok, "{findings:#?}");
    // mailin announces neither.
    assert_eq!(got["relay-pipelining"], Level::Warning, "{findings:#?}");
    assert_eq!(got["relay-size"], Level::Warning, "{findings:#?}");

    let (findings, got) = relay_levels(&relay_settings(&ws, &url, &trusted, Some("wrong")));
    assert_eq!(got["relay-tls"], Level::Ok, "{findings:#?}");
    assert_eq!(got["relay-auth"], Level::Error, "{findings:#?}");
    assert!(finding(&findings, "relay-auth").message.contains("refused"));

    // Without the private CA the certificate is not valid, and the
    // password is never sent.
    let untrusted = format!("username = \"{USER}\"");
    let (findings, got) = relay_levels(&relay_settings(&ws, &url, &untrusted, Some(PASSWORD)));
    assert_eq!(got["relay-tls"], Level::Error, "{findings:#?}");
    assert!(!got.contains_key("relay-auth"), "{findings:#?}");

    // A relay without STARTTLS: said so, and AUTH is not tried.
    let plain = SmtpServer::start();
    let url = format!("smtp://{}", plain.addr);
    let (findings, got) = relay_levels(&relay_settings(&ws, &url, &untrusted, Some(PASSWORD)));
    assert_eq!(got["relay"], Level::Ok, "{findings:#?}");
    assert_eq!(got["relay-tls"], Level::Error, "{findings:#?}");
    assert!(finding(&findings, "relay-tls").message.contains("STARTTLS"));
    assert_eq!(got["relay-auth"], Level::Error, "{findings:#?}");
    assert!(plain.messages().is_empty(), "doctor sends no mail");

    // PIPELINING announced (by a proxy in front of mailin), to a relay on
    // this machine with ?tls=none.
    let proxy = start_proxy(plain.addr, 0, true);
    let url = format!("smtp://{}?tls=none", proxy.addr);
    let (findings, got) = relay_levels(&relay_settings(&ws, &url, "", None));
    assert_eq!(got["relay-tls"], Level::Ok, "{findings:#?}");
    assert_eq!(got["relay-auth"], Level::Ok, "{findings:#?}");
    assert_eq!(got["relay-pipelining"], Level::Ok, "{findings:#?}");

    // Nobody listening.
    let closed = super::smtp_server::reserve_port();
    let url = format!("smtp://{closed}");
    let (findings, got) = relay_levels(&relay_settings(&ws, &url, "", None));
    assert_eq!(got["relay"], Level::Error, "{findings:#?}");
    assert_eq!(findings.len(), 1, "{findings:#?}");
}

#[test]
fn the_web_side_is_checked_against_herald_serve() {
    let ws = Workspace::with_examples("[doctor]\nnameserver = \"127.0.0.1:9\"\ntimeout_secs = 2\n");
    assert!(ws.build().status.success());
    let (mut child, address) = start_serve(&ws, &[]);
    let mut settings = ws.settings();
    settings.site.base_url = format!("http://{address}/").parse().unwrap();
    let findings = run(&settings);
    let _ = child.kill();
    let _ = child.wait();
    let got = levels(&findings);
    assert_eq!(got["web-unsubscribe"], Level::Ok, "{findings:#?}");
    assert_eq!(got["web-feeds"], Level::Ok, "{findings:#?}");
    assert_eq!(got["web-https"], Level::Error, "{findings:#?}");
    assert_eq!(got["mail-size"], Level::Ok, "{findings:#?}");
    // http base_url: the unsubscribe link in the mail is not https.
    assert_eq!(got["mail-list-unsubscribe"], Level::Error, "{findings:#?}");

    // With the server gone, both are errors.
    let findings = run(&settings);
    let got = levels(&findings);
    assert_eq!(got["web-unsubscribe"], Level::Error, "{findings:#?}");
    assert_eq!(got["web-feeds"], Level::Error, "{findings:#?}");
}

#[test]
fn the_demo_setup_gets_honest_errors_and_exit_1() {
    // The README's demo config, with DNS pointed at a closed port: every
    // DNS check is an error that says DNS did not answer, none claims a
    // record is missing or fine.
    let ws = Workspace::with_examples(
        "[mail]\nfrom = \"News <weekly@example.com>\"\n[doctor]\nnameserver = \"127.0.0.1:9\"\ntimeout_secs = 3\n",
    );
    let output = herald(
        &["--config", ws.config().to_str().unwrap(), "doctor"],
        ws.path(),
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for line in text.lines().filter(|l| {
        l.starts_with("error    spf")
            || l.starts_with("error    dmarc")
            || l.starts_with("error    bounces-mx")
    }) {
        assert!(
            line.contains("DNS did not answer") || line.contains("did not finish"),
            "{line}"
        );
    }
    assert!(text.contains("error    dkim "), "{text}");
    assert!(text.contains("warning  relay "), "{text}");
    assert!(text.contains("fix: "), "{text}");
    assert!(text.lines().last().unwrap().contains("error(s)"), "{text}");
}
