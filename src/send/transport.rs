//! The transport trait and its implementations: real SMTP (in smtp.rs), a
//! file outbox (the embedded default: one .eml per message, no server
//! needed), and a stub that accepts everything (dry runs).

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;

use lettre::transport::smtp::extension::ClientId;

use super::smtp::{SmtpConnection, SmtpTarget};
use crate::config::Settings;
use crate::error::user_error;
use crate::store::deliveries::Reply;

/// Which step of a mail transaction an error answered. Only a recipient's
/// refusal says something about that recipient; a refused sender or a
/// failing connection says something about us or the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Connecting, TLS, AUTH, or the network mid-transaction.
    Connection,
    /// MAIL FROM.
    Sender,
    /// RCPT TO.
    Recipient,
    /// DATA and the message itself (content, size, policy).
    Message,
}

/// Why a message did not go. The retry policy reads it through
/// [`is_transient`](SendError::is_transient) and
/// [`is_permanent`](SendError::is_permanent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SendError {
    /// The server's reply was permanent (5xx), or we refuse for good.
    pub permanent: bool,
    pub stage: Stage,
    pub reply: Reply,
    /// The connection is unusable afterwards (dropped, timed out, aborted).
    pub connection_lost: bool,
}

impl SendError {
    pub fn transient(text: impl Into<String>) -> Self {
        SendError {
            permanent: false,
            stage: Stage::Connection,
            reply: Reply {
                code: None,
                enhanced_code: None,
                text: text.into(),
            },
            connection_lost: true,
        }
    }

    /// A message that can never go (it cannot be built, or the server can
    /// never take it).
    pub fn permanent(text: impl Into<String>) -> Self {
        SendError {
            permanent: true,
            stage: Stage::Message,
            reply: Reply {
                code: None,
                enhanced_code: None,
                text: text.into(),
            },
            connection_lost: false,
        }
    }

    /// Worth another try later. A 5xx to MAIL FROM or to the connection is
    /// counted here too: it is the same for every recipient (a rejected
    /// sender, a blocked IP), so failing each row would lose the whole
    /// list; deferring lets the failure window pause the campaign.
    pub fn is_transient(&self) -> bool {
        !self.is_permanent()
    }

    /// This recipient (or this message) will never be accepted.
    pub fn is_permanent(&self) -> bool {
        self.permanent && matches!(self.stage, Stage::Recipient | Stage::Message)
    }

    /// The recipient's mailbox does not exist (RFC 3463 5.1.1 bad mailbox,
    /// 5.1.2 bad domain, 5.1.3 bad address syntax, 5.1.6 moved, 5.1.10 null
    /// MX, or a bare 550 to RCPT): no later issue should go there either.
    pub fn is_bad_mailbox(&self) -> bool {
        if !self.permanent || self.stage != Stage::Recipient {
            return false;
        }
        match self.reply.enhanced_code.as_deref() {
            Some(code) => matches!(code, "5.1.1" | "5.1.2" | "5.1.3" | "5.1.6" | "5.1.10"),
            None => self.reply.code == Some(550),
        }
    }

    fn describe(&self) -> String {
        match (self.reply.code, &self.reply.enhanced_code) {
            (Some(code), Some(enhanced)) => format!("{code} {enhanced} {}", self.reply.text),
            (Some(code), None) => format!("{code} {}", self.reply.text),
            _ => self.reply.text.clone(),
        }
    }
}

/// Opens connections. One connection serves one worker, message after
/// message, and is replaced when it breaks.
pub trait Transport: Send + Sync + 'static {
    type Connection: Connection;
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, SendError>> + Send;
}

pub trait Connection: Send + 'static {
    fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
    ) -> impl Future<Output = Result<Reply, SendError>> + Send;
    fn is_broken(&self) -> bool;
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// The transport chosen by `[smtp] url`.
#[derive(Clone)]
pub enum AnyTransport {
    Smtp(Arc<SmtpTarget>),
    File(FileOutbox),
    Stub,
}

impl AnyTransport {
    /// The transport `[smtp] url` names, greeting as `[smtp] helo_name`.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<AnyTransport> {
        let url = settings.smtp.url.trim();
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(AnyTransport::File(FileOutbox::new(
                settings.resolve(std::path::Path::new(path)),
            )));
        }
        let shown = crate::config::redact_url(url);
        let parsed =
            url::Url::parse(url).map_err(|e| user_error(format!("[smtp] url = {shown:?}: {e}")))?;
        let mut target = SmtpTarget::from_url(
            &parsed,
            settings.smtp.username.as_deref(),
            settings.smtp_password.as_ref(),
            Duration::from_secs(settings.smtp.timeout_secs.max(1)),
        )
        .map_err(|e| user_error(format!("[smtp] url = {shown:?}: {e}")))?;
        let machine = match ClientId::default() {
            ClientId::Domain(name) => name,
            _ => String::new(),
        };
        target.hello = ClientId::Domain(settings.helo_name(&machine));
        Ok(AnyTransport::Smtp(Arc::new(target)))
    }

    pub fn describe(&self) -> String {
        match self {
            AnyTransport::Smtp(target) => target.describe(),
            AnyTransport::File(outbox) => format!("file outbox {}", outbox.dir.display()),
            AnyTransport::Stub => "nowhere (dry run)".to_string(),
        }
    }
}

pub enum AnyConnection {
    Smtp(Box<SmtpConnection>),
    File(FileOutbox),
    Stub,
}

impl Transport for AnyTransport {
    type Connection = AnyConnection;

    async fn connect(&self) -> Result<AnyConnection, SendError> {
        match self {
            AnyTransport::Smtp(target) => {
                Ok(AnyConnection::Smtp(Box::new(target.connect().await?)))
            }
            AnyTransport::File(outbox) => {
                tokio::fs::create_dir_all(&outbox.dir).await.map_err(|e| {
                    SendError::transient(format!("creating {}: {e}", outbox.dir.display()))
                })?;
                Ok(AnyConnection::File(outbox.clone()))
            }
            AnyTransport::Stub => Ok(AnyConnection::Stub),
        }
    }
}

impl Connection for AnyConnection {
    async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<Reply, SendError> {
        match self {
            AnyConnection::Smtp(conn) => conn.send(envelope, message).await,
            AnyConnection::File(outbox) => outbox.write(message).await,
            AnyConnection::Stub => Ok(Reply {
                code: Some(250),
                enhanced_code: None,
                text: "accepted by the stub transport".into(),
            }),
        }
    }

    fn is_broken(&self) -> bool {
        match self {
            AnyConnection::Smtp(conn) => conn.is_broken(),
            _ => false,
        }
    }

    async fn close(self) {
        if let AnyConnection::Smtp(conn) = self {
            conn.quit().await;
        }
    }
}

/// Writes `bytes` to `path` so that it either appears whole or not at all:
/// a hidden temporary file in the same folder (so the rename cannot cross
/// file systems), synced, then renamed. A full disk leaves no empty or
/// truncated `.eml` beside the good copy a retry makes later.
fn write_whole_or_nothing(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".herald-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes each message to `<dir>/<nanos>-<pid>-<n>.eml`. lettre's file transport
/// names files by a random UUID; the time and a sequence keep them in send
/// order.
#[derive(Clone, Debug)]
pub struct FileOutbox {
    pub dir: PathBuf,
    counter: Arc<AtomicU64>,
}

impl FileOutbox {
    pub fn new(dir: PathBuf) -> Self {
        FileOutbox {
            dir,
            counter: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn write(&self, message: &[u8]) -> Result<Reply, SendError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = self
            .dir
            .join(format!("{nanos}-{}-{n:06}.eml", std::process::id()));
        let message = message.to_vec();
        let written = path.clone();
        tokio::task::spawn_blocking(move || write_whole_or_nothing(&written, &message))
            .await
            .map_err(|e| SendError::transient(format!("writing {}: {e}", path.display())))?
            .map_err(|e| SendError::transient(format!("writing {}: {e}", path.display())))?;
        Ok(Reply {
            code: Some(250),
            enhanced_code: None,
            text: format!("written to {}", path.display()),
        })
    }
}
