//! The transport `[smtp] url` names: SMTP, the file outbox, or a stub that
//! accepts everything (dry runs). The one module that knows them all.

use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;

use super::error::SendError;
use super::smtp::{SmtpConnection, SmtpTarget};
use super::transport::{Connection, FileOutbox, Transport};
use crate::config::Settings;
use crate::domain::Reply;
use crate::error::user_error;

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
        target.extra_roots = settings
            .smtp_ca_certificates()
            .map_err(crate::error::UserError::wrap)?;
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
