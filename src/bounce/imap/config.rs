//! `[bounces] imap_url` and friends, checked once when `herald serve`
//! starts so a typo stops the server instead of failing every poll.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::config::{Secret, Settings};

/// How the connection gets its TLS. There is no plain-text variant: a
/// password never crosses the network in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `imaps://`: TLS from the first byte (port 993).
    Implicit,
    /// `imap://`: STARTTLS, required; a server that does not offer it is
    /// refused before LOGIN (port 143).
    StartTls,
}

/// Where the bounce mailbox is and how to reach it.
#[derive(Clone)]
pub struct ImapConfig {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub server_name: ServerName<'static>,
    pub user: String,
    pub password: Secret,
    /// The mailbox polled, `INBOX` unless the URL names another.
    pub mailbox: String,
    /// Where processed reports go, with `/` as the separator; translated to
    /// the server's own hierarchy delimiter when used.
    pub processed_folder: String,
    pub poll_interval: Duration,
    pub tls: Arc<ClientConfig>,
}

impl std::fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapConfig")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("mailbox", &self.mailbox)
            .field("processed_folder", &self.processed_folder)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl ImapConfig {
    /// `None` when no `imap_url` is set (no polling). Errors name the
    /// setting at fault and never contain the password.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Option<ImapConfig>> {
        let bounces = &settings.bounces;
        let Some(url) = bounces.imap_url.as_deref() else {
            return Ok(None);
        };
        let target = parse_imap_url(url).with_context(|| "[bounces] imap_url")?;
        let Some(password) = settings.imap_password.clone() else {
            bail!("[bounces] imap_url is set but HERALD_IMAP_PASSWORD is not");
        };
        let processed_folder = check_folder_name(&bounces.imap_processed_folder)
            .with_context(|| "[bounces] imap_processed_folder")?;
        if processed_folder.eq_ignore_ascii_case(&target.mailbox) {
            bail!(
                "[bounces] imap_processed_folder must differ from the polled mailbox {:?}",
                target.mailbox
            );
        }
        if bounces.imap_poll_secs == 0 {
            bail!("[bounces] imap_poll_secs must be at least 1");
        }
        let tls = tls_config(bounces.imap_ca_file.as_deref())?;
        Ok(Some(ImapConfig {
            security: target.security,
            server_name: server_name(&target.host)?,
            host: target.host,
            port: target.port,
            user: target.user,
            password,
            mailbox: target.mailbox,
            processed_folder,
            poll_interval: Duration::from_secs(bounces.imap_poll_secs),
            tls,
        }))
    }
}

/// The parts of an `imap_url`.
#[derive(Debug, PartialEq, Eq)]
pub struct ImapTarget {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub mailbox: String,
}

/// Reads `imaps://user@host[:port][/mailbox]` or `imap://...` (STARTTLS).
/// The user may be percent-encoded (`bounces%40example.com`); a password in
/// the URL is refused, since secrets come only from the environment.
pub fn parse_imap_url(raw: &str) -> anyhow::Result<ImapTarget> {
    let url = url::Url::parse(raw.trim()).map_err(|e| anyhow::anyhow!("{e}: not a URL"))?;
    let (security, default_port) = match url.scheme() {
        "imaps" => (Security::Implicit, 993),
        "imap" => (Security::StartTls, 143),
        other => bail!("scheme {other:?} is not imaps:// or imap:// (STARTTLS)"),
    };
    if url.password().is_some() {
        bail!("a password does not belong in the URL: set HERALD_IMAP_PASSWORD");
    }
    let host = match url.host() {
        Some(url::Host::Domain(domain)) if !domain.is_empty() => domain.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => bail!("no host in the URL"),
    };
    let user = decode(url.username(), "user")?;
    if user.is_empty() {
        bail!("no user in the URL (imaps://USER@{host}/INBOX)");
    }
    let mailbox = decode(url.path().trim_start_matches('/'), "mailbox")?;
    let mailbox = if mailbox.is_empty() {
        "INBOX".to_string()
    } else {
        check_folder_name(&mailbox)?
    };
    if url.query().is_some() || url.fragment().is_some() {
        bail!("a query or fragment means nothing in an IMAP URL here");
    }
    Ok(ImapTarget {
        security,
        port: url.port().unwrap_or(default_port),
        host,
        user,
        mailbox,
    })
}

fn decode(part: &str, what: &str) -> anyhow::Result<String> {
    let text = percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map_err(|_| anyhow::anyhow!("the {what} is not UTF-8 once decoded"))?;
    if text.chars().any(char::is_control) {
        bail!("the {what} contains a control character");
    }
    Ok(text.into_owned())
}

/// Folder names travel as IMAP quoted strings. Non-ASCII names would need
/// IMAP's modified UTF-7, which no maintained crate offers in a form worth
/// a dependency for one setting; ASCII names cover the use.
fn check_folder_name(name: &str) -> anyhow::Result<String> {
    let name = name.trim().trim_matches('/');
    if name.is_empty() {
        bail!("the folder name is empty");
    }
    if !name.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        bail!("{name:?}: folder names must be printable ASCII");
    }
    if name.contains(['*', '%', '"', '\\']) || name.contains("//") {
        bail!("{name:?}: folder names may not contain * % \" \\ or an empty level");
    }
    Ok(name.to_string())
}

fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(host.to_string()).map_err(|e| {
        anyhow::anyhow!("[bounces] imap_url: {host:?} is not a valid TLS server name: {e}")
    })
}

/// The web's roots (webpki-roots) plus, when set, the CAs of
/// `imap_ca_file`, for a mail server with a private CA.
fn tls_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certificates = read_pem_certificates(path)
            .with_context(|| format!("[bounces] imap_ca_file {}", path.display()))?;
        for certificate in certificates {
            roots.add(certificate).with_context(|| {
                format!(
                    "[bounces] imap_ca_file {}: a certificate is not a usable CA",
                    path.display()
                )
            })?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_pem_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).context("reading it")?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("not PEM certificates: {e}"))?;
    if certificates.is_empty() {
        bail!("holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_urls_people_write() {
        let cases = [
            (
                "imaps://bounces@mail.example.com/INBOX",
                (
                    Security::Implicit,
                    "mail.example.com",
                    993,
                    "bounces",
                    "INBOX",
                ),
            ),
            (
                "imaps://bounces%40example.com@mail.example.com:9993",
                (
                    Security::Implicit,
                    "mail.example.com",
                    9993,
                    "bounces@example.com",
                    "INBOX",
                ),
            ),
            (
                "imap://b@127.0.0.1/Bounces%20In",
                (Security::StartTls, "127.0.0.1", 143, "b", "Bounces In"),
            ),
            (
                "imaps://b@[::1]:1993/INBOX",
                (Security::Implicit, "::1", 1993, "b", "INBOX"),
            ),
        ];
        for (raw, (security, host, port, user, mailbox)) in cases {
            let target = parse_imap_url(raw).unwrap_or_else(|e| panic!("{raw}: {e:#}"));
            assert_eq!(
                target,
                ImapTarget {
                    security,
                    host: host.into(),
                    port,
                    user: user.into(),
                    mailbox: mailbox.into()
                },
                "{raw}"
            );
        }
    }

    #[test]
    fn refuses_urls_that_would_be_unsafe_or_meaningless() {
        let cases = [
            ("pop3s://b@mail.example.com/", "scheme"),
            (
                "imaps://b:hunter2@mail.example.com/",
                "HERALD_IMAP_PASSWORD",
            ),
            ("imaps://mail.example.com/", "no user"),
            ("imaps://b@mail.example.com/INBOX?x=1", "query"),
            ("imaps://b@mail.example.com/Caf%C3%A9", "ASCII"),
            ("imaps://b@mail.example.com/%2A", "may not contain"),
            ("imaps://b@mail.example.com/x%0Ay", "control"),
            ("not a url", "not a URL"),
        ];
        for (raw, expected) in cases {
            let error = format!("{:#}", parse_imap_url(raw).unwrap_err());
            assert!(error.contains(expected), "{raw}: {error}");
            assert!(!error.contains("hunter2"), "{raw}: {error}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = format!("{:#}", tls_config(Some(&missing)).unwrap_err());
        assert!(
            error.contains("imap_ca_file") && error.contains("missing.pem"),
            "{error}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let error = format!("{:#}", tls_config(Some(&empty)).unwrap_err());
        assert!(error.contains("no PEM certificate"), "{error}");
        assert!(tls_config(None).is_ok());
    }
}
