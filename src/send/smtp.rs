//! SMTP connections that are fast on every link.
//!
//! lettre's pooled `AsyncSmtpTransport` never sets TCP_NODELAY, so each
//! message waits out a delayed ACK: about 23 messages a second per
//! connection against Postfix's smtp-sink on loopback. We open the socket
//! ourselves with `set_nodelay(true)` (and wrap it in TLS ourselves for
//! implicit TLS) and hand it to lettre's `AsyncSmtpConnection`, which does
//! the protocol. Each worker keeps one such connection across messages.

use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::CertificateDer;
use url::Url;

use super::error::{SendError, Stage};
use super::transaction::{send_message, Failure};
use crate::config::Secret;
use crate::domain::Reply;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// smtps://: TLS from the first byte.
    Implicit,
    /// smtp:// (default): STARTTLS when the server offers it.
    Opportunistic,
    /// smtp://...?tls=required: STARTTLS or fail.
    Required,
    /// smtp://...?tls=none: plain text, e.g. a local relay.
    None,
}

#[derive(Debug)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<(String, Secret)>,
    pub timeout: Duration,
    pub hello: ClientId,
    /// CAs trusted beside the web's roots (`[smtp] ca_file`).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl SmtpTarget {
    /// Parses `smtp://[user@]host[:port][?tls=required|none]` or `smtps://`.
    pub fn from_url(
        url: &Url,
        username: Option<&str>,
        password: Option<&Secret>,
        timeout: Duration,
    ) -> Result<Self, String> {
        Self::from_url_with(url, username, password, "HERALD_SMTP_PASSWORD", timeout)
    }

    /// [`from_url`](Self::from_url) for a password from `password_env` (a
    /// relay's own variable, named in the error when it is unset).
    pub fn from_url_with(
        url: &Url,
        username: Option<&str>,
        password: Option<&Secret>,
        password_env: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let (tls, default_port) = match url.scheme() {
            "smtps" => (TlsMode::Implicit, 465),
            "smtp" => (TlsMode::Opportunistic, 25),
            other => return Err(format!("unsupported SMTP scheme {other:?}")),
        };
        let tls = match url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned())
        {
            None => tls,
            Some(v) if v == "required" && tls != TlsMode::Implicit => TlsMode::Required,
            Some(v) if v == "none" && tls != TlsMode::Implicit => TlsMode::None,
            Some(v) => {
                return Err(format!(
                    "tls={v} is not one of required, none (for smtp://)"
                ))
            }
        };
        let host = url
            .host_str()
            .ok_or("the SMTP URL has no host")?
            .to_string();
        let user = Some(url.username()).filter(|u| !u.is_empty()).or(username);
        if url.password().is_some() {
            return Err(format!(
                "put the SMTP password in {password_env}, not in the URL"
            ));
        }
        let credentials = match (user, password) {
            (Some(user), Some(password)) => Some((user.to_string(), password.clone())),
            (Some(user), None) if password_env.is_empty() => {
                return Err(format!(
                    "SMTP user {user:?} is set but no password_env names its password"
                ))
            }
            (Some(user), None) => {
                return Err(format!(
                    "SMTP user {user:?} is set but {password_env} is not"
                ))
            }
            _ => None,
        };
        Ok(SmtpTarget {
            port: url.port().unwrap_or(default_port),
            host,
            tls,
            credentials,
            timeout,
            hello: ClientId::default(),
            extra_roots: Vec::new(),
        })
    }

    /// STARTTLS (or implicit TLS) parameters: the host's name checked
    /// against the web's roots and `extra_roots`.
    pub fn tls_parameters(&self) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        let mut builder = TlsParameters::builder(self.host.clone());
        for root in &self.extra_roots {
            builder = builder.add_root_certificate(Certificate::from_der(root.to_vec())?);
        }
        builder.build()
    }

    pub fn describe(&self) -> String {
        let tls = match self.tls {
            TlsMode::Implicit => "implicit TLS",
            TlsMode::Opportunistic => "STARTTLS if offered",
            TlsMode::Required => "STARTTLS required",
            TlsMode::None => "no TLS",
        };
        format!("SMTP {}:{} ({tls})", self.host, self.port)
    }

    pub async fn connect(self: &Arc<Self>) -> Result<SmtpConnection, SendError> {
        tokio::time::timeout(self.timeout, self.connect_inner())
            .await
            .unwrap_or_else(|_| {
                Err(SendError::transient(format!(
                    "connecting to {}:{} timed out",
                    self.host, self.port
                )))
            })
    }

    async fn connect_inner(self: &Arc<Self>) -> Result<SmtpConnection, SendError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                SendError::transient(format!("connecting to {}:{}: {e}", self.host, self.port))
            })?;
        tcp.set_nodelay(true)
            .map_err(|e| SendError::transient(format!("setting TCP_NODELAY: {e}")))?;
        let mut connection = match self.tls {
            TlsMode::Implicit => {
                let stream = ImplicitTls(implicit_tls(tcp, &self.host, &self.extra_roots).await?);
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await,
        }
        .map_err(|e| classify(e, Stage::Connection))?;
        let wants_starttls = matches!(self.tls, TlsMode::Opportunistic | TlsMode::Required);
        if wants_starttls && connection.can_starttls() {
            let parameters = self
                .tls_parameters()
                .map_err(|e| SendError::transient(format!("TLS setup: {e}")))?;
            connection
                .starttls(parameters, &self.hello)
                .await
                .map_err(|e| classify(e, Stage::Connection))?;
        } else if self.tls == TlsMode::Required {
            return Err(SendError::transient(format!(
                "{} does not offer STARTTLS",
                self.host
            )));
        }
        if self.credentials.is_some() && !connection.is_encrypted() && self.tls != TlsMode::None {
            // Otherwise anyone who strips STARTTLS from the greeting gets
            // the password. `?tls=none` says the cleartext link is trusted.
            return Err(SendError::transient(format!(
                "{} offered no STARTTLS: refusing to send the SMTP password in cleartext \
                 (use ?tls=required, smtps://, or ?tls=none for a trusted local relay)",
                self.host
            )));
        }
        if let Some((user, password)) = &self.credentials {
            let credentials = Credentials::new(user.clone(), password.expose().to_string());
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|e| classify(e, Stage::Connection))?;
        }
        // A second EHLO: lettre's parse of the first drops PIPELINING.
        let ehlo = connection
            .command(lettre::transport::smtp::commands::Ehlo::new(
                self.hello.clone(),
            ))
            .await
            .map_err(|e| classify(e, Stage::Connection))?;
        Ok(SmtpConnection {
            inner: connection,
            pipelining: super::transaction::offers_pipelining(&ehlo),
            timeout: self.timeout,
            broken: false,
        })
    }
}

async fn implicit_tls(
    tcp: TcpStream,
    host: &str,
    extra_roots: &[CertificateDer<'static>],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SendError> {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for root in extra_roots {
        roots
            .add(root.clone())
            .map_err(|e| SendError::permanent(format!("[smtp] ca_file: {e}")))?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::transient(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
            SendError::permanent(format!("{host:?} is not a valid TLS server name: {e}"))
        })?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| SendError::transient(format!("TLS handshake with {host}: {e}")))
}

/// A TLS stream lettre can drive: its `AsyncTokioStream` trait is only
/// implemented for a plain `TcpStream`.
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl lettre::transport::smtp::client::AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl tokio::io::AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

pub struct SmtpConnection {
    inner: AsyncSmtpConnection,
    pipelining: bool,
    timeout: Duration,
    broken: bool,
}

impl SmtpConnection {
    pub async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<Reply, SendError> {
        let transaction = send_message(&mut self.inner, self.pipelining, envelope, message);
        match tokio::time::timeout(self.timeout, transaction).await {
            Ok(Ok(response)) => Ok(reply_of(&response)),
            Ok(Err(failure)) => {
                // Like lettre, drop the session after any negative reply.
                self.broken = true;
                // QUIT, bounded: a server out of step must not hang the run.
                let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.abort()).await;
                Err(match failure {
                    Failure::Smtp(e, stage) => classify(e, stage),
                    Failure::Refused(e) => e,
                })
            }
            Err(_) => {
                self.broken = true;
                Err(SendError::transient(format!(
                    "no reply within {} s",
                    self.timeout.as_secs()
                )))
            }
        }
    }

    pub fn is_broken(&self) -> bool {
        self.broken || self.inner.has_broken()
    }

    pub async fn quit(mut self) {
        if !self.is_broken() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.quit()).await;
        }
    }
}

fn reply_of(response: &Response) -> Reply {
    let text = response.message().collect::<Vec<_>>().join(" ");
    let (enhanced_code, text) = split_enhanced_code(&text);
    Reply {
        code: response.code().to_string().parse().ok(),
        enhanced_code,
        text,
    }
}

/// "5.1.1 no such user" → (Some("5.1.1"), "no such user").
fn split_enhanced_code(text: &str) -> (Option<String>, String) {
    let mut parts = text.trim().splitn(2, ' ');
    let first = parts.next().unwrap_or("");
    let is_enhanced = {
        let pieces: Vec<&str> = first.split('.').collect();
        pieces.len() == 3
            && matches!(pieces[0], "2" | "4" | "5")
            && pieces[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if is_enhanced {
        (
            Some(first.to_string()),
            parts.next().unwrap_or("").trim().to_string(),
        )
    } else {
        (None, text.trim().to_string())
    }
}

/// Turns lettre's error into ours: 4xx, timeouts and network trouble are
/// transient; 5xx replies are permanent. A client-side refusal (say, the
/// server lacks SMTPUTF8) is permanent for that message.
fn classify(error: lettre::transport::smtp::Error, stage: Stage) -> SendError {
    let detail = std::error::Error::source(&error)
        .map(|s| s.to_string())
        .unwrap_or_else(|| error.to_string());
    let (enhanced_code, text) = split_enhanced_code(&detail);
    let code = error.status().and_then(|c| c.to_string().parse().ok());
    let reply = Reply {
        code,
        enhanced_code,
        text,
    };
    if error.is_permanent() {
        SendError {
            permanent: true,
            stage,
            reply,
            connection_lost: true,
        }
    } else if error.is_client() {
        SendError {
            permanent: true,
            stage: Stage::Message,
            reply: Reply {
                text: error.to_string(),
                ..reply
            },
            connection_lost: true,
        }
    } else {
        SendError {
            permanent: false,
            // A reply belongs to its step; anything else is the network.
            stage: if code.is_some() {
                stage
            } else {
                Stage::Connection
            },
            reply: Reply {
                text: if code.is_some() {
                    reply.text
                } else {
                    error.to_string()
                },
                ..reply
            },
            connection_lost: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes_are_split_off() {
        assert_eq!(
            split_enhanced_code("5.1.1 <x@example.com>: no such user"),
            (Some("5.1.1".into()), "<x@example.com>: no such user".into())
        );
        assert_eq!(split_enhanced_code("try later"), (None, "try later".into()));
        assert_eq!(split_enhanced_code("5.1 nope"), (None, "5.1 nope".into()));
    }

    #[test]
    fn urls_parse_into_targets() {
        let t = |u: &str| {
            SmtpTarget::from_url(&Url::parse(u).unwrap(), None, None, Duration::from_secs(5))
        };
        let target = t("smtps://mail.example.com").unwrap();
        assert_eq!((target.port, target.tls), (465, TlsMode::Implicit));
        let target = t("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((target.port, target.tls), (2525, TlsMode::None));
        assert!(
            t("smtp://user:pw@mail.example.com").is_err(),
            "password in URL"
        );
        assert!(
            t("smtp://user@mail.example.com").is_err(),
            "user without password"
        );
        let password = Secret::new("pw");
        let with = SmtpTarget::from_url(
            &Url::parse("smtp://user@mail.example.com:587?tls=required").unwrap(),
            None,
            Some(&password),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(with.tls, TlsMode::Required);
        assert!(with.credentials.is_some());
    }
}
