//! The transport trait and its implementations: real SMTP (in smtp.rs), a
//! file outbox (the embedded default: one .eml per message, no server
//! needed), and a stub that accepts everything (dry runs).

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lettre::address::Envelope;

use super::smtp::{SmtpConnection, SmtpTarget};
use crate::store::deliveries::Reply;

/// Why a message did not go. The retry policy reads it through
/// [`is_transient`](SendError::is_transient) and
/// [`is_permanent`](SendError::is_permanent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SendError {
    pub permanent: bool,
    pub reply: Reply,
    /// The connection is unusable afterwards (dropped, timed out, aborted).
    pub connection_lost: bool,
}

impl SendError {
    pub fn transient(text: impl Into<String>) -> Self {
        SendError {
            permanent: false,
            reply: Reply {
                code: None,
                enhanced_code: None,
                text: text.into(),
            },
            connection_lost: true,
        }
    }

    pub fn permanent(text: impl Into<String>) -> Self {
        SendError {
            permanent: true,
            reply: Reply {
                code: None,
                enhanced_code: None,
                text: text.into(),
            },
            connection_lost: false,
        }
    }

    pub fn is_transient(&self) -> bool {
        !self.permanent
    }

    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// RFC 3463 5.1.x: the mailbox does not exist, so no later issue should
    /// go there either.
    pub fn is_bad_mailbox(&self) -> bool {
        self.permanent
            && (self
                .reply
                .enhanced_code
                .as_deref()
                .is_some_and(|c| c.starts_with("5.1."))
                || matches!(self.reply.code, Some(550 | 551 | 553))
                    && self.reply.enhanced_code.is_none())
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

/// Writes each message to `<dir>/<n>-<pid>.eml`. lettre's file transport
/// names files by a random UUID; a sequence keeps them in send order.
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
        tokio::fs::write(&path, message)
            .await
            .map_err(|e| SendError::transient(format!("writing {}: {e}", path.display())))?;
        Ok(Reply {
            code: Some(250),
            enhanced_code: None,
            text: format!("written to {}", path.display()),
        })
    }
}
