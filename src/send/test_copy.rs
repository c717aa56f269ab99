//! One test copy of an issue to one address (`herald send --to`, and the
//! admin Issues page's "send a test copy"): the message a subscriber would
//! get, built for the given address, sent on one connection, recorded
//! nowhere.

use crate::config::Settings;
use crate::domain::{Reply, SubscriberEmail};
use crate::render::RenderedEmail;
use crate::send::message::MessageFactory;
use crate::send::{AnyTransport, Connection, Transport};

/// Why a test copy did not go out, in words for the person who asked.
#[derive(Debug, thiserror::Error)]
pub enum TestCopyError {
    #[error("cannot reach the mail server ({server}): {reason}")]
    Unreachable { server: String, reason: String },
    #[error("the test copy to {recipient} was refused: {reason}")]
    Refused { recipient: String, reason: String },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Sends `email` to `recipient` through `transport`; the server's reply.
pub async fn send_test_copy(
    settings: &Settings,
    email: RenderedEmail,
    web_url: String,
    transport: &AnyTransport,
    recipient: &SubscriberEmail,
) -> Result<Reply, TestCopyError> {
    let factory = MessageFactory::new(settings, email, web_url)?;
    let message_id = format!(
        "<herald.test.{}@{}>",
        uuid::Uuid::new_v4(),
        factory.from().email.domain()
    );
    let (envelope, bytes) = factory.build(None, recipient.as_str(), "test", &message_id)?;
    let mut connection = transport
        .connect()
        .await
        .map_err(|e| TestCopyError::Unreachable {
            server: transport.describe(),
            reason: e.to_string(),
        })?;
    let reply = connection
        .send(&envelope, &bytes)
        .await
        .map_err(|e| TestCopyError::Refused {
            recipient: recipient.to_string(),
            reason: e.to_string(),
        })?;
    connection.close().await;
    Ok(reply)
}
