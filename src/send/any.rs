//! The transport `[smtp] url` (or each `[[smtp.relays]]` url) names: SMTP,
//! the file outbox, or a stub that accepts everything (dry runs); and a
//! pool of several relays for mail that takes one connection at a time
//! (confirmations, welcomes, test copies). The one module that knows them
//! all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;

use super::error::SendError;
use super::smtp::{SmtpConnection, SmtpTarget};
use super::transport::{Connection, FileOutbox, Transport};
use crate::config::{Relay, Settings};
use crate::domain::Reply;
use crate::error::user_error;

/// The transport chosen by `[smtp] url`, or by `[[smtp.relays]]`.
#[derive(Clone)]
pub enum AnyTransport {
    Smtp(Arc<SmtpTarget>),
    File(FileOutbox),
    Stub,
    /// Several relays: each connection goes to the next by weight, or to
    /// the others when that one cannot be reached.
    Pool(Arc<Pool>),
}

/// The relays of `[[smtp.relays]]`, for one connection at a time.
pub struct Pool {
    /// (name, transport, weight); never a pool itself.
    pub relays: Vec<(String, AnyTransport, u32)>,
    /// Connections opened so far: picks the next relay by weight.
    turn: AtomicU64,
}

impl AnyTransport {
    /// All the relays of the config: the one `[smtp] url` names, or a pool
    /// of `[[smtp.relays]]`.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<AnyTransport> {
        let mut relays = settings
            .relays()
            .into_iter()
            .map(|relay| {
                let transport = Self::for_relay(settings, &relay)?;
                Ok((relay.name, transport, relay.weight))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        match relays.len() {
            1 => Ok(relays.remove(0).1),
            _ => Ok(AnyTransport::Pool(Arc::new(Pool {
                relays,
                turn: AtomicU64::new(0),
            }))),
        }
    }

    /// One relay's transport, greeting as `[smtp] helo_name`.
    pub fn for_relay(settings: &Settings, relay: &Relay) -> anyhow::Result<AnyTransport> {
        let url = relay.url.trim();
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(AnyTransport::File(FileOutbox::new(
                settings.resolve(std::path::Path::new(path)),
            )));
        }
        let shown = crate::config::redact_url(url);
        let key = if settings.smtp.relays.is_empty() {
            "[smtp] url".to_string()
        } else {
            format!("relay {:?} url", relay.name)
        };
        let parsed =
            url::Url::parse(url).map_err(|e| user_error(format!("{key} = {shown:?}: {e}")))?;
        let mut target = SmtpTarget::from_url_with(
            &parsed,
            relay.username.as_deref(),
            relay.password.as_ref(),
            &relay.password_env,
            Duration::from_secs(settings.smtp.timeout_secs.max(1)),
        )
        .map_err(|e| user_error(format!("{key} = {shown:?}: {e}")))?;
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
            AnyTransport::Pool(pool) => {
                let relays: Vec<String> = pool
                    .relays
                    .iter()
                    .map(|(name, transport, weight)| {
                        format!("{name} = {} (weight {weight})", transport.describe())
                    })
                    .collect();
                format!("{} relays: {}", relays.len(), relays.join(", "))
            }
        }
    }

    /// A connection to this one transport (never a pool).
    async fn connect_one(&self) -> Result<AnyConnection, SendError> {
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
            AnyTransport::Pool(_) => Err(SendError::permanent("a pool inside a pool")),
        }
    }
}

impl Pool {
    /// Tries the relay whose turn it is (by weight), then the others in
    /// order; the first error when none answers.
    async fn connect(&self) -> Result<AnyConnection, SendError> {
        let total: u64 = self.relays.iter().map(|(_, _, w)| u64::from(*w)).sum();
        let mut slot = self.turn.fetch_add(1, Ordering::Relaxed) % total.max(1);
        let first = self
            .relays
            .iter()
            .position(|(_, _, weight)| {
                let here = slot < u64::from(*weight);
                slot = slot.saturating_sub(u64::from(*weight));
                here
            })
            .unwrap_or(0);
        let mut first_error = None;
        for offset in 0..self.relays.len() {
            let Some((name, transport, _)) = self.relays.get((first + offset) % self.relays.len())
            else {
                continue;
            };
            match transport.connect_one().await {
                Ok(connection) => return Ok(connection),
                Err(mut error) => {
                    tracing::warn!("relay {name}: {error}");
                    error.reply.text = format!("relay {name}: {}", error.reply.text);
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| SendError::transient("no relay is configured")))
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
            AnyTransport::Pool(pool) => pool.connect().await,
            single => single.connect_one().await,
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
