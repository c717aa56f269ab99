//! The relay: connect and EHLO as `herald send` would (the same URL
//! parsing, EHLO name, TLS roots and lettre connection), then report TLS,
//! AUTH, PIPELINING and SIZE. AUTH only: no mail is sent, the session ends
//! with QUIT.

use std::sync::Arc;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::Ehlo;

use super::Finding;
use crate::config::{Relay, Settings};
use crate::send::smtp::{SmtpTarget, TlsMode};
use crate::send::AnyTransport;

/// What the EHLO reply announces that lettre's own parse leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extensions {
    pub pipelining: bool,
    /// `None`: no SIZE; `Some(None)`: SIZE without a limit (or 0).
    pub size: Option<Option<u64>>,
}

/// Reads the lines of an EHLO reply (the first is the server's name).
pub fn extensions<'a>(lines: impl IntoIterator<Item = &'a str>) -> Extensions {
    let mut found = Extensions::default();
    for line in lines.into_iter().skip(1) {
        let mut words = line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("PIPELINING") => found.pipelining = true,
            Some("SIZE") => {
                let limit = words
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|n| *n > 0);
                found.size = Some(limit);
            }
            _ => {}
        }
    }
    found
}

pub fn judge_pipelining(extensions: &Extensions) -> Finding {
    if extensions.pipelining {
        Finding::ok("relay-pipelining", "the relay offers PIPELINING")
    } else {
        Finding::warning(
            "relay-pipelining",
            "the relay does not offer PIPELINING: every message costs several extra round trips",
            "nothing breaks, but sends are slower; enable PIPELINING on the relay if it is yours",
        )
    }
}

pub fn judge_size(extensions: &Extensions, message_bytes: Option<usize>) -> Finding {
    let shown = |n: u64| format!("{:.1} MB", n as f64 / 1_000_000.0);
    match (extensions.size, message_bytes) {
        (None, _) => Finding::warning(
            "relay-size",
            "the relay does not announce SIZE, so a message too large for it is refused only after it was sent",
            "keep issues small (a few hundred KB), or ask the relay's operator for its limit",
        ),
        (Some(None), _) => Finding::ok("relay-size", "the relay announces SIZE with no limit"),
        (Some(Some(limit)), None) => {
            Finding::ok("relay-size", format!("the relay takes messages up to {}", shown(limit)))
        }
        (Some(Some(limit)), Some(bytes)) if bytes as u64 > limit => Finding::error(
            "relay-size",
            format!(
                "the latest issue's message is {} but the relay takes at most {}",
                shown(bytes as u64),
                shown(limit)
            ),
            "shrink the issue (fewer or smaller images inline) or raise the relay's limit",
        ),
        (Some(Some(limit)), Some(bytes)) => Finding::ok(
            "relay-size",
            format!(
                "the latest issue's message is {}, within the relay's {}",
                shown(bytes as u64),
                shown(limit)
            ),
        ),
    }
}

/// Every relay (`[smtp] url`, or each of `[[smtp.relays]]`), probed at
/// once so that several take no longer than one. With several, each
/// finding names its relay.
pub async fn checks(settings: &Settings, message_bytes: Option<usize>) -> Vec<Finding> {
    let relays = settings.relays();
    let several = relays.len() > 1;
    let probes = relays.iter().map(|relay| async move {
        let findings = check_relay(settings, relay, message_bytes).await;
        if !several {
            return findings;
        }
        findings
            .into_iter()
            .map(|finding| Finding {
                message: format!("relay {}: {}", relay.name, finding.message),
                ..finding
            })
            .collect()
    });
    futures_util::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn check_relay(
    settings: &Settings,
    relay: &Relay,
    message_bytes: Option<usize>,
) -> Vec<Finding> {
    let target = match AnyTransport::for_relay(settings, relay) {
        Ok(AnyTransport::Smtp(target)) => target,
        Ok(AnyTransport::File(outbox)) => {
            return vec![Finding::warning(
                "relay",
                format!(
                    "{} is a file outbox ({}): mail is written to files, no relay is used",
                    if settings.smtp.relays.is_empty() { "[smtp] url" } else { "the url" },
                    outbox.dir.display()
                ),
                "for real sends set the url to your relay, e.g. smtp://mail.example.com:587?tls=required",
            )]
        }
        Ok(AnyTransport::Stub | AnyTransport::Pool(_)) => return vec![],
        Err(e) => {
            return vec![Finding::error(
                "relay",
                format!("{e:#}"),
                format!(
                    "correct [smtp] in the config (and {})",
                    password_variable(relay)
                ),
            )]
        }
    };
    probe(&target, relay, message_bytes).await
}

/// Where the relay's password comes from, for a fix.
fn password_variable(relay: &Relay) -> String {
    if relay.password_env.is_empty() {
        "the relay's password_env".to_string()
    } else {
        relay.password_env.clone()
    }
}

/// One SMTP session, step by step; a step that fails ends it, and its
/// finding says why.
async fn probe(
    target: &Arc<SmtpTarget>,
    relay: &Relay,
    message_bytes: Option<usize>,
) -> Vec<Finding> {
    let place = format!("{}:{}", target.host, target.port);
    let implicit = match target.tls {
        TlsMode::Implicit => match target.tls_parameters() {
            Ok(parameters) => Some(parameters),
            Err(e) => return vec![tls_error(&place, &e.to_string())],
        },
        _ => None,
    };
    let connected = AsyncSmtpConnection::connect_tokio1(
        (target.host.as_str(), target.port),
        Some(target.timeout),
        &target.hello,
        implicit,
        None,
    )
    .await;
    let mut connection = match connected {
        Ok(connection) => connection,
        Err(e) if target.tls == TlsMode::Implicit && e.to_string().contains("certificate") => {
            return vec![tls_error(&place, &error_text(&e))]
        }
        Err(e) => {
            return vec![Finding::error(
                "relay",
                format!("cannot connect to {place} and greet it: {}", error_text(&e)),
                "check [smtp] url (host and port) and that the relay accepts connections from this host",
            )]
        }
    };
    let mut findings = vec![Finding::ok(
        "relay",
        format!(
            "{place} answered EHLO as {}",
            connection.server_info().name()
        ),
    )];
    let (tls, usable) = tls_step(target, &mut connection, &place).await;
    findings.push(tls);
    if !usable {
        // Dropped as it is: after a failed TLS upgrade lettre's stream is
        // gone, and even a QUIT would panic inside lettre.
        return findings;
    }
    // A fresh EHLO after STARTTLS: the reply before it may differ, and
    // lettre's parse drops PIPELINING and SIZE.
    match connection.command(Ehlo::new(target.hello.clone())).await {
        Ok(reply) => {
            let announced = extensions(reply.message());
            findings.push(auth_step(target, relay, &mut connection, &place).await);
            findings.push(judge_pipelining(&announced));
            findings.push(judge_size(&announced, message_bytes));
        }
        Err(e) => findings.push(Finding::error(
            "relay",
            format!("{place} broke off after TLS: {}", error_text(&e)),
            "check the relay's logs",
        )),
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), connection.quit()).await;
    findings
}

fn error_text(error: &lettre::transport::smtp::Error) -> String {
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

fn tls_error(place: &str, detail: &str) -> Finding {
    Finding::error(
        "relay-tls",
        format!("the TLS certificate of {place} is not valid for it: {detail}"),
        "give the relay a certificate for this host name from a public CA, or name a private CA in [smtp] ca_file",
    )
}

/// The TLS finding, and whether the session can go on (not after a failed
/// handshake).
async fn tls_step(
    target: &SmtpTarget,
    connection: &mut AsyncSmtpConnection,
    place: &str,
) -> (Finding, bool) {
    match target.tls {
        TlsMode::Implicit => (
            Finding::ok(
                "relay-tls",
                format!("implicit TLS; the certificate is valid for {}", target.host),
            ),
            true,
        ),
        TlsMode::None => (plain_link(target, place), true),
        TlsMode::Opportunistic | TlsMode::Required => {
            starttls_step(target, connection, place).await
        }
    }
}

fn plain_link(target: &SmtpTarget, place: &str) -> Finding {
    let local = target.host == "localhost"
        || target
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local {
        Finding::ok(
            "relay-tls",
            format!("?tls=none to a relay on this machine ({place})"),
        )
    } else {
        Finding::warning(
            "relay-tls",
            format!("?tls=none: mail and any password cross the network to {place} in clear"),
            "drop ?tls=none (or use ?tls=required) unless the link to the relay is trusted",
        )
    }
}

async fn starttls_step(
    target: &SmtpTarget,
    connection: &mut AsyncSmtpConnection,
    place: &str,
) -> (Finding, bool) {
    if !connection.can_starttls() {
        let finding = Finding::error(
            "relay-tls",
            format!("{place} does not offer STARTTLS: mail and password would cross the network in clear"),
            "enable STARTTLS on the relay, or use its implicit-TLS port (smtps://host:465)",
        );
        return (finding, true);
    }
    let parameters = match target.tls_parameters() {
        Ok(p) => p,
        Err(e) => return (tls_error(place, &error_text(&e)), false),
    };
    match connection.starttls(parameters, &target.hello).await {
        Ok(()) => (
            Finding::ok(
                "relay-tls",
                format!(
                    "STARTTLS offered; the certificate is valid for {}",
                    target.host
                ),
            ),
            true,
        ),
        Err(e) => (tls_error(place, &error_text(&e)), false),
    }
}

async fn auth_step(
    target: &SmtpTarget,
    relay: &Relay,
    connection: &mut AsyncSmtpConnection,
    place: &str,
) -> Finding {
    let Some((user, password)) = &target.credentials else {
        return Finding::ok(
            "relay-auth",
            "no username: the relay must accept mail from this host without AUTH",
        );
    };
    if !connection.is_encrypted() && target.tls != TlsMode::None {
        return Finding::error(
            "relay-auth",
            "AUTH not tried: the connection is not encrypted, and the password never goes in clear",
            "fix the relay's TLS first",
        );
    }
    let credentials = Credentials::new(user.clone(), password.expose().to_string());
    match connection
        .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
        .await
    {
        Ok(_) => Finding::ok(
            "relay-auth",
            format!("AUTH as {user:?} accepted by {place}"),
        ),
        Err(e) => Finding::error(
            "relay-auth",
            format!("{place} refused AUTH as {user:?}: {}", error_text(&e)),
            format!("check the username and {}", password_variable(relay)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn extensions_are_read_from_the_ehlo_reply() {
        let reply = ["mx.example.com", "PIPELINING", "SIZE 10240000", "8BITMIME"];
        let found = extensions(reply);
        assert!(found.pipelining);
        assert_eq!(found.size, Some(Some(10_240_000)));
        let bare = extensions(["mx.example.com", "SIZE", "STARTTLS"]);
        assert_eq!(
            bare,
            Extensions {
                pipelining: false,
                size: Some(None)
            }
        );
        // The greeting line is the server's name, never an extension.
        assert_eq!(extensions(["PIPELINING"]), Extensions::default());
    }

    #[test]
    fn the_message_is_weighed_against_size() {
        let limit = Extensions {
            pipelining: true,
            size: Some(Some(1_000_000)),
        };
        assert_eq!(judge_size(&limit, Some(999_999)).level, Level::Ok);
        assert_eq!(judge_size(&limit, Some(1_000_001)).level, Level::Error);
        assert_eq!(
            judge_size(&Extensions::default(), Some(10)).level,
            Level::Warning
        );
        let unlimited = Extensions {
            pipelining: false,
            size: Some(None),
        };
        assert_eq!(judge_size(&unlimited, Some(usize::MAX)).level, Level::Ok);
        assert_eq!(judge_pipelining(&unlimited).level, Level::Warning);
        assert_eq!(judge_pipelining(&limit).level, Level::Ok);
    }
}
