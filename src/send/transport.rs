//! The transport interface, and the file outbox that implements it (the
//! embedded default: one .eml per message, no server needed). SMTP is in
//! `smtp.rs`; `any.rs` picks one from the config.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lettre::address::Envelope;

use super::error::SendError;
use crate::domain::Reply;

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

    pub async fn write(&self, message: &[u8]) -> Result<Reply, SendError> {
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
